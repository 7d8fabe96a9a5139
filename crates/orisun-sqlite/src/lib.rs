//! Orisun's embedded storage backend: [`SqliteStore`], an [`orisun_store::EventStore`] kept in
//! SQLite files, durable and with zero setup.
//!
//! # Layout
//!
//! The data directory holds one database file per boundary, `<boundary>.db` (plus SQLite's
//! `-wal`/`-shm` files), and a lock file, [`LOCK_FILE`]. Separate files give every boundary its
//! own writer, its own write lock and its own WAL, so boundaries never wait for each other.
//! The set of `.db` files *is* the registry of boundaries: there is no catalog database that
//! could disagree with the files. Each file records the name it was created for, so that on a
//! case-insensitive file system `Orders` cannot silently share `orders.db`.
//!
//! The directory is locked (an OS file lock, released when the process dies) for the life of a
//! store: a second store on it would run a second writer whose appends the first store's
//! subscribers would never be woken for.
//!
//! [`COORDINATION_FILE`] holds the checkpoints of [`SqliteStore::coordination`] (its leases are
//! in memory: with the directory locked, every contender is in this process).
//!
//! # Schema
//!
//! `events(seq INTEGER PRIMARY KEY, commit_pos, event_id UNIQUE, event_type, data, metadata,
//! date_created)` holds the log in position order: `seq` is the position's prepare part (0-based,
//! gap-free) and the rowid, and `commit_pos` is the batch's last seq + 1. Because lexicographic
//! position order equals seq order, `seq` is the only key reads need; an index on
//! `(commit_pos, seq)` resolves any read bound, including positions no event has (`{5,0}`,
//! `{-1,-1}`, far beyond the head), to a seq with one seek. The tag index has one row per distinct
//! tag hash of each event ([`orisun_core::NewEvent::tag_hashes`]), kept in three `WITHOUT ROWID`
//! tables, newest first: `tag_log(seq, h)` holds the newest rows in log order, `tags_recent(h,
//! seq, last)` a few hundred thousand rows keyed by tag, and `tags(h, seq, last)` everything
//! older, keyed by tag. The last two hold runs: a row covers the seqs `seq..=last` (`last` NULL:
//! `seq` alone), so consecutive events that share a tag (a batch's type, its stream) cost one
//! row. `date_created` is unix microseconds, UTC.
//!
//! Why three tables: every page a commit dirties is a 4 KiB WAL frame written, checksummed,
//! synced and later copied back by a checkpoint, and rows keyed by tag hash land on a different
//! leaf per distinct tag. Appended to `tag_log` in seq order, a group of single-event saves
//! dirties a few pages; once `tag_log` holds [`SqliteConfig::tag_log_rows`] rows, the writer moves
//! them into `tags_recent` as runs, sorted by tag. A large batch writes its runs there directly.
//! `tags_recent` is small, so those rows share its few hundred leaves instead of dirtying one
//! leaf of a large `tags` each; the writer moves it on into `tags` one slice of the hash space at
//! a time, inside the transactions it runs anyway (`tag_merge`), where a slice's rows land on the
//! matching slice of `tags` in key order and each leaf of `tags` is written once for all the
//! rows it receives. For each tag, its seqs in `tag_log` are above those in `tags_recent`, above
//! those in `tags`, so a lookup reads the tables in the order its walk meets their seqs and stops
//! once it has what it needs; readers scan `tag_log` by seq (it is small), and the writer checks
//! conditions against its own in-memory copy of it (`tag_tail`).
//!
//! The schema is versioned: `migrations/NNNN_name.sql` are applied in order at open, each in
//! the transaction that records its number in `PRAGMA user_version`.
//!
//! # Writes: one writer per boundary, group commit
//!
//! Each boundary has one writer thread that owns its only write connection. Appends are
//! validated by the caller (`rules::validate_batch`), encoded (JSON text, tag hashes) on the
//! caller's thread, and queued. The writer drains the queue (up to
//! [`SqliteConfig::max_batch_events`] events), runs every request of the group in one
//! transaction (a request is decided by checks that run before it writes anything, so a rejected
//! request fails alone without a savepoint), commits once (one fsync for the group), publishes
//! the new head on the boundary's watch, and only then answers the callers. A request's
//! condition sees the accepted requests before it in the same group, because they are already
//! inserted in the open transaction. See the `writer` and `append` modules.
//!
//! # Reads
//!
//! Reads run on a small pool of read connections per boundary ([`SqliteConfig::read_connections`])
//! on tokio's blocking threads, so async code never blocks on SQLite. In WAL mode a reader works
//! on a snapshot and never waits for the writer. Every read that issues several statements
//! (a page of a criteria read, `latest_by_criteria`) runs them in one read transaction, hence on
//! one snapshot, which keeps the visible log a prefix. Criteria use the tag index (a leapfrog
//! intersection per criterion, merged across criteria; see the `read` module), never a scan.
//!
//! # Durability
//!
//! The files are in WAL mode. [`Synchronous::Full`] (the default) fsyncs the WAL at every commit:
//! an acknowledged append survives a power loss. [`Synchronous::Normal`] keeps the database
//! consistent but may lose the last acknowledged commits on power loss; [`Synchronous::Off`] is
//! for tests. At every level a commit is atomic and a process crash loses nothing acknowledged.
//!
//! # Design notes
//!
//! Where this backend departs from the plain reading of its brief, and why:
//! - The writer reads the head at the start of every group (one index seek) instead of caching
//!   it, so correctness never depends on it being the file's only writer (e.g. a store dropped
//!   and reopened while the old writer still finishes its queue).
//! - `count` is the head's seq + 1 (seqs are gap-free), O(1) where `count(*)` is O(n).
//! - Read connections are opened read-write with `PRAGMA query_only`, not `SQLITE_OPEN_READONLY`,
//!   which fails on a WAL file whose `-shm` does not exist yet.
//! - Conjunctions of tags are intersected with a leapfrog join written here rather than left to
//!   SQLite's planner, which cannot know which tag is selective and would walk the longer list.

mod append;
mod config;
mod coordination;
mod error;
mod pool;
mod read;
mod schema;
mod sql;
mod store;
mod tag_merge;
mod tag_tail;
mod writer;

pub use config::{SqliteConfig, Synchronous};
pub use coordination::{SqliteCoordination, COORDINATION_FILE};
pub use store::{SqliteStore, LOCK_FILE};
