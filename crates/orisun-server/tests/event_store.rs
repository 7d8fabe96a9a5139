//! End-to-end tests of `orisun.EventStore` through a tonic client against a real server, on
//! every backend: each RPC's happy path, each bad input with its exact status, and that a
//! rejected call changes nothing.

mod common;

use common::*;
use futures::StreamExt;
use orisun_proto as pb;
use serde_json::json;
use std::time::Duration;
use tonic::Code;

per_backend!(
    save_and_read,
    save_rejections_change_nothing,
    conditional_saves,
    idempotent_retry,
    get_events_rejections,
    latest_by_criteria,
    latest_by_criteria_rejections,
    subscription_catch_up_then_live,
    subscription_rejections_and_exclusivity,
    ping_and_authentication,
    indexes,
    index_rejections_change_nothing,
    admin_boundary_is_redacted_and_protected,
    concurrent_conflicting_commands,
);

fn save(boundary: &str, events: Vec<pb::EventToSave>) -> pb::SaveEventsRequest {
    pb::SaveEventsRequest {
        boundary: boundary.to_owned(),
        query: None,
        events,
    }
}

fn conditional(
    boundary: &str,
    events: Vec<pb::EventToSave>,
    expected: Option<pb::Position>,
    criteria: Vec<pb::Criterion>,
) -> pb::SaveEventsRequest {
    pb::SaveEventsRequest {
        boundary: boundary.to_owned(),
        query: Some(pb::SaveQuery {
            expected_position: expected,
            subset_query: Some(pb::Query { criteria }),
        }),
        events,
    }
}

fn positions(events: &[pb::Event]) -> Vec<(i64, i64)> {
    events
        .iter()
        .map(|e| {
            let p = e.position.expect("position");
            (p.commit_position, p.prepare_position)
        })
        .collect()
}

async fn save_and_read(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    let first = c
        .save_events(save(
            "orders",
            vec![
                event("OrderPlaced", json!({"orderId": "o1", "amount": 10})),
                event("OrderPlaced", json!({"orderId": "o2", "amount": 20})),
                event("OrderShipped", json!({"orderId": "o1"})),
            ],
        ))
        .await
        .expect("saved")
        .into_inner();
    assert_eq!(
        first.log_position,
        Some(pos(3, 2)),
        "batch of 3: commit = 2 + 1"
    );
    let second = c
        .save_events(save(
            "orders",
            vec![event("OrderPlaced", json!({"orderId": "o3"}))],
        ))
        .await
        .expect("saved")
        .into_inner();
    assert_eq!(second.log_position, Some(pos(4, 3)));

    let all = read_all(&mut c, "orders").await;
    assert_eq!(positions(&all), [(3, 0), (3, 1), (3, 2), (4, 3)]);
    let e = &all[0];
    assert_eq!(e.event_type, "OrderPlaced");
    let data: serde_json::Value = serde_json::from_str(&e.data).expect("json");
    assert_eq!(
        data["eventType"], "OrderPlaced",
        "eventType is written into data"
    );
    assert_eq!(data["orderId"], "o1");
    assert_eq!(e.metadata, "{}");
    assert!(e.date_created.is_some());

    // DESC, inclusive from_position, count.
    let desc = c
        .get_events(pb::GetEventsRequest {
            boundary: "orders".into(),
            from_position: Some(pos(3, 2)),
            count: 2,
            direction: pb::Direction::Desc as i32,
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner()
        .events;
    assert_eq!(positions(&desc), [(3, 2), (3, 1)]);
    let asc = c
        .get_events(pb::GetEventsRequest {
            boundary: "orders".into(),
            from_position: Some(pos(3, 1)),
            count: 2,
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner()
        .events;
    assert_eq!(positions(&asc), [(3, 1), (3, 2)]);

    // Criteria: OR across criteria, AND across tags.
    let filtered = c
        .get_events(pb::GetEventsRequest {
            boundary: "orders".into(),
            count: 100,
            query: Some(pb::Query {
                criteria: vec![
                    criterion(&[("orderId", "o1"), ("eventType", "OrderShipped")]),
                    criterion(&[("amount", "20")]),
                ],
            }),
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner()
        .events;
    assert_eq!(positions(&filtered), [(3, 1), (3, 2)]);

    // Boundaries are independent logs.
    assert!(read_all(&mut c, "payments").await.is_empty());
    server.stop().await.expect("clean stop");
}

async fn save_rejections_change_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    c.save_events(save("orders", vec![event("A", json!({"k": "v"}))]))
        .await
        .expect("seed");
    let id = uuid::Uuid::now_v7().to_string();
    let with = |f: &dyn Fn(&mut pb::EventToSave)| {
        let mut e = event("T", json!({}));
        f(&mut e);
        save("orders", vec![e])
    };
    let cases: Vec<(pb::SaveEventsRequest, Code, String)> = vec![
        (
            save("orders", vec![]),
            Code::InvalidArgument,
            "Invalid request: no events provided".into(),
        ),
        (
            save("or-ders", vec![event("T", json!({}))]),
            Code::InvalidArgument,
            r#"boundary: "or-ders" may contain only letters, digits and underscores"#.into(),
        ),
        (
            save("", vec![event("T", json!({}))]),
            Code::InvalidArgument,
            "boundary: must not be empty".into(),
        ),
        (
            save("nowhere", vec![event("T", json!({}))]),
            Code::FailedPrecondition,
            r#"boundary "nowhere" does not exist"#.into(),
        ),
        (
            with(&|e| e.event_id = "not-a-uuid".into()),
            Code::InvalidArgument,
            r#"events[0].event_id: "not-a-uuid" is not a UUID"#.into(),
        ),
        (
            with(&|e| e.event_type = String::new()),
            Code::InvalidArgument,
            "events[0].event_type: must not be empty".into(),
        ),
        (
            with(&|e| e.data = "[1,2]".into()),
            Code::InvalidArgument,
            "events[0].data: must be a JSON object, got an array".into(),
        ),
        (
            with(&|e| e.metadata = "42".into()),
            Code::InvalidArgument,
            "events[0].metadata: must be a JSON object, got a number".into(),
        ),
        (
            save(
                "orders",
                vec![
                    pb::EventToSave {
                        event_id: id.clone(),
                        event_type: "T".into(),
                        data: "{}".into(),
                        metadata: String::new(),
                    },
                    pb::EventToSave {
                        event_id: id.clone(),
                        event_type: "T".into(),
                        data: "{}".into(),
                        metadata: String::new(),
                    },
                ],
            ),
            Code::InvalidArgument,
            format!("events[1].event_id: {id} appears more than once in the batch"),
        ),
        (
            conditional("orders", vec![event("T", json!({}))], None, vec![criterion(&[("", "x")])]),
            Code::InvalidArgument,
            "query.subsetQuery.criteria[0].tags[0].key: must not be empty".into(),
        ),
        (
            conditional("orders", vec![event("T", json!({}))], None, vec![criterion(&[("k", "v")])]),
            Code::AlreadyExists,
            "OptimisticConcurrencyException:StreamVersionConflict: Expected (-1, -1), Actual (1, 0)"
                .into(),
        ),
        (
            conditional(
                "orders",
                vec![event("T", json!({}))],
                Some(pos(9, 8)),
                vec![criterion(&[("k", "v")])],
            ),
            Code::InvalidArgument,
            "query.expected_position: (9, 8) is after the boundary's head (1, 0)".into(),
        ),
    ];
    for (request, code, message) in cases {
        let result = c.save_events(request).await;
        match &result {
            Err(s) if s.code() == code && s.message() == message => {}
            other => panic!("expected {code:?} {message:?}, got {other:?}"),
        }
    }
    // Nothing was appended by any rejected call.
    assert_eq!(positions(&read_all(&mut c, "orders").await), [(1, 0)]);
    server.stop().await.expect("clean stop");
}

async fn conditional_saves(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    let account = |id: &str| vec![criterion(&[("accountId", id)])];
    // A new entity: expected {-1,-1} (unset), nothing matches yet.
    let opened = c
        .save_events(conditional(
            "payments",
            vec![event("AccountOpened", json!({"accountId": "a1"}))],
            None,
            account("a1"),
        ))
        .await
        .expect("first save")
        .into_inner();
    assert_eq!(opened.log_position, Some(pos(1, 0)));
    // Unrelated traffic does not conflict with a1's context.
    c.save_events(save(
        "payments",
        vec![event("AccountOpened", json!({"accountId": "a2"}))],
    ))
    .await
    .expect("other account");
    // Read the context, then save with its position.
    let latest = c
        .get_latest_by_criteria(pb::GetLatestByCriteriaRequest {
            boundary: "payments".into(),
            criteria: account("a1"),
        })
        .await
        .expect("latest")
        .into_inner();
    assert_eq!(latest.context_position, Some(pos(1, 0)));
    c.save_events(conditional(
        "payments",
        vec![event("Deposited", json!({"accountId": "a1", "amount": 5}))],
        latest.context_position,
        account("a1"),
    ))
    .await
    .expect("fresh context");
    // A second command that read the same (now stale) context fails and changes nothing.
    assert_status(
        c.save_events(conditional(
            "payments",
            vec![event("Deposited", json!({"accountId": "a1", "amount": 7}))],
            latest.context_position,
            account("a1"),
        ))
        .await,
        Code::AlreadyExists,
        "OptimisticConcurrencyException:StreamVersionConflict: Expected (1, 0), Actual (3, 2)",
    );
    // An expected position later than the last match (the head the command read) succeeds.
    c.save_events(conditional(
        "payments",
        vec![event("Withdrawn", json!({"accountId": "a1"}))],
        Some(pos(3, 2)),
        account("a1"),
    ))
    .await
    .expect("expected = head");
    // A query without subsetQuery is no check, even with an expected position.
    c.save_events(pb::SaveEventsRequest {
        boundary: "payments".into(),
        query: Some(pb::SaveQuery {
            expected_position: Some(pos(1, 0)),
            subset_query: None,
        }),
        events: vec![event("Note", json!({"accountId": "a1"}))],
    })
    .await
    .expect("no subsetQuery: plain append");
    // A subsetQuery without criteria checks the whole boundary.
    assert_status(
        c.save_events(conditional(
            "payments",
            vec![event("X", json!({}))],
            Some(pos(1, 0)),
            vec![],
        ))
        .await,
        Code::AlreadyExists,
        "OptimisticConcurrencyException:StreamVersionConflict: Expected (1, 0), Actual (5, 4)",
    );
    assert_eq!(read_all(&mut c, "payments").await.len(), 5);
    server.stop().await.expect("clean stop");
}

async fn idempotent_retry(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    let batch = vec![event("A", json!({"n": 1})), event("B", json!({"n": 2}))];
    let first = c
        .save_events(save("orders", batch.clone()))
        .await
        .expect("saved")
        .into_inner();
    let retry = c
        .save_events(save("orders", batch.clone()))
        .await
        .expect("a retry of a stored batch succeeds")
        .into_inner();
    assert_eq!(first, retry, "the retry reports the original position");
    let partial = vec![batch[0].clone(), event("C", json!({}))];
    let err = c
        .save_events(save("orders", partial))
        .await
        .expect_err("partial overlap");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        format!(
            "events already stored in this boundary: {}",
            batch[0].event_id
        )
    );
    assert_eq!(read_all(&mut c, "orders").await.len(), 2);
    server.stop().await.expect("clean stop");
}

async fn get_events_rejections(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    let request = |f: &dyn Fn(&mut pb::GetEventsRequest)| {
        let mut r = pb::GetEventsRequest {
            boundary: "orders".into(),
            count: 10,
            ..Default::default()
        };
        f(&mut r);
        r
    };
    let cases = [
        (
            request(&|r| r.count = 0),
            Code::InvalidArgument,
            "Count cannot be 0",
        ),
        (
            request(&|r| r.count = 10_001),
            Code::InvalidArgument,
            "count: must be between 1 and 10000, got 10001",
        ),
        (
            request(&|r| r.direction = 7),
            Code::InvalidArgument,
            "direction: unknown value 7",
        ),
        (
            request(&|r| r.boundary = "1orders".into()),
            Code::InvalidArgument,
            r#"boundary: "1orders" must start with a letter or underscore"#,
        ),
        (
            request(&|r| r.boundary = "nowhere".into()),
            Code::FailedPrecondition,
            r#"boundary "nowhere" does not exist"#,
        ),
        (
            request(&|r| {
                r.query = Some(pb::Query {
                    criteria: vec![criterion(&[("", "v")])],
                })
            }),
            Code::InvalidArgument,
            "query.criteria[0].tags[0].key: must not be empty",
        ),
    ];
    for (r, code, message) in cases {
        assert_status(c.get_events(r).await, code, message);
    }
    server.stop().await.expect("clean stop");
}

async fn latest_by_criteria(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    c.save_events(save(
        "orders",
        vec![
            event("OrderPlaced", json!({"orderId": "o1"})),
            event("OrderPlaced", json!({"orderId": "o2"})),
            event("OrderShipped", json!({"orderId": "o1"})),
        ],
    ))
    .await
    .expect("saved");
    let criteria = vec![
        criterion(&[("orderId", "o1")]),
        criterion(&[("orderId", "o9")]),
        criterion(&[("orderId", "o2"), ("eventType", "OrderPlaced")]),
    ];
    let r = c
        .get_latest_by_criteria(pb::GetLatestByCriteriaRequest {
            boundary: "orders".into(),
            criteria: criteria.clone(),
        })
        .await
        .expect("latest")
        .into_inner();
    assert_eq!(r.results.len(), 3);
    for (result, criterion) in r.results.iter().zip(&criteria) {
        assert_eq!(
            result.criterion.as_ref(),
            Some(criterion),
            "criteria are echoed in order"
        );
    }
    let at = |i: usize| {
        r.results[i]
            .event
            .as_ref()
            .map(|e| e.position.expect("position"))
    };
    assert_eq!(at(0), Some(pos(3, 2)));
    assert_eq!(at(1), None, "no match: event unset");
    assert_eq!(at(2), Some(pos(3, 1)));
    assert_eq!(r.context_position, Some(pos(3, 2)));

    let none = c
        .get_latest_by_criteria(pb::GetLatestByCriteriaRequest {
            boundary: "payments".into(),
            criteria: vec![criterion(&[("x", "y")])],
        })
        .await
        .expect("latest")
        .into_inner();
    assert_eq!(none.context_position, Some(pos(-1, -1)));
    server.stop().await.expect("clean stop");
}

async fn latest_by_criteria_rejections(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    let request = |boundary: &str, criteria: Vec<pb::Criterion>| pb::GetLatestByCriteriaRequest {
        boundary: boundary.into(),
        criteria,
    };
    let cases = [
        (
            request("", vec![criterion(&[("a", "b")])]),
            Code::InvalidArgument,
            "boundary: must not be empty",
        ),
        (
            request("orders", vec![]),
            Code::InvalidArgument,
            "criteria: at least one criterion is required",
        ),
        (
            request("orders", vec![criterion(&[("a", "b")]), criterion(&[])]),
            Code::InvalidArgument,
            "criteria[1].tags: at least one tag is required",
        ),
        (
            request("orders", vec![criterion(&[("a", "b"), ("", "c")])]),
            Code::InvalidArgument,
            "criteria[0].tags[1].key: must not be empty",
        ),
        (
            request("nowhere", vec![criterion(&[("a", "b")])]),
            Code::FailedPrecondition,
            r#"boundary "nowhere" does not exist"#,
        ),
    ];
    for (r, code, message) in cases {
        assert_status(c.get_latest_by_criteria(r).await, code, message);
    }
    server.stop().await.expect("clean stop");
}

/// Reads the next event of a subscription, failing after 10 s.
async fn next_event(stream: &mut tonic::Streaming<pb::Event>) -> pb::Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("stream open")
        .expect("event")
}

async fn subscription_catch_up_then_live(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    let mine = |n: i32| event("Tick", json!({"stream": "mine", "n": n}));
    let other = |n: i32| event("Tick", json!({"stream": "other", "n": n}));
    c.save_events(save("orders", vec![mine(1), other(1), mine(2)]))
        .await
        .expect("saved");
    c.save_events(save("orders", vec![other(2), mine(3)]))
        .await
        .expect("saved");
    let query = Some(pb::Query {
        criteria: vec![criterion(&[("stream", "mine")])],
    });
    let mut stream = c
        .catch_up_subscribe_to_events(pb::CatchUpSubscribeToEventStoreRequest {
            after_position: Some(pos(-1, -1)),
            query: query.clone(),
            subscriber_name: "projector".into(),
            boundary: "orders".into(),
        })
        .await
        .expect("subscribed")
        .into_inner();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_event(&mut stream).await);
    }
    // Live: saved after the catch-up, from another client.
    let mut writer = server.client().await;
    writer
        .save_events(save("orders", vec![other(3), mine(4)]))
        .await
        .expect("saved");
    writer
        .save_events(save("orders", vec![mine(5)]))
        .await
        .expect("saved");
    seen.push(next_event(&mut stream).await);
    seen.push(next_event(&mut stream).await);
    let ns: Vec<i64> = seen
        .iter()
        .map(|e| {
            let d: serde_json::Value = serde_json::from_str(&e.data).expect("json");
            assert_eq!(d["stream"], "mine", "only matching events");
            d["n"].as_i64().expect("n")
        })
        .collect();
    assert_eq!(ns, [1, 2, 3, 4, 5], "in order, each once");
    assert_eq!(positions(&seen), [(3, 0), (3, 2), (5, 4), (7, 6), (8, 7)]);
    // Nothing more is pending: the next event is not a duplicate but the next save.
    writer
        .save_events(save("orders", vec![mine(6)]))
        .await
        .expect("saved");
    assert_eq!(positions(&[next_event(&mut stream).await]), [(9, 8)]);
    drop(stream);

    // Strictly after a position; {0,0} and an unset position both start at the beginning.
    for (after, first) in [
        (Some(pos(3, 2)), (5, 4)),
        (Some(pos(0, 0)), (3, 0)),
        (None, (3, 0)),
    ] {
        let mut s = c
            .catch_up_subscribe_to_events(pb::CatchUpSubscribeToEventStoreRequest {
                after_position: after,
                query: query.clone(),
                subscriber_name: String::new(),
                boundary: "orders".into(),
            })
            .await
            .expect("subscribed")
            .into_inner();
        assert_eq!(
            positions(&[next_event(&mut s).await]),
            [first],
            "after {after:?}"
        );
    }
    server.stop().await.expect("clean stop");
}

async fn subscription_rejections_and_exclusivity(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    let request = |boundary: &str, name: &str| pb::CatchUpSubscribeToEventStoreRequest {
        after_position: None,
        query: None,
        subscriber_name: name.into(),
        boundary: boundary.into(),
    };
    assert_status(
        c.catch_up_subscribe_to_events(request("nowhere", "s"))
            .await,
        Code::FailedPrecondition,
        r#"boundary "nowhere" does not exist"#,
    );
    assert_status(
        c.catch_up_subscribe_to_events(request("a b", "s")).await,
        Code::InvalidArgument,
        r#"boundary: "a b" may contain only letters, digits and underscores"#,
    );
    assert_status(
        c.catch_up_subscribe_to_events(request("orders", "my sub"))
            .await,
        Code::InvalidArgument,
        r#"subscriber_name: "my sub" must not contain whitespace or control characters"#,
    );
    let mut bad_query = request("orders", "s");
    bad_query.query = Some(pb::Query {
        criteria: vec![criterion(&[("", "v")])],
    });
    assert_status(
        c.catch_up_subscribe_to_events(bad_query).await,
        Code::InvalidArgument,
        "query.criteria[0].tags[0].key: must not be empty",
    );

    let first = c
        .catch_up_subscribe_to_events(request("orders", "projector"))
        .await
        .expect("first");
    let mut other = server.client().await;
    assert_status(
        other
            .catch_up_subscribe_to_events(request("orders", "projector"))
            .await,
        Code::AlreadyExists,
        r#"failed to acquire lock: subscriber "projector" is already subscribed to boundary "orders""#,
    );
    // The same name on another boundary, and anonymous subscribers, are independent.
    let _payments = other
        .catch_up_subscribe_to_events(request("payments", "projector"))
        .await
        .expect("other boundary");
    let _anon1 = other
        .catch_up_subscribe_to_events(request("orders", ""))
        .await
        .expect("anonymous");
    let _anon2 = other
        .catch_up_subscribe_to_events(request("orders", ""))
        .await
        .expect("anonymous");
    // Once the first stream is gone (client cancel), the name is free again.
    drop(first);
    let mut again = server.client().await;
    let _second = again
        .catch_up_subscribe_to_events(request("orders", "projector"))
        .await
        .expect("name released");
    server.stop().await.expect("clean stop");
}

async fn ping_and_authentication(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    let response = c.ping(pb::PingRequest {}).await.expect("ping");
    let token = response
        .metadata()
        .get("x-auth-token")
        .expect("x-auth-token header")
        .to_str()
        .expect("ascii")
        .to_owned();
    let mut with_token = pb::event_store_client::EventStoreClient::with_interceptor(
        server.channel().await,
        Credentials::token(&token),
    );
    with_token
        .ping(pb::PingRequest {})
        .await
        .expect("token works");

    let mut anon = server.anonymous().await;
    let err = anon
        .ping(pb::PingRequest {})
        .await
        .expect_err("no credentials");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = anon
        .get_events(pb::GetEventsRequest {
            boundary: "orders".into(),
            count: 1,
            ..Default::default()
        })
        .await
        .expect_err("no credentials");
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut wrong = server.client_as("admin", "wrong").await;
    let err = wrong
        .save_events(save("orders", vec![event("T", json!({}))]))
        .await
        .expect_err("bad password");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(read_all(&mut c, "orders").await.is_empty());
    server.stop().await.expect("clean stop");
}

fn index_request(name: &str) -> pb::CreateIndexRequest {
    pb::CreateIndexRequest {
        boundary: "orders".into(),
        name: name.into(),
        fields: vec![pb::IndexField {
            json_key: "amount".into(),
            value_type: pb::ValueType::Numeric as i32,
        }],
        conditions: vec![pb::IndexCondition {
            key: "eventType".into(),
            operator: ">=".into(),
            value: "OrderPlaced".into(),
        }],
        condition_combinator: pb::ConditionCombinator::Or as i32,
    }
}

async fn index_records(c: &mut Client) -> Vec<(String, String)> {
    read_all(c, "orisun_admin")
        .await
        .into_iter()
        .filter(|e| e.event_type.starts_with("$Index"))
        .map(|e| {
            let d: serde_json::Value = serde_json::from_str(&e.data).expect("json");
            (
                e.event_type.clone(),
                d["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn indexes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    c.create_index(index_request("placed_amount"))
        .await
        .expect("created");
    c.create_index(index_request("placed_amount"))
        .await
        .expect("IF NOT EXISTS");
    c.drop_index(pb::DropIndexRequest {
        boundary: "orders".into(),
        name: "placed_amount".into(),
    })
    .await
    .expect("dropped");
    c.drop_index(pb::DropIndexRequest {
        boundary: "orders".into(),
        name: "placed_amount".into(),
    })
    .await
    .expect("IF EXISTS");
    assert_eq!(
        index_records(&mut c).await,
        [
            ("$IndexCreated".to_owned(), "placed_amount".to_owned()),
            ("$IndexDropped".to_owned(), "placed_amount".to_owned()),
        ]
    );
    server.stop().await.expect("clean stop");
}

async fn index_rejections_change_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    let with = |f: &dyn Fn(&mut pb::CreateIndexRequest)| {
        let mut r = index_request("ok_name");
        f(&mut r);
        r
    };
    let cases = [
        (
            with(&|r| r.name = "x\"; DROP TABLE y; --".into()),
            Code::InvalidArgument,
            r#"name: "x\"; DROP TABLE y; --" may contain only letters, digits and underscores"#,
        ),
        (
            with(&|r| r.name = String::new()),
            Code::InvalidArgument,
            "name: must not be empty",
        ),
        (
            with(&|r| r.fields.clear()),
            Code::InvalidArgument,
            "fields: at least one field is required",
        ),
        (
            with(&|r| r.fields[0].json_key.clear()),
            Code::InvalidArgument,
            "fields[0].json_key: must not be empty",
        ),
        (
            with(&|r| r.fields[0].value_type = 9),
            Code::InvalidArgument,
            "fields[0].value_type: unknown value 9",
        ),
        (
            with(&|r| r.conditions[0].key.clear()),
            Code::InvalidArgument,
            "conditions[0].key: must not be empty",
        ),
        (
            with(&|r| r.conditions[0].operator = "<>".into()),
            Code::InvalidArgument,
            r#"conditions[0].operator: "<>" is not one of = > < >= <="#,
        ),
        (
            with(&|r| r.condition_combinator = 5),
            Code::InvalidArgument,
            "condition_combinator: unknown value 5",
        ),
        (
            with(&|r| r.boundary = "nowhere".into()),
            Code::FailedPrecondition,
            r#"boundary "nowhere" does not exist"#,
        ),
        (
            with(&|r| r.boundary = "no-where".into()),
            Code::InvalidArgument,
            r#"boundary: "no-where" may contain only letters, digits and underscores"#,
        ),
    ];
    for (r, code, message) in cases {
        assert_status(c.create_index(r).await, code, message);
    }
    assert_status(
        c.drop_index(pb::DropIndexRequest {
            boundary: "orders".into(),
            name: "bad name".into(),
        })
        .await,
        Code::InvalidArgument,
        r#"name: "bad name" may contain only letters, digits and underscores"#,
    );
    // Only ADMIN may manage indexes.
    server
        .create_user("ops", "opspassword", &["OPERATIONS"])
        .await;
    let mut ops = server.client_as("ops", "opspassword").await;
    assert_status(
        ops.create_index(index_request("ok_name")).await,
        Code::PermissionDenied,
        r#"permission denied: user "ops" needs role ADMIN"#,
    );
    assert_status(
        ops.drop_index(pb::DropIndexRequest {
            boundary: "orders".into(),
            name: "ok_name".into(),
        })
        .await,
        Code::PermissionDenied,
        r#"permission denied: user "ops" needs role ADMIN"#,
    );
    // OPERATIONS may save.
    ops.save_events(save("orders", vec![event("T", json!({}))]))
        .await
        .expect("operations may save");
    assert!(
        index_records(&mut c).await.is_empty(),
        "nothing was recorded"
    );
    server.stop().await.expect("clean stop");
}

async fn admin_boundary_is_redacted_and_protected(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .create_user("ops", "opspassword", &["OPERATIONS"])
        .await;
    let mut c = server.client().await;
    let admin_events = read_all(&mut c, "orisun_admin").await;
    assert!(!admin_events.is_empty());
    for e in &admin_events {
        assert!(!e.data.contains("$argon2"), "hash served: {}", e.data);
    }
    let latest = c
        .get_latest_by_criteria(pb::GetLatestByCriteriaRequest {
            boundary: "orisun_admin".into(),
            criteria: vec![criterion(&[("eventType", "$UserCreated")])],
        })
        .await
        .expect("latest")
        .into_inner();
    let user = latest.results[0].event.as_ref().expect("a user event");
    assert!(!user.data.contains("$argon2"), "hash served: {}", user.data);
    let mut s = c
        .catch_up_subscribe_to_events(pb::CatchUpSubscribeToEventStoreRequest {
            after_position: None,
            query: None,
            subscriber_name: String::new(),
            boundary: "orisun_admin".into(),
        })
        .await
        .expect("subscribed")
        .into_inner();
    for _ in 0..admin_events.len() {
        let e = next_event(&mut s).await;
        assert!(!e.data.contains("$argon2"), "hash served: {}", e.data);
    }
    let before = admin_events.len();
    let err = c
        .save_events(save(
            "orisun_admin",
            vec![event("$UserCreated", json!({"username": "mallory"}))],
        ))
        .await
        .expect_err("forged user");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(read_all(&mut c, "orisun_admin").await.len(), before);
    server.stop().await.expect("clean stop");
}

async fn concurrent_conflicting_commands(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client().await;
    let account = vec![criterion(&[("accountId", "acc")])];
    c.save_events(save(
        "payments",
        vec![event(
            "Deposited",
            json!({"accountId": "acc", "amount": 100}),
        )],
    ))
    .await
    .expect("seed");
    let context = c
        .get_latest_by_criteria(pb::GetLatestByCriteriaRequest {
            boundary: "payments".into(),
            criteria: account.clone(),
        })
        .await
        .expect("latest")
        .into_inner()
        .context_position;
    // Eight commands decided on the same context race to withdraw the whole balance.
    let mut racers = Vec::new();
    for i in 0..8 {
        let mut client = server.client().await;
        let request = conditional(
            "payments",
            vec![event(
                "Withdrawn",
                json!({"accountId": "acc", "amount": 100, "by": i}),
            )],
            context,
            account.clone(),
        );
        racers.push(tokio::spawn(
            async move { client.save_events(request).await },
        ));
    }
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("joined") {
            Ok(_) => won += 1,
            Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one command may act on a context");
    let withdrawals = read_all(&mut c, "payments")
        .await
        .into_iter()
        .filter(|e| e.event_type == "Withdrawn")
        .count();
    assert_eq!(withdrawals, 1);
    server.stop().await.expect("clean stop");
}
