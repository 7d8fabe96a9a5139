//! The store behind PgBouncer in transaction mode (Debian's PgBouncer 1.18, which keeps no
//! prepared statements across transactions): with `statement_cache: false` and the LISTEN
//! connection straight to PostgreSQL, as the README's PgBouncer section documents, the whole
//! conformance suite, the coordination and membership suites, library-mode transactions and
//! cross-node wake-ups (LISTEN, and the poll fallback) work through it.

mod common;

use common::pgbouncer::PgBouncer;
use common::TestDb;
use futures::StreamExt;
use orisun_core::{AppendCondition, BoundaryName, Criterion, NewEvent, Position, Query, Tag};
use orisun_postgres::PostgresStore;
use orisun_store::testsuite::Owned;
use orisun_store::testsuite::{coordination as coordination_suite, membership as membership_suite};
use orisun_store::{EventStore, StoreError};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One PgBouncer for the whole test binary: it stops when the binary exits.
fn bouncer() -> &'static PgBouncer {
    static BOUNCER: OnceLock<PgBouncer> = OnceLock::new();
    BOUNCER.get_or_init(PgBouncer::start)
}

/// A fresh database (created directly) and a store on it through PgBouncer.
async fn bounced(listen: bool) -> (TestDb, PostgresStore) {
    let db = TestDb::create().await;
    let store = PostgresStore::connect(bouncer().store_config(&db.name, listen))
        .await
        .unwrap_or_else(|e| panic!("store through PgBouncer: {e}\n{}", bouncer().log()));
    (db, store)
}

async fn bounced_store() -> Arc<dyn EventStore> {
    let (db, store) = bounced(true).await;
    Arc::new(Owned::new(store, db))
}

orisun_store::conformance_suite!(bounced_store);

fn boundary(name: &str) -> BoundaryName {
    BoundaryName::new(name).expect("valid name")
}

fn event(event_type: &str, data: Value) -> NewEvent {
    let Value::Object(data) = data else {
        panic!("test data must be an object")
    };
    NewEvent::new(Uuid::new_v4(), event_type, data, Default::default()).expect("valid event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_fenced_checkpoints_work_through_the_pooler() {
    let (_db, store) = bounced(true).await;
    coordination_suite::leases_elect_one_holder(store.coordination()).await;
    coordination_suite::fenced_checkpoints_reject_old_holders(store.coordination()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_set_membership_works_through_the_pooler() {
    let (_db, store) = bounced(true).await;
    membership_suite::members_join_heartbeat_and_leave(store.membership()).await;
    membership_suite::bad_configuration_is_refused(store.membership()).await;
}

/// Library mode: the caller's own write and the append commit or roll back together, on a
/// pooled connection that PgBouncer lends for the transaction only; a condition is checked in
/// that transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_mode_transactions_work_through_the_pooler() {
    let (db, store) = bounced(true).await;
    let b = boundary("accounts");
    store.create_boundary(&b).await.expect("create");
    db.client()
        .await
        .batch_execute("CREATE TABLE balances (account text PRIMARY KEY, amount bigint)")
        .await
        .expect("create table");

    let mut client = store.pool().get().await.expect("pooled connection");
    let open = |account: &str| event("Opened", json!({"account": account}));
    let context = || AppendCondition {
        query: Query::new(vec![Criterion::new(vec![Tag::new("account", "a1")])]),
        after: Position::BEFORE_FIRST,
    };

    // Committed: both the row and the event.
    let tx = client.transaction().await.expect("begin");
    tx.execute("INSERT INTO balances VALUES ('a1', 100)", &[])
        .await
        .expect("own write");
    store
        .append_in_transaction(&tx, &b, vec![open("a1")], Some(context()))
        .await
        .expect("append in transaction");
    tx.commit().await.expect("commit");

    // Rolled back: neither.
    let tx = client.transaction().await.expect("begin");
    tx.execute("INSERT INTO balances VALUES ('a2', 5)", &[])
        .await
        .expect("own write");
    store
        .append_in_transaction(&tx, &b, vec![open("a2")], None)
        .await
        .expect("append in transaction");
    tx.rollback().await.expect("rollback");

    // The same context again fails inside the transaction, which then rolls back.
    let tx = client.transaction().await.expect("begin");
    let refused = store
        .append_in_transaction(&tx, &b, vec![open("a1")], Some(context()))
        .await;
    assert!(
        matches!(refused, Err(StoreError::ConditionFailed { .. })),
        "a stale context is refused: {refused:?}"
    );
    drop(tx);

    let stored = store
        .read(&b, &orisun_core::ReadRequest::forward(None, 100))
        .await
        .expect("read");
    assert_eq!(stored.len(), 1, "only the committed event is stored");
    let rows = db
        .client()
        .await
        .query("SELECT account FROM balances", &[])
        .await
        .expect("select");
    assert_eq!(rows.len(), 1, "only the committed row is stored");
}

/// Appends on one node (store) wake a subscriber on another, both through PgBouncer. Returns the
/// median of `rounds` wake-up delays.
async fn cross_node_wake_up(listen: bool, rounds: usize) -> Duration {
    let (db, reader) = bounced(listen).await;
    let writer = PostgresStore::connect(bouncer().store_config(&db.name, listen))
        .await
        .expect("second node");
    let b = boundary("wake");
    reader.create_boundary(&b).await.expect("create");
    let mut stream = reader.subscribe(&b, Position::BEFORE_FIRST, Query::all());
    let mut delays = Vec::new();
    for i in 0..rounds {
        let sent = Instant::now();
        writer
            .append(&b, vec![event("Tick", json!({"i": i}))], None)
            .await
            .expect("append on the other node");
        let got = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("woken within 5 s")
            .expect("stream open")
            .expect("event");
        assert_eq!(got.position.prepare, i as i64, "in order, none missing");
        delays.push(sent.elapsed());
    }
    delays.sort();
    delays[delays.len() / 2]
}

/// With the LISTEN connection direct to PostgreSQL, a subscriber wakes on a NOTIFY, far sooner
/// than the 500 ms fallback poll (whose median delay would be about 250 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_wake_through_a_direct_listen_connection() {
    let median = cross_node_wake_up(true, 20).await;
    assert!(
        median < Duration::from_millis(100),
        "median cross-node wake-up {median:?} is the poll's, not LISTEN's"
    );
}

/// Without a LISTEN connection (`ORISUN_PG_LISTEN_ENABLED=false`) the fallback poll still
/// delivers every event, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_wake_by_the_poll_without_listen() {
    let median = cross_node_wake_up(false, 4).await;
    assert!(median < Duration::from_secs(2), "median {median:?}");
}
