//! The append algorithm, shared by the group-commit writer and library mode: inside an open
//! transaction, lock the head, check each request in order, insert the accepted ones and move
//! the head. A small group takes the one-statement fast path first (`append/one_statement.rs`).
//!
//! Why this file is about 550 lines without its tests: it is one algorithm (decide, then insert
//! events and tag runs, pipelined on one connection), and its steps share the request and
//! outcome types; splitting it further would scatter one transaction's logic over files.

mod one_statement;

use self::one_statement::OneStatement;
use crate::db::{send, Exec, Param, Sent};
use crate::error;
use crate::sql::{BoundarySql, NOTIFY};
use futures::future::{try_join, try_join_all};
use orisun_core::{AppendCondition, JsonObject, NewEvent, Position};
use orisun_store::rules::{batch_positions, classify_retry, validate_expected};
use orisun_store::{AppendOutcome, StoreError};
use serde_json::Value;
use std::collections::HashMap;
use tokio_postgres::types::{Json, Type};
use tokio_postgres::Row;
use uuid::Uuid;

/// One caller's append, already validated by `rules::validate_batch` and [`check_storable`].
#[derive(Debug)]
pub(crate) struct AppendRequest {
    /// The batch, in order.
    pub events: Vec<NewEvent>,
    /// The consistency condition, if any.
    pub condition: Option<AppendCondition>,
}

/// What one transaction decided.
#[derive(Debug)]
pub(crate) struct GroupOutcome {
    /// One result per request, in request order.
    pub outcomes: Vec<Result<AppendOutcome, StoreError>>,
    /// The head after the accepted requests (valid once the transaction commits).
    pub head: Position,
    /// Whether anything was inserted (else the transaction can be rolled back).
    pub appended: bool,
}

/// Rejects what PostgreSQL cannot store although JSON allows it: the NUL character, in text
/// columns and in `jsonb` strings or keys. Checked before a request joins a group, so that one
/// such event cannot fail the transaction of other callers.
pub(crate) fn check_storable(events: &[NewEvent]) -> Result<(), StoreError> {
    const REASON: &str = "PostgreSQL cannot store the NUL character (\\u0000) in text";
    for (i, event) in events.iter().enumerate() {
        if event.event_type.contains('\0') {
            return Err(StoreError::invalid(
                format!("events[{i}].event_type"),
                REASON,
            ));
        }
        if object_has_nul(&event.data) {
            return Err(StoreError::invalid(format!("events[{i}].data"), REASON));
        }
        if object_has_nul(&event.metadata) {
            return Err(StoreError::invalid(format!("events[{i}].metadata"), REASON));
        }
    }
    Ok(())
}

fn object_has_nul(object: &JsonObject) -> bool {
    object
        .iter()
        .any(|(k, v)| k.contains('\0') || value_has_nul(v))
}

fn value_has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(value_has_nul),
        Value::Object(object) => object_has_nul(object),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Reads a `(seq, commit_pos)` pair as a position.
pub(crate) fn position_of(
    row: &Row,
    seq: usize,
    commit: usize,
) -> Result<Position, tokio_postgres::Error> {
    Ok(Position::new(row.try_get(commit)?, row.try_get(seq)?))
}

/// The database part of a condition check: its SQL and parameters.
struct Check {
    /// Tags per criterion: the shape of the check's SQL.
    shape: Vec<usize>,
    after: Position,
    hashes: Vec<Uuid>,
}

impl Check {
    fn new(condition: &AppendCondition) -> Self {
        let mut shape = Vec::with_capacity(condition.query.criteria.len());
        let mut hashes = Vec::new();
        for criterion in &condition.query.criteria {
            let h = criterion.tag_hashes();
            shape.push(h.len());
            hashes.extend(h.into_iter().map(Uuid::from_bytes));
        }
        Self {
            shape,
            after: condition.after,
            hashes,
        }
    }

    fn params(&self) -> Vec<Param<'_>> {
        let mut params: Vec<Param<'_>> = Vec::with_capacity(2 + self.hashes.len());
        params.push((&self.after.commit, Type::INT8));
        params.push((&self.after.prepare, Type::INT8));
        params.extend(self.hashes.iter().map(|h| (h as _, Type::UUID)));
        params
    }
}

/// Appends a group of requests inside an open READ COMMITTED transaction (or a caller's).
///
/// Takes the boundary's lock (the head row, held until the transaction ends), looks up the
/// event ids of all requests and runs the condition checks that need the tag index — all
/// pipelined behind the lock, so their snapshots include every earlier writer's events. Then
/// decides each request in order, as the in-memory model would if the requests had arrived one
/// by one: a request sees the events of the accepted requests before it. A rejected request
/// fails alone. Finally inserts the accepted events and their tags, moves the head and queues a
/// NOTIFY for the other nodes (delivered at commit).
///
/// `spans` holds each request's span (its caller's `group_commit`); every conditional request
/// gets a `condition_check` span under it, from the start of the group to its decision. With no
/// span for a request (a caller's transaction), the check's span is a child of the current one.
pub(crate) async fn append_group(
    exec: Exec<'_>,
    sql: &BoundarySql,
    channel: &str,
    requests: &[&AppendRequest],
    transaction: Transaction,
    spans: &[tracing::Span],
) -> Result<GroupOutcome, StoreError> {
    let db = |e| error::db("append", e);
    let checking: Vec<tracing::Span> = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.condition.is_some())
        .map(|(i, _)| match spans.get(i) {
            Some(parent) => {
                tracing::info_span!(parent: parent, "condition_check", backend = "postgres")
            }
            None => tracing::info_span!("condition_check", backend = "postgres"),
        })
        .collect();
    if transaction == Transaction::Own {
        if let Some(fast) = OneStatement::new(requests) {
            match fast.append(exec, sql, channel).await {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) => {}
                // A lost connection fails the group; anything else (an event id already
                // stored, data the database refuses, a serialization failure under a stricter
                // default isolation) is sorted out by the general path, which answers a retry
                // with its original position and isolates a bad request.
                Err(e) if e.is_closed() => return Err(db(e)),
                Err(e) => {
                    tracing::debug!(error = %e, "one-statement append refused; deciding request by request")
                }
            }
        }
    }
    let all_ids: Vec<Uuid> = requests
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.event_id))
        .collect();
    let checks: Vec<Option<Check>> = requests
        .iter()
        .map(|r| {
            r.condition
                .as_ref()
                .filter(|c| !c.query.matches_all())
                .map(Check::new)
        })
        .collect();
    let check_params: Vec<Vec<Param<'_>>> = checks
        .iter()
        .map(|c| c.as_ref().map(Check::params).unwrap_or_default())
        .collect();
    let check_sql: Vec<Option<String>> = checks
        .iter()
        .map(|c| c.as_ref().map(|c| sql.condition_check(&c.shape)))
        .collect();

    // Prepare first (no-op once cached), so that running a statement sends it at once.
    let lock = exec.prepare(&sql.lock_head, &[]);
    let find = exec.prepare(&sql.find_ids, &[Type::UUID_ARRAY]);
    let prepared_checks = try_join_all(check_sql.iter().zip(&check_params).filter_map(|(c, p)| {
        c.as_ref().map(|c| {
            let types: Vec<Type> = p.iter().map(|(_, t)| t.clone()).collect();
            async move { exec.prepare(c, &types).await }
        })
    }));
    let (lock, (find, prepared_checks)) = try_join(lock, try_join(find, prepared_checks))
        .await
        .map_err(db)?;

    // One round trip: BEGIN, the lock, then the reads that rely on it (sent in this order, so
    // their snapshots are taken once the lock is held).
    let own = transaction == Transaction::Own;
    let begin = send(async {
        if own {
            exec.simple("BEGIN ISOLATION LEVEL READ COMMITTED").await
        } else {
            Ok(())
        }
    })
    .await;
    let locked = send(exec.run(&lock, &[])).await;
    let id_param: [Param<'_>; 1] = [(&all_ids, Type::UUID_ARRAY)];
    let mut prepared_checks = prepared_checks.into_iter();
    let check_futures = check_params
        .iter()
        .zip(&checks)
        .filter(|(_, c)| c.is_some())
        .filter_map(|(p, _)| prepared_checks.next().map(|s| (s, p)))
        .map(|(s, p)| async move { exec.run(&s, p).await })
        .collect::<Vec<_>>();
    let ((), lock_rows, (id_rows, check_rows)) = futures::try_join!(
        begin.result(),
        locked.result(),
        try_join(exec.run(&find, &id_param), try_join_all(check_futures)),
    )
    .map_err(db)?;

    let lock_row = lock_rows.first().ok_or_else(|| {
        StoreError::internal(format!(
            "the head row of {} is missing; it is created with the boundary and never deleted",
            sql.names.head
        ))
    })?;
    let stored_head = position_of(lock_row, 0, 1).map_err(db)?;
    let mut stored: HashMap<Uuid, Position> = HashMap::with_capacity(id_rows.len());
    for row in &id_rows {
        stored.insert(
            row.try_get(2).map_err(db)?,
            position_of(row, 0, 1).map_err(db)?,
        );
    }
    let mut db_latest = Vec::with_capacity(requests.len());
    let mut check_rows = check_rows.into_iter();
    for check in &checks {
        db_latest.push(match check {
            Some(_) => match check_rows.next().and_then(|rows| rows.into_iter().next()) {
                Some(row) => Some(position_of(&row, 0, 1).map_err(db)?),
                None => None,
            },
            None => None,
        });
    }

    let decided = decide(requests, stored_head, &stored, &db_latest);
    // Every condition is decided now; what follows is the inserts.
    drop(checking);
    if !decided.appended {
        if own {
            exec.simple("ROLLBACK").await.map_err(db)?;
        }
        return Ok(decided);
    }
    insert(exec, sql, channel, requests, &decided, own)
        .await
        .map_err(db)?;
    Ok(decided)
}

/// Who owns the transaction an append runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transaction {
    /// The caller opened it and will end it (library mode).
    Caller,
    /// The append opens it (pipelined with the first statements) and commits it (pipelined
    /// with the inserts): two round trips per group. Rolled back when nothing is appended; on
    /// an error the connection must be rolled back by the caller.
    Own,
}

/// Decides each request in order (pure; no IO).
fn decide(
    requests: &[&AppendRequest],
    stored_head: Position,
    stored: &HashMap<Uuid, Position>,
    db_latest: &[Option<Position>],
) -> GroupOutcome {
    let mut head = stored_head;
    let mut pending_ids: HashMap<Uuid, Position> = HashMap::new();
    // Events accepted earlier in this group, not yet in the database.
    let mut pending: Vec<(Position, &JsonObject)> = Vec::new();
    let mut outcomes = Vec::with_capacity(requests.len());
    for (request, db_latest) in requests.iter().zip(db_latest) {
        let found: Vec<Option<Position>> = request
            .events
            .iter()
            .map(|e| {
                stored
                    .get(&e.event_id)
                    .or_else(|| pending_ids.get(&e.event_id))
                    .copied()
            })
            .collect();
        match classify_retry(&request.events, &found) {
            Err(e) => {
                outcomes.push(Err(e));
                continue;
            }
            Ok(Some(position)) => {
                outcomes.push(Ok(AppendOutcome {
                    position,
                    already_stored: true,
                }));
                continue;
            }
            Ok(None) => {}
        }
        if let Some(condition) = &request.condition {
            if let Err(e) = validate_expected(condition.after, head) {
                outcomes.push(Err(e));
                continue;
            }
            let latest = if condition.query.matches_all() {
                (head.prepare >= 0).then_some(head)
            } else {
                pending
                    .iter()
                    .rev()
                    .find(|(_, data)| condition.query.matches(data))
                    .map(|(p, _)| *p)
                    .or(*db_latest)
            };
            if let Some(actual) = latest.filter(|p| *p > condition.after) {
                outcomes.push(Err(StoreError::ConditionFailed {
                    expected: condition.after,
                    actual,
                }));
                continue;
            }
        }
        let mut last = head;
        for (event, position) in request
            .events
            .iter()
            .zip(batch_positions(head.prepare + 1, request.events.len()))
        {
            pending_ids.insert(event.event_id, position);
            pending.push((position, &event.data));
            last = position;
        }
        head = last;
        outcomes.push(Ok(AppendOutcome {
            position: last,
            already_stored: false,
        }));
    }
    GroupOutcome {
        appended: head != stored_head,
        head,
        outcomes,
    }
}

/// Inserts the accepted requests' events and tags, moves the head and queues the NOTIFY, all
/// pipelined.
async fn insert(
    exec: Exec<'_>,
    sql: &BoundarySql,
    channel: &str,
    requests: &[&AppendRequest],
    decided: &GroupOutcome,
    commit: bool,
) -> Result<(), tokio_postgres::Error> {
    let mut chunks: Vec<Chunk<'_>> = vec![Chunk::default()];
    for (request, outcome) in requests.iter().zip(&decided.outcomes) {
        let Ok(AppendOutcome {
            position: last,
            already_stored: false,
        }) = outcome
        else {
            continue;
        };
        let first = last.prepare + 1 - request.events.len() as i64;
        for (event, position) in request
            .events
            .iter()
            .zip(batch_positions(first, request.events.len()))
        {
            let size = event_size(event);
            let full = chunks.last().is_some_and(|c| {
                !c.seqs.is_empty() && (c.bytes + size > CHUNK_BYTES || c.seqs.len() >= CHUNK_EVENTS)
            });
            if full {
                chunks.push(Chunk::default());
            }
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(event, position, size);
            }
        }
    }
    for chunk in &mut chunks {
        chunk.make_runs();
    }
    let head_seq = decided.head.prepare;
    let head_commit = decided.head.commit;
    let payload = format!("{},{}", decided.head.commit, decided.head.prepare);

    let event_types = [
        Type::INT8_ARRAY,
        Type::INT8_ARRAY,
        Type::UUID_ARRAY,
        Type::TEXT_ARRAY,
        Type::JSONB_ARRAY,
        Type::JSONB_ARRAY,
    ];
    let (insert_events, insert_tags, update_head, notify) = futures::try_join!(
        exec.prepare(&sql.insert_events, &event_types),
        exec.prepare(
            &sql.insert_tags,
            &[Type::UUID_ARRAY, Type::INT8_ARRAY, Type::INT8_ARRAY]
        ),
        exec.prepare(&sql.update_head, &[Type::INT8, Type::INT8]),
        exec.prepare(NOTIFY, &[Type::TEXT, Type::TEXT]),
    )?;
    let event_params: Vec<[Param<'_>; 6]> = chunks
        .iter()
        .map(|c| {
            [
                (&c.seqs as _, Type::INT8_ARRAY),
                (&c.commits as _, Type::INT8_ARRAY),
                (&c.ids as _, Type::UUID_ARRAY),
                (&c.types as _, Type::TEXT_ARRAY),
                (&c.data as _, Type::JSONB_ARRAY),
                (&c.metadata as _, Type::JSONB_ARRAY),
            ]
        })
        .collect();
    let tag_params: Vec<[Param<'_>; 3]> = chunks
        .iter()
        .filter(|c| !c.tag_hashes.is_empty())
        .map(|c| {
            [
                (&c.tag_hashes as _, Type::UUID_ARRAY),
                (&c.tag_lo as _, Type::INT8_ARRAY),
                (&c.tag_hi as _, Type::INT8_ARRAY),
            ]
        })
        .collect();
    let head_params: [Param<'_>; 2] = [(&head_seq, Type::INT8), (&head_commit, Type::INT8)];
    let channel = channel.to_owned();
    let notify_params: [Param<'_>; 2] = [(&channel, Type::TEXT), (&payload, Type::TEXT)];
    // Every statement is sent before COMMIT, so COMMIT ends a transaction that holds them all
    // (if one fails, PostgreSQL answers the COMMIT with a rollback and the failure is reported).
    let mut sent = Vec::with_capacity(event_params.len() + tag_params.len() + 2);
    for p in &event_params {
        sent.push(send(exec.run(&insert_events, p)).await);
    }
    for p in &tag_params {
        sent.push(send(exec.run(&insert_tags, p)).await);
    }
    sent.push(send(exec.run(&update_head, &head_params)).await);
    sent.push(send(exec.run(&notify, &notify_params)).await);
    let committed = send(async {
        if commit {
            exec.simple("COMMIT").await
        } else {
            Ok(())
        }
    })
    .await;
    try_join(
        try_join_all(sent.into_iter().map(Sent::result)),
        committed.result(),
    )
    .await?;
    Ok(())
}

/// Most bytes (roughly) of events sent in one INSERT: PostgreSQL refuses a message or an array
/// over 1 GiB, so a group or a batch larger than that is inserted in several statements (all in
/// the same transaction).
const CHUNK_BYTES: usize = 32 << 20;

/// Most events sent in one INSERT.
const CHUNK_EVENTS: usize = 10_000;

/// The arrays of one INSERT of events and one of their tag runs.
#[derive(Default)]
struct Chunk<'a> {
    seqs: Vec<i64>,
    commits: Vec<i64>,
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    data: Vec<Json<&'a JsonObject>>,
    metadata: Vec<Json<&'a JsonObject>>,
    /// One `(tag, seq)` pair per tag of each event, until [`Chunk::make_runs`].
    tag_pairs: Vec<(Uuid, i64)>,
    /// The runs' tags, first seqs and last seqs (`None` for a run of one event).
    tag_hashes: Vec<Uuid>,
    tag_lo: Vec<i64>,
    tag_hi: Vec<Option<i64>>,
    bytes: usize,
}

impl<'a> Chunk<'a> {
    fn push(&mut self, event: &'a NewEvent, position: Position, size: usize) {
        self.seqs.push(position.prepare);
        self.commits.push(position.commit);
        self.ids.push(event.event_id);
        self.types.push(event.event_type.as_str());
        self.data.push(Json(&event.data));
        self.metadata.push(Json(&event.metadata));
        for h in event.tag_hashes() {
            self.tag_pairs.push((Uuid::from_bytes(h), position.prepare));
        }
        self.bytes += size;
    }

    /// Turns the `(tag, seq)` pairs into runs: one row per tag per stretch of consecutive seqs
    /// that all have it, so that a batch (or a group) of events sharing a type, a stream id or
    /// a tenant writes one index row for each, not one per event. The runs come out sorted by
    /// `(tag, lo)`, so their index insertions walk the tag index in order (neighbouring keys
    /// share leaf pages) instead of descending to a random leaf each time. The seqs of one
    /// chunk are distinct and it is inserted once, so its runs overlap no other run of a tag.
    fn make_runs(&mut self) {
        let mut pairs = std::mem::take(&mut self.tag_pairs);
        pairs.sort_unstable();
        let mut runs: Vec<(Uuid, i64, i64)> = Vec::new();
        for (h, seq) in pairs {
            match runs.last_mut() {
                Some((last, _, hi)) if *last == h && *hi + 1 == seq => *hi = seq,
                _ => runs.push((h, seq, seq)),
            }
        }
        for (h, lo, hi) in runs {
            self.tag_hashes.push(h);
            self.tag_lo.push(lo);
            self.tag_hi.push((hi > lo).then_some(hi));
        }
    }
}

/// Estimates the bytes an event takes on the wire (its JSON text, roughly), without
/// serialising it.
pub(crate) fn event_size(event: &NewEvent) -> usize {
    64 + event.event_type.len() + object_size(&event.data) + object_size(&event.metadata)
}

fn object_size(object: &JsonObject) -> usize {
    2 + object
        .iter()
        .map(|(k, v)| k.len() + 4 + value_size(v))
        .sum::<usize>()
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        Value::Object(object) => object_size(object),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orisun_core::{Criterion, Query, Tag};
    use serde_json::json;

    fn event(id: u128, data: Value) -> NewEvent {
        let Value::Object(data) = data else {
            unreachable!()
        };
        NewEvent::new(Uuid::from_u128(id), "T", data, JsonObject::new()).expect("valid")
    }

    fn req(events: Vec<NewEvent>, condition: Option<AppendCondition>) -> AppendRequest {
        AppendRequest { events, condition }
    }

    #[test]
    fn later_requests_see_earlier_ones_of_the_group() {
        let q = Query::new([Criterion::new([Tag::new("a", "1")])]);
        let cond = Some(AppendCondition::new(q, Position::BEFORE_FIRST));
        let r1 = req(vec![event(1, json!({"a": "1"}))], cond.clone());
        let r2 = req(vec![event(2, json!({"a": "1"}))], cond);
        let r3 = req(vec![event(1, json!({"a": "1"}))], None);
        let r4 = req(vec![event(3, json!({})), event(1, json!({}))], None);
        let out = decide(
            &[&r1, &r2, &r3, &r4],
            Position::BEFORE_FIRST,
            &HashMap::new(),
            &[None, None, None, None],
        );
        assert_eq!(out.head, Position::new(1, 0));
        assert!(out.appended);
        assert!(matches!(
            out.outcomes[0],
            Ok(AppendOutcome {
                already_stored: false,
                ..
            })
        ));
        assert!(matches!(
            out.outcomes[1],
            Err(StoreError::ConditionFailed { actual, .. }) if actual == Position::new(1, 0)
        ));
        assert!(
            matches!(out.outcomes[2], Ok(AppendOutcome { already_stored: true, position }) if position == Position::new(1, 0))
        );
        assert!(matches!(
            out.outcomes[3],
            Err(StoreError::DuplicateEvents { .. })
        ));
    }

    #[test]
    fn whole_boundary_condition_compares_with_head() {
        let cond = |after| Some(AppendCondition::new(Query::all(), after));
        let r1 = req(vec![event(1, json!({}))], cond(Position::new(-5, -5)));
        let r2 = req(vec![event(2, json!({}))], cond(Position::BEFORE_FIRST));
        let r3 = req(vec![event(3, json!({}))], cond(Position::new(1, 0)));
        let r4 = req(vec![event(4, json!({}))], cond(Position::new(9, 9)));
        let out = decide(
            &[&r1, &r2, &r3, &r4],
            Position::BEFORE_FIRST,
            &HashMap::new(),
            &[None, None, None, None],
        );
        assert!(out.outcomes[0].is_ok());
        assert!(matches!(
            out.outcomes[1],
            Err(StoreError::ConditionFailed { .. })
        ));
        assert!(out.outcomes[2].is_ok());
        assert!(matches!(out.outcomes[3], Err(StoreError::Invalid(_))));
        assert_eq!(out.head, Position::new(2, 1));
    }

    #[test]
    fn database_matches_count_when_the_group_has_none() {
        let q = Query::new([Criterion::new([Tag::new("a", "1")])]);
        let r1 = req(
            vec![event(1, json!({}))],
            Some(AppendCondition::new(q, Position::new(3, 2))),
        );
        let out = decide(
            &[&r1],
            Position::new(5, 4),
            &HashMap::new(),
            &[Some(Position::new(5, 3))],
        );
        assert!(matches!(
            out.outcomes[0],
            Err(StoreError::ConditionFailed { .. })
        ));
        assert!(!out.appended);
    }

    #[test]
    fn nul_is_refused() {
        // The domain model refuses NUL already; this guards events built field by field.
        let mut e = event(1, json!({}));
        e.data.insert("x".into(), json!(["ok", {"k\u{0}": 1}]));
        assert_eq!(
            check_storable(&[e]).err().map(|e| e.to_string()),
            Some("invalid argument: events[0].data: PostgreSQL cannot store the NUL character (\\u0000) in text".into())
        );
        assert!(check_storable(&[event(1, json!({"x": "fine"}))]).is_ok());
    }
}
