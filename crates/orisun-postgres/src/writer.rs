//! Group commit: one writer task per boundary per node, fed by a channel. It takes every queued
//! request, decides and inserts them in one transaction (one lock, one fsync), then answers each
//! caller.

use crate::append::{append_group, AppendRequest, GroupOutcome, Transaction};
use crate::db::Exec;
use crate::error;
use crate::sql::BoundarySql;
use deadpool_postgres::Pool;
use orisun_core::{BoundaryName, Position};
use orisun_store::{AppendOutcome, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Most events one group transaction takes (a single larger request still goes alone).
pub(crate) const MAX_GROUP_EVENTS: usize = 10_000;

/// Most bytes (estimated) one group transaction takes, so that a few large events do not make
/// everyone else's commit wait for a huge one.
pub(crate) const MAX_GROUP_BYTES: usize = 64 << 20;

/// How many requests may wait for a boundary's writer before callers wait to enqueue.
pub(crate) const QUEUE: usize = 4_096;

/// What a boundary's writer and listeners share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The boundary.
    pub name: BoundaryName,
    /// Its statements.
    pub sql: BoundarySql,
    /// Its NOTIFY channel.
    pub channel: String,
    /// Its head watch: moved after local commits, NOTIFYs and polls.
    pub head: watch::Sender<Position>,
}

impl Shared {
    /// Moves the head watch forward (never back: wake-ups from several sources may arrive out
    /// of order).
    pub(crate) fn advance(&self, position: Position) {
        self.head.send_if_modified(|current| {
            if position > *current {
                *current = position;
                true
            } else {
                false
            }
        });
    }
}

/// One caller's request and where to send its answer.
pub(crate) struct Job {
    /// The request.
    pub request: AppendRequest,
    /// The caller's answer.
    pub reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    /// The estimated size of the request's events in bytes.
    pub size: usize,
    /// The caller's span, parent of the span of the group commit that serves it.
    pub span: tracing::Span,
}

/// Starts the writer of a boundary; it ends when every sender is dropped.
pub(crate) fn spawn(pool: Pool, cache_statements: bool, shared: Arc<Shared>) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(
        Connections {
            pool,
            cache_statements,
        },
        shared,
        rx,
    ));
    tx
}

/// Where a writer gets its connections, and how it runs statements on them.
struct Connections {
    pool: Pool,
    /// See [`crate::PostgresConfig::statement_cache`].
    cache_statements: bool,
}

async fn run(pool: Connections, shared: Arc<Shared>, mut rx: mpsc::Receiver<Job>) {
    // A request that did not fit in the previous group starts the next one.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut events = first.request.events.len();
        let mut bytes = first.size;
        let mut jobs = vec![first];
        while events < MAX_GROUP_EVENTS && bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    if events + job.request.events.len() > MAX_GROUP_EVENTS
                        || bytes + job.size > MAX_GROUP_BYTES
                    {
                        carried = Some(job);
                        break;
                    }
                    events += job.request.events.len();
                    bytes += job.size;
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        // A caller that stopped waiting (its future was dropped) gets nothing appended.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let requests: Vec<&AppendRequest> = jobs.iter().map(|j| &j.request).collect();
        let group_events: usize = requests.iter().map(|r| r.events.len()).sum();
        metrics::histogram!("orisun_group_commit_requests", "backend" => "postgres", "boundary" => shared.name.as_str().to_owned())
            .record(requests.len() as f64);
        metrics::histogram!("orisun_group_commit_events", "backend" => "postgres", "boundary" => shared.name.as_str().to_owned())
            .record(group_events as f64);
        // One span per caller, each a child of that caller's span, open until it is answered.
        let spans: Vec<tracing::Span> = jobs
            .iter()
            .map(|j| tracing::info_span!(parent: &j.span, "group_commit", backend = "postgres", requests = requests.len(), events = group_events))
            .collect();
        let outcomes = match commit(&pool, &shared, &requests, &spans).await {
            Ok(outcomes) => outcomes,
            Err(e) if requests.len() > 1 && !matches!(e, StoreError::Unavailable { .. }) => {
                // Not a lost connection, so possibly caused by one request's data: retry each
                // alone so that it fails alone.
                tracing::warn!(boundary = %shared.name, error = %e, "group commit failed; retrying requests one by one");
                let mut outcomes = Vec::with_capacity(requests.len());
                for (request, span) in requests.iter().zip(&spans) {
                    let alone = std::slice::from_ref(span);
                    outcomes.push(match commit(&pool, &shared, &[request], alone).await {
                        Ok(mut o) => o
                            .pop()
                            .unwrap_or_else(|| Err(StoreError::internal("no outcome"))),
                        Err(e) => Err(e),
                    });
                }
                outcomes
            }
            Err(e) => requests.iter().map(|_| Err(error::replicate(&e))).collect(),
        };
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            // The caller may have gone meanwhile; the append stands (a retry is idempotent).
            let _ = job.reply.send(outcome);
        }
        drop(spans);
    }
}

/// Runs one group transaction and returns each request's outcome.
async fn commit(
    connections: &Connections,
    shared: &Shared,
    requests: &[&AppendRequest],
    spans: &[tracing::Span],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
    let client = connections
        .pool
        .get()
        .await
        .map_err(|e| error::pool("append", e))?;
    let exec = Exec::pooled(&client, connections.cache_statements);
    match append_group(
        exec,
        &shared.sql,
        &shared.channel,
        requests,
        Transaction::Own,
        spans,
    )
    .await
    {
        Ok(GroupOutcome {
            outcomes,
            head,
            appended,
        }) => {
            if appended {
                shared.advance(head);
            }
            Ok(outcomes)
        }
        Err(e) => {
            // The transaction may still be open (and aborted): end it before the connection
            // goes back to the pool, or drop the connection if even that fails.
            if exec.simple("ROLLBACK").await.is_err() {
                drop(deadpool_postgres::Object::take(client));
            }
            Err(e)
        }
    }
}
