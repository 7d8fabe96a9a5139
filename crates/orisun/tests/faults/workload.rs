//! The clients of a crash test: each saves batches of 1 to `max_batch` events, half of them on a
//! DCB condition over its own events or its group's (two clients per group), so that most
//! conditions pass and some conflict, and records what the server answered for each batch until its connection
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
    /// The tag (key, value) the condition covers: the client's own (`client`) or its
    /// group's, shared with another client (`group`).
    pub scope: (String, String),
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

/// The query of the events carrying one tag.
pub fn tag_query(key: &str, value: &str) -> Query {
    Query::new([Criterion::new([Tag::new(key, value)])])
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
                    format!("c{n}"),
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
    me: String,
    group: String,
    max_batch: usize,
    mut rng: StdRng,
    acks: Arc<AtomicU64>,
    killing: Arc<AtomicBool>,
) -> Result<Vec<Batch>, String> {
    let boundary = orders();
    // The latest positions of this group's and this client's events that it knows of.
    let mut known = Position::BEFORE_FIRST;
    let mut mine: Option<Position> = None;
    let mut sent = Vec::new();
    loop {
        let size = batch_size(&mut rng, max_batch);
        let mut data = JsonObject::new();
        data.insert("group".into(), group.clone().into());
        data.insert("client".into(), me.clone().into());
        let events: Vec<NewEvent> = (0..size)
            .map(|_| {
                NewEvent::new(Uuid::new_v4(), "Placed", data.clone(), JsonObject::new())
                    .expect("valid event")
            })
            .collect();
        let ids = events.iter().map(|e| e.event_id).collect();
        // Half the saves are conditional: mostly on the client's own events, against the
        // position of its last save (these pass, unless the position is stale after a
        // restart); the rest on its group's, against a context read just before, as a command
        // handler would (these conflict when the partner saved in between).
        let (scope, expected) = if rng.random_bool(0.5) {
            let own = rng.random_bool(0.75);
            // The context is read for a group condition, and for the client's own the first
            // time (the client's earlier lives, before a restart, saved under the same tag).
            if !own || mine.is_none() {
                let key = if own { "client" } else { "group" };
                let value = if own { &me } else { &group };
                let criterion = Criterion::new([Tag::new(key, value.as_str())]);
                let context = match client.latest_by_criteria(&boundary, &[criterion]).await {
                    Ok(latest) => latest.context_position,
                    Err(_) if killing.load(Ordering::SeqCst) => return Ok(sent),
                    Err(e) => return Err(format!("a read failed while the server was up: {e:?}")),
                };
                if own {
                    mine = Some(context);
                } else {
                    known = known.max(context);
                }
            }
            if own {
                (("client".to_owned(), me.clone()), mine)
            } else {
                (("group".to_owned(), group.clone()), Some(known))
            }
        } else {
            (("group".to_owned(), group.clone()), None)
        };
        let condition = expected.map(|at| AppendCondition::new(tag_query(&scope.0, &scope.1), at));
        let answer = client.append(&boundary, events, condition).await;
        let outcome = match answer {
            Ok(done) => {
                acks.fetch_add(1, Ordering::SeqCst);
                known = known.max(done.position);
                mine = mine.max(Some(done.position));
                Outcome::Acked(done.position)
            }
            Err(StoreError::ConditionFailed { actual, .. }) => {
                if scope.0 == "client" {
                    mine = mine.max(Some(actual));
                }
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
            scope,
            expected,
            outcome,
        });
        if outcome == Outcome::Uncertain {
            return Ok(sent);
        }
    }
}
