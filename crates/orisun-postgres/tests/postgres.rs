//! PostgreSQL-specific behaviour: time zones, large events, concurrent migrations, several nodes
//! on one database, the LISTEN connection, library mode, gap-free reads beside a long
//! transaction, injection attempts and a writer killed mid-flight.

mod common;

use common::TestDb;
use futures::future::join_all;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, NewEvent, Position, Query, ReadRequest, StoredEvent,
    Tag,
};
use orisun_postgres::{PostgresConfig, PostgresStore};
use orisun_store::{EventStore, HeadWatch, StoreError};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn boundary(name: &str) -> BoundaryName {
    BoundaryName::new(name).expect("valid name")
}

fn event(event_type: &str, data: Value) -> NewEvent {
    let Value::Object(data) = data else {
        panic!("test data must be an object")
    };
    NewEvent::new(Uuid::new_v4(), event_type, data, Default::default()).expect("valid event")
}

async fn read_all(store: &impl EventStore, b: &BoundaryName) -> Vec<StoredEvent> {
    read_matching(store, b, Query::all()).await
}

async fn read_matching(
    store: &impl EventStore,
    b: &BoundaryName,
    query: Query,
) -> Vec<StoredEvent> {
    let mut out: Vec<StoredEvent> = Vec::new();
    loop {
        let from = out
            .last()
            .map(|e| Position::new(e.position.commit, e.position.prepare + 1));
        let page = store
            .read(
                b,
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

/// Checks the log is gap-free from seq 0 and every batch shares commit = last seq + 1.
fn assert_well_formed(events: &[StoredEvent]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.position.prepare, i as i64, "seqs are gap-free");
        assert!(e.position.commit > e.position.prepare);
        let batch_last = events
            .iter()
            .skip(i)
            .take_while(|x| x.position.commit == e.position.commit)
            .last()
            .map(|x| x.position.prepare);
        assert_eq!(batch_last.map(|p| p + 1), Some(e.position.commit));
        if i > 0 {
            assert!(
                events[i - 1].position < e.position,
                "commit order = seq order"
            );
        }
    }
}

/// `date_created` is right whatever the TimeZone of the session that appends (Go Orisun stored
/// local wall-clock time as UTC).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_created_is_correct_in_any_session_time_zone() {
    let db = TestDb::create().await;
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET timezone = 'America/New_York'",
            db.name
        ))
        .await
        .expect("set database time zone");
    let store = db.store().await;
    let b = boundary("tz");
    store.create_boundary(&b).await.expect("create");
    store
        .append(&b, vec![event("Pooled", json!({}))], None)
        .await
        .expect("append");

    let mut client = db.client().await;
    client
        .batch_execute("SET TIME ZONE 'America/New_York'")
        .await
        .expect("set tz");
    let zone: String = client
        .query_one("SHOW TimeZone", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(zone, "America/New_York");
    let tx = client.transaction().await.expect("begin");
    store
        .append_in_transaction(&tx, &b, vec![event("Library", json!({}))], None)
        .await
        .expect("append in transaction");
    tx.commit().await.expect("commit");

    let now = chrono::Utc::now();
    let all = read_all(&store, &b).await;
    assert_eq!(all.len(), 2);
    for e in &all {
        let skew = (now - e.date_created).num_seconds().abs();
        assert!(
            skew < 60,
            "{} created {} but now is {now}",
            e.event_type,
            e.date_created
        );
    }
}

/// A 1 MiB incompressible event is stored (no index holds `data`) and reads back intact,
/// through the group writer and through library mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabyte_incompressible_event_round_trips() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = boundary("big");
    store.create_boundary(&b).await.expect("create");
    let blob: String = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..1024 * 1024)
            .map(|_| char::from(rng.random_range(b'!'..=b'~')))
            .filter(|c| *c != '"' && *c != '\\')
            .collect()
    };
    assert!(blob.len() > 1_000_000);
    store
        .append(&b, vec![event("Big", json!({"blob": blob}))], None)
        .await
        .expect("append");
    let mut client = db.client().await;
    let tx = client.transaction().await.expect("begin");
    store
        .append_in_transaction(&tx, &b, vec![event("Big", json!({"blob": blob}))], None)
        .await
        .expect("append in transaction");
    tx.commit().await.expect("commit");
    let all = read_all(&store, &b).await;
    assert_eq!(all.len(), 2);
    for e in &all {
        let data: Value = serde_json::from_str(&e.data).expect("json");
        assert_eq!(data["blob"].as_str(), Some(blob.as_str()));
    }
}

/// Four nodes starting at once on a fresh database all succeed and apply each migration once;
/// creating one boundary from all of them at once creates it once; restarting changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent_and_safe_to_run_concurrently() {
    let db = TestDb::create().await;
    let stores: Vec<PostgresStore> = join_all((0..4).map(|_| PostgresStore::connect(db.config())))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every node starts");
    let b = boundary("shared");
    for result in join_all(stores.iter().map(|s| s.create_boundary(&b))).await {
        result.expect("concurrent create");
    }
    let client = db.client().await;
    let snapshot = || async {
        let migrations: Vec<(i32, String)> = client
            .query(
                "SELECT version, applied_at::text FROM orisun.schema_migrations ORDER BY 1",
                &[],
            )
            .await
            .expect("migrations")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let boundaries: Vec<(String, String, i32)> = client
            .query(
                "SELECT name, schema, ddl_version FROM orisun.boundaries",
                &[],
            )
            .await
            .expect("boundaries")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        (migrations, boundaries)
    };
    let before = snapshot().await;
    let catalog_migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations directory")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        })
        .count();
    assert!(catalog_migrations >= 1);
    assert_eq!(
        before.0.len(),
        catalog_migrations,
        "each applied once: {before:?}"
    );
    let boundary_ddl =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/boundary"))
            .expect("boundary migrations directory")
            .count();
    assert_eq!(
        before.1,
        vec![(
            "shared".to_owned(),
            "public".to_owned(),
            i32::try_from(boundary_ddl).expect("few")
        )]
    );

    // A restart, and a create in another schema of the same name (refused).
    drop(stores);
    let again = db.store().await;
    again.create_boundary(&b).await.expect("idempotent create");
    let err = again
        .create_boundary_in(&b, "elsewhere")
        .await
        .expect_err("already placed");
    assert!(
        matches!(err, StoreError::Invalid(ref i) if i.field == "schema"),
        "{err:?}"
    );
    assert_eq!(snapshot().await, before);

    // Every node can use the boundary.
    again
        .append(&b, vec![event("E", json!({}))], None)
        .await
        .expect("append");
}

/// Boundaries in their own schemas, with long names that PostgreSQL would truncate to the same
/// identifiers, stay apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_long_names_keep_boundaries_apart() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let long_a = boundary(&format!("{}_a", "x".repeat(61)));
    let long_b = boundary(&format!("{}_b", "x".repeat(61)));
    store.create_boundary(&long_a).await.expect("a");
    store
        .create_boundary_in(&long_b, "tenant_two")
        .await
        .expect("b");
    store
        .create_boundary_in(&boundary("MixedCase"), "tenant_two")
        .await
        .expect("c");
    for (b, n) in [(&long_a, 2), (&long_b, 3)] {
        for _ in 0..n {
            store
                .append(b, vec![event("E", json!({}))], None)
                .await
                .expect("append");
        }
    }
    assert_eq!(store.count(&long_a).await.expect("count"), 2);
    assert_eq!(store.count(&long_b).await.expect("count"), 3);
    let mut names: Vec<String> = store
        .boundaries()
        .await
        .expect("list")
        .iter()
        .map(|b| b.to_string())
        .collect();
    let sorted = {
        let mut s = names.clone();
        s.sort();
        s
    };
    assert_eq!(names, sorted, "byte order, like the model");
    names.retain(|n| n == "MixedCase");
    assert_eq!(names.len(), 1);
    for bad in ["public; DROP SCHEMA orisun", "pg_catalog", ""] {
        let err = store
            .create_boundary_in(&boundary("other"), bad)
            .await
            .expect_err(bad);
        assert!(
            matches!(err, StoreError::Invalid(ref i) if i.field == "schema"),
            "{err:?}"
        );
    }
}

/// Waits until `sql` (a count) returns at least one row's worth.
async fn eventually(client: &tokio_postgres::Client, sql: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let n: i64 = client.query_one(sql, &[]).await.expect("poll").get(0);
        if n > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Counts the LISTEN connections of the stores on the test database (their last statement is a
/// LISTEN or the head read that follows one).
const LISTENERS: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE datname = current_database() AND application_name = 'orisun_listener'";

/// Two nodes append concurrently to one boundary: positions stay gap-free and in commit order,
/// and a watcher on one node is woken by an append on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_a_boundary() {
    let db = TestDb::create().await;
    let (a, b_node) = (db.store().await, db.store().await);
    let b = boundary("orders");
    a.create_boundary(&b).await.expect("create on A");
    let mut watch = b_node
        .watch_head(&b)
        .await
        .expect("B opens it from the catalog");
    let client = db.client().await;
    assert!(eventually(&client, LISTENERS).await, "B listens");

    let mut tasks = Vec::new();
    for (node, store) in [a.clone(), b_node.clone()].into_iter().enumerate() {
        for t in 0..8 {
            let store = store.clone();
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                let mut positions = Vec::new();
                for i in 0..25 {
                    let n = 1 + (i + t) % 3;
                    let batch = (0..n)
                        .map(|_| event("E", json!({"node": node, "task": t})))
                        .collect();
                    positions.push(store.append(&b, batch, None).await.expect("append"));
                }
                positions
            }));
        }
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.expect("task"));
    }
    let all = read_all(&a, &b).await;
    assert_well_formed(&all);
    let total: usize = acknowledged.len();
    assert_eq!(total, 16 * 25);
    let commits: HashSet<i64> = all.iter().map(|e| e.position.commit).collect();
    assert_eq!(
        commits.len(),
        total,
        "one commit position per acknowledged batch"
    );
    for outcome in &acknowledged {
        assert!(!outcome.already_stored);
        assert!(commits.contains(&outcome.position.commit));
    }
    assert_eq!(b_node.count(&b).await.expect("count"), all.len() as u64);

    // A wake-up crosses nodes.
    watch.borrow_and_update();
    let p = a
        .append(&b, vec![event("Ping", json!({}))], None)
        .await
        .expect("append")
        .position;
    tokio::time::timeout(Duration::from_secs(5), async {
        while *watch.borrow_and_update() < p {
            watch.changed().await.expect("watch open");
        }
    })
    .await
    .expect("B woken by A's append");
}

/// Killing the LISTEN connection does not stop wake-ups: the poll covers the gap and the
/// listener reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_listener_does_not_stop_wakeups() {
    let db = TestDb::create().await;
    let (a, b_node) = (db.store().await, db.store().await);
    let b = boundary("live");
    a.create_boundary(&b).await.expect("create");
    let mut watch = b_node.watch_head(&b).await.expect("watch");
    let client = db.client().await;
    assert!(eventually(&client, LISTENERS).await, "listening");
    for round in 0..2 {
        let killed: i64 = client
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'orisun_listener') k",
                &[],
            )
            .await
            .expect("terminate")
            .get(0);
        assert!(killed >= 1, "round {round}: a listener was running");
        watch.borrow_and_update();
        let p = a
            .append(&b, vec![event("E", json!({"round": round}))], None)
            .await
            .expect("append")
            .position;
        tokio::time::timeout(Duration::from_secs(5), async {
            while *watch.borrow_and_update() < p {
                watch.changed().await.expect("watch open");
            }
        })
        .await
        .expect("woken although the listener was killed");
        assert!(
            eventually(&client, LISTENERS).await,
            "round {round}: listener is back"
        );
    }
}

/// Readers paging forward never see an event before every earlier one, while eight tasks append
/// and another holds the boundary's lock in a long library-mode transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_see_a_gap_free_prefix_beside_a_long_transaction() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = boundary("prefix");
    store.create_boundary(&b).await.expect("create");
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let (store, b, done) = (store.clone(), b.clone(), done.clone());
        tokio::spawn(async move {
            let mut cursor = Position::BEFORE_FIRST;
            let mut seen = 0i64;
            let mut pages = 0;
            loop {
                let finished = done.load(Ordering::Acquire);
                let from = Position::new(cursor.commit, cursor.prepare + 1);
                let page = store
                    .read(&b, &ReadRequest::forward(Some(from), 7))
                    .await
                    .expect("read");
                pages += 1;
                for e in &page {
                    assert_eq!(e.position.prepare, seen, "next event in order, no gap");
                    seen += 1;
                    cursor = e.position;
                }
                if page.is_empty() && finished {
                    return (seen, pages);
                }
            }
        })
    };

    let long = {
        let (store, b) = (store.clone(), b.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut client = store.pool().get().await.expect("connection");
            let tx = client.transaction().await.expect("begin");
            let outcome = store
                .append_in_transaction(&tx, &b, vec![event("Long", json!({})); 1], None)
                .await
                .expect("append in transaction");
            tokio::time::sleep(Duration::from_millis(700)).await;
            tx.commit().await.expect("commit");
            outcome.position
        })
    };
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let (store, b) = (store.clone(), b.clone());
            tokio::spawn(async move {
                for i in 0..30 {
                    let batch = vec![event("E", json!({"t": t, "i": i})), event("E", json!({}))];
                    store.append(&b, batch, None).await.expect("append");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let long_position = long.await.expect("long");
    done.store(true, Ordering::Release);
    let (seen, pages) = reader.await.expect("reader");
    assert_eq!(seen, 8 * 30 * 2 + 1);
    assert!(pages > 10);
    let all = read_all(&store, &b).await;
    assert_well_formed(&all);
    assert!(all.iter().any(|e| e.position == long_position));
}

/// Library mode: the caller's own writes and the events commit or roll back together; the
/// condition and idempotency rules apply inside the caller's transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_mode_is_atomic_with_the_callers_writes() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = boundary("lib");
    store.create_boundary(&b).await.expect("create");
    let mut client = db.client().await;
    client
        .batch_execute("CREATE TABLE app_orders (id int PRIMARY KEY)")
        .await
        .expect("app table");
    let placed = event("OrderPlaced", json!({"order": "1"}));
    let tx = client.transaction().await.expect("begin");
    tx.execute("INSERT INTO app_orders VALUES (1)", &[])
        .await
        .expect("insert");
    let outcome = store
        .append_in_transaction(&tx, &b, vec![placed.clone()], None)
        .await
        .expect("append");
    assert_eq!(outcome.position, Position::new(1, 0));
    tx.rollback().await.expect("rollback");
    assert_eq!(app_rows(&client).await, 0);
    assert_eq!(store.count(&b).await.expect("count"), 0);
    assert_eq!(store.head(&b).await.expect("head"), Position::BEFORE_FIRST);

    let mut watch = store.watch_head(&b).await.expect("watch");
    watch.borrow_and_update();
    let tx = client.transaction().await.expect("begin");
    tx.execute("INSERT INTO app_orders VALUES (1)", &[])
        .await
        .expect("insert");
    let outcome = store
        .append_in_transaction(&tx, &b, vec![placed.clone()], None)
        .await
        .expect("append");
    assert_eq!(
        outcome.position,
        Position::new(1, 0),
        "the rolled-back seq was not consumed"
    );
    tx.commit().await.expect("commit");
    assert_eq!(app_rows(&client).await, 1);
    assert_eq!(store.count(&b).await.expect("count"), 1);
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .expect("woken by the NOTIFY sent at commit")
        .expect("watch open");

    // Inside a transaction: a retry is recognised, a conflicting condition fails.
    let tx = client.transaction().await.expect("begin");
    let retry = store
        .append_in_transaction(&tx, &b, vec![placed.clone()], None)
        .await
        .expect("retry");
    assert!(retry.already_stored);
    let stale = AppendCondition::new(
        Query::new([Criterion::new([Tag::new("order", "1")])]),
        Position::BEFORE_FIRST,
    );
    let err = store
        .append_in_transaction(
            &tx,
            &b,
            vec![event("OrderPlaced", json!({"order": "1"}))],
            Some(stale),
        )
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, StoreError::ConditionFailed { actual, .. } if actual == Position::new(1, 0)),
        "{err:?}"
    );
    tx.commit().await.expect("commit");
    assert_eq!(
        store.refresh_head(&b).await.expect("refresh"),
        Position::new(1, 0)
    );
}

async fn app_rows(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM app_orders", &[])
        .await
        .expect("count")
        .get(0)
}

/// Tag keys and values, and data keys, that look like SQL are data: they match exactly what
/// they should and change nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_injection_through_tags_is_inert() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = boundary("inj");
    store.create_boundary(&b).await.expect("create");
    let nasty_key = "k'); DROP TABLE \"inj_orisun_es_event\"; --";
    let nasty_value = "' OR '1'='1";
    let mut data = serde_json::Map::new();
    data.insert(nasty_key.to_owned(), json!(nasty_value));
    data.insert("$1".to_owned(), json!("\\\"; SELECT pg_sleep(10); --"));
    let target = NewEvent::new(Uuid::new_v4(), "T\"; --", data, Default::default()).expect("event");
    store
        .append(&b, vec![target.clone()], None)
        .await
        .expect("append");
    store
        .append(&b, vec![event("Other", json!({"k": "v"}))], None)
        .await
        .expect("append");

    let q = |k: &str, v: &str| Query::new([Criterion::new([Tag::new(k, v)])]);
    let hit = read_matching(&store, &b, q(nasty_key, nasty_value)).await;
    assert_eq!(
        hit.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        vec![target.event_id]
    );
    assert!(read_matching(&store, &b, q(nasty_key, "' OR 1=1 --"))
        .await
        .is_empty());
    assert!(read_matching(&store, &b, q("k' OR '1'='1", "v"))
        .await
        .is_empty());
    let by_type = read_matching(&store, &b, q("eventType", "T\"; --")).await;
    assert_eq!(by_type.len(), 1);
    let latest = store
        .latest_by_criteria(
            &b,
            &[Criterion::new([Tag::new(
                "$1",
                "\\\"; SELECT pg_sleep(10); --",
            )])],
        )
        .await
        .expect("latest");
    assert_eq!(
        latest.events[0].as_ref().map(|e| e.event_id),
        Some(target.event_id)
    );
    let cond = AppendCondition::new(q(nasty_key, nasty_value), Position::BEFORE_FIRST);
    assert!(matches!(
        store
            .append(&b, vec![event("E", json!({}))], Some(cond))
            .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    assert_eq!(store.count(&b).await.expect("count"), 2);
    let data: Value = serde_json::from_str(&hit[0].data).expect("json");
    assert_eq!(data[nasty_key], json!(nasty_value));
}

/// An event PostgreSQL cannot store (NUL in text) fails alone, even when it arrives in the same
/// group as others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unstorable_event_fails_alone() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = boundary("nul");
    store.create_boundary(&b).await.expect("create");
    let results = join_all((0..16).map(|i| {
        let store = store.clone();
        let b = b.clone();
        async move {
            let text = if i == 7 {
                "bad\u{0}".to_owned()
            } else {
                format!("ok{i}")
            };
            // Built field by field: the domain model's constructor already refuses NUL, and
            // this checks the backend's own guard.
            let mut e = event("E", json!({}));
            e.data.insert("s".into(), json!(text));
            store.append(&b, vec![e], None).await
        }
    }))
    .await;
    for (i, r) in results.iter().enumerate() {
        if i == 7 {
            assert!(
                matches!(r, Err(StoreError::Invalid(e)) if e.field == "events[0].data"),
                "{r:?}"
            );
        } else {
            assert!(r.is_ok(), "{r:?}");
        }
    }
    assert_eq!(store.count(&b).await.expect("count"), 15);
}

/// Set in the child process of `killed_writer_leaves_only_whole_acknowledged_batches`.
const CRASH_CHILD: &str = "ORISUN_PG_CRASH_CHILD_DB";
const CRASH_BATCH: usize = 3;

/// The child: appends batches from several tasks forever, printing each acknowledged batch.
/// A no-op unless started by the crash test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(dbname) = std::env::var(CRASH_CHILD) else {
        return;
    };
    let config: PostgresConfig = common::server().with_dbname(dbname);
    let store = PostgresStore::connect(config)
        .await
        .expect("child connects");
    let b = boundary("crash");
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (store, b) = (store.clone(), b.clone());
            tokio::spawn(async move {
                loop {
                    let batch: Vec<NewEvent> = (0..CRASH_BATCH)
                        .map(|i| event("E", json!({"t": t, "i": i})))
                        .collect();
                    let ids: Vec<String> = batch.iter().map(|e| e.event_id.to_string()).collect();
                    let outcome = store.append(&b, batch, None).await.expect("append");
                    // One write per line, so lines from several tasks never interleave.
                    println!("ACK {} {}", outcome.position.commit, ids.join(","));
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// A writer process killed with SIGKILL mid-flight leaves every acknowledged event stored and
/// no partial batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_leaves_only_whole_acknowledged_batches() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = boundary("crash");
    store.create_boundary(&b).await.expect("create");
    let exe = std::env::current_exe().expect("test executable");
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD, &db.name)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked: Vec<(i64, Vec<Uuid>)> = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(rest) = line.strip_prefix("ACK ") else {
                continue;
            };
            let (commit, ids) = rest.split_once(' ').expect("ACK line");
            acked.push((
                commit.parse().expect("commit"),
                ids.split(',').map(|s| s.parse().expect("uuid")).collect(),
            ));
            if acked.len() >= 300 {
                break;
            }
        }
        (acked, child)
    });
    let (acked, mut child) = tokio::time::timeout(Duration::from_secs(60), acked)
        .await
        .expect("child acknowledges appends")
        .expect("reader");
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success());
    assert!(acked.len() >= 300);

    // Reopen as a new process would.
    drop(store);
    let store = db.store().await;
    let all = read_all(&store, &b).await;
    assert_well_formed(&all);
    let by_id: HashMap<Uuid, Position> = all.iter().map(|e| (e.event_id, e.position)).collect();
    for (commit, ids) in &acked {
        for id in ids {
            assert_eq!(
                by_id.get(id).map(|p| p.commit),
                Some(*commit),
                "acknowledged {id}"
            );
        }
    }
    let mut per_batch: HashMap<i64, usize> = HashMap::new();
    for e in &all {
        *per_batch.entry(e.position.commit).or_default() += 1;
    }
    assert!(
        per_batch.values().all(|n| *n == CRASH_BATCH),
        "no partial batch"
    );
    assert_eq!(store.count(&b).await.expect("count"), all.len() as u64);
    assert!(all.len() >= acked.len() * CRASH_BATCH);
}

/// Criteria with several tags (searched by leapfrogging over the tag index) return exactly
/// what the in-memory model returns, in both directions, for every bound and page size, and
/// conditions built on them decide the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_tag_criteria_agree_with_the_model() {
    use rand::{Rng, SeedableRng};
    let db = TestDb::create().await;
    let store = db.store().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let batches = std::iter::from_fn(|| {
        let n = rng.random_range(1..=4);
        Some(
            (0..n)
                .map(|_| {
                    let ty = ["A", "B"][rng.random_range(0..2)];
                    event(
                        ty,
                        json!({"x": rng.random_range(0..4), "y": rng.random_range(0..6) % 5, "z": rng.random_bool(0.1)}),
                    )
                })
                .collect::<Vec<_>>(),
        )
    });
    agree_with_the_model(&store, batches, 400, 37).await;
}

/// Large batches whose tags change rarely: the tag index holds long runs, which reads, checks
/// and latest-by-criteria cut at every bound, from both ends, with limits that end mid-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_tag_runs_agree_with_the_model() {
    use rand::{Rng, SeedableRng};
    let db = TestDb::create().await;
    let store = db.store().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (mut x, mut y, mut ty) = (0, 0, "A");
    let batches = std::iter::from_fn(|| {
        let n = rng.random_range(20..=120);
        Some(
            (0..n)
                .map(|_| {
                    // Each tag keeps its value for stretches of events, independently.
                    if rng.random_bool(0.08) {
                        x = rng.random_range(0..4);
                    }
                    if rng.random_bool(0.04) {
                        y = rng.random_range(0..5);
                    }
                    if rng.random_bool(0.02) {
                        ty = if ty == "A" { "B" } else { "A" };
                    }
                    event(ty, json!({"x": x, "y": y, "z": rng.random_bool(0.1)}))
                })
                .collect::<Vec<_>>(),
        )
    });
    agree_with_the_model(&store, batches, 900, 53).await;
}

/// Appends `batches` (until `count` events) to a new boundary of `store` and to the in-memory
/// model, then checks that reads by criteria from many bounds in both directions, latest by
/// criteria and condition checks give what the model gives.
async fn agree_with_the_model(
    store: &PostgresStore,
    batches: impl Iterator<Item = Vec<NewEvent>>,
    count: usize,
    stride: usize,
) {
    use orisun_core::Direction;
    let model = orisun_store::MemoryStore::new();
    let b = boundary("multi");
    store.create_boundary(&b).await.expect("create");
    model.create_boundary(&b).await.expect("create");
    let mut appended = 0;
    for batch in batches {
        if appended >= count {
            break;
        }
        appended += batch.len();
        let p = store.append(&b, batch.clone(), None).await.expect("append");
        let q = model.append(&b, batch, None).await.expect("append");
        assert_eq!(p, q);
    }
    let t = |k: &str, v: &str| Tag::new(k, v);
    let queries = vec![
        Query::new([Criterion::new([t("x", "1"), t("y", "2")])]),
        Query::new([Criterion::new([t("eventType", "A"), t("z", "true")])]),
        Query::new([Criterion::new([
            t("x", "0"),
            t("y", "0"),
            t("eventType", "B"),
        ])]),
        Query::new([
            Criterion::new([t("x", "3"), t("z", "true")]),
            Criterion::new([t("y", "4")]),
            Criterion::new([t("x", "2"), t("y", "1")]),
        ]),
        Query::new([Criterion::new([t("x", "1"), t("x", "2")])]),
        Query::new([Criterion::new([t("x", "1"), t("nope", "1")])]),
    ];
    let all = read_all(&model, &b).await;
    let mut bounds: Vec<Option<Position>> = vec![None, Some(Position::BEFORE_FIRST)];
    for e in all.iter().step_by(stride) {
        bounds.push(Some(e.position));
        // A position no event has, inside a batch's commit range.
        bounds.push(Some(Position::new(
            e.position.commit,
            e.position.prepare - 1,
        )));
        bounds.push(Some(Position::new(
            e.position.commit - 1,
            e.position.prepare + 1,
        )));
    }
    bounds.push(Some(Position::new(i64::MAX, i64::MAX)));
    for query in &queries {
        for from in &bounds {
            for direction in [Direction::Asc, Direction::Desc] {
                for limit in [1, 3, 50, 1000] {
                    let request = ReadRequest {
                        query: query.clone(),
                        from: *from,
                        direction,
                        limit,
                    };
                    let got = store.read(&b, &request).await.expect("read");
                    let want = model.read(&b, &request).await.expect("read");
                    let ids = |v: &[StoredEvent]| v.iter().map(|e| e.position).collect::<Vec<_>>();
                    assert_eq!(
                        ids(&got),
                        ids(&want),
                        "{query:?} from {from:?} {direction:?} {limit}"
                    );
                }
            }
        }
        if query.criteria.iter().all(|c| !c.tags.is_empty()) {
            let got = store
                .latest_by_criteria(&b, &query.criteria)
                .await
                .expect("latest");
            let want = model
                .latest_by_criteria(&b, &query.criteria)
                .await
                .expect("latest");
            assert_eq!(got.context_position, want.context_position, "{query:?}");
            let ids = |l: &orisun_store::LatestByCriteria| {
                l.events
                    .iter()
                    .map(|e| e.as_ref().map(|e| e.event_id))
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&got), ids(&want), "{query:?}");
        }
        for after in bounds.iter().flatten().filter(|p| p.commit < i64::MAX) {
            // The same probe on both, so that they stay equal whatever is decided.
            let condition = AppendCondition::new(query.clone(), *after);
            let probe = vec![event("Probe", json!({}))];
            let got = store
                .append(&b, probe.clone(), Some(condition.clone()))
                .await;
            let want = model.append(&b, probe, Some(condition)).await;
            match (&got, &want) {
                (Ok(_), Ok(_)) | (Err(StoreError::Invalid(_)), Err(StoreError::Invalid(_))) => {}
                (
                    Err(StoreError::ConditionFailed { actual: a, .. }),
                    Err(StoreError::ConditionFailed { actual: w, .. }),
                ) => assert_eq!(a, w),
                _ => panic!("{query:?} after {after}: {got:?} vs {want:?}"),
            }
        }
    }
}

/// Waits until `watch` reaches `position`; returns how long it took.
async fn woken_at(
    watch: &mut tokio::sync::watch::Receiver<Position>,
    position: Position,
) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), async {
        while *watch.borrow_and_update() < position {
            watch.changed().await.expect("watch open");
        }
    })
    .await
    .expect("woken");
    start.elapsed()
}

/// Cross-node wake-ups come from NOTIFY, well before the fallback poll would notice; with
/// `listen` off, the poll alone still wakes watchers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakeups_use_notify_and_fall_back_to_polling() {
    let db = TestDb::create().await;
    let a = db.store().await;
    let listening = db.store().await;
    let polling = PostgresStore::connect(PostgresConfig {
        listen: false,
        ..db.config()
    })
    .await
    .expect("connect");
    let b = boundary("wake");
    a.create_boundary(&b).await.expect("create");
    let mut notified = listening.watch_head(&b).await.expect("watch");
    let mut polled = polling.watch_head(&b).await.expect("watch");
    assert!(eventually(&db.client().await, LISTENERS).await);
    // The listener re-reads the head after its LISTEN; let that settle.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut notify_latencies = Vec::new();
    let mut poll_latencies = Vec::new();
    for _ in 0..9 {
        let p = a
            .append(&b, vec![event("Ping", json!({}))], None)
            .await
            .expect("append")
            .position;
        notify_latencies.push(woken_at(&mut notified, p).await);
        poll_latencies.push(woken_at(&mut polled, p).await);
    }
    notify_latencies.sort();
    poll_latencies.sort();
    // A poll every 500 ms alone would give a median near 250 ms.
    assert!(
        notify_latencies[4] < Duration::from_millis(100),
        "NOTIFY latencies {notify_latencies:?}"
    );
    assert!(
        poll_latencies[8] < orisun_store::POLL_FALLBACK * 3,
        "{poll_latencies:?}"
    );
}

/// Batches larger than one INSERT may carry (by count or by bytes) are split into several
/// statements of one transaction: still one commit position, all or nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batches_are_split_into_several_inserts() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = boundary("huge");
    store.create_boundary(&b).await.expect("create");
    let many: Vec<NewEvent> = (0..25_000)
        .map(|i| event("Many", json!({"i": i})))
        .collect();
    let p = store.append(&b, many, None).await.expect("25,000 events");
    assert_eq!(p.position, Position::new(25_000, 24_999));
    let blob = "a".repeat(1 << 20);
    let heavy: Vec<NewEvent> = (0..40)
        .map(|i| event("Heavy", json!({"i": i, "blob": blob})))
        .collect();
    let p = store.append(&b, heavy.clone(), None).await.expect("40 MiB");
    assert_eq!(p.position, Position::new(25_040, 25_039));
    let all = read_all(&store, &b).await;
    assert_well_formed(&all);
    assert_eq!(all.len(), 25_040);
    assert_eq!(
        all[25_000..].iter().map(|e| e.event_id).collect::<Vec<_>>(),
        heavy.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );
    // Retrying the whole oversized batch is recognised as one stored batch.
    let retry = store.append(&b, heavy, None).await.expect("retry");
    assert!(retry.already_stored);
    assert_eq!(retry.position, Position::new(25_040, 25_039));
}

/// A request whose insert fails inside the database (here: a trigger raising an error) fails
/// alone: its group is retried request by request, nothing partial is stored, and the pooled
/// connections are left usable (no open or aborted transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_failing_in_the_database_fails_alone() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = boundary("poison");
    store.create_boundary(&b).await.expect("create");
    db.client()
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.event_type = 'Poison' THEN RAISE EXCEPTION 'poison refused'; END IF; \
             IF NEW.event_type = 'BadData' THEN \
             RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'bad data refused'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse_poison BEFORE INSERT ON public.poison_orisun_es_event \
             FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        )
        .await
        .expect("trigger");
    for round in 0..3 {
        let results = join_all((0..24).map(|i| {
            let (store, b) = (store.clone(), b.clone());
            async move {
                let ty = match i {
                    5 => "Poison",
                    9 => "BadData",
                    _ => "Fine",
                };
                let batch = vec![event(ty, json!({"i": i})), event("Fine", json!({"i": i}))];
                store.append(&b, batch, None).await
            }
        }))
        .await;
        for (i, r) in results.iter().enumerate() {
            if i == 5 {
                assert!(
                    matches!(r, Err(StoreError::Internal { reason }) if reason.contains("poison refused")),
                    "{r:?}"
                );
            } else if i == 9 {
                // A data exception is the request's fault: an invalid argument.
                assert!(
                    matches!(r, Err(StoreError::Invalid(e)) if e.reason == "bad data refused"),
                    "{r:?}"
                );
            } else {
                assert!(r.is_ok(), "round {round}, request {i}: {r:?}");
            }
        }
    }
    let all = read_all(&store, &b).await;
    assert_well_formed(&all);
    assert_eq!(all.len(), 3 * 22 * 2);
    assert!(all.iter().all(|e| e.event_type == "Fine"));
    let client = db.client().await;
    let stuck: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await
        .expect("activity")
        .get(0);
    assert_eq!(stuck, 0, "no pooled connection left inside a transaction");
}

/// A conditional save that waits for the boundary's lock while another transaction appends a
/// matching event must see that event: the one-statement append's snapshot predates the other
/// commit, so it must not trust its check and decide again. A save whose criteria the other
/// event does not match goes through, after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_waiting_for_the_lock_sees_the_holders_events() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = boundary("waiting");
    store.create_boundary(&b).await.expect("create");
    let account = |a: &str| Query::new([Criterion::new([Tag::new("account", a)])]);
    let first = store
        .append(&b, vec![event("Opened", json!({"account": "a"}))], None)
        .await
        .expect("append")
        .position;

    for (criteria, should_conflict) in [("a", true), ("z", false)] {
        let head = store.head(&b).await.expect("head");
        let mut client = store.pool().get().await.expect("connection");
        let tx = client.transaction().await.expect("begin");
        let held = store
            .append_in_transaction(
                &tx,
                &b,
                vec![event("Deposited", json!({"account": "a"}))],
                None,
            )
            .await
            .expect("append in transaction")
            .position;
        let waiting = {
            let (store, b) = (store.clone(), b.clone());
            let condition = AppendCondition::new(account(criteria), head);
            tokio::spawn(async move {
                store
                    .append(
                        &b,
                        vec![event("Withdrawn", json!({"account": criteria}))],
                        Some(condition),
                    )
                    .await
            })
        };
        // Let the save's statement start (and take its snapshot) behind the held lock.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "the save waits for the lock");
        tx.commit().await.expect("commit");
        let outcome = waiting.await.expect("task");
        if should_conflict {
            assert!(
                matches!(outcome, Err(StoreError::ConditionFailed { actual, .. }) if actual == held),
                "{outcome:?}"
            );
        } else {
            let position = outcome.expect("no matching event was appended").position;
            assert!(position > held, "{position} after {held}");
        }
    }
    let all = read_all(&store, &b).await;
    assert_well_formed(&all);
    assert_eq!(all.len(), 4, "opened, two deposits, one withdrawal");
    assert_eq!(all[0].position, first);
}

/// Saves that queue up behind a busy writer are decided together, in order: a conditional save
/// whose criteria match an earlier save of the same group (conditional or not) conflicts with
/// it, while saves with independent contexts all go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_conditions_see_the_earlier_saves_of_their_group() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = boundary("queued");
    store.create_boundary(&b).await.expect("create");
    let account = |a: &str| Query::new([Criterion::new([Tag::new("account", a)])]);
    store
        .append(&b, vec![event("Opened", json!({"account": "lib"}))], None)
        .await
        .expect("append");

    let rounds: [&[(&str, bool)]; 3] = [
        &[("x", false), ("x", true)],
        &[("y", true), ("y", true), ("z", true)],
        &[("p", false), ("q", true)],
    ];
    let mut saved = 1;
    for round in rounds {
        let head = store.head(&b).await.expect("head");
        // Hold the boundary's lock, so that the writer's next group waits and the saves after
        // it queue up into one group.
        let mut client = store.pool().get().await.expect("connection");
        let tx = client.transaction().await.expect("begin");
        store
            .append_in_transaction(
                &tx,
                &b,
                vec![event("Held", json!({"account": "lib"}))],
                None,
            )
            .await
            .expect("append in transaction");
        let spawn = |data: Value, condition: Option<AppendCondition>| {
            let (store, b) = (store.clone(), b.clone());
            tokio::spawn(async move { store.append(&b, vec![event("E", data)], condition).await })
        };
        let blocked = spawn(json!({"account": "other"}), None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut saves = Vec::new();
        for &(a, conditional) in round {
            let condition = conditional.then(|| AppendCondition::new(account(a), head));
            saves.push(spawn(json!({"account": a}), condition));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tx.commit().await.expect("commit");
        blocked.await.expect("task").expect("unconditional save");
        saved += 2;
        let mut accepted: Vec<(&str, Position)> = Vec::new();
        for (i, (&(a, _), save)) in round.iter().zip(saves).enumerate() {
            let outcome = save.await.expect("task");
            let earlier = accepted
                .iter()
                .find(|(other, _)| *other == a)
                .map(|(_, p)| *p);
            match (outcome, earlier) {
                (Ok(o), None) => accepted.push((a, o.position)),
                (Err(StoreError::ConditionFailed { actual, .. }), Some(p)) => {
                    assert_eq!(actual, p, "save {i} conflicts with the earlier save of {a}");
                }
                (other, earlier) => panic!("save {i} ({a}, earlier: {earlier:?}): {other:?}"),
            }
        }
        assert!(
            accepted.windows(2).all(|w| w[0].1 < w[1].1),
            "in queue order: {accepted:?}"
        );
        saved += accepted.len();
    }
    let all = read_all(&store, &b).await;
    assert_well_formed(&all);
    assert_eq!(all.len(), saved);
}

/// A boundary made by version 1 of the per-boundary DDL (one tag row per event, column `seq`)
/// is upgraded in place at start-up: its rows are read as runs of one event, and new appends
/// write runs beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_tag_rows_are_upgraded_in_place() {
    let db = TestDb::create().await;
    let b = boundary("old");
    let criteria = Query::new([Criterion::new([
        Tag::new("eventType", "E"),
        Tag::new("k", "1"),
    ])]);
    {
        let store = db.store().await;
        store.create_boundary(&b).await.expect("create");
        for i in 0..6 {
            store
                .append(&b, vec![event("E", json!({"k": i % 2}))], None)
                .await
                .expect("append");
        }
    }
    // Back to the version 1 layout, as a database written by an earlier build has it.
    let client = db.client().await;
    client
        .batch_execute(
            "ALTER TABLE public.old_orisun_tags DROP CONSTRAINT old_orisun_tags_pkey; \
             ALTER TABLE public.old_orisun_tags DROP COLUMN hi; \
             ALTER TABLE public.old_orisun_tags RENAME COLUMN lo TO seq; \
             ALTER TABLE public.old_orisun_tags ADD CONSTRAINT old_orisun_tags_pkey \
             PRIMARY KEY (h, seq); \
             UPDATE orisun.boundaries SET ddl_version = 1 WHERE name = 'old';",
        )
        .await
        .expect("downgrade");

    let store = db.store().await;
    let version: i32 = client
        .query_one(
            "SELECT ddl_version FROM orisun.boundaries WHERE name = 'old'",
            &[],
        )
        .await
        .expect("version")
        .get(0);
    assert_eq!(version, 2);
    let columns: Vec<String> = client
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = 'public.old_orisun_tags'::regclass \
             AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns, ["h", "lo", "hi"]);
    let key: String = client
        .query_one(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'old_orisun_tags_pkey'",
            &[],
        )
        .await
        .expect("key")
        .get(0);
    assert_eq!(key, "PRIMARY KEY (h, lo) INCLUDE (hi)");
    // A batch of three matching events is one run beside the old rows.
    let batch = (0..3).map(|_| event("E", json!({"k": 1}))).collect();
    store.append(&b, batch, None).await.expect("append");
    let got: Vec<i64> = read_matching(&store, &b, criteria.clone())
        .await
        .iter()
        .map(|e| e.position.prepare)
        .collect();
    assert_eq!(got, [1, 3, 5, 6, 7, 8]);
    let runs: i64 = client
        .query_one(
            "SELECT count(*) FROM public.old_orisun_tags WHERE hi IS NOT NULL",
            &[],
        )
        .await
        .expect("runs")
        .get(0);
    assert_eq!(runs, 2, "one run for eventType, one for k");
    let stale = AppendCondition::new(criteria, Position::new(6, 5));
    let err = store
        .append(&b, vec![event("E", json!({"k": 1}))], Some(stale))
        .await
        .expect_err("a later match");
    assert!(
        matches!(err, StoreError::ConditionFailed { actual, .. } if actual == Position::new(9, 8)),
        "{err:?}"
    );
}
