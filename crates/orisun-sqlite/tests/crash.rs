//! Crash safety: a child process appends and reports each acknowledged batch; the parent kills it
//! with SIGKILL mid-stream, reopens the store, and checks that every acknowledged event is there
//! and that no batch is partial.
//!
//! The child is this test executable run again with [`CHILD_ENV`] set, selecting `crash_child`.

mod common;

use orisun_sqlite::{SqliteConfig, SqliteStore, Synchronous};
use orisun_store::core::{BoundaryName, JsonObject, NewEvent, Position, ReadRequest};
use orisun_store::EventStore;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Names the data directory of the child; unset in the parent.
const CHILD_ENV: &str = "ORISUN_SQLITE_CRASH_CHILD_DIR";
/// Distinguishes the ids of successive child runs on one directory.
const ROUND_ENV: &str = "ORISUN_SQLITE_CRASH_ROUND";
/// Concurrent appenders in the child, so that kills land inside group commits too.
const CHILD_TASKS: u128 = 4;
const ROUNDS: u32 = 3;

fn boundary() -> BoundaryName {
    BoundaryName::new("crash").expect("valid")
}

/// The child: appends forever with durable commits, printing `ACK <commit> <prepare> <ids>` for
/// each acknowledged batch. Does nothing when run as an ordinary test.
#[test]
fn crash_child() -> anyhow::Result<()> {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let round: u128 = std::env::var(ROUND_ENV)?.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let config = SqliteConfig::new(dir).with_synchronous(Synchronous::Full);
        let store = SqliteStore::open(config)?;
        store.create_boundary(&boundary()).await?;
        let tasks: Vec<_> = (0..CHILD_TASKS)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0u128.. {
                        let size = 1 + (i % 5) as usize;
                        let batch: Vec<NewEvent> = (0..size as u128)
                            .map(|k| {
                                let id =
                                    Uuid::from_u128((round << 96) | (task << 80) | (i << 8) | k);
                                NewEvent::new(id, "Tick", JsonObject::new(), JsonObject::new())
                                    .expect("valid")
                            })
                            .collect();
                        let ids: Vec<String> =
                            batch.iter().map(|e| e.event_id.to_string()).collect();
                        let outcome = store.append(&boundary(), batch, None).await?;
                        println!(
                            "ACK {} {} {}",
                            outcome.position.commit,
                            outcome.position.prepare,
                            ids.join(",")
                        );
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        anyhow::Ok(())
    })
}

/// An acknowledged batch as the child reported it.
struct Ack {
    last: Position,
    ids: Vec<Uuid>,
}

fn parse(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let commit = parts.next()?.parse().ok()?;
    let prepare = parts.next()?.parse().ok()?;
    let ids = parts
        .next()?
        .split(',')
        .map(|s| Uuid::parse_str(s).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(Ack {
        last: Position::new(commit, prepare),
        ids,
    })
}

/// Runs the child until it has acknowledged `kill_after` batches, kills it, and returns every
/// batch it acknowledged before dying.
fn run_child_and_kill(dir: &std::path::Path, round: u32, kill_after: usize) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().expect("test executable"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acks = Vec::new();
    while acks.len() < kill_after {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => acks.extend(parse(&line)),
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "child stopped acknowledging after {} batches: {e}",
                    acks.len()
                );
            }
        }
    }
    // std's kill is SIGKILL on Unix: no destructor, no flush, no clean close.
    child.kill().expect("kill child");
    let status = child.wait().expect("wait child");
    assert!(!status.success(), "the child was killed, not finished");
    reader.join().expect("reader thread");
    // Lines written before the kill are acknowledged too.
    acks.extend(rx.try_iter().filter_map(|l| parse(&l)));
    acks
}

#[test]
fn acknowledged_appends_survive_sigkill() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut acked = Vec::new();
    for round in 0..ROUNDS {
        let kill_after = 150 + 120 * round as usize;
        acked.extend(run_child_and_kill(dir.path(), round, kill_after));
        assert!(acked.len() >= kill_after);

        let store = SqliteStore::open(SqliteConfig::new(dir.path()))?;
        let events = runtime.block_on(async {
            let mut events = Vec::new();
            let mut from = None;
            loop {
                let page = store
                    .read(&boundary(), &ReadRequest::forward(from, 10_000))
                    .await?;
                let Some(last) = page.last() else { break };
                from = Some(Position::new(
                    last.position.commit,
                    last.position.prepare + 1,
                ));
                events.extend(page);
            }
            anyhow::Ok(events)
        })?;
        drop(store);

        // Every acknowledged event is stored where the child was told it was.
        let stored: HashMap<Uuid, Position> =
            events.iter().map(|e| (e.event_id, e.position)).collect();
        for ack in &acked {
            let n = ack.ids.len() as i64;
            for (k, id) in ack.ids.iter().enumerate() {
                let want = Position::new(ack.last.commit, ack.last.prepare - n + 1 + k as i64);
                assert_eq!(stored.get(id), Some(&want), "acknowledged event {id} lost");
            }
        }
        // No batch is partial: the events of commit c are exactly seqs start..=c-1, where start
        // is the previous batch's commit (seqs are gap-free from 0).
        let mut start = 0;
        let mut i = 0;
        while i < events.len() {
            let commit = events[i].position.commit;
            let group: Vec<i64> = events[i..]
                .iter()
                .take_while(|e| e.position.commit == commit)
                .map(|e| e.position.prepare)
                .collect();
            let want: Vec<i64> = (start..commit).collect();
            assert_eq!(
                group, want,
                "batch with commit {commit} is partial or out of place"
            );
            start = commit;
            i += group.len();
        }
        assert_eq!(start as usize, events.len());
    }
    Ok(())
}
