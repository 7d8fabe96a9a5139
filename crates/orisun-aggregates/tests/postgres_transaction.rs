//! Aggregate appends inside a PostgreSQL transaction the application owns: the events and the
//! application's own writes commit or roll back together.

use orisun_aggregates::postgres::{append_in_transaction, read_in_transaction};
use orisun_aggregates::testsuite::event;
use orisun_aggregates::{AggregateError, AggregateId, Aggregates, ExpectedVersion};
use orisun_core::BoundaryName;
use orisun_postgres::testsuite::TestDb;
use orisun_store::EventStore;
use serde_json::json;
use std::sync::Arc;

async fn setup() -> (TestDb, orisun_postgres::PostgresStore, BoundaryName) {
    let db = TestDb::create().await;
    let store = db.store().await;
    let boundary = BoundaryName::new("bank").expect("valid");
    store.create_boundary(&boundary).await.expect("boundary");
    db.client()
        .await
        .batch_execute("CREATE TABLE balances (id text PRIMARY KEY, amount bigint NOT NULL)")
        .await
        .expect("read-model table");
    (db, store, boundary)
}

#[tokio::test]
async fn events_and_own_writes_commit_or_roll_back_together() {
    let (_db, store, boundary) = setup().await;
    let id = AggregateId::new("Account", "acc-1").expect("valid");
    let mut client = store.pool().get().await.expect("connection");

    let tx = client.transaction().await.expect("begin");
    append_in_transaction(
        &store,
        &tx,
        &boundary,
        &id,
        ExpectedVersion::NoStream,
        vec![event("Opened", json!({}))],
    )
    .await
    .expect("append");
    tx.execute("INSERT INTO balances VALUES ('acc-1', 0)", &[])
        .await
        .expect("insert");
    tx.rollback().await.expect("rollback");
    let aggregates = Aggregates::new(Arc::new(store.clone()), boundary.clone());
    assert_eq!(aggregates.version(&id).await.expect("version"), 0);
    assert_eq!(store.count(&boundary).await.expect("count"), 0);

    let tx = client.transaction().await.expect("begin");
    let opened = append_in_transaction(
        &store,
        &tx,
        &boundary,
        &id,
        ExpectedVersion::NoStream,
        vec![event("Opened", json!({}))],
    )
    .await
    .expect("append");
    // The transaction reads its own uncommitted events: the next append sees version 1.
    let deposited = append_in_transaction(
        &store,
        &tx,
        &boundary,
        &id,
        ExpectedVersion::Exact(1),
        vec![event("Deposited", json!({"amount": 5}))],
    )
    .await
    .expect("second append");
    assert_eq!((opened.last_version, deposited.last_version), (1, 2));
    let inside = read_in_transaction(&store, &tx, &boundary, &id, ..)
        .await
        .expect("read in tx");
    assert_eq!(inside.current_version, 2);
    // Outside the transaction nothing is visible yet.
    assert_eq!(aggregates.version(&id).await.expect("version"), 0);
    tx.execute("INSERT INTO balances VALUES ('acc-1', 5)", &[])
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    store.refresh_head(&boundary).await.expect("refresh");
    assert_eq!(aggregates.version(&id).await.expect("version"), 2);
    let row = client
        .query_one("SELECT amount FROM balances WHERE id = 'acc-1'", &[])
        .await
        .expect("row");
    assert_eq!(row.get::<_, i64>(0), 5);
}

#[tokio::test]
async fn a_wrong_version_in_a_transaction_leaves_it_usable() {
    let (_db, store, boundary) = setup().await;
    let id = AggregateId::new("Account", "acc-1").expect("valid");
    let aggregates = Aggregates::new(Arc::new(store.clone()), boundary.clone());
    aggregates
        .append(
            &id,
            ExpectedVersion::NoStream,
            vec![event("Opened", json!({}))],
        )
        .await
        .expect("append");
    let mut client = store.pool().get().await.expect("connection");
    let tx = client.transaction().await.expect("begin");
    match append_in_transaction(
        &store,
        &tx,
        &boundary,
        &id,
        ExpectedVersion::NoStream,
        vec![event("Opened", json!({}))],
    )
    .await
    {
        Err(AggregateError::WrongVersion { actual: 1, .. }) => {}
        other => panic!("expected WrongVersion at 1, got {other:?}"),
    }
    append_in_transaction(
        &store,
        &tx,
        &boundary,
        &id,
        ExpectedVersion::Exact(1),
        vec![event("Deposited", json!({}))],
    )
    .await
    .expect("the transaction goes on after a refused append");
    tx.commit().await.expect("commit");
    assert_eq!(aggregates.version(&id).await.expect("version"), 2);
}

#[tokio::test]
async fn an_any_append_waits_for_an_open_transaction_and_takes_the_next_version() {
    let (_db, store, boundary) = setup().await;
    let id = AggregateId::new("Account", "acc-1").expect("valid");
    let aggregates = Aggregates::new(Arc::new(store.clone()), boundary.clone());
    let mut client = store.pool().get().await.expect("connection");
    let tx = client.transaction().await.expect("begin");
    append_in_transaction(
        &store,
        &tx,
        &boundary,
        &id,
        ExpectedVersion::NoStream,
        vec![event("Opened", json!({}))],
    )
    .await
    .expect("append in tx");
    let outside = {
        let aggregates = aggregates.clone();
        let id = id.clone();
        tokio::spawn(async move {
            aggregates
                .append(
                    &id,
                    ExpectedVersion::Any,
                    vec![event("Deposited", json!({}))],
                )
                .await
        })
    };
    // The outside append is blocked on the boundary lock until the transaction ends.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !outside.is_finished(),
        "an append got past an open transaction's lock"
    );
    tx.commit().await.expect("commit");
    let appended = outside.await.expect("task").expect("outside append");
    assert_eq!(appended.last_version, 2);
}
