//! Conformance: positions, stored data, reads against a brute-force filter, criteria and
//! latest-by-criteria.

use super::*;

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
