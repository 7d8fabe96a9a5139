//! Measures replica-set workers on PostgreSQL with real worker processes (this example run
//! again as a worker):
//!
//! - **throughput** with 1, 2 and 4 workers, each applying events with a handler that waits
//!   1 ms per event while holding a per-process lock (so a process handles at most ~1,000
//!   events/s, whatever partitions it runs), against ideal linear scaling from the 1-worker
//!   figure measured in the same run;
//! - **rebalance pause** at join (from the newcomer's appearance in the set until it holds its
//!   share of leases) and at leave (from a graceful leave until every partition is held again),
//!   p50 and max over 10 runs.
//!
//! `cargo run -p orisun-projections --example replica_bench` (PostgreSQL from
//! `ORISUN_TEST_PG`, a libpq string, as for the tests; takes about a minute).

use async_trait::async_trait;
use orisun_core::{BoundaryName, JsonObject, NewEvent};
use orisun_postgres::testsuite::TestDb;
use orisun_postgres::tokio_postgres::Transaction;
use orisun_postgres::PostgresStore;
use orisun_projections::postgres::{processor, TransactionalHandler};
use orisun_projections::workers::{assign, replica_set_status, Member, Worker, WorkerConfig};
use orisun_projections::{Batch, HandlerError, ProjectionConfig};
use orisun_store::EventStore;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WORKER_ENV: &str = "ORISUN_RS_BENCH_WORKER";
const PARTITIONS: u32 = 8;
const TTL: Duration = Duration::from_secs(2);
const EVENTS: usize = 6_000;
const RUNS: usize = 10;

/// One process handles one event per millisecond at most.
static PROCESS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Slow {
    table: String,
}

#[async_trait]
impl TransactionalHandler for Slow {
    async fn handle(&self, tx: &Transaction<'_>, batch: &Batch) -> Result<(), HandlerError> {
        {
            let _one_at_a_time = PROCESS.lock().await;
            let start = tokio::time::Instant::now();
            tokio::time::sleep_until(start + Duration::from_millis(batch.events.len() as u64))
                .await;
        }
        let ids: Vec<Uuid> = batch.events.iter().map(|e| e.event_id).collect();
        tx.execute(
            &format!(
                "INSERT INTO {} SELECT * FROM unnest($1::uuid[])",
                self.table
            ),
            &[&ids],
        )
        .await?;
        Ok(())
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn worker_main(spec: &str) -> Result<(), AnyError> {
    // db boundary set worker table
    let parts: Vec<&str> = spec.split(' ').collect();
    let [db, boundary, set, name, table] = parts[..] else {
        return Err(format!("bad worker spec {spec:?}").into());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store =
            PostgresStore::connect(orisun_postgres::testsuite::server().with_dbname(db)).await?;
        let config = WorkerConfig::new(set, PARTITIONS)?.ttl(TTL).worker(name);
        let projection =
            ProjectionConfig::new("slow", BoundaryName::new(boundary)?)?.batch_size(50)?;
        let (build_store, table) = (store.clone(), table.to_owned());
        let worker = Worker::new(store.membership(), config).projection(projection, move |c| {
            processor(
                &build_store,
                c,
                Slow {
                    table: table.clone(),
                },
            )
        });
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            term.recv().await;
            trigger.cancel();
        });
        worker.run(cancel).await?;
        Ok(())
    })
}

struct Workers(Vec<Child>);

impl Workers {
    fn spawn(&mut self, db: &str, boundary: &BoundaryName, set: &str, name: &str, table: &str) {
        let child = Command::new(std::env::current_exe().expect("this executable"))
            .env(WORKER_ENV, format!("{db} {boundary} {set} {name} {table}"))
            .spawn()
            .expect("spawn worker");
        self.0.push(child);
    }

    /// SIGTERM: the worker finishes its batches, releases its leases and leaves the set.
    fn leave(&mut self, index: usize) {
        let mut child = self.0.remove(index);
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn seed(store: &PostgresStore, count: usize) -> Result<BoundaryName, AnyError> {
    let boundary = BoundaryName::new(format!("bench_{}", Uuid::new_v4().simple()))?;
    store.create_boundary(&boundary).await?;
    let events: Vec<NewEvent> = (0..count)
        .map(|i| {
            let data = serde_json::json!({"aggregateId": format!("acc-{}", i % 400)});
            NewEvent::new(
                Uuid::new_v4(),
                "Touched",
                data.as_object().cloned().unwrap_or_default(),
                JsonObject::new(),
            )
        })
        .collect::<Result<_, _>>()?;
    for chunk in events.chunks(1_000) {
        store.append(&boundary, chunk.to_vec(), None).await?;
    }
    Ok(boundary)
}

async fn applied(store: &PostgresStore, table: &str) -> Result<i64, AnyError> {
    let client = store.pool().get().await?;
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0))
}

/// Events per second between 10% and 90% applied, with `workers` processes.
async fn throughput(db: &TestDb, store: &PostgresStore, workers: usize) -> Result<f64, AnyError> {
    let table = format!("tp{workers}");
    db.client()
        .await
        .batch_execute(&format!("CREATE TABLE {table} (event_id uuid PRIMARY KEY)"))
        .await?;
    let boundary = seed(store, EVENTS).await?;
    let mut procs = Workers(Vec::new());
    for i in 0..workers {
        procs.spawn(&db.name, &boundary, &table, &format!("w{i}"), &table);
    }
    let (low, high) = (EVENTS as i64 / 10, EVENTS as i64 * 9 / 10);
    let mut start = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let n = applied(store, &table).await?;
        if start.is_none() && n >= low {
            start = Some((Instant::now(), n));
        }
        if n >= high {
            let (t0, n0) = start.unwrap_or((Instant::now(), n));
            let secs = t0.elapsed().as_secs_f64().max(1e-3);
            return Ok((n - n0) as f64 / secs);
        }
        if Instant::now() > deadline {
            return Err("throughput run timed out".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether every partition of `set` is live-held as the assignment over its members says.
async fn settled(store: &PostgresStore, set: &str) -> Result<bool, AnyError> {
    let membership = store.membership();
    let Some(status) = replica_set_status(&*membership, None, set).await? else {
        return Ok(false);
    };
    let members: Vec<Member> = status
        .members
        .iter()
        .map(|m| Member {
            worker: m.worker.clone(),
            held: m.held.clone(),
        })
        .collect();
    let target = assign(status.partitions, &members);
    let held = (0..status.partitions).all(|p| {
        status.claims.iter().any(|c| {
            c.partition == p
                && c.holder
                    .as_ref()
                    .is_some_and(|h| target.get(h).is_some_and(|t| t.contains(&p)))
        })
    });
    Ok(held && status.claims.len() == status.partitions as usize)
}

async fn members(store: &PostgresStore, set: &str) -> Result<usize, AnyError> {
    Ok(store
        .membership()
        .view(set)
        .await?
        .map_or(0, |v| v.members.len()))
}

async fn wait(
    what: &str,
    mut check: impl AsyncFnMut() -> Result<bool, AnyError>,
) -> Result<(), AnyError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await? {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

fn p50_max(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    (
        ms(samples[samples.len() / 2]),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    )
}

async fn rebalance(
    db: &TestDb,
    store: &PostgresStore,
) -> Result<(Vec<Duration>, Vec<Duration>), AnyError> {
    db.client()
        .await
        .batch_execute("CREATE TABLE rb (event_id uuid PRIMARY KEY)")
        .await?;
    let boundary = seed(store, 100).await?;
    let mut procs = Workers(Vec::new());
    for i in 0..3 {
        procs.spawn(&db.name, &boundary, "rb", &format!("steady{i}"), "rb");
    }
    wait("three members", async || {
        Ok(members(store, "rb").await? == 3)
    })
    .await?;
    wait("a settled set", async || settled(store, "rb").await).await?;
    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        procs.spawn(&db.name, &boundary, "rb", &format!("extra{run}"), "rb");
        wait(
            "the newcomer",
            async || Ok(members(store, "rb").await? == 4),
        )
        .await?;
        let joined = Instant::now();
        wait("the join to settle", async || settled(store, "rb").await).await?;
        joins.push(joined.elapsed());
        let left = Instant::now();
        procs.leave(3);
        wait("the leaver gone", async || {
            Ok(members(store, "rb").await? == 3)
        })
        .await?;
        wait("the leave to settle", async || settled(store, "rb").await).await?;
        leaves.push(left.elapsed());
    }
    Ok((joins, leaves))
}

fn main() -> Result<(), AnyError> {
    if let Ok(spec) = std::env::var(WORKER_ENV) {
        return worker_main(&spec);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let db = TestDb::create().await;
        let store = db.store().await;
        println!("replica_bench: {PARTITIONS} partitions, TTL {} s, {EVENTS} events per throughput run, handler 1 ms/event per process", TTL.as_secs());
        let one = throughput(&db, &store, 1).await?;
        println!("throughput 1 worker : {one:>7.0} events/s (baseline)");
        for k in [2usize, 4] {
            let rate = throughput(&db, &store, k).await?;
            let ideal = one * k as f64;
            println!(
                "throughput {k} workers: {rate:>7.0} events/s, ideal {ideal:>7.0}, {:.0}% of linear",
                100.0 * rate / ideal
            );
        }
        let (joins, leaves) = rebalance(&db, &store).await?;
        let (jp, jm) = p50_max(joins);
        let (lp, lm) = p50_max(leaves);
        println!("rebalance at join  ({RUNS} runs): p50 {jp:.0} ms, max {jm:.0} ms");
        println!("rebalance at leave ({RUNS} runs): p50 {lp:.0} ms, max {lm:.0} ms");
        Ok(())
    })
}
