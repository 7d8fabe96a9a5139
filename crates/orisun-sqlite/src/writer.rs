//! The writer of one boundary: a thread that owns the write connection and group-commits the
//! queued appends.
//!
//! The thread takes every append waiting in its queue (up to `max_batch_events` events) and
//! hands the group to `append::append_group`, which decides and inserts it in one transaction.
//! If one request's writes fail, the transaction is rolled back and the group runs again without
//! it. One `COMMIT` (one fsync) makes the whole group durable, and only then are the head watch
//! and the callers told. Once `tag_log` is full, it is moved into `tags_recent` in a transaction
//! of its own, after the callers were answered; `tags_recent` moves on into `tags` a slice at a
//! time inside those transactions (`tag_merge`).

use crate::append::{self, AppendRequest};
use crate::error::{db_error, replicate};
use crate::tag_merge::TagMerge;
use crate::tag_tail::TagTail;
use orisun_core::Position;
use orisun_store::{AppendOutcome, StoreError};
use rusqlite::{Connection, TransactionBehavior};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

/// How many append requests may wait for the writer before callers wait to enqueue.
pub(crate) const QUEUE_CAPACITY: usize = 1024;

/// One append request waiting for the writer.
pub(crate) struct AppendJob {
    /// What to append.
    pub request: AppendRequest,
    /// Where the outcome goes, once the group is committed.
    pub reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    /// The caller's span, parent of the span of the group commit that serves it (traces
    /// cross from the caller's task to this thread through it).
    pub span: tracing::Span,
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
    /// The rows of `tag_log`, the newest part of the tag index, which conditions read here.
    pub tail: TagTail,
    /// How many rows `tag_log` collects before they are moved into `tags_recent`.
    pub tag_log_limit: usize,
    /// When the slices of `tags_recent` move into `tags`.
    pub merge: TagMerge,
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
        let size = group.len();
        metrics::histogram!("orisun_group_commit_requests", "backend" => "sqlite", "boundary" => self.boundary.clone())
            .record(size as f64);
        metrics::histogram!("orisun_group_commit_events", "backend" => "sqlite", "boundary" => self.boundary.clone())
            .record(events as f64);
        // One span per caller, each a child of that caller's span, open until it is answered.
        let mut spans = Vec::with_capacity(size);
        let (requests, replies): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|j| {
                spans.push(tracing::info_span!(parent: &j.span, "group_commit", backend = "sqlite", requests = size, events));
                (j.request, j.reply)
            })
            .unzip();
        let mut excluded: Vec<Option<StoreError>> = (0..size).map(|_| None).collect();
        let mut retried = false;
        let committed = loop {
            match append::append_group(
                &mut self.conn,
                &mut self.tail,
                self.tag_log_limit,
                &mut self.merge,
                &requests,
                &excluded,
                &spans,
            ) {
                Ok(committed) => break Ok(committed),
                // One request's writes failed (too big, disk full...): the transaction is rolled
                // back; run the group again without it, once.
                Err(append::GroupError::Request { index, err }) if !retried => {
                    excluded[index] = Some(db_error(&self.boundary, "append", err));
                    retried = true;
                }
                Err(append::GroupError::Request { err, .. } | append::GroupError::Group(err)) => {
                    break Err(db_error(&self.boundary, "group commit", err))
                }
            }
        };
        match committed {
            Ok((results, head)) => {
                self.head.send_if_modified(|current| {
                    let moved = *current != head;
                    *current = head;
                    moved
                });
                tracing::debug!(
                    boundary = %self.boundary,
                    requests = size,
                    events,
                    ?head,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "group committed"
                );
                let results = results.into_iter().zip(excluded).map(|(result, excluded)| {
                    excluded.map_or_else(|| result.expect("every request ran or was excluded"), Err)
                });
                for (reply, result) in replies.into_iter().zip(results) {
                    // A caller that gave up is no reason to stop.
                    let _ = reply.send(result);
                }
                if self.tail.rows() >= self.tag_log_limit {
                    self.move_tag_log();
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(replicate(&err)));
                }
            }
        }
    }

    /// Moves every row of `tag_log` into `tags_recent`, sorted by tag, in one transaction of its
    /// own (after the group's callers were answered), with the slices of `tags_recent` then due
    /// to move into `tags`. A failure leaves every table as it was (lookups read all three), to
    /// be retried after the next group.
    fn move_tag_log(&mut self) {
        let started = Instant::now();
        // Logged before the transaction too, so that a crash test can kill the process inside
        // the move (`crates/orisun/tests/fault_crash.rs`).
        tracing::debug!(boundary = %self.boundary, rows = self.tail.rows(), "moving the tag log into the tag index");
        let moved = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                let added = append::move_tag_log(&tx)?;
                let (merge, _) = self.merge.run(&tx, added)?;
                tx.commit()?;
                Ok(merge)
            });
        match moved {
            Ok(merge) => {
                self.merge = merge;
                tracing::debug!(
                    boundary = %self.boundary,
                    rows = self.tail.rows(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "tag log moved into the tag index"
                );
                self.tail.clear();
            }
            Err(e) => {
                tracing::warn!(boundary = %self.boundary, error = %e, "cannot move the tag log into the tag index; retrying after the next group");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::append::EventRow;
    use crate::schema;
    use orisun_core::{AppendCondition, Criterion, JsonObject, NewEvent, Query, Tag};
    use uuid::Uuid;

    fn event(event_type: &str, account: &str) -> NewEvent {
        let mut data = JsonObject::new();
        data.insert("account".into(), account.into());
        NewEvent::new(Uuid::new_v4(), event_type, data, JsonObject::new()).expect("valid")
    }

    fn for_account(account: &str) -> Option<AppendCondition> {
        let query = Query::new([Criterion::new([Tag::new("account", account)])]);
        Some(AppendCondition::new(query, Position::BEFORE_FIRST))
    }

    type Reply = oneshot::Receiver<Result<AppendOutcome, StoreError>>;

    /// Queues `requests` before the writer starts, runs it to completion, and returns the
    /// replies and a connection to inspect the file with.
    fn run_queued(
        requests: Vec<(Vec<NewEvent>, Option<AppendCondition>)>,
        max_batch_events: usize,
        setup_sql: &str,
    ) -> Ran {
        let tag_log_limit = crate::SqliteConfig::DEFAULT_TAG_LOG_ROWS;
        run_queued_with(requests, max_batch_events, setup_sql, tag_log_limit)
    }

    /// [`run_queued`] with a writer that moves its tag log every `tag_log_limit` rows (and keeps
    /// what it moves in `tags_recent`).
    fn run_queued_with(
        requests: Vec<(Vec<NewEvent>, Option<AppendCondition>)>,
        max_batch_events: usize,
        setup_sql: &str,
        tag_log_limit: usize,
    ) -> Ran {
        let merge = TagMerge::new(crate::SqliteConfig::DEFAULT_TAGS_RECENT_ROWS);
        run_queued_merging(requests, max_batch_events, setup_sql, tag_log_limit, merge)
    }

    /// [`run_queued_with`] with the given schedule for moving `tags_recent` into `tags`.
    fn run_queued_merging(
        requests: Vec<(Vec<NewEvent>, Option<AppendCondition>)>,
        max_batch_events: usize,
        setup_sql: &str,
        tag_log_limit: usize,
        merge: TagMerge,
    ) -> Ran {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.db");
        let mut conn =
            schema::open_writer(&path, crate::Synchronous::Off, true).expect("open writer");
        schema::migrate(&mut conn, "b").expect("migrate");
        conn.execute_batch(setup_sql).expect("setup");
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let head = Arc::new(watch::channel(Position::BEFORE_FIRST).0);
        let mut replies: Vec<Reply> = Vec::new();
        for (events, condition) in requests {
            let (reply, rx) = oneshot::channel();
            let rows = events.iter().map(EventRow::new).collect();
            let request = AppendRequest {
                events,
                rows,
                condition,
            };
            jobs.try_send(AppendJob {
                request,
                reply,
                span: tracing::Span::none(),
            })
            .unwrap_or_else(|_| panic!("queue has room"));
            replies.push(rx);
        }
        drop(jobs);
        Writer {
            boundary: "b".into(),
            conn,
            jobs: queue,
            head: Arc::clone(&head),
            max_batch_events,
            tail: TagTail::default(),
            tag_log_limit,
            merge,
        }
        .run();
        let results = replies
            .into_iter()
            .map(|mut rx| rx.try_recv().expect("answered"))
            .collect();
        let inspect = schema::open_reader(&path).expect("open reader");
        let head = *head.borrow();
        Ran {
            results,
            conn: inspect,
            head,
            _dir: dir,
        }
    }

    /// What [`run_queued`] returns.
    struct Ran {
        results: Vec<Result<AppendOutcome, StoreError>>,
        conn: Connection,
        head: Position,
        _dir: tempfile::TempDir,
    }

    fn groups(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(DISTINCT date_created) FROM events", [], |r| {
            r.get(0)
        })
        .expect("count groups")
    }

    #[test]
    fn one_group_sees_its_earlier_requests() {
        let a = event("Opened", "x");
        let d = event("Opened", "z");
        let Ran {
            results,
            conn,
            head,
            _dir: _kept,
        } = run_queued(
            vec![
                (vec![a.clone()], None),
                (vec![event("Opened", "x")], for_account("x")),
                (vec![event("Opened", "y")], for_account("y")),
                (vec![a.clone()], for_account("x")),
                (vec![d, a.clone()], None),
            ],
            100,
            "",
        );
        assert_eq!(groups(&conn), 1, "all five requests committed together");
        let outcome = |r: &Result<AppendOutcome, StoreError>| match r {
            Ok(o) => format!("{} {}", o.position, o.already_stored),
            Err(e) => e.to_string(),
        };
        let got: Vec<String> = results.iter().map(outcome).collect();
        assert_eq!(got[0], "(1, 0) false");
        assert_eq!(
            got[1],
            "OptimisticConcurrencyException:StreamVersionConflict: Expected (-1, -1), Actual (1, 0)"
        );
        assert_eq!(got[2], "(2, 1) false");
        assert_eq!(got[3], "(1, 0) true");
        assert!(matches!(
            results[4],
            Err(StoreError::DuplicateEvents { .. })
        ));
        assert_eq!(head, Position::new(2, 1));
    }

    #[test]
    fn groups_stop_at_max_batch_events() {
        let batch = |n: usize| (0..n).map(|_| event("E", "x")).collect::<Vec<_>>();
        let Ran {
            results,
            conn,
            head,
            _dir: _kept,
        } = run_queued(
            vec![
                (batch(2), None),
                (batch(1), None),
                (batch(2), None),
                (batch(5), None),
                (batch(1), None),
            ],
            3,
            "",
        );
        assert!(results.iter().all(Result::is_ok));
        // [2, 1], [2], [5] (alone, larger than the limit), [1].
        assert_eq!(groups(&conn), 4);
        assert_eq!(head, Position::new(11, 10));
    }

    /// Makes every insert of an event of type `Poison` fail, as a full disk or an oversized row
    /// would.
    const POISON: &str = "CREATE TEMP TRIGGER poison BEFORE INSERT ON main.events \
         WHEN NEW.event_type = 'Poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END;";

    /// Returns the seqs in `table` (`tags`, `tags_recent` or `tag_log`), ascending, with each
    /// run counted once per seq it covers.
    fn tag_seqs(conn: &Connection, table: &str) -> Vec<i64> {
        let last = if table == "tag_log" { "NULL" } else { "last" };
        let mut stmt = conn
            .prepare(&format!("SELECT seq, {last} FROM {table} ORDER BY seq"))
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .expect("query");
        let mut seqs: Vec<i64> = rows
            .flat_map(|r| {
                let (first, last) = r.expect("row");
                first..=last.unwrap_or(first)
            })
            .collect();
        seqs.sort_unstable();
        seqs
    }

    /// Returns the rows of `table` (`tags` or `tags_recent`) as `(seq, last)`, in key order.
    fn tag_runs(conn: &Connection, table: &str) -> Vec<(i64, Option<i64>)> {
        let mut stmt = conn
            .prepare(&format!("SELECT seq, last FROM {table} ORDER BY h, seq"))
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query");
        rows.map(|r| r.expect("row")).collect()
    }

    #[test]
    fn the_tag_log_moves_into_the_tag_index_once_full() {
        // Two tags per event (eventType, account), one event per group, a log of five rows:
        // groups 1-3 fill it to six rows, which are then moved; groups 4-5 stay in the log.
        let Ran {
            results,
            conn,
            head,
            _dir: _kept,
        } = run_queued_with(
            (0..5)
                .map(|i| (vec![event("E", &i.to_string())], None))
                .collect(),
            1,
            "",
            5,
        );
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(head, Position::new(5, 4));
        assert_eq!(tag_seqs(&conn, "tags_recent"), [0, 0, 1, 1, 2, 2]);
        assert_eq!(tag_seqs(&conn, "tag_log"), [3, 3, 4, 4]);
        assert!(
            tag_seqs(&conn, "tags").is_empty(),
            "far from a slice's turn"
        );
        // The three events' common type moved as one run, their accounts as one row each.
        let mut runs = tag_runs(&conn, "tags_recent");
        runs.sort_unstable();
        assert_eq!(runs, [(0, None), (0, Some(2)), (1, None), (2, None)]);
    }

    #[test]
    fn a_group_as_large_as_the_log_goes_straight_into_the_tag_index() {
        let batch = (0..3).map(|_| event("E", "b")).collect::<Vec<_>>();
        let after = |position: Position| {
            let query = Query::new([Criterion::new([Tag::new("account", "b")])]);
            Some(AppendCondition::new(query, position))
        };
        let Ran {
            results,
            conn,
            _dir: _kept,
            ..
        } = run_queued_with(
            vec![
                (vec![event("E", "x")], None),
                // Six rows, more than the log's five: the log moves, the batch goes straight in.
                (batch, None),
                (vec![event("E", "z")], for_account("x")),
                (vec![event("E", "b")], after(Position::new(4, 2))),
                (vec![event("E", "c")], None),
            ],
            1,
            "",
            5,
        );
        let outcome = |r: &Result<AppendOutcome, StoreError>| match r {
            Ok(o) => o.position.to_string(),
            Err(e) => e.to_string(),
        };
        let got: Vec<String> = results.iter().map(outcome).collect();
        let conflict = |expected, actual| {
            format!(
                "OptimisticConcurrencyException:StreamVersionConflict: Expected {expected}, Actual {actual}"
            )
        };
        assert_eq!(
            got,
            [
                "(1, 0)".to_owned(),
                "(4, 3)".to_owned(),
                conflict("(-1, -1)", "(1, 0)"),
                conflict("(4, 2)", "(4, 3)"),
                "(5, 4)".to_owned(),
            ]
        );
        assert_eq!(tag_seqs(&conn, "tags_recent"), [0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(tag_seqs(&conn, "tag_log"), [4, 4]);
    }

    #[test]
    fn moved_rows_reach_the_oldest_level_a_slice_at_a_time() {
        // A middle level that moves every slice for each row it gains: whatever the log moves
        // there, and a large batch's rows, end in `tags`, and conditions still see them.
        let batch = (0..3).map(|_| event("E", "b")).collect::<Vec<_>>();
        let Ran {
            results,
            conn,
            _dir: _kept,
            ..
        } = run_queued_merging(
            vec![
                (vec![event("E", "x")], None),
                (vec![event("E", "y")], None),
                (vec![event("E", "w")], None),
                (batch, None),
                (vec![event("E", "z")], for_account("x")),
                (vec![event("E", "z")], for_account("b")),
                (vec![event("E", "c")], None),
            ],
            1,
            "",
            5,
            TagMerge::new(1),
        );
        let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, false, false, false, true, true, false]);
        assert_eq!(
            tag_seqs(&conn, "tags"),
            [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        );
        assert!(tag_seqs(&conn, "tags_recent").is_empty());
        assert_eq!(tag_seqs(&conn, "tag_log"), [6, 6]);
    }

    #[test]
    fn a_rolled_back_group_adds_nothing_to_the_tag_log() {
        // The poisoned request's rows are rolled back and must not count: with a log of seven
        // rows, the three stored events (two rows each) leave it one short of a move.
        let Ran {
            results,
            conn,
            _dir: _kept,
            ..
        } = run_queued_with(
            vec![
                (vec![event("E", "x")], None),
                (vec![event("Fine", "p"), event("Poison", "p")], None),
                (vec![event("E", "y")], None),
                // No event of account p is stored: the writer's copy of the log must agree.
                (vec![event("E", "z")], for_account("p")),
            ],
            1,
            POISON,
            7,
        );
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
        assert_eq!(
            results[3].as_ref().map(|o| o.position).ok(),
            Some(Position::new(3, 2))
        );
        assert!(tag_seqs(&conn, "tags").is_empty());
        assert!(tag_seqs(&conn, "tags_recent").is_empty());
        assert_eq!(tag_seqs(&conn, "tag_log"), [0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn a_request_whose_writes_fail_fails_alone() {
        let poisoned = vec![event("Fine", "p"), event("Poison", "p")];
        let Ran {
            results,
            conn,
            head,
            _dir: _kept,
        } = run_queued(
            vec![
                (vec![event("E", "x")], None),
                (poisoned, None),
                (vec![event("E", "y")], for_account("y")),
            ],
            100,
            POISON,
        );
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(StoreError::Internal { .. })));
        assert_eq!(
            results[2].as_ref().map(|o| o.position).ok(),
            Some(Position::new(2, 1))
        );
        let count: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 2, "nothing of the failed request is stored");
        assert_eq!(head, Position::new(2, 1));
    }
}
