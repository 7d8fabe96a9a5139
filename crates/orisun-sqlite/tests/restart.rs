//! Data survives closing and reopening the store: boundaries, events, the tag index, idempotency,
//! and the positions that follow.

mod common;

use common::{boundary, event};
use orisun_sqlite::SqliteStore;
use orisun_store::core::{AppendCondition, Criterion, Position, Query, ReadRequest, Tag};
use orisun_store::{EventStore, HeadWatch, StoreError};
use serde_json::json;

#[tokio::test]
async fn data_survives_a_reopen() -> anyhow::Result<()> {
    let f = common::fresh();
    let (a, b) = (boundary("a"), boundary("b"));
    f.store.create_boundary(&a).await?;
    f.store.create_boundary(&b).await?;
    let first = vec![
        event("Opened", json!({"acct": 1})),
        event("Opened", json!({"acct": 2})),
    ];
    f.store.append(&a, first.clone(), None).await?;
    f.store
        .append(&a, vec![event("Deposited", json!({"acct": 1}))], None)
        .await?;
    let before = f.store.read(&a, &ReadRequest::forward(None, 100)).await?;
    drop(f.store);

    let store = SqliteStore::open(common::config(&f.dir))?;
    assert_eq!(store.boundaries().await?, vec![a.clone(), b.clone()]);
    assert_eq!(
        store.read(&a, &ReadRequest::forward(None, 100)).await?,
        before
    );
    assert_eq!(store.head(&a).await?, Position::new(3, 2));
    assert_eq!(*store.watch_head(&a).await?.borrow(), Position::new(3, 2));
    assert_eq!(store.count(&a).await?, 3);
    assert_eq!(store.head(&b).await?, Position::BEFORE_FIRST);

    // The tag index and the id index came back too.
    let acct1 = Query::new([Criterion::new([Tag::new("acct", "1")])]);
    let latest = store
        .latest_by_criteria(&a, &[Criterion::new([Tag::new("acct", "1")])])
        .await?;
    assert_eq!(latest.context_position, Position::new(3, 2));
    let retry = store.append(&a, first, None).await?;
    assert!(retry.already_stored);
    assert_eq!(retry.position, Position::new(2, 1));

    // A condition sees the old events: they are still in the tag log (it is moved into the tag
    // index only once it holds 1,024 rows), which the writer reads back at open.
    let stale = store
        .append(
            &a,
            vec![event("Deposited", json!({"acct": 1}))],
            Some(AppendCondition::new(acct1.clone(), Position::new(2, 1))),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::ConditionFailed { actual, .. }) if actual == Position::new(3, 2)),
        "{stale:?}"
    );

    // Positions continue where they stopped, and conditions see the old events.
    let next = store
        .append(
            &a,
            vec![
                event("Deposited", json!({"acct": 1})),
                event("X", json!({})),
            ],
            Some(AppendCondition::new(acct1, Position::new(3, 2))),
        )
        .await?;
    assert_eq!(next.position, Position::new(5, 4));
    assert_eq!(
        store
            .append(&b, vec![event("Y", json!({}))], None)
            .await?
            .position,
        Position::new(1, 0)
    );
    drop(store);

    let store = SqliteStore::open(common::config(&f.dir))?;
    assert_eq!(store.head(&a).await?, Position::new(5, 4));
    assert_eq!(store.count(&b).await?, 1);
    Ok(())
}

#[tokio::test]
async fn files_that_are_not_boundaries_are_ignored() -> anyhow::Result<()> {
    let f = common::fresh();
    f.store.create_boundary(&boundary("real")).await?;
    drop(f.store);
    std::fs::write(f.dir.path().join("not-a-name.db"), b"junk")?;
    std::fs::write(f.dir.path().join("notes.txt"), b"junk")?;
    let store = SqliteStore::open(common::config(&f.dir))?;
    assert_eq!(store.boundaries().await?, vec![boundary("real")]);
    Ok(())
}
