//! Moves the middle level of the tag index (`tags_recent`) into the oldest (`tags`), one slice
//! of the tag-hash space at a time, inside the transactions the writer runs anyway.
//!
//! Both tables are keyed by `(tag hash, seq)`, so the rows of one slice (the hashes whose first
//! byte is `k`) sit together in each, and a slice of `tags_recent` lands on the matching slice
//! of `tags` in key order: a leaf of `tags` is written once for all the rows it receives, where
//! inserting the same rows group by group wrote it once per row. The slices are moved in turn,
//! as fast as rows arrive: for every `target / SLICES` rows added to `tags_recent`, one slice
//! moves, so each slice holds about `target / SLICES` rows when its turn comes and the table
//! about `target / 2` on average. A move takes the time of a small group, never a pause.
//!
//! Only whole slices move, so every tag's rows of `tags_recent` leave together and the order
//! the readers rely on (a tag's seqs in `tags` below its seqs in `tags_recent`) holds.

use crate::sql;
use rusqlite::{params, Connection};

/// How many slices the hash space is cut into (by the first byte of a hash).
const SLICES: u64 = 256;

/// Which slice moves next, and how many rows have arrived since the last one moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagMerge {
    /// About how many rows `tags_recent` holds when a slice's turn comes back (at least 1).
    target: u64,
    /// The next slice to move.
    next: u8,
    /// Rows added since the last slice moved, times [`SLICES`].
    owed: u64,
}

impl TagMerge {
    /// A schedule that keeps about `target` rows in `tags_recent`, starting at slice 0.
    pub(crate) fn new(target: usize) -> Self {
        Self {
            target: (target as u64).max(1),
            next: 0,
            owed: 0,
        }
    }

    /// Records `added` new rows of `tags_recent` and moves the slices that are due, in the open
    /// transaction of `conn`. Returns the schedule to keep if that transaction commits (the
    /// receiver stays as it was, for a rollback) and the number of rows moved.
    pub(crate) fn run(self, conn: &Connection, added: usize) -> rusqlite::Result<(Self, usize)> {
        let mut owed = self.owed + added as u64 * SLICES;
        let mut next = self.next;
        let mut moved = 0;
        // Never more than one round of the slices per transaction.
        let mut left = SLICES;
        while owed >= self.target && left > 0 {
            moved += move_slice(conn, next)?;
            owed -= self.target;
            next = next.wrapping_add(1);
            left -= 1;
        }
        if left == 0 {
            owed = 0;
        }
        Ok((
            Self {
                target: self.target,
                next,
                owed,
            },
            moved,
        ))
    }
}

/// Moves the rows of `tags_recent` whose hash starts with byte `slice` into `tags`.
fn move_slice(conn: &Connection, slice: u8) -> rusqlite::Result<usize> {
    let low = [slice];
    // Above every hash of the slice: the next byte, or (for 0xff) 17 bytes of 0xff, which every
    // 16-byte hash sorts before.
    let high: Vec<u8> = match slice.checked_add(1) {
        Some(b) => vec![b],
        None => vec![0xff; 17],
    };
    let moved = conn
        .prepare_cached(sql::MOVE_RECENT_SLICE)?
        .execute(params![&low[..], &high[..]])?;
    let cleared = conn
        .prepare_cached(sql::CLEAR_RECENT_SLICE)?
        .execute(params![&low[..], &high[..]])?;
    debug_assert_eq!(moved, cleared, "every row of the slice moved");
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    fn insert_recent(conn: &Connection, first_bytes: impl IntoIterator<Item = u8>, seq: i64) {
        for (i, b) in first_bytes.into_iter().enumerate() {
            let mut h = [0x5a_u8; 16];
            h[0] = b;
            conn.execute(
                "INSERT INTO tags_recent (h, seq, last) VALUES (?1, ?2, NULL)",
                params![&h[..], seq + i as i64],
            )
            .expect("insert");
        }
    }

    #[test]
    fn slices_move_in_turn_as_rows_arrive() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("open");
        schema::migrate(&mut conn, "b").expect("migrate");
        // One row in each slice, and a target of 512 rows: two rows added owe one slice.
        insert_recent(&conn, 0..=255, 0);
        let merge = TagMerge::new(512);
        let (merge, moved) = merge.run(&conn, 1).expect("run");
        assert_eq!((moved, merge.next), (0, 0), "half a slice owed");
        let (merge, moved) = merge.run(&conn, 1).expect("run");
        assert_eq!((moved, merge.next), (1, 1), "slice 0 moved");
        let (merge, moved) = merge.run(&conn, 20).expect("run");
        assert_eq!((moved, merge.next), (10, 11), "ten more slices");
        assert_eq!(count(&conn, "tags"), 11);
        assert_eq!(count(&conn, "tags_recent"), 245);
        // Slice 0xff is bounded too: its hashes start with the highest byte.
        let merge = TagMerge {
            next: 0xff,
            ..merge
        };
        let (merge, moved) = merge.run(&conn, 2).expect("run");
        assert_eq!((moved, merge.next), (1, 0), "slice 0xff moved, then wraps");
        let moved: i64 = conn
            .query_row("SELECT count(*) FROM tags WHERE h >= x'ff'", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(moved, 1);
    }

    #[test]
    fn a_flood_moves_at_most_one_round_and_a_rollback_keeps_the_schedule() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("open");
        schema::migrate(&mut conn, "b").expect("migrate");
        insert_recent(&conn, (0..=255).chain(0..=255), 0);
        let merge = TagMerge::new(4);
        let (after, moved) = merge.run(&conn, 1_000_000).expect("run");
        assert_eq!(moved, 512, "every slice once");
        assert_eq!((after.next, after.owed), (0, 0));
        assert_eq!(count(&conn, "tags_recent"), 0);

        // Inside a transaction that rolls back, the caller keeps the old schedule and the rows.
        insert_recent(&conn, [7], 1_000);
        let merge = TagMerge {
            next: 7,
            ..TagMerge::new(256)
        };
        let tx = conn.transaction().expect("tx");
        let (after, moved) = merge.run(&tx, 1).expect("run");
        assert_eq!((moved, after.next), (1, 8));
        drop(tx);
        assert_eq!(count(&conn, "tags_recent"), 1);
        assert_eq!(merge.next, 7);
    }
}
