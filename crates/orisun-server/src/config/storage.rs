//! Owns the storage flags: which backend holds the events (`ORISUN_BACKEND`) and where the
//! embedded backend keeps its files (`ORISUN_DATA_DIR`).

use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Which storage backend holds the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The embedded, durable SQLite backend under `ORISUN_DATA_DIR` (no setup needed).
    Sqlite,
    /// PostgreSQL at `ORISUN_PG_HOST`, shared by every node of a cluster.
    Postgres,
    /// Everything in memory, lost at exit: for demos and tests only.
    Memory,
}

/// The storage section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct StorageSection {
    /// Storage backend. Default: `postgres` when ORISUN_PG_HOST is set, else the embedded
    /// `sqlite` backend.
    #[arg(
        long,
        env = "ORISUN_BACKEND",
        value_name = "ORISUN_BACKEND",
        value_enum,
        ignore_case = true,
        help_heading = "Storage"
    )]
    pub backend: Option<BackendKind>,

    /// Directory of the embedded (SQLite) backend: one database file per boundary.
    #[arg(
        long,
        env = "ORISUN_DATA_DIR",
        value_name = "ORISUN_DATA_DIR",
        default_value = "./data",
        help_heading = "Storage"
    )]
    pub data_dir: PathBuf,
}

impl StorageSection {
    /// Returns the backend to use: ORISUN_BACKEND if set, else PostgreSQL when
    /// `pg_host_is_set` (ORISUN_PG_HOST is set), else the embedded backend.
    pub fn backend_kind(&self, pg_host_is_set: bool) -> BackendKind {
        match (self.backend, pg_host_is_set) {
            (Some(kind), _) => kind,
            (None, true) => BackendKind::Postgres,
            (None, false) => BackendKind::Sqlite,
        }
    }
}
