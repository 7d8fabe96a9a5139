//! Owns the flags of the embedded SQLite backend (`ORISUN_SQLITE_*`) and their conversion into
//! [`orisun_sqlite::SqliteConfig`].

use clap::{Args, ValueEnum};
use orisun_sqlite::{SqliteConfig, Synchronous};
use std::path::Path;

/// `PRAGMA synchronous` of the embedded backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum SqliteSynchronous {
    /// Every commit is fsynced: an acknowledged save survives a power loss.
    Full,
    /// Fsync at checkpoints only: the last saves before a power loss may be rolled back.
    Normal,
    /// No fsync: for throw-away data.
    Off,
}

impl From<SqliteSynchronous> for Synchronous {
    fn from(level: SqliteSynchronous) -> Self {
        match level {
            SqliteSynchronous::Full => Synchronous::Full,
            SqliteSynchronous::Normal => Synchronous::Normal,
            SqliteSynchronous::Off => Synchronous::Off,
        }
    }
}

/// The SQLite section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct SqliteSection {
    /// Durability of an embedded-backend commit: FULL (fsync every commit), NORMAL, OFF.
    #[arg(
        long,
        env = "ORISUN_SQLITE_SYNCHRONOUS",
        value_name = "ORISUN_SQLITE_SYNCHRONOUS",
        value_enum,
        ignore_case = true,
        default_value = "FULL",
        help_heading = "Storage"
    )]
    pub sqlite_synchronous: SqliteSynchronous,
}

impl SqliteSection {
    /// Returns the store configuration for the data directory `data_dir` (`ORISUN_DATA_DIR`),
    /// with this section's durability and the store's defaults for everything else.
    pub fn store_config(&self, data_dir: &Path) -> SqliteConfig {
        SqliteConfig::new(data_dir).with_synchronous(self.sqlite_synchronous.into())
    }
}
