//! Conformance: subscriptions (replay then live, unknown boundaries) and head wake-ups.

use super::*;

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
