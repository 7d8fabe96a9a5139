//! The reads of a boundary's log, run on the read connections and by the writer, which checks
//! append conditions inside its own transaction.
//!
//! Criteria never scan the log. A criterion (tags AND-ed) is answered by intersecting the sorted
//! seq lists of its tag hashes in the `tags` index with a leapfrog join: each step seeks one list
//! to the first seq at or beyond the current candidate, so the cost grows with the number of
//! *matches* (and the shorter list), not with the size of the boundary. A query (criteria OR-ed)
//! merges the per-criterion results.
//!
//! The tag index is kept in three tables: `tag_log`, the newest rows in log order (cheap to
//! append: a group's rows share a few pages), `tags_recent`, a small table keyed by tag, and
//! `tags`, everything older, keyed by tag. For each tag, its seqs in `tag_log` are above those in
//! `tags_recent`, which are above those in `tags`, so a walk reads the tables in the order it
//! meets their seqs and stops once it has what it needs.

use crate::sql;
use crate::tag_tail::TagTail;
use chrono::DateTime;
use orisun_core::{Criterion, Direction, Position, Query, ReadRequest, StoredEvent, TagHash};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

/// A walk over seqs in one direction from `start` to `stop`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scan {
    dir: Direction,
    start: i64,
    stop: i64,
}

impl Scan {
    /// Oldest first from `start` to the end of the log.
    pub(crate) fn asc(start: i64) -> Self {
        Self {
            dir: Direction::Asc,
            start,
            stop: i64::MAX,
        }
    }

    /// Newest first from `start` down to the first event.
    pub(crate) fn desc(start: i64) -> Self {
        Self {
            dir: Direction::Desc,
            start,
            stop: 0,
        }
    }

    /// The seqs a walk from `from` covers, as an inclusive `(low, high)` pair.
    pub(crate) fn bounds(&self, from: i64) -> (i64, i64) {
        match self.dir {
            Direction::Asc => (from, self.stop),
            Direction::Desc => (self.stop, from),
        }
    }

    /// The walk's direction.
    pub(crate) fn direction(&self) -> Direction {
        self.dir
    }

    /// The same walk, ending at `stop`.
    #[cfg(test)]
    pub(crate) fn stop_at(self, stop: i64) -> Self {
        Self { stop, ..self }
    }

    /// Returns true when `seq` lies between `start` and `stop`.
    fn contains(&self, seq: i64) -> bool {
        match self.dir {
            Direction::Asc => (self.start..=self.stop).contains(&seq),
            Direction::Desc => (self.stop..=self.start).contains(&seq),
        }
    }

    /// Returns the seq that follows `seq` in the walk, `None` past `stop`.
    fn next(&self, seq: i64) -> Option<i64> {
        match self.dir {
            Direction::Asc => (seq < self.stop).then(|| seq + 1),
            Direction::Desc => (seq > self.stop).then(|| seq - 1),
        }
    }
}

/// Returns the position of the last event, `{-1,-1}` for an empty log.
pub(crate) fn head(conn: &Connection) -> rusqlite::Result<Position> {
    conn.prepare_cached(sql::HEAD)?
        .query_row([], position)
        .optional()
        .map(|p| p.unwrap_or(Position::BEFORE_FIRST))
}

fn position(row: &Row<'_>) -> rusqlite::Result<Position> {
    Ok(Position::new(row.get(0)?, row.get(1)?))
}

/// Resolves the inclusive bound of a read to the scan it describes, `None` when no event lies on
/// the requested side of `from`. Any position resolves exactly, one that no event has too:
/// position order is seq order, so the events at or after (before) `from` are a suffix (prefix)
/// of the log, found with index seeks (see [`seek_position`]).
pub(crate) fn resolve_from(
    conn: &Connection,
    from: Option<Position>,
    dir: Direction,
) -> rusqlite::Result<Option<Scan>> {
    match (dir, from) {
        (Direction::Asc, None) => Ok(Some(Scan::asc(0))),
        (Direction::Desc, None) => Ok(Some(Scan::desc(i64::MAX))),
        (Direction::Asc, Some(from)) if from.is_beginning() => Ok(Some(Scan::asc(0))),
        (Direction::Asc, Some(from)) => {
            Ok(seek_position(conn, from, Side::AtOrAfter)?.map(Scan::asc))
        }
        (Direction::Desc, Some(from)) => {
            Ok(seek_position(conn, from, Side::AtOrBefore)?.map(Scan::desc))
        }
    }
}

/// Which event [`seek_position`] looks for, relative to a position.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// The first event at or after it.
    AtOrAfter,
    /// The first event strictly after it.
    After,
    /// The last event at or before it.
    AtOrBefore,
}

/// Returns the seq of the event on `side` of `position`.
///
/// Commit positions never decrease along the log, so the events of commit `c` sit between those
/// of lower and higher commits: the answer is either among the events of commit `c` (one exact
/// seek on `(commit_pos = c, seq)`) or the nearest event of another commit (one seek on
/// `commit_pos`). A single row-value comparison would walk the whole batch of commit `c`.
fn seek_position(
    conn: &Connection,
    position: Position,
    side: Side,
) -> rusqlite::Result<Option<i64>> {
    let (same, other) = match side {
        Side::AtOrAfter => (sql::SEEK_AT_OR_AFTER, sql::SEEK_LATER_COMMIT),
        Side::After => (sql::SEEK_AFTER, sql::SEEK_LATER_COMMIT),
        Side::AtOrBefore => (sql::SEEK_AT_OR_BEFORE, sql::SEEK_EARLIER_COMMIT),
    };
    let found = conn
        .prepare_cached(same)?
        .query_row(params![position.commit, position.prepare], |r| r.get(0))
        .optional()?;
    if found.is_some() {
        return Ok(found);
    }
    conn.prepare_cached(other)?
        .query_row([position.commit], |r| r.get(0))
        .optional()
}

/// Returns the seq of the first event whose position is strictly after `after`.
fn first_seq_after(conn: &Connection, after: Position) -> rusqlite::Result<Option<i64>> {
    if after < Position::new(0, 0) {
        return Ok(Some(0));
    }
    seek_position(conn, after, Side::After)
}

/// One of the three tables the tag index is kept in (see `migrations/0002_tag_log.sql` and
/// `migrations/0004_tags_recent.sql`).
#[derive(Debug, Clone, Copy)]
enum TagTable {
    /// `tags (h, seq, last)`: the oldest runs, keyed by tag.
    Indexed,
    /// `tags_recent (h, seq, last)`: newer runs, keyed by tag, above `tags` for each tag.
    Recent,
    /// `tag_log (seq, h)`: the newest rows, in log order, above the other two; at most
    /// `SqliteConfig::tag_log_rows` (plus one group) of them, so scanning it by seq is bounded.
    Log,
}

impl TagTable {
    /// The tables in the order a walk in `dir` meets their seqs.
    fn in_order(dir: Direction) -> [TagTable; 3] {
        match dir {
            Direction::Asc => [TagTable::Indexed, TagTable::Recent, TagTable::Log],
            Direction::Desc => [TagTable::Log, TagTable::Recent, TagTable::Indexed],
        }
    }

    /// The statement of `tag_log` that returns up to `?4` seqs carrying tag `?1` from `?2` to
    /// `?3` (both inclusive) in direction `dir`.
    fn log_range_sql(dir: Direction) -> &'static str {
        match dir {
            Direction::Asc => sql::TAG_LOG_ASC,
            Direction::Desc => sql::TAG_LOG_DESC,
        }
    }
}

/// Where a lookup finds the rows of `tag_log`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tail<'a> {
    /// In the table, as the connection's snapshot holds it (readers).
    Table,
    /// In the writer's copy, which is exactly the table as its open transaction holds it.
    Memory(&'a TagTail),
    /// Nowhere: the writer's open transaction has emptied the table.
    Empty,
}

/// Returns up to `limit` seqs carrying tag `hash`, walking `scan` from `from` on, in the walk's
/// order: the first table the walk meets, then the other for what is still missing.
fn tag_seqs(
    conn: &Connection,
    tail: Tail<'_>,
    hash: &TagHash,
    from: i64,
    scan: Scan,
    limit: usize,
) -> rusqlite::Result<Vec<i64>> {
    let mut seqs = Vec::new();
    for table in TagTable::in_order(scan.dir) {
        let Some(left) = limit.checked_sub(seqs.len()).filter(|&n| n > 0) else {
            break;
        };
        match (table, tail) {
            (TagTable::Log, Tail::Memory(tail)) => seqs.extend(tail.range(hash, from, scan, left)),
            (TagTable::Log, Tail::Empty) => {}
            (TagTable::Log, Tail::Table) => {
                let left = i64::try_from(left).unwrap_or(i64::MAX);
                let mut stmt = conn.prepare_cached(TagTable::log_range_sql(scan.dir))?;
                let rows =
                    stmt.query_map(params![&hash[..], from, scan.stop, left], |r| r.get(0))?;
                for row in rows {
                    seqs.push(row?);
                }
            }
            (TagTable::Recent, _) => {
                run_seqs(conn, &sql::TAGS_RECENT, hash, from, scan, left, &mut seqs)?
            }
            (TagTable::Indexed, _) => {
                run_seqs(conn, &sql::TAGS, hash, from, scan, left, &mut seqs)?
            }
        }
    }
    Ok(seqs)
}

/// Appends to `seqs` up to `limit` seqs of the table of runs `table` carrying tag `hash`,
/// walking `scan` from `from` on. A row is a run (`seq` to `last`, see
/// `migrations/0003_tag_runs.sql`), so a walk starts with the run that begins at or before
/// `from`, which may cover it.
fn run_seqs(
    conn: &Connection,
    table: &sql::RunTable,
    hash: &TagHash,
    from: i64,
    scan: Scan,
    limit: usize,
    seqs: &mut Vec<i64>,
) -> rusqlite::Result<()> {
    let (lo, hi) = scan.bounds(from);
    if lo > hi {
        return Ok(());
    }
    let target = seqs.len() + limit;
    // Every run read gives at least one seq (until the walk ends), so `limit` runs suffice.
    let runs = i64::try_from(limit).unwrap_or(i64::MAX);
    match scan.dir {
        Direction::Asc => {
            let covering = conn
                .prepare_cached(table.at_or_before)?
                .query_row(params![&hash[..], lo], run)
                .optional()?;
            if let Some((_, last)) = covering {
                push_run(seqs, Direction::Asc, lo, last.min(hi), target);
            }
            let mut stmt = conn.prepare_cached(table.asc)?;
            let mut rows = stmt.query(params![&hash[..], lo, hi, runs])?;
            while seqs.len() < target {
                let Some(row) = rows.next()? else { break };
                let (first, last) = run(row)?;
                push_run(seqs, Direction::Asc, first, last.min(hi), target);
            }
        }
        Direction::Desc => {
            let mut stmt = conn.prepare_cached(table.desc)?;
            let mut rows = stmt.query(params![&hash[..], hi, runs])?;
            while seqs.len() < target {
                let Some(row) = rows.next()? else { break };
                let (first, last) = run(row)?;
                let top = last.min(hi);
                if top < lo {
                    // Runs do not overlap: every earlier run ends earlier still.
                    break;
                }
                push_run(seqs, Direction::Desc, first.max(lo), top, target);
            }
        }
    }
    Ok(())
}

/// Decodes a run of `tags`: `(seq, last)`, where a `NULL` last means `seq` alone.
fn run(row: &Row<'_>) -> rusqlite::Result<(i64, i64)> {
    let first: i64 = row.get(0)?;
    let last: Option<i64> = row.get(1)?;
    Ok((first, last.unwrap_or(first)))
}

/// Appends the seqs from `low` to `high` (both inclusive; none if `low > high`) in direction
/// `dir` to `seqs`, until it holds `target` of them.
fn push_run(seqs: &mut Vec<i64>, dir: Direction, low: i64, high: i64, target: usize) {
    if low > high {
        return;
    }
    let room = target.saturating_sub(seqs.len());
    let width = usize::try_from(high - low).map_or(usize::MAX, |w| w.saturating_add(1));
    let n = i64::try_from(room.min(width)).expect("bounded by the width of an i64 range");
    match dir {
        Direction::Asc => seqs.extend(low..low + n),
        Direction::Desc => seqs.extend((high - n + 1..=high).rev()),
    }
}

/// Returns the first seq carrying tag `hash` from `from` on in `scan`.
fn seek(
    conn: &Connection,
    tail: Tail<'_>,
    hash: &TagHash,
    from: i64,
    scan: Scan,
) -> rusqlite::Result<Option<i64>> {
    Ok(tag_seqs(conn, tail, hash, from, scan, 1)?.first().copied())
}

/// Returns the first seq of `scan`, from `start` on, that carries every tag of `hashes` (a
/// leapfrog intersection of the tags' seq lists).
fn next_match(
    conn: &Connection,
    tail: Tail<'_>,
    hashes: &[TagHash],
    start: i64,
    scan: Scan,
) -> rusqlite::Result<Option<i64>> {
    debug_assert!(!hashes.is_empty(), "a tagless criterion matches everything");
    let mut candidate = start;
    // How many consecutive lists (in cyclic order) are known to hold `candidate`.
    let mut agreed = 0;
    for hash in hashes.iter().cycle() {
        if !scan.contains(candidate) {
            return Ok(None);
        }
        let Some(seq) = seek(conn, tail, hash, candidate, scan)? else {
            return Ok(None);
        };
        if seq == candidate {
            agreed += 1;
        } else {
            candidate = seq;
            agreed = 1;
        }
        if agreed == hashes.len() {
            return Ok(scan.contains(candidate).then_some(candidate));
        }
    }
    unreachable!("cycling over a non-empty slice never ends")
}

/// Returns up to `limit` seqs of `scan` matching the criterion whose tag hashes are `hashes`.
fn criterion_seqs(
    conn: &Connection,
    hashes: &[TagHash],
    scan: Scan,
    limit: usize,
) -> rusqlite::Result<Vec<i64>> {
    if let [hash] = hashes {
        // One tag: its seq list is the answer; read the page in range scans.
        return tag_seqs(conn, Tail::Table, hash, scan.start, scan, limit);
    }
    let mut seqs = Vec::new();
    let mut from = Some(scan.start);
    while let Some(start) = from.filter(|_| seqs.len() < limit) {
        let Some(seq) = next_match(conn, Tail::Table, hashes, start, scan)? else {
            break;
        };
        seqs.push(seq);
        from = scan.next(seq);
    }
    Ok(seqs)
}

/// Returns up to `limit` seqs of `scan` matching `query`, which must not match everything.
fn query_seqs(
    conn: &Connection,
    query: &Query,
    scan: Scan,
    limit: usize,
) -> rusqlite::Result<Vec<i64>> {
    let mut seqs = Vec::new();
    for criterion in &query.criteria {
        seqs.extend(criterion_seqs(conn, &criterion.tag_hashes(), scan, limit)?);
    }
    match scan.dir {
        Direction::Asc => seqs.sort_unstable(),
        Direction::Desc => seqs.sort_unstable_by(|a, b| b.cmp(a)),
    }
    seqs.dedup();
    seqs.truncate(limit);
    Ok(seqs)
}

/// Reads one page of events, all from one snapshot.
pub(crate) fn read(
    conn: &mut Connection,
    request: &ReadRequest,
) -> rusqlite::Result<Vec<StoredEvent>> {
    let tx = conn.transaction()?;
    let limit = request.limit as usize;
    let events = match resolve_from(&tx, request.from, request.direction)? {
        None => Vec::new(),
        Some(scan) if request.query.matches_all() => {
            let statement = match scan.dir {
                Direction::Asc => sql::READ_ALL_ASC,
                Direction::Desc => sql::READ_ALL_DESC,
            };
            let mut stmt = tx.prepare_cached(statement)?;
            let rows = stmt.query_map(params![scan.start, request.limit], decode)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        }
        Some(scan) => {
            let seqs = query_seqs(&tx, &request.query, scan, limit)?;
            seqs.into_iter()
                .map(|seq| event_at(&tx, seq))
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    tx.commit()?;
    Ok(events)
}

/// Returns the latest event matching each criterion (each with at least one tag), all from one
/// snapshot.
pub(crate) fn latest_by_criteria(
    conn: &mut Connection,
    criteria: &[Criterion],
) -> rusqlite::Result<Vec<Option<StoredEvent>>> {
    let tx = conn.transaction()?;
    let mut events = Vec::with_capacity(criteria.len());
    for criterion in criteria {
        let scan = Scan::desc(i64::MAX);
        let event = match next_match(&tx, Tail::Table, &criterion.tag_hashes(), scan.start, scan)? {
            Some(seq) => Some(event_at(&tx, seq)?),
            None => None,
        };
        events.push(event);
    }
    tx.commit()?;
    Ok(events)
}

/// Returns the position of the latest event matching `query` if it is after `after`, `None`
/// when no matching event is. `head` is the current head, read in the same transaction;
/// `tail` is where the newest rows of the tag index are read.
///
/// Only the part of the log after `after` is searched, and each criterion only above the best
/// match found so far.
pub(crate) fn latest_match_after(
    conn: &Connection,
    tail: Tail<'_>,
    query: &Query,
    after: Position,
    head: Position,
) -> rusqlite::Result<Option<Position>> {
    if head <= after {
        return Ok(None);
    }
    if query.matches_all() {
        return Ok(Some(head));
    }
    let Some(mut lowest) = first_seq_after(conn, after)? else {
        return Ok(None);
    };
    let mut best = None;
    for criterion in &query.criteria {
        let scan = Scan {
            dir: Direction::Desc,
            start: head.prepare,
            stop: lowest,
        };
        if let Some(seq) = next_match(conn, tail, &criterion.tag_hashes(), scan.start, scan)? {
            best = Some(seq);
            if seq == head.prepare {
                break;
            }
            lowest = seq + 1;
        }
    }
    match best {
        None => Ok(None),
        Some(seq) => conn
            .prepare_cached(sql::POSITION_AT)?
            .query_row([seq], position)
            .map(Some),
    }
}

/// Returns the position of each event id that is stored, in order.
pub(crate) fn stored_positions(
    conn: &Connection,
    ids: impl Iterator<Item = Uuid>,
) -> rusqlite::Result<Vec<Option<Position>>> {
    let mut stmt = conn.prepare_cached(sql::POSITION_OF_ID)?;
    ids.map(|id| stmt.query_row([&id.as_bytes()[..]], position).optional())
        .collect()
}

/// Reads the event at `seq`, which must exist.
fn event_at(conn: &Connection, seq: i64) -> rusqlite::Result<StoredEvent> {
    conn.prepare_cached(sql::EVENT_AT)?.query_row([seq], decode)
}

/// Decodes a row of [`sql::READ_ALL_ASC`] and the other statements that select whole events.
fn decode(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let seq: i64 = row.get(0)?;
    let commit: i64 = row.get(1)?;
    let id: Vec<u8> = row.get(2)?;
    let event_id = Uuid::from_slice(&id)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, Type::Blob, Box::new(e)))?;
    let micros: i64 = row.get(6)?;
    let date_created = DateTime::from_timestamp_micros(micros)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(6, micros))?;
    Ok(StoredEvent {
        event_id,
        event_type: row.get(3)?,
        data: row.get(4)?,
        metadata: row.get(5)?,
        position: Position::new(commit, seq),
        date_created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_stay_within_bounds() {
        let asc = Scan::asc(3);
        assert!(asc.contains(3) && !asc.contains(2));
        assert_eq!(asc.next(3), Some(4));
        let desc = Scan::desc(3);
        assert!(desc.contains(0) && !desc.contains(4));
        assert_eq!(desc.next(0), None);
        assert_eq!(Scan::asc(i64::MAX).next(i64::MAX), None);
    }
}
