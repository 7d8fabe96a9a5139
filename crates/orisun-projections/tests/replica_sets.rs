//! Replica sets on PostgreSQL with real worker processes: exactly-once through churn (a join, a
//! SIGKILL, a SIGSTOP past the TTL), the rebalance time after a kill, two independent sets over
//! one boundary, and bad configuration refused at start.
//!
//! The workers are this test executable run again with [`CHILD_DB`] set, selecting
//! `replica_worker_child`; each prints its `WorkerStatus` as a `STATUS <json>` line whenever
//! it changes.

use async_trait::async_trait;
use futures::StreamExt;
use orisun_core::{BoundaryName, JsonObject, NewEvent, ReadRequest};
use orisun_postgres::testsuite::TestDb;
use orisun_postgres::tokio_postgres::Transaction;
use orisun_postgres::PostgresStore;
use orisun_projections::postgres::{processor, TransactionalHandler};
use orisun_projections::workers::{
    replica_set_status, Worker, WorkerConfig, WorkerError, WorkerStatus,
};
use orisun_projections::{Batch, HandlerError, ProjectionConfig};
use orisun_store::{EventStore, StoreError};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const CHILD_DB: &str = "ORISUN_RS_CHILD_DB";
const CHILD_BOUNDARY: &str = "ORISUN_RS_BOUNDARY";
const CHILD_SET: &str = "ORISUN_RS_SET";
const CHILD_WORKER: &str = "ORISUN_RS_WORKER";
const CHILD_PARTITIONS: &str = "ORISUN_RS_PARTITIONS";
const CHILD_TTL_MS: &str = "ORISUN_RS_TTL_MS";
const CHILD_TABLE: &str = "ORISUN_RS_TABLE";
const CHILD_PAUSE_MS: &str = "ORISUN_RS_PAUSE_MS";

const TTL: Duration = Duration::from_secs(2);
const PARTITIONS: u32 = 8;

/// What an event adds to the running checksum: its amount and its position, so that a missing,
/// doubled or misplaced event changes the sum.
fn contribution(amount: i64, prepare: i64) -> i64 {
    amount * 1_000_003 + prepare
}

fn amount(data: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|d| d["amount"].as_i64())
        .unwrap_or(0)
}

/// The read model: every event id under a primary key (a second application fails the
/// batch), and per partition a running count and checksum.
fn read_model_sql(table: &str) -> String {
    format!(
        "CREATE TABLE {table}_applied (event_id uuid PRIMARY KEY, position bigint NOT NULL);
         CREATE TABLE {table}_sums (partition integer PRIMARY KEY, events bigint NOT NULL,
                                    checksum bigint NOT NULL);"
    )
}

struct Tally {
    table: String,
    pause: Duration,
}

#[async_trait]
impl TransactionalHandler for Tally {
    async fn handle(&self, tx: &Transaction<'_>, batch: &Batch) -> Result<(), HandlerError> {
        let ids: Vec<Uuid> = batch.events.iter().map(|e| e.event_id).collect();
        let positions: Vec<i64> = batch.events.iter().map(|e| e.position.prepare).collect();
        let checksum: i64 = batch
            .events
            .iter()
            .map(|e| contribution(amount(&e.data), e.position.prepare))
            .sum();
        tx.execute(
            &format!(
                "INSERT INTO {}_applied SELECT * FROM unnest($1::uuid[], $2::int8[])",
                self.table
            ),
            &[&ids, &positions],
        )
        .await?;
        let (partition, events) = (batch.partition as i32, ids.len() as i64);
        tx.execute(
            &format!(
                "INSERT INTO {t}_sums VALUES ($1, $2, $3) ON CONFLICT (partition) DO UPDATE
                 SET events = {t}_sums.events + excluded.events,
                     checksum = {t}_sums.checksum + excluded.checksum",
                t = self.table
            ),
            &[&partition, &events, &checksum],
        )
        .await?;
        if !self.pause.is_zero() {
            // Inside the transaction, so that a SIGSTOP often lands in one.
            tokio::time::sleep(self.pause).await;
        }
        Ok(())
    }
}

fn env(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

/// The worker process: joins the set and runs the tally projection until killed, printing its
/// status on every change. Does nothing when run as an ordinary test.
#[test]
fn replica_worker_child() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(db) = std::env::var(CHILD_DB) else {
        return Ok(());
    };
    let boundary = BoundaryName::new(env(CHILD_BOUNDARY)?)?;
    let ttl = Duration::from_millis(env(CHILD_TTL_MS)?.parse()?);
    let pause = Duration::from_millis(env(CHILD_PAUSE_MS)?.parse()?);
    let table = env(CHILD_TABLE)?;
    let config = WorkerConfig::new(env(CHILD_SET)?, env(CHILD_PARTITIONS)?.parse()?)?
        .ttl(ttl)
        .worker(env(CHILD_WORKER)?);
    // RUST_LOG=orisun_projections=info shows what each worker does, on stderr.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store =
            PostgresStore::connect(orisun_postgres::testsuite::server().with_dbname(&db)).await?;
        let projection = ProjectionConfig::new("tally", boundary)?.batch_size(100)?;
        let build_store = store.clone();
        let worker = Worker::new(store.membership(), config).projection(projection, move |c| {
            let handler = Tally {
                table: table.clone(),
                pause,
            };
            processor(&build_store, c, handler)
        });
        let mut status = worker.status();
        tokio::spawn(async move {
            while status.changed().await.is_ok() {
                let line = serde_json::to_string(&*status.borrow_and_update());
                if let Ok(line) = line {
                    println!("STATUS {line}");
                }
            }
        });
        if let Err(e) = worker.run(CancellationToken::new()).await {
            println!("FAILED {e}");
            return Err(Box::<dyn std::error::Error>::from(e.to_string()));
        }
        Ok(())
    })
}

/// A running worker process and what it reported.
struct WorkerProcess {
    name: String,
    child: Child,
    statuses: Arc<Mutex<Vec<(Instant, WorkerStatus)>>>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl WorkerProcess {
    fn spawn(db: &TestDb, boundary: &BoundaryName, set: &str, name: &str, table: &str) -> Self {
        Self::spawn_with(db, boundary, set, name, table, PARTITIONS, 20)
    }

    fn spawn_with(
        db: &TestDb,
        boundary: &BoundaryName,
        set: &str,
        name: &str,
        table: &str,
        partitions: u32,
        pause_ms: u64,
    ) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("test executable"))
            .args([
                "--exact",
                "replica_worker_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &db.name)
            .env(CHILD_BOUNDARY, boundary.to_string())
            .env(CHILD_SET, set)
            .env(CHILD_WORKER, name)
            .env(CHILD_PARTITIONS, partitions.to_string())
            .env(CHILD_TTL_MS, TTL.as_millis().to_string())
            .env(CHILD_TABLE, table)
            .env(CHILD_PAUSE_MS, pause_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn worker");
        let stdout = child.stdout.take().expect("piped stdout");
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, f) = (statuses.clone(), failures.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest prints `test replica_worker_child ... ` with no newline: find the tag.
                let tagged = |tag: &str| line.find(tag).map(|at| line[at + tag.len()..].to_owned());
                if let Some(json) = tagged("STATUS ") {
                    if let Ok(status) = serde_json::from_str::<WorkerStatus>(&json) {
                        s.lock()
                            .expect("not poisoned")
                            .push((Instant::now(), status));
                    }
                } else if let Some(error) = tagged("FAILED ") {
                    f.lock().expect("not poisoned").push(error);
                }
            }
        });
        Self {
            name: name.to_owned(),
            child,
            statuses,
            failures,
        }
    }

    fn last(&self) -> Option<WorkerStatus> {
        self.statuses
            .lock()
            .expect("not poisoned")
            .last()
            .map(|(_, s)| s.clone())
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {}", self.name);
    }
}

impl Drop for WorkerProcess {
    /// Kills the worker unless it already ended (never signals a reaped, possibly reused pid).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Appends `count` deposits over 500 accounts, 1,000 per append, four appends at a time.
async fn seed(store: &Arc<dyn EventStore>, count: usize) -> BoundaryName {
    let boundary = BoundaryName::new(format!("rs_{}", Uuid::new_v4().simple())).expect("valid");
    store.create_boundary(&boundary).await.expect("boundary");
    let batches: Vec<Vec<NewEvent>> = (0..count)
        .step_by(1_000)
        .map(|start| {
            (start..count.min(start + 1_000))
                .map(|i| {
                    let data = serde_json::json!({
                        "aggregateType": "Account",
                        "aggregateId": format!("acc-{}", i % 500),
                        "amount": (i % 997) as i64 + 1,
                    });
                    let data: JsonObject = data.as_object().cloned().expect("object");
                    NewEvent::new(Uuid::new_v4(), "Deposited", data, JsonObject::new())
                        .expect("valid")
                })
                .collect()
        })
        .collect();
    let appends = futures::stream::iter(batches)
        .map(|batch| store.append(&boundary, batch, None))
        .buffer_unordered(4);
    for appended in appends.collect::<Vec<_>>().await {
        appended.expect("append");
    }
    boundary
}

/// The count and checksum of the whole log, folded from a read.
async fn fold(store: &Arc<dyn EventStore>, boundary: &BoundaryName) -> (i64, i64) {
    let (mut events, mut checksum) = (0i64, 0i64);
    let mut from = None;
    loop {
        let page = store
            .read(boundary, &ReadRequest::forward(from, 10_000))
            .await
            .expect("read");
        for e in page.iter().filter(|e| Some(e.position) != from) {
            events += 1;
            checksum += contribution(amount(&e.data), e.position.prepare);
        }
        if page.len() < 10_000 {
            return (events, checksum);
        }
        from = page.last().map(|e| e.position);
    }
}

/// Applied events (rows), and the summed per-partition counts and checksums.
async fn read_model(store: &PostgresStore, table: &str) -> (i64, i64, i64) {
    let client = store.pool().get().await.expect("connection");
    let applied: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}_applied"), &[])
        .await
        .expect("applied")
        .get(0);
    let row = client
        .query_one(
            &format!(
                "SELECT coalesce(sum(events), 0)::int8, coalesce(sum(checksum), 0)::int8
                   FROM {table}_sums"
            ),
            &[],
        )
        .await
        .expect("sums");
    (applied, row.get(0), row.get(1))
}

async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn setup(events: usize, tables: &[&str]) -> (TestDb, PostgresStore, BoundaryName) {
    let db = TestDb::create().await;
    let store = db.store().await;
    for table in tables {
        db.client()
            .await
            .batch_execute(&read_model_sql(table))
            .await
            .expect("read model");
    }
    let dyn_store: Arc<dyn EventStore> = Arc::new(store.clone());
    let boundary = seed(&dyn_store, events).await;
    (db, store, boundary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_churn() {
    const EVENTS: usize = 200_000;
    let started = Instant::now();
    let (db, store, boundary) = setup(EVENTS, &["churn"]).await;
    let seeded = started.elapsed();
    let dyn_store: Arc<dyn EventStore> = Arc::new(store.clone());
    let membership = store.membership();
    let spawn = |name: &str| WorkerProcess::spawn(&db, &boundary, "churn", name, "churn");
    let (a, b, c) = (spawn("a"), spawn("b"), spawn("c"));
    let applied = || async { read_model(&store, "churn").await.0 };

    // A fourth worker joins while the three are busy.
    wait_for("10% applied", Duration::from_secs(60), async || {
        applied().await >= EVENTS as i64 / 10
    })
    .await;
    let d = spawn("d");
    wait_for("d to get partitions", Duration::from_secs(10), async || {
        d.last().is_some_and(|s| !s.held.is_empty())
    })
    .await;

    // SIGKILL one: its partitions move within TTL + 2 s.
    wait_for("25% applied", Duration::from_secs(60), async || {
        applied().await >= EVENTS as i64 / 4
    })
    .await;
    let held = a.last().expect("a reported").held;
    assert!(!held.is_empty(), "a held nothing to lose");
    let mut a = a;
    a.child.kill().expect("SIGKILL a");
    let killed = Instant::now();
    a.child.wait().expect("reap a");
    assert!(
        applied().await < EVENTS as i64,
        "the kill should land mid-run"
    );
    // Moving again: another worker holds each of a's partitions and has committed past where
    // a left it.
    let at_kill = replica_set_status(&*membership, None, "churn")
        .await
        .expect("status")
        .expect("exists");
    let checkpoint_at_kill = |p: u32| {
        at_kill
            .claims
            .iter()
            .find(|c| c.partition == p)
            .and_then(|c| c.checkpoint)
            .map_or(-1, |c| c.prepare)
    };
    wait_for(
        "a's partitions to move again",
        TTL + Duration::from_secs(2),
        async || {
            let Some(status) = replica_set_status(&*membership, None, "churn")
                .await
                .expect("status")
            else {
                return false;
            };
            held.iter().all(|p| {
                status.claims.iter().any(|c| {
                    c.partition == *p
                        && c.holder.as_deref().is_some_and(|h| h != "a")
                        && c.checkpoint.map_or(-1, |c| c.prepare) > checkpoint_at_kill(*p)
                })
            })
        },
    )
    .await;
    let moved = killed.elapsed();

    // SIGSTOP another past its TTL, then resume it: its late commit is refused.
    let b_held = b.last().expect("b reported").held;
    assert!(!b_held.is_empty(), "b held nothing");
    let lost_before = b.last().expect("b reported").partitions_lost;
    b.signal("-STOP");
    tokio::time::sleep(TTL + Duration::from_secs(1)).await;
    assert!(
        applied().await < EVENTS as i64,
        "the pause should land mid-run"
    );
    b.signal("-CONT");
    wait_for(
        "b to report its partitions lost",
        Duration::from_secs(10),
        async || b.last().is_some_and(|s| s.partitions_lost > lost_before),
    )
    .await;

    // Everything is applied exactly once, and the checksum is the log's.
    wait_for(
        "every event applied",
        Duration::from_secs(120),
        async || applied().await >= EVENTS as i64,
    )
    .await;
    let (applied, events, checksum) = read_model(&store, "churn").await;
    assert_eq!(fold(&dyn_store, &boundary).await, (EVENTS as i64, checksum));
    assert_eq!((applied, events), (EVENTS as i64, EVENTS as i64));
    for worker in [&b, &c, &d] {
        assert!(
            worker.failures.lock().expect("not poisoned").is_empty(),
            "{} failed: {:?}",
            worker.name,
            worker.failures.lock().expect("not poisoned")
        );
    }
    eprintln!(
        "churn: seeded in {:.1} s; a's partitions moved {:.2} s after its SIGKILL (TTL {} s); \
         whole test {:.1} s",
        seeded.as_secs_f64(),
        moved.as_secs_f64(),
        TTL.as_secs(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replica_sets_build_their_own_read_models() {
    const EVENTS: usize = 3_000;
    let (db, store, boundary) = setup(EVENTS, &["blue", "green"]).await;
    let dyn_store: Arc<dyn EventStore> = Arc::new(store.clone());
    let _workers: Vec<WorkerProcess> = [
        ("blue", "w1"),
        ("blue", "w2"),
        ("green", "w1"),
        ("green", "w2"),
    ]
    .iter()
    .map(|(set, name)| WorkerProcess::spawn_with(&db, &boundary, set, name, set, 4, 0))
    .collect();
    let expected = fold(&dyn_store, &boundary).await;
    for set in ["blue", "green"] {
        wait_for(set, Duration::from_secs(60), async || {
            read_model(&store, set).await.0 >= EVENTS as i64
        })
        .await;
        let (applied, events, checksum) = read_model(&store, set).await;
        assert_eq!((applied, (events, checksum)), (EVENTS as i64, expected));
        let status = replica_set_status(&*store.membership(), Some(&store), set)
            .await
            .expect("status")
            .expect("exists");
        assert_eq!(status.partitions, 4);
        assert_eq!(status.claims.len(), 4, "{status:?}");
        // Same worker ids, same projection, same boundary: still separate claims.
        assert!(status.claims.iter().all(|c| c.lag.is_some()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_at_start() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let boundary = BoundaryName::new("bad").expect("valid");
    let worker = |partitions: u32, name: &str| {
        let store = store.clone();
        let config = WorkerConfig::new("fixed", partitions)
            .expect("valid")
            .ttl(TTL)
            .worker(name);
        let projection = ProjectionConfig::new("tally", boundary.clone()).expect("valid");
        Worker::new(store.membership(), config).projection(projection, move |c| {
            processor(
                &store,
                c,
                Tally {
                    table: "unused".to_owned(),
                    pause: Duration::ZERO,
                },
            )
        })
    };
    // The first worker fixes the set's count at 4.
    store
        .membership()
        .heartbeat("fixed", "first", 4, &[], TTL)
        .await
        .expect("first join");
    let started = Instant::now();
    match worker(8, "second").run(CancellationToken::new()).await {
        Err(WorkerError::Refused {
            set,
            source: StoreError::Invalid(invalid),
        }) => {
            assert_eq!(set, "fixed");
            assert_eq!(invalid.field, "partitions");
            assert!(
                invalid.reason.contains("has 4 partitions"),
                "{}",
                invalid.reason
            );
            assert!(
                invalid.reason.contains("started with 8"),
                "{}",
                invalid.reason
            );
        }
        other => panic!("a mismatching count was accepted: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at start"
    );
    let view = store
        .membership()
        .view("fixed")
        .await
        .expect("view")
        .expect("exists");
    assert_eq!(view.members.len(), 1, "the refused worker did not join");
    match WorkerConfig::new("", 4) {
        Err(WorkerError::Invalid(invalid)) => assert_eq!(invalid.field, "replica_set"),
        other => panic!("an empty set name was accepted: {other:?}"),
    }
}
