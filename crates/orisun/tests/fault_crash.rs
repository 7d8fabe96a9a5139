//! Crash mid-write: real `orisun serve` processes are SIGKILLed while 16 clients save batches of
//! 1 to 1,000 events (half of them on a DCB condition), then restarted on the same data with no
//! operator action; the log read back must hold every acknowledged event where it was
//! acknowledged, no partial batch, gap-free positions and only conditions that held. On both
//! backends, `ORISUN_FAULT_ROUNDS` rounds (20). The embedded store is also killed inside a
//! tag-log move (on its log line) and inside a WAL checkpoint (on the first write to the
//! database file, which in WAL mode only a checkpoint makes), and must recover.

#[allow(dead_code)]
mod faults;

use faults::ledger::Ledger;
use faults::process::{orders_file, ServerProcess, Storage};
use faults::workload::{client, Batch, Clients, Load};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Waits (bounded) until the clients have `n` acknowledged batches between them.
async fn await_acks(clients: &Clients, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while clients.acks.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "{n} saves acknowledged within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts the server on `storage`, checks the previous round's batches against what it serves,
/// and returns it.
async fn restart_and_check(
    storage: &Storage,
    env: &[(&str, &str)],
    ledger: &mut Ledger,
    previous: &[Batch],
) -> ServerProcess {
    let server = ServerProcess::start(storage, env);
    ledger.absorb(&client(&server.url)).await;
    ledger.check(previous);
    server
}

/// `rounds` kill/restart rounds of 16 clients on `storage`; returns the totals.
async fn crash_rounds(storage: Storage, label: &str) {
    let rounds = faults::rounds();
    let seed = faults::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ledger = Ledger::default();
    let mut previous: Vec<Batch> = Vec::new();
    let started = Instant::now();
    for round in 0..rounds {
        let server = restart_and_check(&storage, &[], &mut ledger, &previous).await;
        let clients = Clients::start(
            &server.url,
            Load {
                clients: 16,
                max_batch: 1_000,
                seed: seed.wrapping_add(u64::from(round)),
            },
        );
        await_acks(&clients, 16).await;
        // The kill's moment, random within the load.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..600))).await;
        clients.killing.store(true, Ordering::SeqCst);
        server.kill9();
        assert!(server.reap(), "the server was killed, it did not exit");
        previous = clients.finish().await;
    }
    let server = restart_and_check(&storage, &[], &mut ledger, &previous).await;
    ledger.check_queries(&client(&server.url)).await;
    let c = ledger.counts;
    eprintln!(
        "RESULT kill -9 during saves, {label}: {rounds} runs, {} acknowledged batches, {} acknowledged events, {} conditional saves checked, {} refused by their condition, {} unanswered ({} stored whole), {} events in the log, lost {}, partial {}, {:.1} s",
        c.acked_batches,
        c.acked_events,
        c.conditions_checked,
        c.rejected,
        c.uncertain,
        c.uncertain_stored,
        c.stored_events,
        c.lost,
        c.partial,
        started.elapsed().as_secs_f64()
    );
    assert!(
        c.acked_batches > 0 && c.rejected > 0,
        "conditions passed and failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_saves_embedded() {
    let dir = tempfile::tempdir().expect("tempdir");
    crash_rounds(Storage::Embedded(dir.path().to_owned()), "embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_saves_postgres() {
    let db = orisun_postgres::testsuite::TestDb::create().await;
    let config = db.config();
    crash_rounds(
        Storage::Postgres {
            port: config.port,
            dbname: db.name.clone(),
        },
        "PostgreSQL",
    )
    .await;
}

/// How many kills each recovery test wants to land inside its operation, and how many
/// attempts it may take.
const LANDED: u32 = 3;
const ATTEMPTS: u32 = 12;

/// Rows of the tag log of a boundary file, read after the kill (before any restart).
fn tag_log_rows(dir: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(orders_file(dir)).expect("open the boundary file");
    conn.query_row("SELECT count(*) FROM tag_log", [], |r| r.get(0))
        .expect("count tag_log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_killed_inside_a_tag_log_move_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::Embedded(dir.path().to_owned());
    // The writer's debug lines include "moving the tag log into the tag index".
    let env = [("ORISUN_LOGGING_LEVEL", "info,orisun_sqlite::writer=debug")];
    let seed = faults::seed();
    let mut ledger = Ledger::default();
    let mut previous = Vec::new();
    let (mut landed, mut attempts) = (0, 0);
    while landed < LANDED {
        assert!(
            attempts < ATTEMPTS,
            "only {landed} of {attempts} kills landed inside a tag-log move"
        );
        attempts += 1;
        let server = restart_and_check(&storage, &env, &mut ledger, &previous).await;
        // One client of small batches: after a move commits, tag_log holds less than a move's
        // worth of rows, so a full tag_log after the kill means the move did not commit.
        let clients = Clients::start(
            &server.url,
            Load {
                clients: 1,
                max_batch: 10,
                seed: seed.wrapping_add(u64::from(attempts)),
            },
        );
        server.kill_on_line(
            "moving the tag log into the tag index",
            clients.killing.clone(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while !server.killed_on_line() {
            assert!(Instant::now() < deadline, "a tag-log move within 60 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(server.reap());
        previous = clients.finish().await;
        let rows = tag_log_rows(dir.path());
        let inside = rows >= orisun_sqlite::SqliteConfig::DEFAULT_TAG_LOG_ROWS as i64;
        eprintln!("tag-log kill {attempts}: tag_log holds {rows} rows, inside the move: {inside}");
        landed += u32::from(inside);
    }
    // Recovered: every check above, then the tag index answers queries and new conditional
    // saves, across both tables, after one more restart.
    let server = restart_and_check(&storage, &[], &mut ledger, &previous).await;
    let clients = Clients::start(
        &server.url,
        Load {
            clients: 4,
            max_batch: 50,
            seed,
        },
    );
    await_acks(&clients, 200).await;
    clients.killing.store(true, Ordering::SeqCst);
    server.kill9();
    assert!(server.reap());
    let previous = clients.finish().await;
    let server = restart_and_check(&storage, &[], &mut ledger, &previous).await;
    ledger.check_queries(&client(&server.url)).await;
    let c = ledger.counts;
    eprintln!(
        "RESULT kill -9 inside a tag-log move, embedded: {landed} of {attempts} kills landed inside, {} acknowledged events, {} conditional saves checked, lost {}, partial {}",
        c.acked_events, c.conditions_checked, c.lost, c.partial
    );
}

/// The WAL-index checkpoint fields of a `-shm` file: (nBackfill, nBackfillAttempted). A
/// checkpoint sets the second before copying pages into the database and the first once they
/// are synced, so `attempted > backfill` after a kill means it died inside a checkpoint.
fn checkpoint_marks(dir: &std::path::Path) -> (u32, u32) {
    let shm = std::fs::read(dir.join("orders.db-shm")).expect("read the -shm file");
    let word = |at: usize| u32::from_ne_bytes(shm[at..at + 4].try_into().expect("4 bytes"));
    (word(96), word(128))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_killed_inside_a_wal_checkpoint_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::Embedded(dir.path().to_owned());
    let seed = faults::seed();
    let mut ledger = Ledger::default();
    let mut previous = Vec::new();
    let (mut landed, mut attempts) = (0, 0);
    let file = orders_file(dir.path());
    while landed < LANDED {
        assert!(
            attempts < ATTEMPTS,
            "only {landed} of {attempts} kills landed inside a checkpoint"
        );
        attempts += 1;
        let server = restart_and_check(&storage, &[], &mut ledger, &previous).await;
        let before = std::fs::metadata(&file).expect("the boundary file exists");
        let clients = Clients::start(
            &server.url,
            Load {
                clients: 8,
                max_batch: 1_000,
                seed: seed.wrapping_add(u64::from(attempts)),
            },
        );
        // In WAL mode only a checkpoint writes the database file: kill on its first write.
        let killer = server.killer();
        let killing = clients.killing.clone();
        let watcher = std::thread::spawn({
            let file = file.clone();
            move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let now = std::fs::metadata(&file).expect("the boundary file exists");
                    if now.len() != before.len() || now.modified().ok() != before.modified().ok() {
                        killing.store(true, Ordering::SeqCst);
                        killer.kill9();
                        return true;
                    }
                    if Instant::now() > deadline {
                        killing.store(true, Ordering::SeqCst);
                        killer.kill9();
                        return false;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        });
        let checkpointed = tokio::task::spawn_blocking(move || watcher.join())
            .await
            .expect("join")
            .expect("watcher thread");
        assert!(checkpointed, "a checkpoint within 120 s");
        assert!(server.reap());
        previous = clients.finish().await;
        let (backfill, attempted) = checkpoint_marks(dir.path());
        let inside = attempted > backfill;
        eprintln!(
            "checkpoint kill {attempts}: nBackfill {backfill}, nBackfillAttempted {attempted}, inside: {inside}"
        );
        landed += u32::from(inside);
    }
    let server = restart_and_check(&storage, &[], &mut ledger, &previous).await;
    ledger.check_queries(&client(&server.url)).await;
    let c = ledger.counts;
    eprintln!(
        "RESULT kill -9 inside a WAL checkpoint, embedded: {landed} of {attempts} kills landed inside, {} acknowledged events, {} conditional saves checked, lost {}, partial {}",
        c.acked_events, c.conditions_checked, c.lost, c.partial
    );
}
