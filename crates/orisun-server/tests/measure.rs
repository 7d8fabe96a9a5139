//! Delivery measurements, not tests (`#[ignore]`, no timing assertions): commit-to-subscriber
//! latency at a fixed rate on one node and across two, and catch-up throughput over a large
//! boundary. Run them in a release build, one at a time:
//!
//! ```sh
//! cargo test --release -p orisun-server --test measure -- --ignored --nocapture --test-threads=1
//! ```
//!
//! `ORISUN_MEASURE_SECONDS` (default 10) sets the latency run's length, `ORISUN_MEASURE_RATE`
//! (default 1000) its events per second, `ORISUN_MEASURE_EVENTS` (default 1,000,000) the size
//! of the catch-up boundary.

mod common;
mod nodes;

use common::{event, pos, Client, TestDb};
use futures::StreamExt;
use nodes::{pg_args, save, subscribe, subscription, Node};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The flags of an embedded-backend node in `dir`.
fn sqlite_args(dir: &tempfile::TempDir, synchronous: &str) -> Vec<String> {
    [
        "--backend",
        "sqlite",
        "--data-dir",
        &dir.path().display().to_string(),
        "--sqlite-synchronous",
        synchronous,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Percentile `p` (0..=100) of sorted `samples`.
fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    eprintln!(
        "{label}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        percentile(&samples, 50.0).as_secs_f64() * 1e3,
        percentile(&samples, 90.0).as_secs_f64() * 1e3,
        percentile(&samples, 99.0).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// Writes single-event saves at `rate` per second for `seconds` (open loop: a save is sent at
/// each tick whether or not the previous ones were answered) through `writers`; every event
/// carries its send time. Each subscriber in `readers` (opened before the first save) records
/// receive time - send time; the first second is a warm-up and not recorded.
async fn latency(label: &str, writers: Vec<Client>, readers: Vec<(String, Client)>) {
    let seconds: u64 = env_or("ORISUN_MEASURE_SECONDS", 10);
    let rate: u64 = env_or("ORISUN_MEASURE_RATE", 1_000);
    let total = seconds * rate;
    let base = Instant::now();
    let mut followers = Vec::new();
    for (name, mut client) in readers {
        let mut stream = subscribe(&mut client, subscription("orders", None, "", vec![])).await;
        followers.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(total as usize);
            let mut received = 0;
            while received < total {
                let e = stream.next().await.expect("stream open").expect("event");
                let now = base.elapsed();
                let data: serde_json::Value = serde_json::from_str(&e.data).expect("json");
                let sent = Duration::from_nanos(data["sent_ns"].as_u64().expect("sent_ns"));
                received += 1;
                if sent >= Duration::from_secs(1) {
                    samples.push(now.saturating_sub(sent));
                }
            }
            (name, samples)
        }));
    }
    let saves = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::with_capacity(total as usize);
    for n in 0..total {
        ticker.tick().await;
        let mut client = writers[n as usize % writers.len()].clone();
        let saves = saves.clone();
        inflight.push(tokio::spawn(async move {
            let sent = base.elapsed();
            let e = event("Tick", json!({"sent_ns": sent.as_nanos() as u64, "n": n}));
            save(&mut client, "orders", vec![e]).await;
            if sent >= Duration::from_secs(1) {
                saves.lock().await.push(base.elapsed() - sent);
            }
        }));
    }
    for task in inflight {
        task.await.expect("save");
    }
    eprintln!("--- {label}: {rate} ev/s for {seconds} s, single-event saves");
    summary("save round trip", saves.lock().await.clone());
    for follower in followers {
        let (name, samples) = follower.await.expect("follower");
        summary(&format!("send -> {name} subscriber"), samples);
    }
}

/// Writers (8 connections) on node A, one subscriber on A and one on B, same database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn latency_postgres_one_node_and_across_two() {
    let db = TestDb::create().await;
    let a = Node::start(pg_args(&db, &[])).await;
    let b = Node::start(pg_args(&db, &[])).await;
    let mut writers = Vec::new();
    for _ in 0..8 {
        writers.push(a.client().await);
    }
    let readers = vec![
        ("same-node (A)".to_owned(), a.client().await),
        ("other-node (B)".to_owned(), b.client().await),
    ];
    latency("postgres", writers, readers).await;
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn latency_sqlite_one_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Node::start(sqlite_args(&dir, "FULL")).await;
    let mut writers = Vec::new();
    for _ in 0..8 {
        writers.push(server.client().await);
    }
    let readers = vec![("same-node".to_owned(), server.client().await)];
    latency("sqlite (synchronous FULL)", writers, readers).await;
    server.stop().await.expect("stop");
}

/// Stores `total` events in `orders` (batches of 10,000 from 4 clients), then times one
/// subscriber reading them all from the beginning over gRPC.
async fn catch_up(label: &str, writers: Vec<Client>, mut reader: Client) {
    let total: usize = env_or("ORISUN_MEASURE_EVENTS", 1_000_000);
    let batch = 10_000.min(total);
    let loading = Instant::now();
    let mut tasks = Vec::new();
    let batches = total / batch;
    for w in 0..writers.len() {
        let mut client = writers[w].clone();
        let count = writers.len();
        tasks.push(tokio::spawn(async move {
            for i in (w..batches).step_by(count) {
                let events = (0..batch)
                    .map(|k| {
                        event(
                            "Loaded",
                            json!({"batch": i, "k": k, "customer": format!("c{}", k % 100)}),
                        )
                    })
                    .collect();
                save(&mut client, "orders", events).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("loader");
    }
    let stored = batches * batch;
    let load = loading.elapsed();
    let started = Instant::now();
    let mut stream = subscribe(
        &mut reader,
        subscription("orders", Some(pos(-1, -1)), "catch-up", vec![]),
    )
    .await;
    let mut first = None;
    let mut received = 0;
    let mut last = (0, -1);
    while received < stored {
        let e = stream.next().await.expect("stream open").expect("event");
        first.get_or_insert_with(|| started.elapsed());
        let p = e.position.expect("position");
        assert!((p.commit_position, p.prepare_position) > last);
        last = (p.commit_position, p.prepare_position);
        received += 1;
    }
    let took = started.elapsed();
    eprintln!(
        "--- {label}: loaded {stored} events in {:.1} s ({:.0} ev/s); catch-up read them all in \
         {:.2} s = {:.0} ev/s (first event after {:.1} ms)",
        load.as_secs_f64(),
        stored as f64 / load.as_secs_f64(),
        took.as_secs_f64(),
        stored as f64 / took.as_secs_f64(),
        first.unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn catch_up_postgres() {
    let db = TestDb::create().await;
    let node = Node::start(pg_args(&db, &[])).await;
    let writers = vec![node.client().await, node.client().await];
    catch_up("postgres", writers, node.client().await).await;
    node.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn catch_up_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Node::start(sqlite_args(&dir, "NORMAL")).await;
    let writers = vec![server.client().await, server.client().await];
    catch_up("sqlite", writers, server.client().await).await;
    server.stop().await.expect("stop");
}
