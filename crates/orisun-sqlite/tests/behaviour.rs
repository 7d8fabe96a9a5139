//! The behaviour of `SqliteStore` call by call, checked against the in-memory model where the
//! model defines it: positions, read bounds, conditions, idempotency, validation.

mod common;

use common::{boundary, event, fresh};
use orisun_sqlite::SqliteStore;
use orisun_store::core::{
    AppendCondition, Criterion, Direction, NewEvent, Position, Query, ReadRequest, StoredEvent, Tag,
};
use orisun_store::{EventStore, HeadWatch, MemoryStore, StoreError};
use serde_json::json;
use std::sync::Arc;

fn by(key: &str, value: &str) -> Query {
    Query::new([Criterion::new([Tag::new(key, value)])])
}

/// Strips what the two stores legitimately disagree on (the clock).
fn comparable(mut events: Vec<StoredEvent>) -> Vec<StoredEvent> {
    for e in &mut events {
        e.date_created = chrono::DateTime::UNIX_EPOCH;
    }
    events
}

#[tokio::test]
async fn positions_follow_the_batch_rule() -> anyhow::Result<()> {
    let f = fresh();
    let b = boundary("orders");
    f.store.create_boundary(&b).await?;
    assert_eq!(f.store.head(&b).await?, Position::BEFORE_FIRST);
    assert_eq!(f.store.count(&b).await?, 0);

    let one = f
        .store
        .append(&b, vec![event("A", json!({}))], None)
        .await?;
    assert_eq!(one.position, Position::new(1, 0));
    assert!(!one.already_stored);
    let three = (0..3).map(|i| event("B", json!({ "i": i }))).collect();
    let three = f.store.append(&b, three, None).await?;
    assert_eq!(three.position, Position::new(4, 3));

    let all = f.store.read(&b, &ReadRequest::forward(None, 100)).await?;
    let positions: Vec<Position> = all.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        [(1, 0), (4, 1), (4, 2), (4, 3)].map(|(c, p)| Position::new(c, p))
    );
    assert_eq!(f.store.head(&b).await?, Position::new(4, 3));
    assert_eq!(f.store.count(&b).await?, 4);
    Ok(())
}

/// Builds the same log in the SQLite store and the model: batches of sizes 1, 3, 2, 1, 4 with a
/// few tags, so commits are 1, 4, 6, 7, 11.
async fn same_log(stores: &[Arc<dyn EventStore>]) -> anyhow::Result<()> {
    let b = boundary("b");
    let mut seq = 0;
    for size in [1, 3, 2, 1, 4] {
        let batch: Vec<NewEvent> = (0..size)
            .map(|_| {
                seq += 1;
                let kind = if seq % 2 == 0 { "Even" } else { "Odd" };
                event(
                    kind,
                    json!({ "n": seq, "third": seq % 3 == 0, "group": format!("g{}", seq % 4) }),
                )
            })
            .collect();
        for store in stores {
            store.create_boundary(&b).await?;
            store.append(&b, batch.clone(), None).await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn read_bounds_resolve_any_position_like_the_model() -> anyhow::Result<()> {
    let f = fresh();
    let sqlite: Arc<dyn EventStore> = Arc::new(f.store.clone());
    let model: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    same_log(&[Arc::clone(&sqlite), Arc::clone(&model)]).await?;
    let b = boundary("b");

    let mut froms = vec![None];
    for c in [-1, 0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 100, i64::MAX] {
        for p in [-1, 0, 1, 2, 3, 4, 5, 6, 9, 10, 11, i64::MAX] {
            froms.push(Some(Position::new(c, p)));
        }
    }
    froms.push(Some(Position::new(i64::MIN, i64::MIN)));
    let queries = [
        Query::all(),
        by("eventType", "Even"),
        Query::new([
            Criterion::new([Tag::new("eventType", "Odd"), Tag::new("third", "true")]),
            Criterion::new([Tag::new("group", "g2")]),
        ]),
        Query::new([Criterion::new([
            Tag::new("n", "5"),
            Tag::new("group", "g2"),
        ])]),
        by("nope", "x"),
    ];
    for from in froms {
        for direction in [Direction::Asc, Direction::Desc] {
            for query in &queries {
                for limit in [1, 2, 100] {
                    let request = ReadRequest {
                        query: query.clone(),
                        from,
                        direction,
                        limit,
                    };
                    let got = comparable(sqlite.read(&b, &request).await?);
                    let want = comparable(model.read(&b, &request).await?);
                    assert_eq!(got, want, "{request:?}");
                }
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn condition_fails_only_on_a_later_match() -> anyhow::Result<()> {
    let f = fresh();
    let b = boundary("bank");
    f.store.create_boundary(&b).await?;
    let a1 = by("account", "a1");
    let first = f
        .store
        .append(&b, vec![event("Opened", json!({"account": "a1"}))], None)
        .await?;
    f.store
        .append(&b, vec![event("Opened", json!({"account": "a2"}))], None)
        .await?;

    // The context was read before the first event: a later match exists.
    let err = f
        .store
        .append(
            &b,
            vec![event("Deposited", json!({"account": "a1"}))],
            Some(AppendCondition::new(a1.clone(), Position::BEFORE_FIRST)),
        )
        .await
        .expect_err("a1 changed after the expected position");
    match err {
        StoreError::ConditionFailed { expected, actual } => {
            assert_eq!(expected, Position::BEFORE_FIRST);
            assert_eq!(actual, first.position);
        }
        other => panic!("unexpected {other}"),
    }

    // Expecting the last match, or any later position up to the head, succeeds.
    for use_head in [false, true] {
        let after = if use_head {
            f.store
                .append(&b, vec![event("Opened", json!({"account": "a3"}))], None)
                .await?;
            f.store.head(&b).await?
        } else {
            first.position
        };
        f.store
            .append(
                &b,
                vec![event("Deposited", json!({"account": "a1"}))],
                Some(AppendCondition::new(a1.clone(), after)),
            )
            .await?;
        let head = f.store.head(&b).await?;
        // The append itself is now the latest match: the same condition fails again.
        let err = f
            .store
            .append(
                &b,
                vec![event("Deposited", json!({"account": "a1"}))],
                Some(AppendCondition::new(a1.clone(), after)),
            )
            .await
            .expect_err("stale");
        assert!(
            matches!(err, StoreError::ConditionFailed { actual, .. } if actual == head),
            "{err}"
        );
    }

    // A condition on everything checks the head; an expected position after it is a client bug.
    let head = f.store.head(&b).await?;
    let err = f
        .store
        .append(
            &b,
            vec![event("X", json!({}))],
            Some(AppendCondition::new(Query::all(), Position::new(1, 0))),
        )
        .await
        .expect_err("head moved");
    assert!(matches!(err, StoreError::ConditionFailed { actual, .. } if actual == head));
    let err = f
        .store
        .append(
            &b,
            vec![event("X", json!({}))],
            Some(AppendCondition::new(
                Query::all(),
                Position::new(head.commit, head.prepare + 1),
            )),
        )
        .await
        .expect_err("after head");
    assert!(matches!(err, StoreError::Invalid(ref i) if i.field == "query.expected_position"));
    f.store
        .append(
            &b,
            vec![event("X", json!({}))],
            Some(AppendCondition::new(Query::all(), head)),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn retries_are_idempotent_and_overlaps_rejected() -> anyhow::Result<()> {
    let f = fresh();
    let b = boundary("b");
    f.store.create_boundary(&b).await?;
    let batch = vec![event("A", json!({})), event("B", json!({}))];
    let first = f.store.append(&b, batch.clone(), None).await?;
    f.store
        .append(&b, vec![event("C", json!({}))], None)
        .await?;

    let retry = f.store.append(&b, batch.clone(), None).await?;
    assert_eq!(retry.position, first.position);
    assert!(retry.already_stored);
    // Even with a condition that would fail now.
    let retry = f
        .store
        .append(
            &b,
            batch.clone(),
            Some(AppendCondition::new(Query::all(), Position::BEFORE_FIRST)),
        )
        .await?;
    assert!(retry.already_stored);

    let overlap = vec![batch[1].clone(), event("D", json!({}))];
    let err = f
        .store
        .append(&b, overlap, None)
        .await
        .expect_err("overlap");
    match err {
        StoreError::DuplicateEvents { event_ids } => {
            assert_eq!(event_ids, vec![batch[1].event_id])
        }
        other => panic!("unexpected {other}"),
    }
    let twice = vec![batch[0].clone(), batch[0].clone()];
    let err = f.store.append(&b, twice, None).await.expect_err("twice");
    assert!(matches!(err, StoreError::Invalid(ref i) if i.field == "events[1].event_id"));
    let err = f.store.append(&b, vec![], None).await.expect_err("empty");
    assert!(matches!(err, StoreError::Invalid(_)));
    assert_eq!(f.store.count(&b).await?, 3);
    Ok(())
}

#[tokio::test]
async fn boundaries_are_registered_by_creation() -> anyhow::Result<()> {
    let f = fresh();
    let (a, b) = (boundary("alpha"), boundary("Beta_2"));
    let e = StoreError::UnknownBoundary {
        name: "alpha".into(),
    };
    assert_eq!(
        f.store.head(&a).await.expect_err("unknown").to_string(),
        e.to_string()
    );
    assert!(matches!(
        f.store.append(&a, vec![event("A", json!({}))], None).await,
        Err(StoreError::UnknownBoundary { .. })
    ));
    assert!(matches!(
        f.store.read(&a, &ReadRequest::forward(None, 1)).await,
        Err(StoreError::UnknownBoundary { .. })
    ));
    assert!(matches!(
        f.store.watch_head(&a).await,
        Err(StoreError::UnknownBoundary { .. })
    ));
    f.store.create_boundary(&b).await?;
    f.store.create_boundary(&a).await?;
    f.store.create_boundary(&a).await?;
    assert_eq!(f.store.boundaries().await?, vec![b.clone(), a.clone()]);
    assert!(f.dir.path().join("alpha.db").exists());
    assert!(f.dir.path().join("Beta_2.db").exists());
    Ok(())
}

#[tokio::test]
async fn a_directory_has_one_store_at_a_time() -> anyhow::Result<()> {
    let f = fresh();
    let err = SqliteStore::open(common::config(&f.dir)).expect_err("locked");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    drop(f.store);
    let again = SqliteStore::open(common::config(&f.dir))?;
    assert!(again.boundaries().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_one_mebibyte_event_round_trips() -> anyhow::Result<()> {
    let f = fresh();
    let b = boundary("big");
    f.store.create_boundary(&b).await?;
    let payload = "x".repeat(1024 * 1024);
    let big = event("Big", json!({ "payload": payload, "id": "big-1" }));
    let want_data = big.data_json();
    let outcome = f.store.append(&b, vec![big.clone()], None).await?;
    let read = f
        .store
        .read(
            &b,
            &ReadRequest::forward(None, 10).with_query(by("id", "big-1")),
        )
        .await?;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].data, want_data);
    assert!(read[0].data.len() > 1024 * 1024);
    assert_eq!(read[0].event_id, big.event_id);
    assert_eq!(read[0].position, outcome.position);
    Ok(())
}

#[tokio::test]
async fn stored_events_keep_every_field() -> anyhow::Result<()> {
    let f = fresh();
    let b = boundary("b");
    f.store.create_boundary(&b).await?;
    let mut e = event(
        "Deposited",
        json!({"z": 1, "a": "é", "nested": {"k": [1, 2]}}),
    );
    e.metadata = common::obj(json!({"user": "u1", "trace": 7}));
    let before = chrono::Utc::now();
    f.store.append(&b, vec![e.clone()], None).await?;
    let after = chrono::Utc::now();
    let read = f.store.read(&b, &ReadRequest::forward(None, 1)).await?;
    let got = &read[0];
    assert_eq!(got.event_id, e.event_id);
    assert_eq!(got.event_type, "Deposited");
    assert_eq!(got.data, e.data_json());
    assert_eq!(got.metadata, r#"{"user":"u1","trace":7}"#);
    // Stored in microseconds: compare at that precision.
    let micros = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    assert!(micros(before) <= micros(got.date_created));
    assert!(micros(got.date_created) <= micros(after));
    Ok(())
}

#[tokio::test]
async fn latest_by_criteria_reads_each_criterion() -> anyhow::Result<()> {
    let f = fresh();
    let b = boundary("b");
    f.store.create_boundary(&b).await?;
    f.store
        .append(
            &b,
            vec![
                event("Opened", json!({"account": "a1", "tier": 1})),
                event("Opened", json!({"account": "a2", "tier": 2})),
            ],
            None,
        )
        .await?;
    f.store
        .append(
            &b,
            vec![event("Deposited", json!({"account": "a1", "tier": 1}))],
            None,
        )
        .await?;
    let criteria = [
        Criterion::new([Tag::new("account", "a1"), Tag::new("eventType", "Opened")]),
        Criterion::new([Tag::new("tier", "2")]),
        Criterion::new([Tag::new("account", "zz")]),
        Criterion::new([Tag::new("account", "a1")]),
    ];
    let latest = f.store.latest_by_criteria(&b, &criteria).await?;
    let positions: Vec<Option<Position>> = latest
        .events
        .iter()
        .map(|e| e.as_ref().map(|e| e.position))
        .collect();
    assert_eq!(
        positions,
        vec![
            Some(Position::new(2, 0)),
            Some(Position::new(2, 1)),
            None,
            Some(Position::new(3, 2)),
        ]
    );
    assert_eq!(latest.context_position, Position::new(3, 2));
    let err = f
        .store
        .latest_by_criteria(&b, &[Criterion::default()])
        .await
        .expect_err("tagless");
    assert!(matches!(err, StoreError::Invalid(ref i) if i.field == "criteria[0].tags"));
    let none = f
        .store
        .latest_by_criteria(&b, &[Criterion::new([Tag::new("x", "y")])])
        .await?;
    assert_eq!(none.context_position, Position::BEFORE_FIRST);
    Ok(())
}

#[tokio::test]
async fn a_group_sees_its_own_earlier_requests() -> anyhow::Result<()> {
    let f = fresh();
    let b = boundary("b");
    f.store.create_boundary(&b).await?;
    let store = Arc::new(f.store.clone());
    // 32 commands race on one empty context: exactly one may win, whatever the grouping.
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = Arc::clone(&store);
            let b = b.clone();
            tokio::spawn(async move {
                store
                    .append(
                        &b,
                        vec![event("Opened", json!({"account": "shared", "by": i}))],
                        Some(AppendCondition::new(
                            by("account", "shared"),
                            Position::BEFORE_FIRST,
                        )),
                    )
                    .await
            })
        })
        .collect();
    let mut won = Vec::new();
    let mut lost = 0;
    for task in tasks {
        match task.await? {
            Ok(outcome) => won.push(outcome.position),
            Err(StoreError::ConditionFailed { actual, .. }) => {
                assert_eq!(actual, Position::new(1, 0));
                lost += 1;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(won, vec![Position::new(1, 0)]);
    assert_eq!(lost, 31);
    assert_eq!(f.store.count(&b).await?, 1);

    // Independent contexts all win, in one or more groups.
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = Arc::clone(&store);
            let b = b.clone();
            let account = format!("acct{i}");
            tokio::spawn(async move {
                store
                    .append(
                        &b,
                        vec![event("Opened", json!({ "account": account }))],
                        Some(AppendCondition::new(
                            by("account", &account),
                            Position::BEFORE_FIRST,
                        )),
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    assert_eq!(f.store.count(&b).await?, 33);
    Ok(())
}

#[tokio::test]
async fn the_head_watch_follows_commits() -> anyhow::Result<()> {
    let f = fresh();
    let b = boundary("b");
    f.store.create_boundary(&b).await?;
    let mut rx = f.store.watch_head(&b).await?;
    assert_eq!(*rx.borrow_and_update(), Position::BEFORE_FIRST);
    let outcome = f
        .store
        .append(&b, vec![event("A", json!({}))], None)
        .await?;
    // The watch is updated before the append returns.
    assert!(rx.has_changed()?);
    assert_eq!(*rx.borrow_and_update(), outcome.position);
    // A rejected or idempotent append does not move it.
    let _ = f
        .store
        .append(
            &b,
            vec![event("A", json!({}))],
            Some(AppendCondition::new(Query::all(), Position::BEFORE_FIRST)),
        )
        .await;
    assert!(!rx.has_changed()?);
    Ok(())
}

#[tokio::test]
async fn bad_reads_are_rejected() -> anyhow::Result<()> {
    let f = fresh();
    let b = boundary("b");
    f.store.create_boundary(&b).await?;
    let err = f
        .store
        .read(&b, &ReadRequest::forward(None, 0))
        .await
        .expect_err("limit");
    assert!(matches!(err, StoreError::Invalid(ref i) if i.field == "count"));
    let err = f
        .store
        .read(&b, &ReadRequest::forward(None, 1).with_query(by("", "v")))
        .await
        .expect_err("key");
    assert!(matches!(err, StoreError::Invalid(_)));
    let err = f
        .store
        .append(
            &b,
            vec![event("A", json!({}))],
            Some(AppendCondition::new(by("", "v"), Position::BEFORE_FIRST)),
        )
        .await
        .expect_err("key");
    assert!(matches!(err, StoreError::Invalid(_)));
    assert_eq!(f.store.count(&b).await?, 0);
    Ok(())
}
