//! The conformance suite: generic async tests that every [`EventStore`] implementation runs.
//!
//! A backend wires the whole suite into its own tests with one macro call:
//!
//! ```ignore
//! async fn fresh() -> std::sync::Arc<dyn orisun_store::EventStore> { /* a new, empty store */ }
//! orisun_store::conformance_suite!(fresh);
//! ```
//!
//! Each test creates its own boundary, so a factory may hand out the same store repeatedly.
//! The scenarios (bank transfers, paging under concurrent writers, random operations compared
//! with [`MemoryStore`]) are part of the suite too.

use crate::rules::batch_positions;
use crate::{EventStore, HeadWatch, MemoryStore, StoreError};
use futures::StreamExt;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, Direction, NewEvent, Position, Query, ReadRequest,
    StoredEvent, Tag,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Generates one `#[tokio::test]` per conformance test, each calling `$factory().await` for a
/// store (`Arc<dyn EventStore>`).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!(@each $factory;
            positions_follow_orisun_rules,
            data_carries_event_type_and_metadata_defaults,
            reads_match_brute_force_for_every_bound,
            criteria_combine_or_across_and_within,
            latest_by_criteria_reports_each_criterion,
            condition_fails_only_for_a_later_match,
            rejected_appends_change_nothing,
            rejects_bad_input_with_precise_errors,
            unknown_boundary_is_reported,
            retrying_a_stored_batch_returns_the_original_result,
            megabyte_event_round_trips,
            ten_thousand_event_batch,
            subscription_replays_then_follows_live,
            subscribing_to_an_unknown_boundary_fails,
            boundaries_are_isolated,
            concurrent_appends_get_gap_free_positions,
            bank_transfers_keep_balances_consistent,
            paging_reader_sees_every_event_once_under_concurrent_writers,
            matches_the_model_on_random_operations,
        );
    };
    (@each $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let store: ::std::sync::Arc<dyn $crate::EventStore> = $factory().await;
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

/// A shared store handle, as the suite receives it.
pub type Store = Arc<dyn EventStore>;

/// Creates a boundary with a unique name.
pub async fn fresh_boundary(store: &Store) -> BoundaryName {
    let name = format!("t_{}", Uuid::new_v4().simple());
    let boundary = BoundaryName::new(name).expect("generated name is valid");
    store
        .create_boundary(&boundary)
        .await
        .expect("create boundary");
    boundary
}

/// Builds an event with a random id.
pub fn event(event_type: &str, data: Value) -> NewEvent {
    let Value::Object(data) = data else {
        panic!("test data must be an object")
    };
    NewEvent::new(Uuid::new_v4(), event_type, data, Default::default()).expect("valid event")
}

fn tag(key: &str, value: &str) -> Criterion {
    Criterion::new([Tag::new(key, value)])
}

fn condition(criteria: Vec<Criterion>, after: Position) -> Option<AppendCondition> {
    Some(AppendCondition::new(Query::new(criteria), after))
}

/// Reads every event of a boundary, oldest first.
pub async fn read_all(store: &Store, boundary: &BoundaryName) -> Vec<StoredEvent> {
    read_all_matching(store, boundary, Query::all()).await
}

async fn read_all_matching(
    store: &Store,
    boundary: &BoundaryName,
    query: Query,
) -> Vec<StoredEvent> {
    let mut out: Vec<StoredEvent> = Vec::new();
    loop {
        let from = out
            .last()
            .map(|e| Position::new(e.position.commit, e.position.prepare + 1));
        let page = store
            .read(
                boundary,
                &ReadRequest::forward(from, 1_000).with_query(query.clone()),
            )
            .await
            .expect("read");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn data_of(e: &StoredEvent) -> Value {
    serde_json::from_str(&e.data).expect("stored data is JSON")
}

fn ids(events: &[StoredEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

async fn append(store: &Store, b: &BoundaryName, events: Vec<NewEvent>) -> Position {
    store
        .append(b, events, None)
        .await
        .expect("append")
        .position
}

/// Positions: `{1,0}` first; a batch shares commit = last sequence + 1; head and count follow.
pub async fn positions_follow_orisun_rules(store: Store) {
    let b = fresh_boundary(&store).await;
    assert_eq!(store.head(&b).await.expect("head"), Position::BEFORE_FIRST);
    assert_eq!(store.count(&b).await.expect("count"), 0);

    let first = append(&store, &b, vec![event("A", json!({}))]).await;
    assert_eq!(first, Position::new(1, 0));
    let batch = append(
        &store,
        &b,
        vec![
            event("B", json!({})),
            event("B", json!({})),
            event("B", json!({})),
        ],
    )
    .await;
    assert_eq!(batch, Position::new(4, 3));

    let all = read_all(&store, &b).await;
    let positions: Vec<Position> = all.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        vec![
            Position::new(1, 0),
            Position::new(4, 1),
            Position::new(4, 2),
            Position::new(4, 3)
        ]
    );
    assert_eq!(store.head(&b).await.expect("head"), Position::new(4, 3));
    assert_eq!(store.count(&b).await.expect("count"), 4);
}

/// `eventType` is written into data; empty metadata reads back as `{}`; ids and UTC creation
/// times are kept.
pub async fn data_carries_event_type_and_metadata_defaults(store: Store) {
    let b = fresh_boundary(&store).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let mut e = event(
        "Deposited",
        json!({"account": "a1", "eventType": "spoof", "n": 5}),
    );
    e.metadata.insert("source".into(), json!("test"));
    let plain = event("Opened", json!({}));
    let (id, plain_id) = (e.event_id, plain.event_id);
    append(&store, &b, vec![e, plain]).await;
    let after = chrono::Utc::now() + chrono::Duration::seconds(5);

    let all = read_all(&store, &b).await;
    assert_eq!(ids(&all), vec![id, plain_id]);
    assert_eq!(all[0].event_type, "Deposited");
    assert_eq!(
        data_of(&all[0]),
        json!({"account": "a1", "eventType": "Deposited", "n": 5})
    );
    let meta: Value = serde_json::from_str(&all[0].metadata).expect("json");
    assert_eq!(meta, json!({"source": "test"}));
    let meta: Value = serde_json::from_str(&all[1].metadata).expect("json");
    assert_eq!(meta, json!({}));
    assert_eq!(data_of(&all[1]), json!({"eventType": "Opened"}));
    for e in &all {
        assert!(
            e.date_created > before && e.date_created < after,
            "date_created {} not within the append window",
            e.date_created
        );
    }
}

/// Every combination of bound, direction and limit returns what a brute-force filter over the
/// whole log returns, including bounds that are no event's position.
pub async fn reads_match_brute_force_for_every_bound(store: Store) {
    let b = fresh_boundary(&store).await;
    for size in [1usize, 3, 1, 2, 1, 4, 1] {
        let batch = (0..size)
            .map(|i| event("E", json!({"i": i, "size": size})))
            .collect();
        append(&store, &b, batch).await;
    }
    let all = read_all(&store, &b).await;
    assert_eq!(all.len(), 13);
    let head = all.last().expect("events").position;

    let mut probes = vec![
        Position::BEFORE_FIRST,
        Position::new(0, 0),
        Position::new(head.commit + 5, 0),
        Position::new(head.commit, head.prepare + 1),
        Position::new(i64::MAX, i64::MAX),
    ];
    for e in &all {
        let p = e.position;
        probes.extend([
            p,
            Position::new(p.commit, p.prepare - 1),
            Position::new(p.commit, p.prepare + 1),
            Position::new(p.commit, 0),
            Position::new(p.commit - 1, i64::MAX),
        ]);
    }
    for from in probes.into_iter().map(Some).chain([None]) {
        for direction in [Direction::Asc, Direction::Desc] {
            for limit in [1u32, 2, 5, 100] {
                let request = ReadRequest {
                    query: Query::all(),
                    from,
                    direction,
                    limit,
                };
                let got = store.read(&b, &request).await.expect("read");
                let mut expected: Vec<&StoredEvent> =
                    all.iter().filter(|e| request.admits(e.position)).collect();
                if direction == Direction::Desc {
                    expected.reverse();
                }
                expected.truncate(limit as usize);
                let expected: Vec<Position> = expected.iter().map(|e| e.position).collect();
                let got: Vec<Position> = got.iter().map(|e| e.position).collect();
                assert_eq!(got, expected, "from {from:?} {direction:?} limit {limit}");
            }
        }
    }
}

/// OR across criteria, AND across tags; strings, numbers and booleans match by their text.
pub async fn criteria_combine_or_across_and_within(store: Store) {
    let b = fresh_boundary(&store).await;
    let payloads = [
        json!({"a": "1", "b": "x"}),
        json!({"a": 1, "b": "y"}),
        json!({"a": true}),
        json!({"c": 1.5}),
        json!({"a": [1], "b": "x"}),
        json!({"a": {"n": 1}, "b": "x"}),
        json!({"a": null}),
        json!({"a.b": "dot"}),
    ];
    let events: Vec<NewEvent> = payloads.iter().map(|p| event("T", p.clone())).collect();
    let all_ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    append(&store, &b, events).await;

    let cases: Vec<(Query, Vec<usize>)> = vec![
        (Query::new([tag("a", "1")]), vec![0, 1]),
        (
            Query::new([Criterion::new([Tag::new("a", "1"), Tag::new("b", "x")])]),
            vec![0],
        ),
        (Query::new([tag("a", "true"), tag("c", "1.5")]), vec![2, 3]),
        (Query::new([tag("b", "x")]), vec![0, 4, 5]),
        (Query::new([tag("a", "null")]), vec![]),
        (Query::new([tag("a.b", "dot")]), vec![7]),
        (Query::new([tag("eventType", "T")]), (0..8).collect()),
        (Query::new([tag("eventType", "U")]), vec![]),
        (
            Query::new([tag("a", "1"), Criterion::default()]),
            (0..8).collect(),
        ),
        (Query::all(), (0..8).collect()),
    ];
    for (query, expected) in cases {
        let got = read_all_matching(&store, &b, query.clone()).await;
        let expected: Vec<Uuid> = expected.iter().map(|&i| all_ids[i]).collect();
        assert_eq!(ids(&got), expected, "{query:?}");
        let desc = store
            .read(
                &b,
                &ReadRequest::forward(None, 100)
                    .with_query(query.clone())
                    .with_direction(Direction::Desc),
            )
            .await
            .expect("read");
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(ids(&desc), reversed, "DESC {query:?}");
    }
}

/// One entry per criterion in request order, and the context position is their maximum.
pub async fn latest_by_criteria_reports_each_criterion(store: Store) {
    let b = fresh_boundary(&store).await;
    let p1 = append(&store, &b, vec![event("Opened", json!({"acct": "1"}))]).await;
    let p2 = append(&store, &b, vec![event("Opened", json!({"acct": "2"}))]).await;
    let p3 = append(&store, &b, vec![event("Deposited", json!({"acct": "1"}))]).await;
    assert!(p1 < p2 && p2 < p3);

    let criteria = vec![
        tag("acct", "2"),
        tag("acct", "3"),
        Criterion::new([Tag::new("acct", "1"), Tag::new("eventType", "Opened")]),
    ];
    let latest = store
        .latest_by_criteria(&b, &criteria)
        .await
        .expect("latest");
    let positions: Vec<Option<Position>> = latest
        .events
        .iter()
        .map(|e| e.as_ref().map(|e| e.position))
        .collect();
    assert_eq!(positions, vec![Some(p2), None, Some(p1)]);
    assert_eq!(latest.context_position, p2);

    let none = store
        .latest_by_criteria(&b, &[tag("acct", "9")])
        .await
        .expect("latest");
    assert_eq!(none.events, vec![None]);
    assert_eq!(none.context_position, Position::BEFORE_FIRST);
}

/// DCB semantics: the append fails iff an event matching the criteria is after the expected
/// position; a later expected position (the head) passes; no criteria covers the boundary.
pub async fn condition_fails_only_for_a_later_match(store: Store) {
    let b = fresh_boundary(&store).await;
    let a1 = append(&store, &b, vec![event("E", json!({"acct": "1"}))]).await;
    let _b2 = append(&store, &b, vec![event("E", json!({"acct": "2"}))]).await;

    // Nothing about acct 1 after a1: passes even though acct 2 moved on.
    let c1 = store
        .append(
            &b,
            vec![event("E", json!({"acct": "1"}))],
            condition(vec![tag("acct", "1")], a1),
        )
        .await
        .expect("no later match")
        .position;

    // The same expectation again now conflicts, reporting the latest match.
    let err = store
        .append(
            &b,
            vec![event("E", json!({"acct": "1"}))],
            condition(vec![tag("acct", "1")], a1),
        )
        .await
        .expect_err("conflict");
    match err {
        StoreError::ConditionFailed { expected, actual } => {
            assert_eq!(expected, a1);
            assert_eq!(actual, c1);
        }
        other => panic!("expected ConditionFailed, got {other:?}"),
    }

    // An expected position later than the last match (here: the head) passes.
    let d2 = append(&store, &b, vec![event("E", json!({"acct": "2"}))]).await;
    store
        .append(
            &b,
            vec![event("E", json!({"acct": "1"}))],
            condition(vec![tag("acct", "1")], d2),
        )
        .await
        .expect("expected after last match");

    // An empty context with {-1,-1}.
    store
        .append(
            &b,
            vec![event("E", json!({"acct": "3"}))],
            condition(vec![tag("acct", "4")], Position::BEFORE_FIRST),
        )
        .await
        .expect("empty context");

    // No criteria: the whole boundary is the context.
    let head = store.head(&b).await.expect("head");
    let err = store
        .append(&b, vec![event("E", json!({}))], condition(vec![], a1))
        .await
        .expect_err("whole boundary moved");
    assert!(matches!(err, StoreError::ConditionFailed { actual, .. } if actual == head));
    store
        .append(&b, vec![event("E", json!({}))], condition(vec![], head))
        .await
        .expect("head is current");

    // An expected position after the head is a client error.
    let head = store.head(&b).await.expect("head");
    let beyond = Position::new(head.commit + 1, head.prepare + 1);
    let err = store
        .append(
            &b,
            vec![event("E", json!({}))],
            condition(vec![tag("acct", "1")], beyond),
        )
        .await
        .expect_err("beyond head");
    match err {
        StoreError::Invalid(invalid) => assert_eq!(invalid.field, "query.expected_position"),
        other => panic!("expected Invalid, got {other:?}"),
    }

    // An AND criterion only conflicts when all its tags match a later event.
    let before = store.head(&b).await.expect("head");
    append(&store, &b, vec![event("X", json!({"acct": "5"}))]).await;
    store
        .append(
            &b,
            vec![event("E", json!({}))],
            condition(
                vec![Criterion::new([
                    Tag::new("acct", "5"),
                    Tag::new("eventType", "Y"),
                ])],
                before,
            ),
        )
        .await
        .expect("partial tag match is no match");
}

/// A failed or rejected append leaves the log exactly as it was.
pub async fn rejected_appends_change_nothing(store: Store) {
    let b = fresh_boundary(&store).await;
    let p = append(&store, &b, vec![event("E", json!({"k": "v"}))]).await;
    append(&store, &b, vec![event("E", json!({"k": "v"}))]).await;
    let before = read_all(&store, &b).await;
    let head = store.head(&b).await.expect("head");

    let conflicting = vec![event("E", json!({"k": "v"})), event("E", json!({"k": "w"}))];
    let new_ids: Vec<Uuid> = conflicting.iter().map(|e| e.event_id).collect();
    store
        .append(&b, conflicting, condition(vec![tag("k", "v")], p))
        .await
        .expect_err("conflict");
    assert_eq!(read_all(&store, &b).await, before);
    assert_eq!(store.head(&b).await.expect("head"), head);

    // The same events can still be appended: the rejected attempt left no id behind.
    let outcome = store
        .append(
            &b,
            new_ids
                .iter()
                .map(|id| {
                    NewEvent::new(*id, "E", Default::default(), Default::default()).expect("valid")
                })
                .collect(),
            None,
        )
        .await
        .expect("append after rejection");
    assert!(!outcome.already_stored);
    assert_eq!(
        outcome.position,
        Position::new(head.prepare + 3, head.prepare + 2)
    );
}

/// Every bad input is rejected with an error naming the field, before anything is written.
pub async fn rejects_bad_input_with_precise_errors(store: Store) {
    let b = fresh_boundary(&store).await;
    append(&store, &b, vec![event("E", json!({}))]).await;
    let count = store.count(&b).await.expect("count");

    fn field(err: StoreError) -> String {
        match err {
            StoreError::Invalid(invalid) => invalid.field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    let err = store.append(&b, vec![], None).await.expect_err("empty");
    assert_eq!(field(err), "events");

    let dup = event("E", json!({}));
    let err = store
        .append(&b, vec![dup.clone(), event("E", json!({})), dup], None)
        .await
        .expect_err("dup");
    assert_eq!(field(err), "events[2].event_id");

    let err = store
        .append(
            &b,
            vec![event("E", json!({}))],
            Some(AppendCondition::new(
                Query::new([Criterion::new([Tag::new("", "v")])]),
                Position::BEFORE_FIRST,
            )),
        )
        .await
        .expect_err("empty key");
    assert_eq!(field(err), "query.subsetQuery.criteria[0].tags[0].key");

    // Wire-level inputs are parsed by the domain model before they reach a store.
    let id = Uuid::new_v4().to_string();
    let wire_cases = [
        ("not-a-uuid", "E", "{}", "", "events[0].event_id"),
        (id.as_str(), "", "{}", "", "events[0].event_type"),
        (id.as_str(), "E", "[1,2]", "", "events[0].data"),
        (id.as_str(), "E", "\"text\"", "", "events[0].data"),
        (id.as_str(), "E", "{\"a\":", "", "events[0].data"),
        (id.as_str(), "E", "{}", "[]", "events[0].metadata"),
        (id.as_str(), "E", "{}", "{bad", "events[0].metadata"),
        (
            id.as_str(),
            "E",
            r#"{"s":"a\u0000b"}"#,
            "",
            "events[0].data",
        ),
    ];
    for (event_id, event_type, data, metadata, expected) in wire_cases {
        let err = NewEvent::from_wire(0, event_id, event_type, data, metadata).expect_err(expected);
        assert_eq!(err.field, expected);
    }
    assert_eq!(
        BoundaryName::new("bad-name").expect_err("name").field,
        "boundary"
    );

    for limit in [0, 10_001] {
        let err = store
            .read(&b, &ReadRequest::forward(None, limit))
            .await
            .expect_err("limit");
        assert_eq!(field(err), "count");
    }
    let err = store.latest_by_criteria(&b, &[]).await.expect_err("none");
    assert_eq!(field(err), "criteria");
    let err = store
        .latest_by_criteria(&b, &[tag("a", "1"), Criterion::default()])
        .await
        .expect_err("tagless");
    assert_eq!(field(err), "criteria[1].tags");

    assert_eq!(store.count(&b).await.expect("count"), count);
}

/// Calls on a boundary that was never created fail with `UnknownBoundary`.
pub async fn unknown_boundary_is_reported(store: Store) {
    let b = BoundaryName::new(format!("missing_{}", Uuid::new_v4().simple())).expect("name");
    let unknown = |r: StoreError| matches!(r, StoreError::UnknownBoundary { .. });
    assert!(unknown(
        store
            .append(&b, vec![event("E", json!({}))], None)
            .await
            .expect_err("append")
    ));
    assert!(unknown(
        store
            .read(&b, &ReadRequest::forward(None, 10))
            .await
            .expect_err("read")
    ));
    assert!(unknown(store.head(&b).await.expect_err("head")));
    assert!(unknown(store.count(&b).await.expect_err("count")));
    assert!(unknown(
        store
            .latest_by_criteria(&b, &[tag("a", "1")])
            .await
            .expect_err("latest")
    ));
    assert!(!store.boundaries().await.expect("boundaries").contains(&b));
}

/// Re-sending a stored batch returns its original position; a partial overlap is an error.
pub async fn retrying_a_stored_batch_returns_the_original_result(store: Store) {
    let b = fresh_boundary(&store).await;
    append(&store, &b, vec![event("E", json!({}))]).await;
    let batch = vec![event("E", json!({"n": 1})), event("E", json!({"n": 2}))];
    let first = store.append(&b, batch.clone(), None).await.expect("append");
    assert!(!first.already_stored);
    append(&store, &b, vec![event("E", json!({}))]).await;

    // The retry carries a now-stale condition: it still reports the original result.
    let retry = store
        .append(&b, batch.clone(), condition(vec![], Position::BEFORE_FIRST))
        .await
        .expect("retry");
    assert_eq!(retry.position, first.position);
    assert!(retry.already_stored);
    assert_eq!(store.count(&b).await.expect("count"), 4);

    let overlap = vec![batch[1].clone(), event("E", json!({}))];
    match store.append(&b, overlap, None).await {
        Err(StoreError::DuplicateEvents { event_ids }) => {
            assert_eq!(event_ids, vec![batch[1].event_id]);
        }
        other => panic!("expected DuplicateEvents, got {other:?}"),
    }
    assert_eq!(store.count(&b).await.expect("count"), 4);
}

/// A 1 MiB event saves and reads back intact (no index row size limit applies).
pub async fn megabyte_event_round_trips(store: Store) {
    let b = fresh_boundary(&store).await;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let noise: String = (0..1024 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(b'a' + (seed % 26) as u8)
        })
        .collect();
    append(
        &store,
        &b,
        vec![event("Big", json!({"blob": noise, "k": "big"}))],
    )
    .await;
    let got = read_all_matching(&store, &b, Query::new([tag("k", "big")])).await;
    assert_eq!(got.len(), 1);
    assert_eq!(data_of(&got[0])["blob"], json!(noise));
}

/// A batch of 10,000 events is one atomic append with one commit position.
pub async fn ten_thousand_event_batch(store: Store) {
    let b = fresh_boundary(&store).await;
    append(&store, &b, vec![event("E", json!({}))]).await;
    let batch: Vec<NewEvent> = (0..10_000)
        .map(|i| event("Bulk", json!({"i": i, "group": i % 10})))
        .collect();
    let p = append(&store, &b, batch).await;
    assert_eq!(p, Position::new(10_001, 10_000));
    let all = read_all(&store, &b).await;
    assert_eq!(all.len(), 10_001);
    assert!(all[1..].iter().all(|e| e.position.commit == 10_001));
    let group = read_all_matching(&store, &b, Query::new([tag("group", "7")])).await;
    assert_eq!(group.len(), 1_000);
}

async fn next_event(stream: &mut crate::EventStream) -> StoredEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("event within 10 s")
        .expect("stream open")
        .expect("no error")
}

/// A subscription replays stored matches after its position, then delivers new ones live,
/// each once and in order.
pub async fn subscription_replays_then_follows_live(store: Store) {
    let b = fresh_boundary(&store).await;
    let mut expected = Vec::new();
    for i in 0..6 {
        let kind = if i % 2 == 0 { "Wanted" } else { "Other" };
        let e = event(kind, json!({"i": i}));
        if kind == "Wanted" {
            expected.push(e.event_id);
        }
        append(&store, &b, vec![e]).await;
    }
    let query = Query::new([tag("eventType", "Wanted")]);
    let mut from_start = store.subscribe(&b, Position::BEFORE_FIRST, query.clone());
    let mut replayed = Vec::new();
    for _ in 0..3 {
        replayed.push(next_event(&mut from_start).await);
    }
    assert_eq!(ids(&replayed), expected);

    // Starting strictly after the first delivered event.
    let mut from_mid = store.subscribe(&b, replayed[0].position, query.clone());
    assert_eq!(next_event(&mut from_mid).await.event_id, expected[1]);
    assert_eq!(next_event(&mut from_mid).await.event_id, expected[2]);

    // Live: appended after both subscribers caught up.
    let writer = {
        let store = store.clone();
        let b = b.clone();
        tokio::spawn(async move {
            let mut live = Vec::new();
            for i in 0..20 {
                let wanted = event("Wanted", json!({"live": i}));
                live.push(wanted.event_id);
                store
                    .append(&b, vec![event("Other", json!({})), wanted], None)
                    .await
                    .expect("append");
            }
            live
        })
    };
    let live = writer.await.expect("writer");
    for id in &live {
        assert_eq!(next_event(&mut from_start).await.event_id, *id);
        assert_eq!(next_event(&mut from_mid).await.event_id, *id);
    }
    // Nothing more is pending: no duplicates.
    let extra = tokio::time::timeout(Duration::from_millis(300), from_start.next()).await;
    assert!(extra.is_err(), "unexpected extra event: {extra:?}");
}

/// A subscription to a boundary that does not exist yields `UnknownBoundary` and ends.
pub async fn subscribing_to_an_unknown_boundary_fails(store: Store) {
    let missing = BoundaryName::new(format!("missing_{}", Uuid::new_v4().simple()))
        .expect("generated name is valid");
    let mut stream = store.subscribe(&missing, Position::BEFORE_FIRST, Query::all());
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("answers within 5 s");
    assert!(
        matches!(first, Some(Err(StoreError::UnknownBoundary { .. }))),
        "{first:?}"
    );
    let after = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("ends within 5 s");
    assert!(
        after.is_none(),
        "the stream ends after its error: {after:?}"
    );
}

/// The head watch of an in-process store changes after an append (not part of the generic
/// suite: a remote client has no head watch; backends call it from their own tests).
pub async fn watch_head_wakes_on_append<S: HeadWatch>(store: &S) {
    let b = BoundaryName::new(format!("t_{}", Uuid::new_v4().simple()))
        .expect("generated name is valid");
    store.create_boundary(&b).await.expect("create boundary");
    let mut rx = store.watch_head(&b).await.expect("watch");
    rx.borrow_and_update();
    let p = store
        .append(&b, vec![event("E", json!({}))], None)
        .await
        .expect("append")
        .position;
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("woken within 5 s")
        .expect("sender alive");
    tokio::time::timeout(Duration::from_secs(5), async {
        while *rx.borrow_and_update() < p {
            rx.changed().await.expect("sender alive");
        }
    })
    .await
    .expect("head reaches the appended position");
}

/// Each boundary has its own positions.
pub async fn boundaries_are_isolated(store: Store) {
    let b1 = fresh_boundary(&store).await;
    let b2 = fresh_boundary(&store).await;
    append(&store, &b1, vec![event("E", json!({"k": "1"}))]).await;
    append(&store, &b1, vec![event("E", json!({"k": "1"}))]).await;
    let p = append(&store, &b2, vec![event("E", json!({"k": "1"}))]).await;
    assert_eq!(p, Position::new(1, 0));
    assert_eq!(read_all(&store, &b1).await.len(), 2);
    assert_eq!(read_all(&store, &b2).await.len(), 1);
    let listed = store.boundaries().await.expect("list");
    assert!(listed.contains(&b1) && listed.contains(&b2));
    // Creating again is a no-op.
    store.create_boundary(&b1).await.expect("idempotent");
    assert_eq!(read_all(&store, &b1).await.len(), 2);
}

/// Concurrent appends receive distinct, gap-free positions matching what is stored.
pub async fn concurrent_appends_get_gap_free_positions(store: Store) {
    let b = fresh_boundary(&store).await;
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..10 {
                let size = 1 + (t + i) % 3;
                let batch: Vec<NewEvent> =
                    (0..size).map(|_| event("E", json!({"task": t}))).collect();
                let last = batch.last().expect("non-empty").event_id;
                let p = store
                    .append(&b, batch, None)
                    .await
                    .expect("append")
                    .position;
                mine.push((last, p));
            }
            mine
        }));
    }
    let mut reported = HashMap::new();
    for task in tasks {
        reported.extend(task.await.expect("task"));
    }
    let all = read_all(&store, &b).await;
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position.prepare, i as i64, "gap-free sequence");
    }
    for e in &all {
        if let Some(p) = reported.get(&e.event_id) {
            assert_eq!(*p, e.position, "reported position is the stored one");
        }
    }
    assert_eq!(reported.len(), 320);
}

const ACCOUNTS: usize = 10;
const OPENING_BALANCE: i64 = 100;

fn account_query(a: usize, b: usize) -> Query {
    Query::new([
        tag("account", &a.to_string()),
        tag("account", &b.to_string()),
    ])
}

fn amount_of(e: &StoredEvent) -> (usize, i64) {
    let data = data_of(e);
    let account = data["account"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("account");
    let amount = data["amount"].as_i64().expect("amount");
    let signed = if e.event_type == "Debited" {
        -amount
    } else {
        amount
    };
    (account, signed)
}

/// 32 concurrent tasks transfer money between 10 accounts with conditional appends whose
/// context is the two accounts. Afterwards no account was ever negative, the balances equal
/// what the successful transfers imply, money is conserved, and every conflict was genuine.
pub async fn bank_transfers_keep_balances_consistent(store: Store) {
    let b = fresh_boundary(&store).await;
    let opening: Vec<NewEvent> = (0..ACCOUNTS)
        .map(|a| {
            event(
                "Credited",
                json!({"account": a.to_string(), "amount": OPENING_BALANCE}),
            )
        })
        .collect();
    append(&store, &b, opening).await;

    let conflicts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..32usize {
        let store = store.clone();
        let b = b.clone();
        let conflicts = conflicts.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let mut rng = t as u64 * 7919 + 1;
            for _ in 0..6 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let from = (rng >> 33) as usize % ACCOUNTS;
                let to = (from + 1 + (rng >> 40) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                let amount = 1 + (rng >> 50) as i64 % 60;
                loop {
                    let query = account_query(from, to);
                    let context = read_all_matching(&store, &b, query.clone()).await;
                    let expected = context
                        .last()
                        .map_or(Position::BEFORE_FIRST, |e| e.position);
                    let balance: i64 = context
                        .iter()
                        .map(amount_of)
                        .filter(|(a, _)| *a == from)
                        .map(|(_, v)| v)
                        .sum();
                    if balance < amount {
                        break;
                    }
                    let events = vec![
                        event(
                            "Debited",
                            json!({"account": from.to_string(), "amount": amount}),
                        ),
                        event(
                            "Credited",
                            json!({"account": to.to_string(), "amount": amount}),
                        ),
                    ];
                    match store
                        .append(
                            &b,
                            events,
                            Some(AppendCondition::new(query.clone(), expected)),
                        )
                        .await
                    {
                        Ok(_) => {
                            done.push((from, to, amount));
                            break;
                        }
                        Err(StoreError::ConditionFailed { actual, .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                            // Genuine: a matching event really exists after `expected`.
                            let later = store
                                .read(
                                    &b,
                                    &ReadRequest::forward(
                                        Some(Position::new(expected.commit, expected.prepare + 1)),
                                        1,
                                    )
                                    .with_query(query),
                                )
                                .await
                                .expect("read");
                            assert!(!later.is_empty(), "conflict without a later match");
                            assert!(actual > expected);
                        }
                        Err(other) => panic!("unexpected error {other:?}"),
                    }
                }
            }
            done
        }));
    }
    let mut transfers = Vec::new();
    for task in tasks {
        transfers.extend(task.await.expect("task"));
    }

    let mut expected = [OPENING_BALANCE; ACCOUNTS];
    for (from, to, amount) in &transfers {
        expected[*from] -= amount;
        expected[*to] += amount;
    }
    let mut replayed = [0i64; ACCOUNTS];
    for e in read_all(&store, &b).await {
        let (account, delta) = amount_of(&e);
        replayed[account] += delta;
        assert!(
            replayed[account] >= 0 || delta > 0,
            "account {account} went negative"
        );
    }
    for balance in replayed {
        assert!(balance >= 0);
    }
    assert_eq!(
        replayed, expected,
        "log replay equals the acknowledged transfers"
    );
    assert_eq!(
        replayed.iter().sum::<i64>(),
        OPENING_BALANCE * ACCOUNTS as i64
    );
    assert!(!transfers.is_empty());
    tracing::info!(
        transfers = transfers.len(),
        conflicts = conflicts.load(Ordering::Relaxed),
        "bank scenario done"
    );
}

/// While 8 tasks append (some conditionally), a reader paging forward from its last position
/// sees every event exactly once, in order, with no gap.
pub async fn paging_reader_sees_every_event_once_under_concurrent_writers(store: Store) {
    let b = fresh_boundary(&store).await;
    let mut writers = Vec::new();
    for t in 0..8usize {
        let store = store.clone();
        let b = b.clone();
        writers.push(tokio::spawn(async move {
            let mut appended = 0usize;
            for i in 0..40usize {
                let size = 1 + (t * 3 + i) % 4;
                let batch: Vec<NewEvent> = (0..size)
                    .map(|_| event("W", json!({"writer": t})))
                    .collect();
                let cond = if i % 3 == 0 {
                    let head = store.head(&b).await.expect("head");
                    Some(AppendCondition::new(
                        Query::new([tag("writer", &t.to_string())]),
                        head,
                    ))
                } else {
                    None
                };
                match store.append(&b, batch, cond).await {
                    Ok(_) => appended += size,
                    Err(StoreError::ConditionFailed { .. }) => {}
                    Err(e) => panic!("append failed: {e:?}"),
                }
            }
            appended
        }));
    }
    let reader = {
        let store = store.clone();
        let b = b.clone();
        tokio::spawn(async move {
            let mut seen: Vec<StoredEvent> = Vec::new();
            let mut idle_rounds = 0;
            loop {
                let from = seen
                    .last()
                    .map(|e| Position::new(e.position.commit, e.position.prepare + 1));
                let page = store
                    .read(&b, &ReadRequest::forward(from, 7))
                    .await
                    .expect("read");
                if page.is_empty() {
                    idle_rounds += 1;
                    if idle_rounds > 200 {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                idle_rounds = 0;
                seen.extend(page);
            }
        })
    };
    let mut total = 0;
    for w in writers {
        total += w.await.expect("writer");
    }
    let seen = reader.await.expect("reader");
    assert_eq!(seen.len(), total, "reader saw every appended event");
    let unique: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(unique.len(), total, "no duplicates");
    for (i, e) in seen.iter().enumerate() {
        assert_eq!(e.position.prepare, i as i64, "in order, no gap");
    }
}

/// Criteria as indexes into [`KEYS`] and [`VALUES`].
type CriteriaSpec = Vec<Vec<(u8, u8)>>;

/// One operation of the random model comparison.
#[derive(Debug, Clone)]
enum Op {
    Append {
        events: Vec<(u8, u8)>,
        reuse: Option<usize>,
        condition: Option<(CriteriaSpec, u8)>,
    },
    Read {
        criteria: CriteriaSpec,
        from: Option<u8>,
        desc: bool,
        limit: u32,
    },
    Latest {
        criteria: CriteriaSpec,
    },
}

fn criteria_strategy() -> impl Strategy<Value = CriteriaSpec> {
    prop::collection::vec(prop::collection::vec((0u8..3, 0u8..3), 0..3), 0..3)
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            prop::collection::vec((0u8..3, 0u8..3), 1..4),
            prop::option::weighted(0.1, 0usize..64),
            prop::option::weighted(0.5, (criteria_strategy(), 0u8..12)),
        )
            .prop_map(|(events, reuse, condition)| Op::Append { events, reuse, condition }),
        2 => (criteria_strategy(), prop::option::of(0u8..12), any::<bool>(), 1u32..6)
            .prop_map(|(criteria, from, desc, limit)| Op::Read { criteria, from, desc, limit }),
        1 => criteria_strategy().prop_map(|criteria| Op::Latest { criteria }),
    ]
}

const KEYS: [&str; 3] = ["a", "b", "eventType"];
const VALUES: [&str; 3] = ["x", "y", "T1"];

fn to_criteria(spec: &[Vec<(u8, u8)>]) -> Vec<Criterion> {
    spec.iter()
        .map(|tags| {
            Criterion::new(
                tags.iter()
                    .map(|(k, v)| Tag::new(KEYS[*k as usize], VALUES[*v as usize])),
            )
        })
        .collect()
}

/// Picks a probe position from the log so far: event positions, sentinels and in-between ones.
fn probe(log: &[Position], pick: u8) -> Position {
    match pick {
        0 => Position::BEFORE_FIRST,
        1 => Position::new(0, 0),
        2 => log.last().copied().unwrap_or(Position::BEFORE_FIRST),
        3 => log.last().map_or(Position::new(5, 4), |p| {
            Position::new(p.commit + 1, p.prepare + 1)
        }),
        n if log.is_empty() => Position::new(i64::from(n), 0),
        n => {
            let p = log[usize::from(n) * 7 % log.len()];
            if n % 2 == 0 {
                p
            } else {
                Position::new(p.commit, 0)
            }
        }
    }
}

fn outcome_kind(r: &Result<crate::AppendOutcome, StoreError>) -> String {
    match r {
        Ok(o) => format!("ok {:?} {}", o.position, o.already_stored),
        Err(StoreError::ConditionFailed { expected, actual }) => {
            format!("conflict {expected:?} {actual:?}")
        }
        Err(StoreError::Invalid(i)) => format!("invalid {}", i.field),
        Err(StoreError::DuplicateEvents { event_ids }) => format!("duplicate {event_ids:?}"),
        Err(e) => format!("other {e}"),
    }
}

fn comparable(events: &[StoredEvent]) -> Vec<(Uuid, String, Value, Value, Position)> {
    events
        .iter()
        .map(|e| {
            (
                e.event_id,
                e.event_type.clone(),
                data_of(e),
                serde_json::from_str(&e.metadata).expect("metadata JSON"),
                e.position,
            )
        })
        .collect()
}

async fn run_ops(store: &Store, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let model: Store = Arc::new(MemoryStore::new());
    let b = fresh_boundary(store).await;
    model.create_boundary(&b).await.expect("model boundary");
    let mut sent: Vec<Vec<NewEvent>> = Vec::new();
    let mut log: Vec<Position> = Vec::new();
    for op in ops {
        match op {
            Op::Append {
                events,
                reuse,
                condition,
            } => {
                let batch: Vec<NewEvent> = match reuse.filter(|_| !sent.is_empty()) {
                    Some(i) => sent[i % sent.len()].clone(),
                    None => events
                        .iter()
                        .map(|(t, v)| {
                            event(
                                ["T1", "T2", "T3"][*t as usize],
                                json!({"a": VALUES[*v as usize], "b": VALUES[(*v as usize + *t as usize) % 3]}),
                            )
                        })
                        .collect(),
                };
                let condition = condition.map(|(c, pick)| {
                    AppendCondition::new(Query::new(to_criteria(&c)), probe(&log, pick))
                });
                let got = store.append(&b, batch.clone(), condition.clone()).await;
                let want = model.append(&b, batch.clone(), condition).await;
                prop_assert_eq!(outcome_kind(&got), outcome_kind(&want));
                if let Ok(o) = want {
                    if !o.already_stored {
                        sent.push(batch);
                        log.extend(batch_positions(
                            log.last().map_or(0, |p| p.prepare + 1),
                            sent.last().map_or(0, Vec::len),
                        ));
                    }
                }
            }
            Op::Read {
                criteria,
                from,
                desc,
                limit,
            } => {
                let request = ReadRequest {
                    query: Query::new(to_criteria(&criteria)),
                    from: from.map(|p| probe(&log, p)),
                    direction: if desc {
                        Direction::Desc
                    } else {
                        Direction::Asc
                    },
                    limit,
                };
                let got = store.read(&b, &request).await.expect("read");
                let want = model.read(&b, &request).await.expect("model read");
                prop_assert_eq!(comparable(&got), comparable(&want), "{:?}", request);
            }
            Op::Latest { criteria } => {
                let criteria = to_criteria(&criteria);
                let got = store.latest_by_criteria(&b, &criteria).await;
                let want = model.latest_by_criteria(&b, &criteria).await;
                match (got, want) {
                    (Ok(g), Ok(w)) => {
                        prop_assert_eq!(g.context_position, w.context_position);
                        let g: Vec<Option<Uuid>> = g
                            .events
                            .iter()
                            .map(|e| e.as_ref().map(|e| e.event_id))
                            .collect();
                        let w: Vec<Option<Uuid>> = w
                            .events
                            .iter()
                            .map(|e| e.as_ref().map(|e| e.event_id))
                            .collect();
                        prop_assert_eq!(g, w);
                    }
                    (Err(StoreError::Invalid(g)), Err(StoreError::Invalid(w))) => {
                        prop_assert_eq!(g.field, w.field)
                    }
                    (g, w) => prop_assert!(false, "differ: {:?} vs {:?}", g, w),
                }
            }
        }
    }
    prop_assert_eq!(
        store.head(&b).await.expect("head"),
        model.head(&b).await.expect("head")
    );
    prop_assert_eq!(
        comparable(&read_all(store, &b).await),
        comparable(&read_all(&model, &b).await)
    );
    Ok(())
}

/// Random sequences of appends (with and without conditions, including retries) and reads
/// give the same results on the store as on the in-memory model.
pub async fn matches_the_model_on_random_operations(store: Store) {
    let cases: u32 = std::env::var("ORISUN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(move || {
        let mut runner = TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let result = runner.run(&prop::collection::vec(op_strategy(), 1..40), |ops| {
            handle.block_on(run_ops(&store, ops))
        });
        if let Err(e) = result {
            panic!("store differs from the model: {e}");
        }
    });
}
