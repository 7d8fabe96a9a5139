//! The settings of a [`crate::SqliteStore`]: where the data lives and how durable a commit is.

use std::path::PathBuf;

/// How hard SQLite works to make a commit survive a crash (`PRAGMA synchronous`).
///
/// In WAL mode every level keeps the database consistent: a commit is either wholly there after a
/// crash or wholly absent. They differ in whether an *acknowledged* commit survives a power loss
/// or an operating-system crash. A process crash (even `SIGKILL`) loses nothing at any level,
/// because the WAL is already in the operating system's page cache when the commit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// The WAL is fsynced at every commit: an acknowledged append survives power loss. One fsync
    /// per group commit, however many appends the group holds.
    #[default]
    Full,
    /// The WAL is fsynced only at checkpoints: the last commits before a power loss may be rolled
    /// back (never torn). For throughput when the host's durability is guaranteed elsewhere.
    Normal,
    /// No fsync at all: for tests and throw-away data.
    Off,
}

impl Synchronous {
    /// The value of `PRAGMA synchronous` for this level.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
            Synchronous::Off => "OFF",
        }
    }
}

/// Configures [`crate::SqliteStore::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The data directory: one `<boundary>.db` file per boundary, created if missing.
    pub dir: PathBuf,
    /// The durability of a commit; see [`Synchronous`].
    pub synchronous: Synchronous,
    /// The most read connections a boundary keeps open, which bounds the reads of one boundary
    /// that run at the same time (each on a blocking thread). At least 1.
    pub read_connections: usize,
    /// The most events one group commit takes from the queue. A larger group amortises the fsync
    /// over more appends; a smaller one bounds the latency a huge group adds to the appends queued
    /// behind it. An append larger than this still commits, alone.
    pub max_batch_events: usize,
    /// How many rows of the tag index collect in log order (`tag_log`) before the writer moves
    /// them into the index keyed by tag, sorted. Larger writes fewer pages per row (a tag's rows
    /// share a leaf) but leaves more rows for a lookup to scan when a tag is absent from the
    /// newest events. At least 1.
    pub tag_log_rows: usize,
    /// About how many rows the middle level of the tag index (`tags_recent`) holds before each
    /// of its slices moves on into `tags` (see `tag_merge.rs`; it holds half that on average).
    /// Larger writes fewer pages of `tags` per row moved, but spreads a batch's rows over more
    /// leaves of `tags_recent`. At least 1.
    pub tags_recent_rows: usize,
}

impl SqliteConfig {
    /// Default number of read connections per boundary.
    pub const DEFAULT_READ_CONNECTIONS: usize = 4;
    /// Default number of events per group commit.
    pub const DEFAULT_MAX_BATCH_EVENTS: usize = 10_000;
    /// Default number of tag rows kept in log order before they are moved into the tag index.
    pub const DEFAULT_TAG_LOG_ROWS: usize = 1_024;
    /// Default size of `tags_recent` at which a slice's turn comes back.
    pub const DEFAULT_TAGS_RECENT_ROWS: usize = 262_144;

    /// Returns the default configuration for the data directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            synchronous: Synchronous::default(),
            read_connections: Self::DEFAULT_READ_CONNECTIONS,
            max_batch_events: Self::DEFAULT_MAX_BATCH_EVENTS,
            tag_log_rows: Self::DEFAULT_TAG_LOG_ROWS,
            tags_recent_rows: Self::DEFAULT_TAGS_RECENT_ROWS,
        }
    }

    /// Returns a copy with the given durability level.
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }
}
