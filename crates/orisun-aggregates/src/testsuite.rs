//! The aggregate-stream suite (feature `testsuite`, for dev-dependencies only): generic tests
//! that every store runs through [`crate::aggregate_suite!`], so that PostgreSQL, the embedded
//! store, the in-memory model and a remote server give the same answers.

use crate::{AggregateError, AggregateId, Aggregates, ExpectedVersion};
use futures::StreamExt;
use orisun_core::{
    BoundaryName, Criterion, JsonObject, NewEvent, Position, Query, ReadRequest, Tag,
};
use orisun_store::EventStore;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Runs every test of the suite against stores made by `$fresh` (an async fn returning
/// `Arc<dyn EventStore>`).
#[macro_export]
macro_rules! aggregate_suite {
    ($fresh:path) => {
        $crate::aggregate_suite!(@tests $fresh;
            versions_start_at_one_and_read_back,
            ranges_and_missing_aggregates,
            aggregate_events_are_ordinary_events,
            wrong_versions_name_expected_and_actual,
            bad_input_changes_nothing,
            retried_append_reports_original_versions,
            concurrent_any_appends_all_succeed,
            sixteen_writers_on_four_aggregates,
        );
    };
    (@tests $fresh:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::testsuite::$name($fresh().await).await;
            }
        )*
    };
}

/// A fresh boundary in `store`, and the aggregates in it.
pub async fn setup(store: Arc<dyn EventStore>) -> Aggregates {
    let name = format!("agg_{}", uuid::Uuid::new_v4().simple());
    let boundary = BoundaryName::new(name).expect("valid boundary name");
    store
        .create_boundary(&boundary)
        .await
        .expect("boundary created");
    Aggregates::new(store, boundary)
}

/// An event of type `kind` with `data`.
pub fn event(kind: &str, data: serde_json::Value) -> NewEvent {
    let data: JsonObject = data.as_object().cloned().expect("data is an object");
    NewEvent::new(uuid::Uuid::new_v4(), kind, data, JsonObject::new()).expect("valid event")
}

fn account(id: &str) -> AggregateId {
    AggregateId::new("Account", id).expect("valid aggregate id")
}

fn deposits(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event("Deposited", json!({"amount": i})))
        .collect()
}

async fn count(aggregates: &Aggregates) -> u64 {
    aggregates
        .store()
        .count(aggregates.boundary())
        .await
        .expect("count")
}

/// Versions run 1, 2, 3... across appends, and come back with every event.
pub async fn versions_start_at_one_and_read_back(store: Arc<dyn EventStore>) {
    let aggregates = setup(store).await;
    let id = account("a-1");
    let first = aggregates
        .append(&id, ExpectedVersion::NoStream, deposits(3))
        .await
        .expect("first append");
    assert_eq!((first.first_version, first.last_version), (1, 3));
    assert!(!first.already_stored);
    let second = aggregates
        .append(&id, ExpectedVersion::Exact(3), deposits(2))
        .await
        .expect("second append");
    assert_eq!((second.first_version, second.last_version), (4, 5));
    assert!(second.position > first.position);
    let third = aggregates
        .append(&id, ExpectedVersion::Any, deposits(1))
        .await
        .expect("any append");
    assert_eq!((third.first_version, third.last_version), (6, 6));
    assert_eq!(aggregates.version(&id).await.expect("version"), 6);
    let stream = aggregates.read(&id, ..).await.expect("read");
    assert!(stream.exists());
    assert_eq!(stream.current_version, 6);
    let versions: Vec<u64> = stream.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        stream.events[3].event.position.commit,
        second.position.commit
    );
    let amounts: Vec<_> = stream
        .events
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.event.data).expect("json")["amount"]
                .clone()
        })
        .collect();
    assert_eq!(
        amounts,
        [json!(0), json!(1), json!(2), json!(0), json!(1), json!(0)]
    );
}

/// Inclusive ranges, ranges past the head, and an aggregate that does not exist.
pub async fn ranges_and_missing_aggregates(store: Arc<dyn EventStore>) {
    let aggregates = setup(store).await;
    let id = account("a-1");
    for _ in 0..4 {
        aggregates
            .append(&id, ExpectedVersion::Any, deposits(3))
            .await
            .expect("append");
    }
    // Another aggregate's events interleave, and must never appear in a-1's stream.
    aggregates
        .append(&account("a-2"), ExpectedVersion::Any, deposits(2))
        .await
        .expect("append a-2");
    let versions =
        |s: &crate::AggregateStream| s.events.iter().map(|e| e.version).collect::<Vec<_>>();
    let middle = aggregates.read(&id, 5..=8).await.expect("read 5..=8");
    assert_eq!(versions(&middle), [5, 6, 7, 8]);
    assert_eq!(middle.current_version, 12);
    assert_eq!(
        versions(&aggregates.read(&id, 11..).await.expect("tail")),
        [11, 12]
    );
    assert_eq!(
        versions(&aggregates.read(&id, ..3).await.expect("head")),
        [1, 2]
    );
    assert_eq!(
        versions(&aggregates.read(&id, 12..=12).await.expect("last")),
        [12]
    );
    let beyond = aggregates.read(&id, 13..).await.expect("beyond");
    assert!(beyond.exists() && beyond.events.is_empty());
    assert_eq!(beyond.current_version, 12);
    let missing = aggregates
        .read(&account("nobody"), ..)
        .await
        .expect("missing");
    assert!(!missing.exists() && missing.events.is_empty());
    assert_eq!(missing.current_version, 0);
    assert_eq!(
        aggregates
            .version(&account("nobody"))
            .await
            .expect("version"),
        0
    );
    // Same id, other type: another aggregate.
    let order = AggregateId::new("Order", "a-1").expect("valid");
    assert!(!aggregates
        .read(&order, ..)
        .await
        .expect("read order")
        .exists());
}

/// Aggregate events are found by criteria reads and delivered by subscriptions like any event.
pub async fn aggregate_events_are_ordinary_events(store: Arc<dyn EventStore>) {
    let aggregates = setup(store).await;
    let id = account("a-1");
    let appended = aggregates
        .append(&id, ExpectedVersion::NoStream, deposits(2))
        .await
        .expect("append");
    let store = aggregates.store();
    let by_type = Query::new([Criterion::new([Tag::new("aggregateType", "Account")])]);
    let page = store
        .read(
            aggregates.boundary(),
            &ReadRequest::forward(None, 10).with_query(by_type.clone()),
        )
        .await
        .expect("criteria read");
    assert_eq!(page.len(), 2);
    assert_eq!(page[1].position, appended.position);
    let data: serde_json::Value = serde_json::from_str(&page[1].data).expect("json");
    assert_eq!(data["aggregateId"], "a-1");
    assert_eq!(data["aggregateVersion"], 2);
    assert_eq!(data["eventType"], "Deposited");
    let mut subscription = store.subscribe(aggregates.boundary(), Position::BEFORE_FIRST, by_type);
    for expected in &page {
        let got = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("delivered in time")
            .expect("stream open")
            .expect("no error");
        assert_eq!(got.event_id, expected.event_id);
    }
}

/// A refused append names the expected and the actual version, and appends nothing.
pub async fn wrong_versions_name_expected_and_actual(store: Arc<dyn EventStore>) {
    let aggregates = setup(store).await;
    let id = account("a-1");
    aggregates
        .append(&id, ExpectedVersion::NoStream, deposits(2))
        .await
        .expect("append");
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(1),
    ] {
        match aggregates.append(&id, expected, deposits(1)).await {
            Err(AggregateError::WrongVersion {
                aggregate,
                expected: e,
                actual: 2,
            }) => {
                assert_eq!(aggregate, id);
                assert_eq!(e, expected);
            }
            other => panic!("{expected:?}: expected WrongVersion at 2, got {other:?}"),
        }
    }
    assert_eq!(count(&aggregates).await, 2);
    assert_eq!(aggregates.version(&id).await.expect("version"), 2);
}

/// Bad input gets a precise error and changes nothing.
pub async fn bad_input_changes_nothing(store: Arc<dyn EventStore>) {
    let aggregates = setup(store).await;
    assert_eq!(
        AggregateId::new("Account", "").expect_err("empty id").field,
        "aggregate_id"
    );
    let id = account("a-1");
    aggregates
        .append(&id, ExpectedVersion::NoStream, deposits(1))
        .await
        .expect("append");
    match aggregates
        .append(&id, ExpectedVersion::Exact(5), deposits(1))
        .await
    {
        Err(AggregateError::VersionBeyondHead {
            expected: 5,
            actual: 1,
            ..
        }) => {}
        other => panic!("expected VersionBeyondHead, got {other:?}"),
    }
    match aggregates
        .append(&account("new"), ExpectedVersion::Exact(1), deposits(1))
        .await
    {
        Err(AggregateError::VersionBeyondHead {
            expected: 1,
            actual: 0,
            ..
        }) => {}
        other => panic!("expected VersionBeyondHead on a new aggregate, got {other:?}"),
    }
    match aggregates
        .append(&id, ExpectedVersion::Any, Vec::new())
        .await
    {
        Err(AggregateError::Invalid(e)) => assert_eq!(e.field, "events"),
        other => panic!("expected Invalid for no events, got {other:?}"),
    }
    let forged = event("Deposited", json!({"aggregateId": "a-2"}));
    match aggregates
        .append(&id, ExpectedVersion::Any, vec![forged])
        .await
    {
        Err(AggregateError::Invalid(e)) => assert_eq!(e.field, "events[0].data.aggregateId"),
        other => panic!("expected Invalid for a reserved field, got {other:?}"),
    }
    let versioned = event("Deposited", json!({"aggregateVersion": 2}));
    match aggregates
        .append(&id, ExpectedVersion::Exact(1), vec![versioned])
        .await
    {
        Err(AggregateError::Invalid(e)) => assert_eq!(e.field, "events[0].data.aggregateVersion"),
        other => panic!("expected Invalid for a given version, got {other:?}"),
    }
    let dup = event("Deposited", json!({}));
    match aggregates
        .append(&id, ExpectedVersion::Any, vec![dup.clone(), dup])
        .await
    {
        Err(AggregateError::Store(orisun_store::StoreError::Invalid(_))) => {}
        other => panic!("expected Invalid for a repeated event id, got {other:?}"),
    }
    assert_eq!(count(&aggregates).await, 1);
    assert_eq!(aggregates.version(&id).await.expect("version"), 1);
}

/// Appending the same event ids again reports the first append's versions and position.
pub async fn retried_append_reports_original_versions(store: Arc<dyn EventStore>) {
    let aggregates = setup(store).await;
    let id = account("a-1");
    let batch = deposits(3);
    let first = aggregates
        .append(&id, ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("append");
    aggregates
        .append(&id, ExpectedVersion::Any, deposits(1))
        .await
        .expect("another append");
    let retried = aggregates
        .append(&id, ExpectedVersion::Any, batch)
        .await
        .expect("retry");
    assert!(retried.already_stored);
    assert_eq!((retried.first_version, retried.last_version), (1, 3));
    assert_eq!(retried.position, first.position);
    assert_eq!(count(&aggregates).await, 4);
}

/// Two (here eight) concurrent `Any` appends to one aggregate all succeed, with distinct
/// versions.
pub async fn concurrent_any_appends_all_succeed(store: Arc<dyn EventStore>) {
    let aggregates = setup(store).await;
    let id = account("hot");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (aggregates, id) = (aggregates.clone(), id.clone());
            tokio::spawn(async move {
                aggregates
                    .append(&id, ExpectedVersion::Any, deposits(2))
                    .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        let appended = task
            .await
            .expect("task")
            .expect("every Any append succeeds");
        versions.extend(appended.first_version..=appended.last_version);
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=16).collect::<Vec<_>>());
}

/// 16 writers on 4 aggregates, mixing `Any` and `Exact`: versions are gap-free and unique,
/// and every refused `Exact` was really stale.
pub async fn sixteen_writers_on_four_aggregates(store: Arc<dyn EventStore>) {
    const ROUNDS: usize = 12;
    let aggregates = setup(store).await;
    let ids: Vec<AggregateId> = (0..4).map(|i| account(&format!("acc-{i}"))).collect();
    let tasks: Vec<_> = (0..16)
        .map(|writer| {
            let aggregates = aggregates.clone();
            let id = ids[writer % 4].clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut conflicts = 0;
                for round in 0..ROUNDS {
                    let data = json!({"writer": writer, "round": round});
                    if round % 2 == 0 {
                        let a = aggregates
                            .append(&id, ExpectedVersion::Any, vec![event("Deposited", data)])
                            .await
                            .expect("Any append");
                        mine.push(a.last_version);
                        continue;
                    }
                    let seen = aggregates.version(&id).await.expect("version");
                    match aggregates
                        .append(
                            &id,
                            ExpectedVersion::Exact(seen),
                            vec![event("Deposited", data)],
                        )
                        .await
                    {
                        Ok(a) => {
                            assert_eq!(a.first_version, seen + 1);
                            mine.push(a.last_version);
                        }
                        Err(AggregateError::WrongVersion {
                            expected, actual, ..
                        }) => {
                            assert_eq!(expected, ExpectedVersion::Exact(seen));
                            assert!(actual > seen, "refused at {seen} but actual is {actual}");
                            conflicts += 1;
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                (writer % 4, mine, conflicts)
            })
        })
        .collect();
    let mut per_aggregate: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for task in tasks {
        let (aggregate, mine, _) = task.await.expect("writer");
        per_aggregate.entry(aggregate).or_default().extend(mine);
    }
    for (index, mut versions) in per_aggregate {
        versions.sort_unstable();
        let n = versions.len() as u64;
        assert_eq!(
            versions,
            (1..=n).collect::<Vec<_>>(),
            "acc-{index}: versions reported"
        );
        let stream = aggregates.read(&ids[index], ..).await.expect("read");
        let stored: Vec<u64> = stream.events.iter().map(|e| e.version).collect();
        assert_eq!(
            stored,
            (1..=n).collect::<Vec<_>>(),
            "acc-{index}: versions stored"
        );
        let writers: std::collections::BTreeSet<u64> = stream
            .events
            .iter()
            .map(|e| {
                serde_json::from_str::<serde_json::Value>(&e.event.data).expect("json")["writer"]
                    .as_u64()
                    .expect("writer")
            })
            .collect();
        assert_eq!(writers.len(), 4, "acc-{index}: every writer got in");
    }
}
