//! End-to-end tests of the older APIs a server still serves, on every backend: the 2025
//! `eventstore.EventStore` (stream saves with expected versions, stream reads, the DCB condition
//! and tags, stream subscriptions, cross-reading with today's `orisun.EventStore`) and the
//! index RPCs on `orisun.Admin`.

mod common;

use common::*;
use futures::StreamExt;
use old::event_store_client::EventStoreClient as OldClient;
use orisun_proto as pb;
use orisun_proto::legacy::eventstore_2025 as old;
use serde_json::json;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;

per_backend!(
    stream_saves_reads_and_conflicts,
    dcb_condition_and_tags,
    stream_subscription,
    bad_input_changes_nothing,
    admin_index_rpcs,
);

type Old = OldClient<InterceptedService<Channel, Credentials>>;

async fn old_client(server: &TestServer) -> Old {
    OldClient::with_interceptor(server.channel().await, Credentials::basic(ADMIN.0, ADMIN.1))
}

fn old_event(event_type: &str, data: serde_json::Value, tags: &[(&str, &str)]) -> old::EventToSave {
    old::EventToSave {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: event_type.to_owned(),
        data: data.to_string(),
        metadata: String::new(),
        tags: tags
            .iter()
            .map(|(k, v)| old::Tag {
                key: (*k).to_owned(),
                value: (*v).to_owned(),
            })
            .collect(),
    }
}

fn stream_save(
    name: &str,
    expected_version: i64,
    events: Vec<old::EventToSave>,
) -> old::SaveEventsRequest {
    old::SaveEventsRequest {
        consistency_condition: None,
        boundary: "orders".into(),
        stream: Some(old::SaveStreamQuery {
            name: name.into(),
            expected_version,
            subset_query: None,
        }),
        events,
    }
}

fn stream_read(name: &str, from_version: i64) -> old::GetEventsRequest {
    old::GetEventsRequest {
        boundary: "orders".into(),
        stream: Some(old::GetStreamQuery {
            name: name.into(),
            from_version,
        }),
        count: 100,
        ..Default::default()
    }
}

async fn stream_saves_reads_and_conflicts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut legacy = old_client(&server).await;
    let mut today = server.client().await;

    let first = legacy
        .save_events(stream_save(
            "acc-1",
            -1,
            vec![
                old_event("Opened", json!({"owner": "ada"}), &[]),
                old_event("Deposited", json!({"amount": 5}), &[]),
            ],
        ))
        .await
        .expect("new stream")
        .into_inner();
    assert_eq!(first.new_stream_version, 1);
    assert_status(
        legacy
            .save_events(stream_save(
                "acc-1",
                0,
                vec![old_event("Deposited", json!({}), &[])],
            ))
            .await,
        Code::AlreadyExists,
        "OptimisticConcurrencyException:StreamVersionConflict: Expected 0, Actual 1",
    );
    assert_status(
        legacy
            .save_events(stream_save(
                "acc-1",
                7,
                vec![old_event("Deposited", json!({}), &[])],
            ))
            .await,
        Code::AlreadyExists,
        "OptimisticConcurrencyException:StreamVersionConflict: Expected 7, Actual 1",
    );
    let third = legacy
        .save_events(stream_save(
            "acc-1",
            1,
            vec![old_event("Withdrawn", json!({"amount": 2}), &[])],
        ))
        .await
        .expect("expected version holds")
        .into_inner();
    assert_eq!(third.new_stream_version, 2);

    let events = legacy
        .get_events(stream_read("acc-1", 0))
        .await
        .expect("read")
        .into_inner()
        .events;
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.event_type.as_str(), e.stream_id.as_str(), e.version))
        .collect();
    assert_eq!(
        seen,
        [
            ("Opened", "acc-1", 0),
            ("Deposited", "acc-1", 1),
            ("Withdrawn", "acc-1", 2)
        ]
    );
    assert_eq!(events[2].position, third.log_position);
    let later = legacy
        .get_events(stream_read("acc-1", 2))
        .await
        .expect("read")
        .into_inner()
        .events;
    assert_eq!(later.len(), 1);
    assert!(legacy
        .get_events(stream_read("nobody", 0))
        .await
        .expect("an unknown stream reads empty")
        .into_inner()
        .events
        .is_empty());

    // The same events through today's API: same ids, positions and bytes.
    let mirror = today
        .get_events(pb::GetEventsRequest {
            boundary: "orders".into(),
            query: Some(pb::Query {
                criteria: vec![criterion(&[
                    ("aggregateType", "stream"),
                    ("aggregateId", "acc-1"),
                ])],
            }),
            count: 100,
            ..Default::default()
        })
        .await
        .expect("today's read")
        .into_inner()
        .events;
    assert_eq!(mirror.len(), 3);
    for (a, b) in events.iter().zip(&mirror) {
        assert_eq!(
            (&a.event_id, &a.data, &a.metadata),
            (&b.event_id, &b.data, &b.metadata)
        );
        assert_eq!(
            a.position.map(|p| (p.commit_position, p.prepare_position)),
            b.position.map(|p| (p.commit_position, p.prepare_position))
        );
    }
}

async fn dcb_condition_and_tags(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut legacy = old_client(&server).await;
    let mut today = server.client().await;
    let query = old::Query {
        criteria: vec![old::Criterion {
            tags: vec![old::Tag {
                key: "courseId".into(),
                value: "c1".into(),
            }],
        }],
    };
    let save = |marker: Option<old::Position>, student: &str| old::SaveEventsRequest {
        consistency_condition: Some(old::ConsistencyCondition {
            consistency_marker: marker,
            query: Some(query.clone()),
        }),
        boundary: "orders".into(),
        stream: None,
        events: vec![old_event(
            "Subscribed",
            json!({"studentId": student}),
            &[("courseId", "c1")],
        )],
    };
    let first = legacy
        .save_events(save(None, "s1"))
        .await
        .expect("empty context")
        .into_inner()
        .log_position;
    legacy
        .save_events(save(first, "s2"))
        .await
        .expect("context unchanged");
    let stale = legacy
        .save_events(save(first, "s3"))
        .await
        .expect_err("stale");
    let today_stale = today
        .save_events(pb::SaveEventsRequest {
            boundary: "orders".into(),
            query: Some(pb::SaveQuery {
                expected_position: first.map(pb::Position::from),
                subset_query: Some(pb::Query {
                    criteria: vec![criterion(&[("courseId", "c1")])],
                }),
            }),
            events: vec![event("Subscribed", json!({}))],
        })
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), Code::AlreadyExists);
    assert_eq!(
        (stale.code(), stale.message()),
        (today_stale.code(), today_stale.message())
    );

    let events = today
        .get_events(pb::GetEventsRequest {
            boundary: "orders".into(),
            query: Some(pb::Query {
                criteria: vec![criterion(&[("courseId", "c1")])],
            }),
            count: 10,
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner()
        .events;
    assert_eq!(events.len(), 2, "the tag is a data field");
    let through_old = legacy
        .get_events(old::GetEventsRequest {
            boundary: "orders".into(),
            query: Some(query.clone()),
            count: 10,
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner()
        .events;
    assert_eq!(through_old.len(), 2);
    assert!(through_old[0]
        .tags
        .iter()
        .any(|t| t.key == "courseId" && t.value == "c1"));
    assert_eq!(through_old[1].data, events[1].data);
}

async fn stream_subscription(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut legacy = old_client(&server).await;
    legacy
        .save_events(stream_save(
            "acc-2",
            -1,
            vec![
                old_event("Opened", json!({}), &[]),
                old_event("Deposited", json!({}), &[]),
            ],
        ))
        .await
        .expect("saved");
    let mut events = legacy
        .catch_up_subscribe_to_stream(old::CatchUpSubscribeToStreamRequest {
            query: None,
            subscriber_name: "s".into(),
            boundary: "orders".into(),
            stream: "acc-2".into(),
            after_version: 0,
        })
        .await
        .expect("subscribed")
        .into_inner();
    assert_eq!(next_event(&mut events).await.version, 1);
    legacy
        .save_events(old::SaveEventsRequest {
            boundary: "orders".into(),
            events: vec![old_event("Unrelated", json!({}), &[])],
            ..Default::default()
        })
        .await
        .expect("other event");
    legacy
        .save_events(stream_save(
            "acc-2",
            1,
            vec![old_event("Withdrawn", json!({}), &[])],
        ))
        .await
        .expect("live event");
    let live = next_event(&mut events).await;
    assert_eq!((live.event_type.as_str(), live.version), ("Withdrawn", 2));
}

async fn next_event(events: &mut tonic::Streaming<old::Event>) -> old::Event {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event in time")
        .expect("an item")
        .expect("an event")
}

async fn bad_input_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut legacy = old_client(&server).await;
    let mut today = server.client().await;
    let cases = [
        (stream_save("", -1, vec![old_event("X", json!({}), &[])]), "stream.name: must not be empty"),
        (
            stream_save("a", -2, vec![old_event("X", json!({}), &[])]),
            "stream.expected_version: must be -1 (a stream without events) or a version >= 0, got -2",
        ),
        (
            stream_save("a", -1, vec![old_event("X", json!({"aggregateId": "b"}), &[])]),
            r#"events[0].data.aggregateId: is reserved for the aggregate ("a"), got "b""#,
        ),
        (stream_save("a", -1, vec![]), "Invalid request: no events provided"),
        (
            old::SaveEventsRequest {
                boundary: "orders".into(),
                events: vec![old_event("X", json!({"k": "1"}), &[("k", "2")])],
                ..Default::default()
            },
            r#"events[0].tags[0]: data field "k" already holds "1", the tag says "2""#,
        ),
    ];
    for (request, message) in cases {
        assert_status(
            legacy.save_events(request).await,
            Code::InvalidArgument,
            message,
        );
    }
    let unknown = legacy
        .save_events(old::SaveEventsRequest {
            boundary: "nowhere".into(),
            stream: Some(old::SaveStreamQuery {
                name: "a".into(),
                expected_version: -1,
                subset_query: None,
            }),
            events: vec![old_event("X", json!({}), &[])],
            ..Default::default()
        })
        .await
        .expect_err("unknown boundary");
    let today_unknown = today
        .save_events(pb::SaveEventsRequest {
            boundary: "nowhere".into(),
            query: None,
            events: vec![event("X", json!({}))],
        })
        .await
        .expect_err("unknown boundary");
    assert_eq!(
        (unknown.code(), unknown.message()),
        (today_unknown.code(), today_unknown.message())
    );
    assert_eq!(unknown.code(), Code::FailedPrecondition);
    assert!(
        read_all(&mut today, "orders").await.is_empty(),
        "nothing was appended"
    );
}

async fn admin_index_rpcs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let mut today = server.client().await;
    let request = pb::CreateIndexRequest {
        boundary: "orders".into(),
        name: "by_owner".into(),
        fields: vec![pb::IndexField {
            json_key: "owner".into(),
            value_type: pb::ValueType::Text as i32,
        }],
        conditions: vec![],
        condition_combinator: 0,
    };
    admin.create_index(request.clone()).await.expect("created");
    admin
        .drop_index(pb::DropIndexRequest {
            boundary: "orders".into(),
            name: "by_owner".into(),
        })
        .await
        .expect("dropped");
    let bad = pb::CreateIndexRequest {
        name: "bad name".into(),
        ..request.clone()
    };
    let via_admin = admin.create_index(bad.clone()).await.expect_err("bad name");
    let via_store = today.create_index(bad).await.expect_err("bad name");
    assert_eq!(via_admin.code(), Code::InvalidArgument);
    assert_eq!(
        (via_admin.code(), via_admin.message()),
        (via_store.code(), via_store.message())
    );

    server.create_user("ops", "ops-pass", &["OPERATIONS"]).await;
    let mut ops = pb::admin_client::AdminClient::with_interceptor(
        server.channel().await,
        Credentials::basic("ops", "ops-pass"),
    );
    let refused = ops.create_index(request).await.expect_err("needs ADMIN");
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_through_the_old_service_is_todays_pubsub() {
    let server = TestServer::start(Backend::Memory).await;
    let mut legacy = old_client(&server).await;
    let mut today = pb::pub_sub_client::PubSubClient::with_interceptor(
        server.channel().await,
        Credentials::basic(ADMIN.0, ADMIN.1),
    );
    let mut messages = legacy
        .subscribe_to_pub_sub(old::SubscribeRequest {
            subject: "orders.*".into(),
            consumer_name: "billing".into(),
        })
        .await
        .expect("joined")
        .into_inner();
    legacy
        .publish_to_pub_sub(old::PublishRequest {
            id: "m1".into(),
            subject: "orders.placed".into(),
            data: b"old".to_vec(),
        })
        .await
        .expect("published through the old service");
    today
        .publish_to_pub_sub(pb::PublishRequest {
            id: "m2".into(),
            subject: "orders.paid".into(),
            data: b"new".to_vec(),
        })
        .await
        .expect("published through orisun.PubSub");
    for (id, data) in [("m1", b"old"), ("m2", b"new")] {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("a message in time")
            .expect("an item")
            .expect("a message")
            .message
            .expect("set");
        assert_eq!(
            (message.id.as_str(), message.data.as_slice()),
            (id, &data[..])
        );
    }
    let wildcard = || old::PublishRequest {
        id: String::new(),
        subject: "orders.*".into(),
        data: vec![],
    };
    let expected = today
        .publish_to_pub_sub(pb::PublishRequest {
            id: String::new(),
            subject: "orders.*".into(),
            data: vec![],
        })
        .await
        .expect_err("wildcard subject");
    assert_status(
        legacy.publish_to_pub_sub(wildcard()).await,
        Code::InvalidArgument,
        expected.message(),
    );
    let mut anonymous = OldClient::new(server.channel().await);
    let refused = anonymous
        .publish_to_pub_sub(old::PublishRequest::default())
        .await
        .expect_err("needs credentials");
    assert_eq!(refused.code(), Code::Unauthenticated);
}
