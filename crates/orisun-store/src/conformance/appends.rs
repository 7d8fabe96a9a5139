//! Conformance: append conditions (DCB), rejected appends changing nothing, bad input, unknown
//! boundaries, idempotent retries, and large events and batches.

use super::*;

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
