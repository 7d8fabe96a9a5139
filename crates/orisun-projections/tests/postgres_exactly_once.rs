//! Exactly-once projections on PostgreSQL: the handler writes its read model through the
//! transaction in which the checkpoint moves. A handler that fails mid-batch, and a worker
//! process killed with SIGKILL mid-batch, leave a read model that still equals a fold of the
//! log with every event applied exactly once (the read model's primary key on the event id
//! would refuse a second application).
//!
//! The killed worker is this test executable run again with [`CHILD_ENV`] set, selecting
//! `projection_child`.

use async_trait::async_trait;
use orisun_core::BoundaryName;
use orisun_postgres::testsuite::TestDb;
use orisun_postgres::tokio_postgres::Transaction;
use orisun_postgres::{PostgresConfig, PostgresStore};
use orisun_projections::postgres::{processor, TransactionalHandler};
use orisun_projections::testsuite::{fold, seeded};
use orisun_projections::{
    Batch, HandlerError, Mode, ProjectionConfig, ProjectionError, RetryPolicy,
};
use orisun_store::EventStore;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Names the database of the child worker; unset in the parent.
const CHILD_ENV: &str = "ORISUN_PROJECTION_CHILD_DB";
/// Names the boundary the child projects.
const BOUNDARY_ENV: &str = "ORISUN_PROJECTION_CHILD_BOUNDARY";

const READ_MODEL: &str = "
CREATE TABLE IF NOT EXISTS applied (event_id uuid PRIMARY KEY, position bigint NOT NULL);
CREATE TABLE IF NOT EXISTS balances (account text PRIMARY KEY, amount bigint NOT NULL);";

/// Applies deposits to `balances`, recording each event in `applied`; optionally fails a batch
/// after writing part of it, or sleeps inside the transaction so that a kill lands there.
#[derive(Default)]
struct Balances {
    fail_once_on_amount: Option<i64>,
    failed: AtomicBool,
    pause: Duration,
}

#[async_trait]
impl TransactionalHandler for Balances {
    async fn handle(&self, tx: &Transaction<'_>, batch: &Batch) -> Result<(), HandlerError> {
        for event in &batch.events {
            tx.execute(
                "INSERT INTO applied VALUES ($1, $2)",
                &[&event.event_id, &event.position.prepare],
            )
            .await?;
            let data: serde_json::Value = serde_json::from_str(&event.data)?;
            if data["aggregateType"] != "Account" {
                continue;
            }
            let amount = data["amount"].as_i64().unwrap_or(0);
            tx.execute(
                "INSERT INTO balances VALUES ($1, $2)
                 ON CONFLICT (account) DO UPDATE SET amount = balances.amount + excluded.amount",
                &[&data["aggregateId"].as_str().unwrap_or(""), &amount],
            )
            .await?;
            if Some(amount) == self.fail_once_on_amount && !self.failed.swap(true, Ordering::SeqCst)
            {
                return Err(format!("failing after writing amount {amount}").into());
            }
        }
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        Ok(())
    }
}

async fn read_model(store: &PostgresStore) -> (BTreeMap<String, i64>, i64) {
    let client = store.pool().get().await.expect("connection");
    let balances = client
        .query("SELECT account, amount FROM balances", &[])
        .await
        .expect("balances")
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    let applied: i64 = client
        .query_one("SELECT count(*) FROM applied", &[])
        .await
        .expect("applied")
        .get(0);
    (balances, applied)
}

fn config(boundary: &BoundaryName) -> ProjectionConfig {
    ProjectionConfig::new("balances", boundary.clone())
        .expect("valid")
        .batch_size(25)
        .expect("valid")
        .lease_ttl(Duration::from_millis(900))
}

async fn setup(accounts: usize, per_account: usize) -> (TestDb, PostgresStore, BoundaryName) {
    let db = TestDb::create().await;
    let store = db.store().await;
    db.client()
        .await
        .batch_execute(READ_MODEL)
        .await
        .expect("read model");
    let dyn_store: Arc<dyn EventStore> = Arc::new(store.clone());
    let boundary = seeded(&dyn_store, accounts, per_account).await;
    (db, store, boundary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_midway_rolls_back_its_writes() {
    let (_db, store, boundary) = setup(4, 10).await;
    let failing = Balances {
        fail_once_on_amount: Some(13),
        ..Balances::default()
    };
    let stopped = processor(
        &store,
        config(&boundary)
            .retry(RetryPolicy::none())
            .mode(Mode::OneOff),
        failing,
    )
    .run(CancellationToken::new())
    .await;
    assert!(
        matches!(stopped, Err(ProjectionError::Handler { attempts: 1, .. })),
        "{stopped:?}"
    );
    let (_, applied) = read_model(&store).await;
    let count = store.count(&boundary).await.expect("count") as i64;
    assert!(applied < count, "the failed batch's writes were kept");
    processor(
        &store,
        config(&boundary).mode(Mode::OneOff),
        Balances::default(),
    )
    .run(CancellationToken::new())
    .await
    .expect("resumed run");
    let (balances, applied) = read_model(&store).await;
    assert_eq!(applied, count, "every event applied exactly once");
    let dyn_store: Arc<dyn EventStore> = Arc::new(store.clone());
    assert_eq!(balances, fold(&dyn_store, &boundary).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_applied_once() {
    let (_db, store, boundary) = setup(3, 8).await;
    let flaky = Balances {
        fail_once_on_amount: Some(7),
        ..Balances::default()
    };
    processor(&store, config(&boundary).mode(Mode::OneOff), flaky)
        .run(CancellationToken::new())
        .await
        .expect("succeeds on retry");
    let (balances, applied) = read_model(&store).await;
    assert_eq!(applied, store.count(&boundary).await.expect("count") as i64);
    let dyn_store: Arc<dyn EventStore> = Arc::new(store.clone());
    assert_eq!(balances, fold(&dyn_store, &boundary).await);
}

/// The child: projects the boundary continuously with a handler that pauses inside each
/// batch's transaction, printing `BATCH <checkpoint prepare>` after each commit. Does nothing
/// when run as an ordinary test.
#[test]
fn projection_child() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let boundary = BoundaryName::new(std::env::var(BOUNDARY_ENV)?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let config = orisun_postgres::testsuite::server().with_dbname(&db);
        let store = PostgresStore::connect(config).await?;
        let handler = Balances {
            pause: Duration::from_millis(20),
            ..Balances::default()
        };
        let processor = processor(&store, self::config(&boundary), handler);
        let mut progress = processor.progress();
        tokio::spawn(async move {
            while progress.changed().await.is_ok() {
                let batches = progress.borrow().batches;
                if batches > 0 {
                    println!("BATCH {batches}");
                }
            }
        });
        processor.run(CancellationToken::new()).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// Runs a child worker until it has committed `batches` batches, then kills it with SIGKILL.
fn run_child_and_kill(config: &PostgresConfig, boundary: &BoundaryName, batches: usize) {
    let mut child = Command::new(std::env::current_exe().expect("test executable"))
        .args([
            "--exact",
            "projection_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &config.dbname)
        .env(BOUNDARY_ENV, boundary.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("BATCH") && tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..batches {
        if rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_err()
        {
            let _ = child.kill();
            panic!("the child worker stopped committing batches");
        }
    }
    // Mid-batch: the handler pauses inside every transaction.
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_leaves_every_event_applied_once() {
    let (db, store, boundary) = setup(10, 60).await;
    for _ in 0..3 {
        let (config, boundary) = (db.config(), boundary.clone());
        tokio::task::spawn_blocking(move || run_child_and_kill(&config, &boundary, 3))
            .await
            .expect("child run");
    }
    let (_, applied) = read_model(&store).await;
    let count = store.count(&boundary).await.expect("count") as i64;
    assert!(
        applied > 0 && applied < count,
        "the kills should land before the end ({applied} of {count})"
    );
    // A new worker waits out the dead one's lease, then resumes from the last commit.
    processor(
        &store,
        config(&boundary).mode(Mode::OneOff),
        Balances::default(),
    )
    .run(CancellationToken::new())
    .await
    .expect("final run");
    let (balances, applied) = read_model(&store).await;
    assert_eq!(applied, count, "every event applied exactly once");
    let dyn_store: Arc<dyn EventStore> = Arc::new(store.clone());
    assert_eq!(balances, fold(&dyn_store, &boundary).await);
}
