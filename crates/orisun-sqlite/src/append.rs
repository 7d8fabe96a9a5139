//! Deciding and inserting one group inside the writer's transaction (see `writer` for the
//! thread that groups the queued appends and answers the callers).
//!
//! One `IMMEDIATE` transaction reads the head, then handles the requests in queue order:
//! idempotency, the expected position, the condition, then the inserts. A request that is
//! rejected has written nothing and fails alone; a request whose writes fail rolls the
//! transaction back, and the writer runs the group again without it. Because the accepted
//! requests are already inserted into the open transaction, the condition of a later request
//! sees them exactly as if they had committed before it. One `COMMIT` then makes the whole group
//! durable.
//!
//! Positions are assigned inside the transaction that makes them visible, by the only writer of
//! the file, so what readers see is always a prefix of the log.

use crate::read::{self, Tail};
use crate::sql;
use crate::tag_merge::TagMerge;
use crate::tag_tail::TagTail;
use chrono::Utc;
use orisun_core::{AppendCondition, NewEvent, Position, TagHash};
use orisun_store::rules::{batch_positions, classify_retry, validate_expected};
use orisun_store::{AppendOutcome, StoreError};
use rusqlite::{params, Connection, TransactionBehavior};

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

/// What one append asks for.
pub(crate) struct AppendRequest {
    /// The batch, already checked by `rules::validate_batch`.
    pub events: Vec<NewEvent>,
    /// One prepared row per event.
    pub rows: Vec<EventRow>,
    /// The consistency check, if any.
    pub condition: Option<AppendCondition>,
}

/// Runs one group in one transaction, skipping the `excluded` requests. Returns each other
/// request's outcome and the new head. On error the transaction is rolled back: nothing of
/// the group is stored, and the tag rows it added are taken out of the writer's copy (`tail`).
/// `tag_log_limit` is how many rows `tag_log` collects before they are moved into
/// `tags_recent`; `merge` moves `tags_recent` on into `tags` as rows arrive there, and is
/// advanced only if the group commits.
///
/// No savepoints are needed for a request that is rejected: every check runs before the
/// request writes anything. Savepoints would make SQLite copy every page the group touches
/// into a statement journal, which costs a third of the write throughput.
#[allow(clippy::type_complexity)]
pub(crate) fn append_group(
    conn: &mut Connection,
    tail: &mut TagTail,
    tag_log_limit: usize,
    merge: &mut TagMerge,
    requests: &[AppendRequest],
    excluded: &[Option<StoreError>],
    spans: &[tracing::Span],
) -> Result<(Vec<Option<Result<AppendOutcome, StoreError>>>, Position), GroupError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read, not cached: correctness never depends on this thread being the only writer.
    let start = read::head(&tx)?;
    let micros = Utc::now().timestamp_micros();
    // A group with as many tag rows as the log holds (a large batch) writes them straight
    // into `tags_recent`, sorted, after moving the log there: passing through the log would
    // write them twice.
    let group_rows: usize = requests
        .iter()
        .zip(excluded)
        .filter(|(_, excluded)| excluded.is_none())
        .map(|(request, _)| request.tag_rows())
        .sum();
    let direct = group_rows >= tag_log_limit;
    // Rows this group adds to `tags_recent`.
    let mut added = 0;
    if direct && tail.rows() > 0 {
        added += move_tag_log(&tx)?;
    }
    let mut head = start;
    let mut results = Vec::with_capacity(requests.len());
    let ran = requests
        .iter()
        .zip(excluded)
        .enumerate()
        .try_for_each(|(index, (request, excluded))| {
            if excluded.is_some() {
                results.push(None);
                return Ok(());
            }
            let tags = if direct {
                Tags::Direct
            } else {
                Tags::Log(&mut *tail)
            };
            // Inside the caller's span (`group_commit`), so its condition check is a child.
            let _caller = spans.get(index).map(tracing::Span::enter);
            match request.apply(&tx, tags, head, micros, &mut added) {
                Ok(Ok(outcome)) => {
                    if !outcome.already_stored {
                        head = outcome.position;
                    }
                    results.push(Some(Ok(outcome)));
                }
                Ok(Err(rejected)) => results.push(Some(Err(rejected))),
                Err(err) => return Err(GroupError::Request { index, err }),
            }
            Ok(())
        })
        .and_then(|()| {
            let (next, _) = merge.run(&tx, added)?;
            tx.commit()?;
            *merge = next;
            Ok(())
        });
    match ran {
        // The log was moved into `tags_recent` with the group.
        Ok(()) if direct => tail.clear(),
        Ok(()) => {}
        // Rolled back: a direct group left the log and the writer's copy as they were.
        Err(e) if direct => return Err(e),
        Err(e) => {
            tail.truncate_after(start.prepare);
            return Err(e);
        }
    }
    Ok((results, head))
}

/// Moves every row of `tag_log` into `tags_recent` as runs, sorted by tag, so that consecutive
/// events that share a tag cost one row. Returns the number of rows `tags_recent` gained.
pub(crate) fn move_tag_log(conn: &Connection) -> rusqlite::Result<usize> {
    let added = conn.prepare_cached(sql::MOVE_TAG_LOG)?.execute([])?;
    conn.prepare_cached(sql::CLEAR_TAG_LOG)?.execute([])?;
    Ok(added)
}

/// Returns the runs of `rows` (sorted `(tag, seq)` pairs): one `(tag, first, last)` per
/// stretch of consecutive seqs of one tag.
fn runs<'a>(rows: &[(&'a TagHash, i64)]) -> Vec<(&'a TagHash, i64, i64)> {
    let mut runs: Vec<(&TagHash, i64, i64)> = Vec::new();
    for &(tag, seq) in rows {
        match runs.last_mut() {
            Some((t, _, last)) if *t == tag && *last + 1 == seq => *last = seq,
            _ => runs.push((tag, seq, seq)),
        }
    }
    runs
}

/// Where the tag rows of a group's requests go.
enum Tags<'a> {
    /// Appended to `tag_log`, and to the writer's copy of it.
    Log(&'a mut TagTail),
    /// Straight into `tags_recent`, sorted by key: the group is as large as the log, which was
    /// moved there at the start of the transaction, so conditions read no log.
    Direct,
}

impl Tags<'_> {
    /// Where conditions find the rows of `tag_log`.
    fn tail(&self) -> Tail<'_> {
        match self {
            Tags::Log(tail) => Tail::Memory(tail),
            Tags::Direct => Tail::Empty,
        }
    }
}

/// Why a group transaction was rolled back.
pub(crate) enum GroupError {
    /// A request failed while it was checked or written.
    Request {
        /// Its place in the group.
        index: usize,
        /// What SQLite reported.
        err: rusqlite::Error,
    },
    /// The transaction itself failed (begin, head, commit).
    Group(rusqlite::Error),
}

impl From<rusqlite::Error> for GroupError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Group(err)
    }
}

impl AppendRequest {
    /// How many tag rows the request writes if it is stored.
    fn tag_rows(&self) -> usize {
        self.rows.iter().map(|row| row.tags.len()).sum()
    }

    /// Checks and inserts one request in the open transaction, adding to `added` the rows it
    /// writes into `tags_recent`. The outer error is a database failure; the inner one is a
    /// rejection of this request (idempotency or condition), which is always decided before the
    /// request writes anything.
    fn apply(
        &self,
        conn: &Connection,
        mut tags: Tags<'_>,
        head: Position,
        micros: i64,
        added: &mut usize,
    ) -> rusqlite::Result<Result<AppendOutcome, StoreError>> {
        let stored = read::stored_positions(conn, self.events.iter().map(|e| e.event_id))?;
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
            let _check = tracing::info_span!("condition_check", backend = "sqlite").entered();
            if let Err(err) = validate_expected(condition.after, head) {
                return Ok(Err(err));
            }
            if let Some(actual) = read::latest_match_after(
                conn,
                tags.tail(),
                &condition.query,
                condition.after,
                head,
            )? {
                return Ok(Err(StoreError::ConditionFailed {
                    expected: condition.after,
                    actual,
                }));
            }
        }
        let mut insert_event = conn.prepare_cached(sql::INSERT_EVENT)?;
        let mut last = head;
        let mut indexed: Vec<(&TagHash, i64)> = Vec::new();
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
            match tags {
                Tags::Log(ref mut tail) => {
                    let mut insert = conn.prepare_cached(sql::INSERT_TAG_LOG)?;
                    for tag in &row.tags {
                        insert.execute(params![position.prepare, &tag[..]])?;
                        tail.push(*tag, position.prepare);
                    }
                }
                Tags::Direct => indexed.extend(row.tags.iter().map(|t| (t, position.prepare))),
            }
            last = position;
        }
        if !indexed.is_empty() {
            // In key order, so that the rows of one tag land on its leaf together, and as runs:
            // consecutive events of the batch that share a tag cost one row.
            indexed.sort_unstable();
            let mut insert = conn.prepare_cached(sql::INSERT_TAG_RECENT)?;
            for (tag, first, last) in runs(&indexed) {
                insert.execute(params![&tag[..], first, (last > first).then_some(last)])?;
                *added += 1;
            }
        }
        Ok(Ok(AppendOutcome {
            position: last,
            already_stored: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_join_consecutive_seqs_of_one_tag() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let rows = [(&a, 3), (&a, 4), (&a, 5), (&a, 7), (&b, 8), (&b, 9)];
        assert_eq!(runs(&rows), [(&a, 3, 5), (&a, 7, 7), (&b, 8, 9)]);
        assert!(runs(&[]).is_empty());
    }
}
