//! The writer of one boundary: a thread that owns the write connection and group-commits the
//! queued appends.
//!
//! The thread takes every append waiting in its queue (up to `max_batch_events` events), opens
//! one `IMMEDIATE` transaction, and handles the requests in queue order, each inside a savepoint:
//! idempotency, the expected position, the condition, then the inserts. A request that is
//! rejected rolls back its savepoint and fails alone. Because the accepted requests are already
//! inserted into the open transaction, the condition of a later request sees them exactly as if
//! they had committed before it. One `COMMIT` (one fsync) then makes the whole group durable, and
//! only then are the head watch and the callers told.
//!
//! Positions are assigned inside the transaction that makes them visible, by the only writer of
//! the file, so what readers see is always a prefix of the log.

use crate::error::{db_error, replicate};
use crate::sql;
use chrono::Utc;
use orisun_core::{AppendCondition, NewEvent, Position, TagHash};
use orisun_store::rules::{batch_positions, classify_retry, validate_expected};
use orisun_store::{AppendOutcome, StoreError};
use rusqlite::{params, Connection, TransactionBehavior};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

/// How many append requests may wait for the writer before callers wait to enqueue.
pub(crate) const QUEUE_CAPACITY: usize = 1024;

/// What the writer stores for one event, prepared by the caller so that JSON encoding and tag
/// hashing run on the callers' threads, in parallel, not on the single writer thread.
pub(crate) struct EventRow {
    /// The data as JSON text.
    data: String,
    /// The metadata as JSON text.
    metadata: String,
    /// The distinct tag hashes of the data.
    tags: Vec<TagHash>,
}

impl EventRow {
    /// Prepares the row of `event`.
    pub(crate) fn new(event: &NewEvent) -> Self {
        Self {
            data: event.data_json(),
            metadata: event.metadata_json(),
            tags: event.tag_hashes(),
        }
    }
}

/// One append request waiting for the writer.
pub(crate) struct AppendJob {
    /// What to append.
    pub request: AppendRequest,
    /// Where the outcome goes, once the group is committed.
    pub reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// What one append asks for.
pub(crate) struct AppendRequest {
    /// The batch, already checked by `rules::validate_batch`.
    pub events: Vec<NewEvent>,
    /// One prepared row per event.
    pub rows: Vec<EventRow>,
    /// The consistency check, if any.
    pub condition: Option<AppendCondition>,
}

/// The writer thread's state.
pub(crate) struct Writer {
    /// The boundary's name, for logs and errors.
    pub boundary: String,
    /// The only connection that writes this boundary's file.
    pub conn: Connection,
    /// The queue of append requests; the thread ends when every sender is gone.
    pub jobs: mpsc::Receiver<AppendJob>,
    /// Told the new head after each commit.
    pub head: Arc<watch::Sender<Position>>,
    /// The most events one group takes.
    pub max_batch_events: usize,
}

impl Writer {
    /// Runs until the queue is closed and drained.
    pub(crate) fn run(mut self) {
        tracing::debug!(boundary = %self.boundary, "writer started");
        let mut carried: Option<AppendJob> = None;
        loop {
            let first = match carried.take() {
                Some(job) => job,
                None => match self.jobs.blocking_recv() {
                    Some(job) => job,
                    None => break,
                },
            };
            let mut events = first.request.events.len();
            let mut group = vec![first];
            while events < self.max_batch_events {
                let Ok(job) = self.jobs.try_recv() else {
                    break;
                };
                if events + job.request.events.len() > self.max_batch_events {
                    carried = Some(job);
                    break;
                }
                events += job.request.events.len();
                group.push(job);
            }
            self.commit_group(group, events);
        }
        tracing::debug!(boundary = %self.boundary, "writer stopped");
    }

    /// Commits one group and answers every request in it.
    fn commit_group(&mut self, group: Vec<AppendJob>, events: usize) {
        let started = Instant::now();
        let requests = group.len();
        let (requests_in_order, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|j| (j.request, j.reply)).unzip();
        match self.try_commit(&requests_in_order) {
            Ok((results, head)) => {
                self.head.send_if_modified(|current| {
                    let moved = *current != head;
                    *current = head;
                    moved
                });
                tracing::debug!(
                    boundary = %self.boundary,
                    requests,
                    events,
                    ?head,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "group committed"
                );
                for (reply, result) in replies.into_iter().zip(results) {
                    // A caller that gave up is no reason to stop.
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                let err = db_error(&self.boundary, "group commit", err);
                for reply in replies {
                    let _ = reply.send(Err(replicate(&err)));
                }
            }
        }
    }

    /// Runs one group in one transaction. Returns each request's outcome and the new head, or the
    /// error that failed the whole group (nothing of it is stored then).
    #[allow(clippy::type_complexity)]
    fn try_commit(
        &mut self,
        jobs: &[AppendRequest],
    ) -> rusqlite::Result<(Vec<Result<AppendOutcome, StoreError>>, Position)> {
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read, not cached: correctness never depends on this thread being the only writer.
        let mut head = sql::head(&tx)?;
        let micros = Utc::now().timestamp_micros();
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            let savepoint = tx.savepoint()?;
            match job.apply(&savepoint, head, micros) {
                Ok(Ok(outcome)) => {
                    savepoint.commit()?;
                    if !outcome.already_stored {
                        head = outcome.position;
                    }
                    results.push(Ok(outcome));
                }
                Ok(Err(rejected)) => {
                    savepoint.finish()?;
                    results.push(Err(rejected));
                }
                Err(err) => {
                    // The request's own rows are rolled back; the rest of the group goes on.
                    savepoint.finish()?;
                    results.push(Err(db_error(&self.boundary, "append", err)));
                }
            }
        }
        tx.commit()?;
        Ok((results, head))
    }
}

impl AppendRequest {
    /// Checks and inserts one request in the open transaction. The outer error is a database
    /// failure; the inner one is a rejection of this request (idempotency or condition).
    fn apply(
        &self,
        conn: &Connection,
        head: Position,
        micros: i64,
    ) -> rusqlite::Result<Result<AppendOutcome, StoreError>> {
        let stored = sql::stored_positions(conn, self.events.iter().map(|e| e.event_id))?;
        match classify_retry(&self.events, &stored) {
            Err(err) => return Ok(Err(err)),
            Ok(Some(position)) => {
                return Ok(Ok(AppendOutcome {
                    position,
                    already_stored: true,
                }))
            }
            Ok(None) => {}
        }
        if let Some(condition) = &self.condition {
            if let Err(err) = validate_expected(condition.after, head) {
                return Ok(Err(err));
            }
            if let Some(actual) =
                sql::latest_match_after(conn, &condition.query, condition.after, head)?
            {
                return Ok(Err(StoreError::ConditionFailed {
                    expected: condition.after,
                    actual,
                }));
            }
        }
        let mut insert_event = conn.prepare_cached(
            "INSERT INTO events (seq, commit_pos, event_id, event_type, data, metadata, \
             date_created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut insert_tag = conn.prepare_cached("INSERT INTO tags (h, seq) VALUES (?1, ?2)")?;
        let mut last = head;
        let positions = batch_positions(head.prepare + 1, self.events.len());
        for ((event, row), position) in self.events.iter().zip(&self.rows).zip(positions) {
            insert_event.execute(params![
                position.prepare,
                position.commit,
                &event.event_id.as_bytes()[..],
                event.event_type,
                row.data,
                row.metadata,
                micros,
            ])?;
            for tag in &row.tags {
                insert_tag.execute(params![&tag[..], position.prepare])?;
            }
            last = position;
        }
        Ok(Ok(AppendOutcome {
            position: last,
            already_stored: false,
        }))
    }
}
