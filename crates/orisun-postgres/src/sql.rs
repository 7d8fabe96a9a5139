//! The SQL text of one boundary's statements. Identifiers come from [`ObjectNames`] (validated
//! and quoted); every value is a bind parameter.
//!
//! Criteria become joins over the tag index: a criterion is the intersection of the rows of its
//! tag hashes (a join on `seq`), a query is the union of its criteria. Each branch is an index
//! scan of `(h, seq)` in the wanted order with a `LIMIT`, so a check or a read touches only the
//! rows it returns (plus, for a criterion with several tags, the rows of its first tag that the
//! others reject).

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
    /// Inserts tag rows from arrays: `($1 h[], $2 seq[])`.
    pub insert_tags: String,
    /// Moves the head: `($1 seq, $2 commit_pos)`.
    pub update_head: String,
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
                "INSERT INTO {tags} (h, seq) SELECT * FROM UNNEST($1::uuid[], $2::bigint[])"
            ),
            update_head: format!("UPDATE {head} SET seq = $1, commit_pos = $2 WHERE id = 0"),
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

    /// Writes the intersection of one criterion's tags as `SELECT t0.seq FROM ... WHERE ...`,
    /// with the tag hashes bound from parameter `first` on and `extra` appended to the WHERE.
    fn criterion_scan(
        &self,
        out: &mut String,
        select: &str,
        tags: usize,
        first: usize,
        extra: &str,
    ) {
        let table = &self.names.tags;
        let _ = write!(out, "SELECT {select} FROM {table} t0");
        for j in 1..tags {
            let _ = write!(
                out,
                " JOIN {table} t{j} ON t{j}.h = ${p} AND t{j}.seq = t0.seq",
                p = first + j
            );
        }
        let _ = write!(out, " WHERE t0.h = ${first}{extra}");
    }

    /// The append condition check: the position of the latest event matching any criterion
    /// *after* the expected position, if there is one.
    ///
    /// `shape[i]` is the number of distinct tag hashes of criterion `i`. Parameters: `$1, $2` =
    /// the expected position; then the hashes. The expected position is first resolved to the
    /// last seq at or before it, so each criterion scan stops there: the check costs what was
    /// appended since the command read its context, however large the log.
    pub(crate) fn condition_check(&self, shape: &[usize]) -> String {
        let events = &self.names.events;
        let mut sql = format!(
            "WITH b AS (SELECT COALESCE((SELECT seq FROM {events} \
             WHERE (commit_pos, seq) <= ($1, $2) ORDER BY commit_pos DESC, seq DESC LIMIT 1), -1) \
             AS bound), m AS ("
        );
        let mut param = 3;
        for (i, &tags) in shape.iter().enumerate() {
            if i > 0 {
                sql.push_str(" UNION ALL ");
            }
            sql.push('(');
            self.criterion_scan(
                &mut sql,
                "t0.seq",
                tags,
                param,
                " AND t0.seq > (SELECT bound FROM b) ORDER BY t0.seq DESC LIMIT 1",
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

    /// A page of the events matching any criterion, from an inclusive position, in the given
    /// direction. Parameters: `$1, $2` = the position, `$3` = the limit, then the hashes.
    pub(crate) fn read_by_criteria(&self, shape: &[usize], ascending: bool) -> String {
        let events = &self.names.events;
        let (bound, cmp, order) = if ascending {
            (
                format!(
                    "COALESCE((SELECT seq FROM {events} WHERE (commit_pos, seq) >= ($1, $2) \
                     ORDER BY commit_pos, seq LIMIT 1), 9223372036854775807)"
                ),
                ">=",
                "",
            )
        } else {
            (
                format!(
                    "COALESCE((SELECT seq FROM {events} WHERE (commit_pos, seq) <= ($1, $2) \
                     ORDER BY commit_pos DESC, seq DESC LIMIT 1), -1)"
                ),
                "<=",
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
            self.criterion_scan(
                &mut sql,
                "t0.seq",
                tags,
                param,
                &format!(" AND t0.seq {cmp} (SELECT bound FROM b) ORDER BY t0.seq{order} LIMIT $3"),
            );
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
            sql.push('(');
            self.criterion_scan(
                &mut sql,
                &format!("{i}::int4 AS idx, t0.seq"),
                tags,
                param,
                " ORDER BY t0.seq DESC LIMIT 1",
            );
            sql.push(')');
            param += tags;
        }
        let _ = write!(
            sql,
            ") SELECT m.idx, {EVENT_COLUMNS} FROM m JOIN {events} e ON e.seq = m.seq"
        );
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql() -> BoundarySql {
        BoundarySql::new(ObjectNames::new("s", "b"))
    }

    #[test]
    fn numbers_parameters_across_criteria() {
        let check = sql().condition_check(&[2, 1]);
        assert!(check.contains("t0.h = $3"), "{check}");
        assert!(check.contains("t1.h = $4"), "{check}");
        assert!(check.contains("t0.h = $5"), "{check}");
        assert!(!check.contains("$6"), "{check}");
        let read = sql().read_by_criteria(&[1, 3], true);
        assert!(
            read.contains("t0.h = $4") && read.contains("t2.h = $7"),
            "{read}"
        );
        assert!(!read.contains("$8"), "{read}");
        let latest = sql().latest_by_criteria(&[1, 1]);
        assert!(
            latest.contains("1::int4 AS idx") && latest.contains("t0.h = $2"),
            "{latest}"
        );
    }
}
