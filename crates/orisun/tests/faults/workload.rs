//! The clients of a crash test: each saves batches of 1 to `max_batch` events, half of them on a
//! DCB condition over its group's events (two clients per group, so most conditions pass and
//! some conflict), and records what the server answered for each batch until its connection
//! dies with the server.

use orisun_client::{OrisunClient, RetryPolicy};
use orisun_store::core::{
    AppendCondition, BoundaryName, Criterion, JsonObject, NewEvent, Position, Query, Tag,
};
use orisun_store::{EventStore, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What the server said about one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored, the last event at this position.
    Acked(Position),
    /// Refused: the condition failed. Nothing of it may be stored.
    Rejected,
    /// No answer (the server died): stored entirely or not at all.
    Uncertain,
}

/// One batch a client sent.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Its events' ids, in order.
    pub ids: Vec<Uuid>,
    /// The `group` tag of every event of the batch (what its condition covers).
    pub group: String,
    /// The condition's expected position, for a conditional save.
    pub expected: Option<Position>,
    /// The answer.
    pub outcome: Outcome,
}

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Concurrent clients (two per group).
    pub clients: usize,
    /// The largest batch; sizes are spread log-uniformly from 1 so small ones dominate.
    pub max_batch: usize,
    /// Seed of the sizes and choices.
    pub seed: u64,
}

/// A client of `url` that never retries, so each answer is the server's own.
pub fn client(url: &str) -> OrisunClient {
    OrisunClient::builder(url)
        .credentials("admin", "changeit")
        .retry_policy(RetryPolicy::NEVER)
        .request_timeout(Some(Duration::from_secs(30)))
        .build()
        .expect("client configuration")
}

/// The boundary every fault test writes.
pub fn orders() -> BoundaryName {
    BoundaryName::new("orders").expect("valid name")
}

/// The query of a group's events.
pub fn group_query(group: &str) -> Query {
    Query::new([Criterion::new([Tag::new("group", group)])])
}

/// Clients saving until their server dies.
pub struct Clients {
    tasks: Vec<tokio::task::JoinHandle<Result<Vec<Batch>, String>>>,
    /// Acknowledged batches so far, all clients together.
    pub acks: Arc<AtomicU64>,
    /// Set by the test just before it kills the server: failures after it are expected.
    pub killing: Arc<AtomicBool>,
}

impl Clients {
    /// Starts `load.clients` clients of `url`.
    pub fn start(url: &str, load: Load) -> Self {
        let acks = Arc::new(AtomicU64::new(0));
        let killing = Arc::new(AtomicBool::new(false));
        let tasks = (0..load.clients)
            .map(|n| {
                let client = client(url);
                let acks = Arc::clone(&acks);
                let killing = Arc::clone(&killing);
                let rng = StdRng::seed_from_u64(load.seed.wrapping_mul(1_000_003) + n as u64);
                let group = format!("g{}", n / 2);
                tokio::spawn(save_until_failure(
                    client,
                    group,
                    load.max_batch,
                    rng,
                    acks,
                    killing,
                ))
            })
            .collect();
        Self {
            tasks,
            acks,
            killing,
        }
    }

    /// Waits for every client to stop (they stop at the first failure after the kill) and
    /// returns every batch they sent. Fails if a client saw an error while the server was up.
    pub async fn finish(self) -> Vec<Batch> {
        let mut batches = Vec::new();
        for task in self.tasks {
            let joined = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("a client stops within 60 s of the kill")
                .expect("client task");
            match joined {
                Ok(mut sent) => batches.append(&mut sent),
                Err(e) => panic!("{e}"),
            }
        }
        batches
    }
}

fn batch_size(rng: &mut StdRng, max: usize) -> usize {
    let exponent: f64 = rng.random_range(0.0..=1.0);
    ((max as f64).powf(exponent).round() as usize).clamp(1, max)
}

async fn save_until_failure(
    client: OrisunClient,
    group: String,
    max_batch: usize,
    mut rng: StdRng,
    acks: Arc<AtomicU64>,
    killing: Arc<AtomicBool>,
) -> Result<Vec<Batch>, String> {
    let boundary = orders();
    // The latest position of this group's events that this client knows of.
    let mut known = Position::BEFORE_FIRST;
    let mut sent = Vec::new();
    loop {
        let size = batch_size(&mut rng, max_batch);
        let mut data = JsonObject::new();
        data.insert("group".into(), group.clone().into());
        let events: Vec<NewEvent> = (0..size)
            .map(|_| {
                NewEvent::new(Uuid::new_v4(), "Placed", data.clone(), JsonObject::new())
                    .expect("valid event")
            })
            .collect();
        let ids = events.iter().map(|e| e.event_id).collect();
        let expected = rng.random_bool(0.5).then_some(known);
        let condition = expected.map(|at| AppendCondition::new(group_query(&group), at));
        let answer = client.append(&boundary, events, condition).await;
        let outcome = match answer {
            Ok(done) => {
                acks.fetch_add(1, Ordering::SeqCst);
                known = known.max(done.position);
                Outcome::Acked(done.position)
            }
            Err(StoreError::ConditionFailed { actual, .. }) => {
                known = known.max(actual);
                Outcome::Rejected
            }
            Err(e) if killing.load(Ordering::SeqCst) => {
                let _ = e;
                Outcome::Uncertain
            }
            Err(e) => return Err(format!("a save failed while the server was up: {e:?}")),
        };
        sent.push(Batch {
            ids,
            group: group.clone(),
            expected,
            outcome,
        });
        if outcome == Outcome::Uncertain {
            return Ok(sent);
        }
    }
}
