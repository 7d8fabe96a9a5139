//! The SQL text of a boundary's statements (run by `read`, `append`, `writer` and `tag_tail`); nothing
//! here runs a statement. Every value is a bind parameter.
//!
//! The tests check SQLite's plan of each lookup: every one is an index search, none sorts.

/// `SELECT` of the columns `read::decode` reads, in its order, followed by `$rest`.
macro_rules! select_event {
    ($rest:literal) => {
        concat!(
            "SELECT seq, commit_pos, event_id, event_type, data, metadata, date_created FROM events",
            $rest
        )
    };
}

/// The events from seq `?1` on, oldest first, at most `?2`.
pub(crate) const READ_ALL_ASC: &str = select_event!(" WHERE seq >= ?1 ORDER BY seq LIMIT ?2");

/// The events from seq `?1` down, newest first, at most `?2`.
pub(crate) const READ_ALL_DESC: &str = select_event!(" WHERE seq <= ?1 ORDER BY seq DESC LIMIT ?2");

/// The event at seq `?1`.
pub(crate) const EVENT_AT: &str = select_event!(" WHERE seq = ?1");

/// The position of the last event.
pub(crate) const HEAD: &str = "SELECT commit_pos, seq FROM events ORDER BY seq DESC LIMIT 1";

/// The position of the event at seq `?1`.
pub(crate) const POSITION_AT: &str = "SELECT commit_pos, seq FROM events WHERE seq = ?1";

/// The position of the event whose id is `?1`.
pub(crate) const POSITION_OF_ID: &str = "SELECT commit_pos, seq FROM events WHERE event_id = ?1";

/// The first seq of commit `?1` at or after seq `?2`.
pub(crate) const SEEK_AT_OR_AFTER: &str =
    "SELECT seq FROM events WHERE commit_pos = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1";

/// The first seq of commit `?1` after seq `?2`.
pub(crate) const SEEK_AFTER: &str =
    "SELECT seq FROM events WHERE commit_pos = ?1 AND seq > ?2 ORDER BY seq LIMIT 1";

/// The last seq of commit `?1` at or before seq `?2`.
pub(crate) const SEEK_AT_OR_BEFORE: &str =
    "SELECT seq FROM events WHERE commit_pos = ?1 AND seq <= ?2 \
     ORDER BY seq DESC LIMIT 1";

/// The first seq of a commit after `?1`.
pub(crate) const SEEK_LATER_COMMIT: &str =
    "SELECT seq FROM events WHERE commit_pos > ?1 ORDER BY commit_pos, seq LIMIT 1";

/// The last seq of a commit before `?1`.
pub(crate) const SEEK_EARLIER_COMMIT: &str = "SELECT seq FROM events WHERE commit_pos < ?1 \
     ORDER BY commit_pos DESC, seq DESC LIMIT 1";

/// The lookups of one table of runs (`tags` or `tags_recent`, which have the same shape).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunTable {
    /// The run carrying tag `?1` that starts at or before seq `?2`, as `(seq, last)`.
    pub at_or_before: &'static str,
    /// Up to `?4` runs carrying tag `?1` that start after seq `?2` and at or before `?3`,
    /// ascending, as `(seq, last)`.
    pub asc: &'static str,
    /// Up to `?3` runs carrying tag `?1` that start at or before seq `?2`, descending, as
    /// `(seq, last)`. (No lower bound: a run that starts below the walk's end may still reach it.)
    pub desc: &'static str,
}

/// The [`RunTable`] statements of table `$table`.
macro_rules! run_table {
    ($table:literal) => {
        RunTable {
            at_or_before: concat!(
                "SELECT seq, last FROM ",
                $table,
                " WHERE h = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1"
            ),
            asc: concat!(
                "SELECT seq, last FROM ",
                $table,
                " WHERE h = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4"
            ),
            desc: concat!(
                "SELECT seq, last FROM ",
                $table,
                " WHERE h = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT ?3"
            ),
        }
    };
}

/// The oldest level of the tag index.
pub(crate) const TAGS: RunTable = run_table!("tags");

/// The middle level of the tag index (see `migrations/0004_tags_recent.sql`).
pub(crate) const TAGS_RECENT: RunTable = run_table!("tags_recent");

/// Up to `?4` seqs of `tag_log` carrying tag `?1` from `?2` up to `?3`, ascending.
pub(crate) const TAG_LOG_ASC: &str =
    "SELECT seq FROM tag_log WHERE seq >= ?2 AND seq <= ?3 AND h = ?1 \
     ORDER BY seq LIMIT ?4";

/// Up to `?4` seqs of `tag_log` carrying tag `?1` from `?2` down to `?3`, descending.
pub(crate) const TAG_LOG_DESC: &str =
    "SELECT seq FROM tag_log WHERE seq <= ?2 AND seq >= ?3 AND h = ?1 \
     ORDER BY seq DESC LIMIT ?4";

/// Every row of `tag_log`, in log order (the writer's copy is loaded from it).
pub(crate) const READ_TAG_LOG: &str = "SELECT seq, h FROM tag_log ORDER BY seq";

/// Inserts one event.
pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO events (seq, commit_pos, event_id, event_type, data, metadata, \
     date_created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Inserts one row of the tag index into `tag_log`.
pub(crate) const INSERT_TAG_LOG: &str = "INSERT INTO tag_log (seq, h) VALUES (?1, ?2)";

/// Inserts one run into `tags_recent`: tag `?1` on seqs `?2` to `?3` (`NULL` for `?2` alone).
pub(crate) const INSERT_TAG_RECENT: &str =
    "INSERT INTO tags_recent (h, seq, last) VALUES (?1, ?2, ?3)";

/// Copies every row of `tag_log` into `tags_recent` as runs, sorted by tag. The seqs of one
/// tag minus their rank among that tag's rows are equal exactly along a stretch of consecutive
/// seqs (an "island"), so grouping by that difference gives the runs. [`CLEAR_TAG_LOG`] follows
/// in the same transaction.
pub(crate) const MOVE_TAG_LOG: &str = "INSERT INTO tags_recent (h, seq, last) \
     SELECT h, min(seq), CASE WHEN max(seq) > min(seq) THEN max(seq) END \
     FROM (SELECT h, seq, seq - row_number() OVER (PARTITION BY h ORDER BY seq) AS island \
           FROM tag_log) \
     GROUP BY h, island ORDER BY h, min(seq)";

/// Empties `tag_log` once its rows are in `tags_recent`.
pub(crate) const CLEAR_TAG_LOG: &str = "DELETE FROM tag_log";

/// Copies the rows of `tags_recent` whose tag lies in `?1 <= h < ?2` into `tags`, in key order.
/// [`CLEAR_RECENT_SLICE`] follows in the same transaction.
pub(crate) const MOVE_RECENT_SLICE: &str = "INSERT INTO tags (h, seq, last) \
     SELECT h, seq, last FROM tags_recent WHERE h >= ?1 AND h < ?2 ORDER BY h, seq";

/// Deletes the rows of `tags_recent` whose tag lies in `?1 <= h < ?2`.
pub(crate) const CLEAR_RECENT_SLICE: &str = "DELETE FROM tags_recent WHERE h >= ?1 AND h < ?2";

#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::schema::migrate;
    use rusqlite::Connection;

    /// Returns SQLite's query plan for `sql`, one detail line per step.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let params = rusqlite::params_from_iter(std::iter::repeat_n(0i64, stmt.parameter_count()));
        let rows = stmt
            .query_map(params, |r| r.get::<_, String>(3))
            .expect("plan rows");
        rows.map(|r| r.expect("plan row"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn every_lookup_is_an_index_search() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn, "b").expect("migrate");
        let cases = [
            (
                SEEK_AT_OR_AFTER,
                "SEARCH events USING COVERING INDEX events_by_position (commit_pos=? AND seq>?)",
            ),
            (
                SEEK_AFTER,
                "SEARCH events USING COVERING INDEX events_by_position (commit_pos=? AND seq>?)",
            ),
            (
                SEEK_AT_OR_BEFORE,
                "SEARCH events USING COVERING INDEX events_by_position (commit_pos=? AND seq<?)",
            ),
            (
                SEEK_LATER_COMMIT,
                "SEARCH events USING COVERING INDEX events_by_position (commit_pos>?)",
            ),
            (
                SEEK_EARLIER_COMMIT,
                "SEARCH events USING COVERING INDEX events_by_position (commit_pos<?)",
            ),
            (
                TAGS.at_or_before,
                "SEARCH tags USING PRIMARY KEY (h=? AND seq<?)",
            ),
            (
                TAGS.asc,
                "SEARCH tags USING PRIMARY KEY (h=? AND seq>? AND seq<?)",
            ),
            (TAGS.desc, "SEARCH tags USING PRIMARY KEY (h=? AND seq<?)"),
            (
                TAGS_RECENT.at_or_before,
                "SEARCH tags_recent USING PRIMARY KEY (h=? AND seq<?)",
            ),
            (
                TAGS_RECENT.asc,
                "SEARCH tags_recent USING PRIMARY KEY (h=? AND seq>? AND seq<?)",
            ),
            (
                TAGS_RECENT.desc,
                "SEARCH tags_recent USING PRIMARY KEY (h=? AND seq<?)",
            ),
            (
                MOVE_RECENT_SLICE,
                "SEARCH tags_recent USING PRIMARY KEY (h>? AND h<?)",
            ),
            (
                TAG_LOG_ASC,
                "SEARCH tag_log USING PRIMARY KEY (seq>? AND seq<?)",
            ),
            (
                TAG_LOG_DESC,
                "SEARCH tag_log USING PRIMARY KEY (seq>? AND seq<?)",
            ),
            (
                POSITION_OF_ID,
                "SEARCH events USING INDEX sqlite_autoindex_events_1 (event_id=?)",
            ),
            (HEAD, "SCAN events"),
        ];
        for (sql, want) in cases {
            let got = plan(&conn, sql);
            println!("{sql}\n  -> {got}");
            assert!(got.starts_with(want), "{sql}: {got}");
            assert!(!got.contains("TEMP B-TREE"), "{sql} sorts: {got}");
        }
    }
}
