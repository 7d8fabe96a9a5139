//! The writer's copy of `tag_log` (the newest rows of the tag index) in memory, so that the
//! conditions it checks find a tag's newest seqs with a hash lookup instead of scanning the log.

use crate::read::Scan;
use crate::sql;
use orisun_core::{Direction, TagHash};
use rusqlite::Connection;
use std::collections::HashMap;

/// The rows of `tag_log` as the writer's open transaction sees them: each tag's seqs, ascending.
#[derive(Debug, Default)]
pub(crate) struct TagTail {
    seqs: HashMap<TagHash, Vec<i64>>,
    rows: usize,
}

impl TagTail {
    /// Reads the rows `tag_log` holds (when the writer starts).
    pub(crate) fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let mut tail = Self::default();
        let mut stmt = conn.prepare(sql::READ_TAG_LOG)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let hash: Vec<u8> = row.get(1)?;
            let hash: TagHash = hash.as_slice().try_into().map_err(|_| {
                rusqlite::Error::InvalidColumnType(1, "h".into(), rusqlite::types::Type::Blob)
            })?;
            tail.push(hash, seq);
        }
        Ok(tail)
    }

    /// Records a row the writer inserted; seqs arrive in ascending order.
    pub(crate) fn push(&mut self, hash: TagHash, seq: i64) {
        let seqs = self.seqs.entry(hash).or_default();
        debug_assert!(seqs.last().is_none_or(|&last| last <= seq), "seqs ascend");
        if seqs.last() != Some(&seq) {
            seqs.push(seq);
            self.rows += 1;
        }
    }

    /// Forgets the rows above `seq`: those of a transaction that was rolled back.
    pub(crate) fn truncate_after(&mut self, seq: i64) {
        let mut removed = 0;
        self.seqs.retain(|_, seqs| {
            let keep = seqs.partition_point(|&s| s <= seq);
            removed += seqs.len() - keep;
            seqs.truncate(keep);
            !seqs.is_empty()
        });
        self.rows -= removed;
    }

    /// Forgets every row: they were moved into `tags_recent`.
    pub(crate) fn clear(&mut self) {
        self.seqs.clear();
        self.rows = 0;
    }

    /// How many rows `tag_log` holds.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Returns up to `limit` seqs carrying `hash`, walking `scan` from `from` on.
    pub(crate) fn range(&self, hash: &TagHash, from: i64, scan: Scan, limit: usize) -> Vec<i64> {
        let Some(seqs) = self.seqs.get(hash) else {
            return Vec::new();
        };
        let (lo, hi) = scan.bounds(from);
        let start = seqs.partition_point(|&s| s < lo);
        let end = seqs.partition_point(|&s| s <= hi);
        let within = &seqs[start..end.max(start)];
        match scan.direction() {
            Direction::Asc => within.iter().take(limit).copied().collect(),
            Direction::Desc => within.iter().rev().take(limit).copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> TagHash {
        [n; 16]
    }

    #[test]
    fn ranges_follow_the_scan_and_truncation_undoes_pushes() {
        let mut tail = TagTail::default();
        for seq in [3, 5, 8, 9] {
            tail.push(hash(1), seq);
        }
        tail.push(hash(2), 5);
        tail.push(hash(2), 5); // one row per (tag, seq), as in the table
        assert_eq!(tail.rows(), 5);
        assert_eq!(tail.range(&hash(1), 4, Scan::asc(0), 10), [5, 8, 9]);
        assert_eq!(tail.range(&hash(1), 4, Scan::asc(0), 2), [5, 8]);
        assert_eq!(tail.range(&hash(1), 8, Scan::desc(9), 10), [8, 5, 3]);
        assert_eq!(
            tail.range(&hash(1), 9, Scan::desc(9).stop_at(5), 10),
            [9, 8, 5]
        );
        assert_eq!(
            tail.range(&hash(1), 2, Scan::desc(9), 10),
            Vec::<i64>::new()
        );
        assert_eq!(tail.range(&hash(3), 0, Scan::asc(0), 10), Vec::<i64>::new());
        tail.truncate_after(5);
        assert_eq!(tail.rows(), 3);
        assert_eq!(tail.range(&hash(1), 0, Scan::asc(0), 10), [3, 5]);
        tail.truncate_after(4);
        assert_eq!(tail.range(&hash(2), 0, Scan::asc(0), 10), Vec::<i64>::new());
        assert_eq!(tail.rows(), 1);
        tail.clear();
        assert_eq!(tail.rows(), 0);
    }
}
