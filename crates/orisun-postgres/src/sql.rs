//! The SQL text of one boundary's statements. Identifiers come from [`ObjectNames`] (validated
//! and quoted); every value is a bind parameter.
//!
//! Criteria become searches of the tag index: a criterion is the intersection of the rows of
//! its tag hashes (see `criterion_matches`), a query is the union of its criteria. Each branch
//! reads the index `(h, seq)` in the wanted order and stops after `LIMIT` matches, so a check or
//! a read never scans the log.

use crate::names::ObjectNames;
use std::fmt::Write as _;

/// Columns of a read, in the order `read::event_from_row` decodes them.
pub(crate) const EVENT_COLUMNS: &str =
    "e.seq, e.commit_pos, e.event_id, e.event_type, e.data, e.metadata, e.date_created";

/// The statements of one boundary.
#[derive(Debug)]
pub(crate) struct BoundarySql {
    /// The quoted object names.
    pub names: ObjectNames,
    /// Takes the boundary's writer lock and reads the head: `-> (seq, commit_pos)`.
    pub lock_head: String,
    /// Reads the head without locking: `-> (seq, commit_pos)`.
    pub read_head: String,
    /// Finds stored events by id: `($1 uuid[]) -> (seq, commit_pos, event_id)`.
    pub find_ids: String,
    /// Inserts events from arrays: `($1 seq[], $2 commit[], $3 id[], $4 type[], $5 data[], $6 metadata[])`.
    pub insert_events: String,
    /// Inserts tag runs from arrays: `($1 h[], $2 lo[], $3 hi[])` (`hi` NULL for one event).
    pub insert_tags: String,
    /// Moves the head: `($1 seq, $2 commit_pos)`.
    pub update_head: String,
    /// [`BoundarySql::append_in_one_statement`] without a condition.
    pub append_unconditional: String,
    /// Reads the whole log ascending from an inclusive position: `($1 commit, $2 prepare, $3 limit)`.
    pub read_all_asc: String,
    /// Reads the whole log descending from an inclusive position: `($1 commit, $2 prepare, $3 limit)`.
    pub read_all_desc: String,
}

/// Sends a wake-up to other nodes; delivered only if and when the transaction commits.
pub(crate) const NOTIFY: &str = "SELECT pg_notify($1, $2)";

impl BoundarySql {
    /// Builds the statements for the given object names.
    pub(crate) fn new(names: ObjectNames) -> Self {
        let mut this = Self::without_one_statement_append(names);
        this.append_unconditional = this.append_in_one_statement(&[], 0);
        this
    }

    fn without_one_statement_append(names: ObjectNames) -> Self {
        let ObjectNames {
            events, tags, head, ..
        } = &names;
        Self {
            lock_head: format!("SELECT seq, commit_pos FROM {head} WHERE id = 0 FOR UPDATE"),
            read_head: format!("SELECT seq, commit_pos FROM {head} WHERE id = 0"),
            find_ids: format!(
                "SELECT seq, commit_pos, event_id FROM {events} WHERE event_id = ANY($1)"
            ),
            insert_events: format!(
                "INSERT INTO {events} (seq, commit_pos, event_id, event_type, data, metadata) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::uuid[], $4::text[], \
                 $5::jsonb[], $6::jsonb[])"
            ),
            insert_tags: format!(
                "INSERT INTO {tags} (h, lo, hi) SELECT * FROM UNNEST($1::uuid[], $2::bigint[], \
                 $3::bigint[])"
            ),
            update_head: format!("UPDATE {head} SET seq = $1, commit_pos = $2 WHERE id = 0"),
            append_unconditional: String::new(),
            read_all_asc: format!(
                "SELECT {EVENT_COLUMNS} FROM {events} e WHERE (e.commit_pos, e.seq) >= ($1, $2) \
                 ORDER BY e.commit_pos, e.seq LIMIT $3"
            ),
            read_all_desc: format!(
                "SELECT {EVENT_COLUMNS} FROM {events} e WHERE (e.commit_pos, e.seq) <= ($1, $2) \
                 ORDER BY e.commit_pos DESC, e.seq DESC LIMIT $3"
            ),
            names,
        }
    }

    /// Writes a query whose column `seq` lists the events matching one criterion within the
    /// inclusive seq range `lo..=hi` (SQL expressions), at most `limit` of them, from the high
    /// end (`desc`) or the low end. The tag hashes are bound from parameter `first` on.
    ///
    /// The tag index holds runs: a row `(h, lo, hi)` covers the seqs `lo..=hi` (`hi` NULL: just
    /// `lo`), and the rows of one tag never overlap, so they are ordered alike by `lo` and by
    /// their end. One tag is one index range scan of at most `limit` runs (each run that meets
    /// the range holds at least one match), cut where the runs before it already hold `limit`
    /// seqs and then expanded: a run of any length costs what the seqs it contributes cost.
    ///
    /// Several tags are intersected by leapfrogging in a recursive CTE: from a candidate seq,
    /// each tag's nearest seq at or past it (one or two index probes: the run holding it, else
    /// the next run) gives the next candidate, the farthest of them; a candidate all tags reach
    /// is a match. No match is skipped (none can lie between the candidate and the farthest
    /// nearest seq), and the number of steps is at most about twice the number of seqs of the
    /// rarest tag in the range, whatever the size of the log — a join would instead walk the
    /// rows of one tag, and the planner cannot know which tag is rare.
    #[allow(clippy::too_many_arguments)]
    fn criterion_matches(
        &self,
        out: &mut String,
        alias: usize,
        first: usize,
        tags: usize,
        desc: bool,
        lo: &str,
        hi: &str,
        limit: &str,
    ) {
        let table = &self.names.tags;
        if tags == 1 && desc && limit == "1" {
            // The latest match (checks, latest by criteria): the run at or before the top of
            // the range, clipped to it, if it reaches into the range.
            let _ = write!(
                out,
                "SELECT z.seq FROM (SELECT LEAST(COALESCE(t.hi, t.lo), {hi}) AS seq FROM {table} t \
                 WHERE t.h = ${first} AND t.lo <= {hi} ORDER BY t.lo DESC LIMIT 1) z \
                 WHERE z.seq >= {lo}"
            );
            return;
        }
        if tags == 1 {
            let p = first;
            // At most `limit` runs meeting the range, in the wanted order (ascending, from the
            // run before the range, which may reach into it).
            let (runs, dir) = if desc {
                (
                    format!(
                        "SELECT t.lo, t.hi FROM {table} t WHERE t.h = ${p} AND t.lo <= {hi} \
                         ORDER BY t.lo DESC LIMIT {limit}"
                    ),
                    " DESC",
                )
            } else {
                (
                    format!(
                        "SELECT t.lo, t.hi FROM {table} t WHERE t.h = ${p} AND t.lo >= \
                         COALESCE((SELECT t0.lo FROM {table} t0 WHERE t0.h = ${p} AND t0.lo < {lo} \
                         ORDER BY t0.lo DESC LIMIT 1), {lo}) AND t.lo <= {hi} ORDER BY t.lo \
                         LIMIT {limit} + 1"
                    ),
                    "",
                )
            };
            // Each run clipped to the range as a..=b, with the number of seqs of the runs
            // before it; expanded from the wanted end, no further than the limit.
            let expand = if desc {
                format!("generate_series(c.b, GREATEST(c.a, c.b - ({limit} - c.before) + 1), -1)")
            } else {
                format!("generate_series(c.a, LEAST(c.b, c.a + ({limit} - c.before) - 1))")
            };
            let a = format!("GREATEST(u.lo, {lo})");
            let b = format!("LEAST(COALESCE(u.hi, u.lo), {hi})");
            let _ = write!(
                out,
                "SELECT s.seq FROM (SELECT {a} AS a, {b} AS b, (sum({b} - {a} + 1) OVER \
                 (ORDER BY u.lo{dir} ROWS UNBOUNDED PRECEDING) - ({b} - {a} + 1))::bigint AS before \
                 FROM ({runs}) u WHERE {a} <= {b}) c, LATERAL {expand} AS s(seq) \
                 WHERE c.before < {limit} ORDER BY s.seq{dir} LIMIT {limit}"
            );
            return;
        }
        let w = format!("w{alias}");
        // Nearest seq of each tag at or past candidate x.c, inside the range; the next
        // candidate is the farthest of them, NULL when some tag has none left.
        let (farthest, step, start) = if desc {
            ("min", "- 1", hi)
        } else {
            ("max", "+ 1", lo)
        };
        let nearest = |p: usize| {
            if desc {
                // The run at or before x.c, clipped to x.c.
                format!(
                    "(SELECT z.v FROM (SELECT LEAST(COALESCE(t.hi, t.lo), x.c) AS v FROM {table} t \
                     WHERE t.h = ${p} AND t.lo <= x.c ORDER BY t.lo DESC LIMIT 1) z \
                     WHERE z.v >= {lo})"
                )
            } else {
                // x.c itself if the run at or before it holds it, else the next run's start.
                format!(
                    "(SELECT z.v FROM (SELECT COALESCE((SELECT x.c FROM (SELECT \
                     COALESCE(t.hi, t.lo) AS e FROM {table} t WHERE t.h = ${p} AND t.lo <= x.c \
                     ORDER BY t.lo DESC LIMIT 1) y WHERE y.e >= x.c), (SELECT t.lo FROM {table} t \
                     WHERE t.h = ${p} AND t.lo > x.c ORDER BY t.lo LIMIT 1)) AS v) z \
                     WHERE z.v <= {hi})"
                )
            }
        };
        let mut next =
            format!("(SELECT CASE WHEN count(v) = {tags} THEN {farthest}(v) END FROM (VALUES ");
        for j in 0..tags {
            if j > 0 {
                next.push_str(", ");
            }
            let _ = write!(next, "({})", nearest(first + j));
        }
        next.push_str(") q(v))");
        // Rows (c, m, n): candidate c, m = next(c) (a match when m = c), n = matches before.
        // The seed has no candidate; its m is the start of the range.
        let hit = format!("COALESCE(({w}.m = {w}.c)::int, 0)");
        let _ = write!(
            out,
            "WITH RECURSIVE {w}(c, m, n) AS (SELECT NULL::bigint, ({start})::bigint, 0 \
             UNION ALL SELECT x.c, {next}, {w}.n + {hit} FROM {w}, LATERAL (SELECT CASE \
             WHEN {w}.m = {w}.c THEN {w}.c {step} ELSE {w}.m END AS c) x \
             WHERE {w}.m IS NOT NULL AND {w}.n + {hit} < {limit}) \
             SELECT c AS seq FROM {w} WHERE m = c"
        );
    }

    /// The append condition check: the position of the latest event matching any criterion
    /// *after* the expected position, if there is one.
    ///
    /// `shape[i]` is the number of distinct tag hashes of criterion `i`. Parameters: `$1, $2` =
    /// the expected position; then the hashes. The expected position is first resolved to the
    /// last seq at or before it, so each criterion's search stops there: the check costs what
    /// was appended since the command read its context, however large the log.
    pub(crate) fn condition_check(&self, shape: &[usize]) -> String {
        self.condition_check_from(shape, 1)
    }

    /// [`BoundarySql::condition_check`] with its parameters numbered from `$first`.
    pub(crate) fn condition_check_from(&self, shape: &[usize], first: usize) -> String {
        let events = &self.names.events;
        let (c, p) = (first, first + 1);
        let mut sql = format!(
            "WITH b AS (SELECT COALESCE((SELECT seq FROM {events} \
             WHERE (commit_pos, seq) <= (${c}, ${p}) ORDER BY commit_pos DESC, seq DESC LIMIT 1), -1) \
             AS bound), m AS ("
        );
        let mut param = first + 2;
        for (i, &tags) in shape.iter().enumerate() {
            if i > 0 {
                sql.push_str(" UNION ALL ");
            }
            sql.push('(');
            self.criterion_matches(
                &mut sql,
                i,
                param,
                tags,
                true,
                "(SELECT bound FROM b) + 1",
                MAX_SEQ,
                "1",
            );
            sql.push(')');
            param += tags;
        }
        let _ = write!(
            sql,
            ") SELECT e.seq, e.commit_pos FROM {events} e WHERE e.seq = (SELECT max(seq) FROM m)"
        );
        sql
    }

    /// Appends events in one statement, which is its own transaction: locks the head row,
    /// inserts the events and tags at positions counted from it, moves it and queues the NOTIFY,
    /// all as data-modifying CTEs.
    ///
    /// With `checks` (the texts of [`BoundarySql::condition_check_from`] for each request's
    /// condition, their parameters first, each with its expected position first), the events
    /// are inserted only if no check finds a match, no expected position is after the head,
    /// and the statement's snapshot holds the locked head: if another writer committed between
    /// the snapshot and the lock, a check could have missed its events, so nothing is inserted
    /// and the caller decides again by the general path.
    ///
    /// Parameters after the checks' (from `$p`, `p` = `params + 1`): commit offset[], id[],
    /// type[], data[], metadata[], tag h[], tag run first offset[], tag run last offset[] (NULL
    /// for a run of one), event count, channel. Event `i` (from 0) gets seq `head + 1 + i` and
    /// commit `head + 1 + offset[i]`. Returns `(seq,
    /// commit_pos)` of the head before, and the number of appends made (0 or 1).
    pub(crate) fn append_in_one_statement(
        &self,
        checks: &[(String, usize)],
        params: usize,
    ) -> String {
        let ObjectNames {
            events, tags, head, ..
        } = &self.names;
        let mut guard = "SELECT hd.seq FROM hd".to_owned();
        if !checks.is_empty() {
            let _ = write!(
                guard,
                " WHERE hd.seq = (SELECT seq FROM {head} WHERE id = 0)"
            );
            for (check, first) in checks {
                let (c, p) = (first, first + 1);
                let _ = write!(
                    guard,
                    " AND (hd.commit_pos, hd.seq) >= (${c}, ${p}) AND NOT EXISTS ({check})"
                );
            }
        }
        let p = params + 1;
        let q = |i: usize| format!("${}", p + i);
        format!(
            "WITH hd AS (SELECT seq, commit_pos FROM {head} WHERE id = 0 FOR UPDATE), \
             ok AS MATERIALIZED ({guard}), \
             ev AS (INSERT INTO {events} (seq, commit_pos, event_id, event_type, data, metadata) \
             SELECT ok.seq + u.o, ok.seq + 1 + u.coff, u.id, u.ty, u.d, u.m FROM ok, \
             UNNEST({c}::bigint[], {i}::uuid[], {t}::text[], {d}::jsonb[], {m}::jsonb[]) \
             WITH ORDINALITY AS u(coff, id, ty, d, m, o)), \
             tg AS (INSERT INTO {tags} (h, lo, hi) SELECT t.h, ok.seq + 1 + t.lo, \
             ok.seq + 1 + t.hi FROM ok, UNNEST({th}::uuid[], {tl}::bigint[], {tu}::bigint[]) \
             AS t(h, lo, hi)), \
             up AS (UPDATE {head} AS hu SET seq = ok.seq + {n}, commit_pos = ok.seq + {n} + 1 \
             FROM ok WHERE hu.id = 0), \
             nt AS (SELECT pg_notify({ch}, (ok.seq + {n} + 1)::text || ',' || (ok.seq + {n})::text) \
             FROM ok) \
             SELECT hd.seq, hd.commit_pos, (SELECT count(*) FROM nt) FROM hd",
            c = q(0),
            i = q(1),
            t = q(2),
            d = q(3),
            m = q(4),
            th = q(5),
            tl = q(6),
            tu = q(7),
            n = q(8),
            ch = q(9),
        )
    }

    /// A page of the events matching any criterion, from an inclusive position, in the given
    /// direction. Parameters: `$1, $2` = the position, `$3` = the limit, then the hashes.
    pub(crate) fn read_by_criteria(&self, shape: &[usize], ascending: bool) -> String {
        let events = &self.names.events;
        let (bound, lo, hi, order) = if ascending {
            (
                format!(
                    "COALESCE((SELECT seq FROM {events} WHERE (commit_pos, seq) >= ($1, $2) \
                     ORDER BY commit_pos, seq LIMIT 1), {MAX_SEQ})"
                ),
                "(SELECT bound FROM b)",
                MAX_SEQ,
                "",
            )
        } else {
            (
                format!(
                    "COALESCE((SELECT seq FROM {events} WHERE (commit_pos, seq) <= ($1, $2) \
                     ORDER BY commit_pos DESC, seq DESC LIMIT 1), -1)"
                ),
                "0",
                "(SELECT bound FROM b)",
                " DESC",
            )
        };
        let mut sql = format!("WITH b AS (SELECT {bound} AS bound), m AS (");
        let mut param = 4;
        for (i, &tags) in shape.iter().enumerate() {
            if i > 0 {
                sql.push_str(" UNION ");
            }
            sql.push('(');
            self.criterion_matches(&mut sql, i, param, tags, !ascending, lo, hi, "$3");
            sql.push(')');
            param += tags;
        }
        let _ = write!(
            sql,
            ") SELECT {EVENT_COLUMNS} FROM {events} e \
             JOIN (SELECT seq FROM m ORDER BY seq{order} LIMIT $3) s ON e.seq = s.seq \
             ORDER BY e.seq{order}"
        );
        sql
    }

    /// The latest event of each criterion, in one statement (one snapshot). Parameters: the
    /// hashes. Rows: `(criterion index, event columns...)`, only for criteria that match.
    pub(crate) fn latest_by_criteria(&self, shape: &[usize]) -> String {
        let events = &self.names.events;
        let mut sql = String::from("WITH m AS (");
        let mut param = 1;
        for (i, &tags) in shape.iter().enumerate() {
            if i > 0 {
                sql.push_str(" UNION ALL ");
            }
            let _ = write!(sql, "(SELECT {i}::int4 AS idx, z.seq FROM (");
            self.criterion_matches(&mut sql, i, param, tags, true, "0", MAX_SEQ, "1");
            sql.push_str(") z)");
            param += tags;
        }
        let _ = write!(
            sql,
            ") SELECT m.idx, {EVENT_COLUMNS} FROM m JOIN {events} e ON e.seq = m.seq"
        );
        sql
    }
}

/// Larger than any seq: the open upper end of a range.
const MAX_SEQ: &str = "9223372036854775807";

#[cfg(test)]
mod tests {
    use super::*;

    fn sql() -> BoundarySql {
        BoundarySql::new(ObjectNames::new("s", "b"))
    }

    #[test]
    fn numbers_parameters_across_criteria() {
        let check = sql().condition_check(&[2, 1]);
        for p in ["t.h = $3", "t.h = $4", "t.h = $5"] {
            assert!(check.contains(p), "{p}: {check}");
        }
        assert!(!check.contains("$6"), "{check}");
        let read = sql().read_by_criteria(&[1, 3], true);
        for p in ["t.h = $4", "t.h = $5", "t.h = $7"] {
            assert!(read.contains(p), "{p}: {read}");
        }
        assert!(!read.contains("$8"), "{read}");
        let latest = sql().latest_by_criteria(&[1, 1]);
        assert!(
            latest.contains("1::int4 AS idx") && latest.contains("t.h = $2"),
            "{latest}"
        );
    }
}
