//! [`SqliteCoordination`]: the [`Coordination`] of the embedded backend. Leases live in memory
//! (the data directory is locked by one process, so every contender is in this process);
//! checkpoints are durable, in [`COORDINATION_FILE`] in the data directory.
//!
//! A save runs under a gate that acquisitions also pass: the fence is checked, the row written
//! and committed (fsynced at [`Synchronous::Full`]) and only then is the gate opened, so a
//! holder that takes over after a save always loads what that save wrote.

use crate::error::db_error;
use crate::Synchronous;
use orisun_core::Position;
use orisun_store::{Coordination, Lease, LocalCoordination, StoreError};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The file, in the data directory, that holds the checkpoints. Its extension is not `.db`, so
/// it is never taken for a boundary.
pub const COORDINATION_FILE: &str = "coordination.sqlite";

/// Version of the file's schema, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    name        TEXT    NOT NULL PRIMARY KEY,
    commit_pos  INTEGER NOT NULL,
    prepare_pos INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL -- unix microseconds, UTC
) WITHOUT ROWID;
PRAGMA user_version = 1;";

const SAVE: &str = "
INSERT INTO checkpoints (name, commit_pos, prepare_pos, updated_at) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (name) DO UPDATE SET
    commit_pos = excluded.commit_pos, prepare_pos = excluded.prepare_pos,
    updated_at = excluded.updated_at";

/// How long the connection waits for SQLite's own locks (only a checkpoint of the WAL contends).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Leases in memory, checkpoints in [`COORDINATION_FILE`]; see the module documentation.
pub struct SqliteCoordination {
    leases: LocalCoordination,
    /// Every saved checkpoint, as committed to the file (loaded at open).
    checkpoints: Arc<Mutex<HashMap<String, Position>>>,
    db: Arc<Mutex<Connection>>,
    /// Held by a save from its fence check to its commit, and by every acquisition.
    gate: tokio::sync::Mutex<()>,
}

impl SqliteCoordination {
    /// Opens (creating if needed) the coordination file of data directory `dir` and loads its
    /// checkpoints. Blocks on file I/O.
    pub(crate) fn open(dir: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        let path = dir.join(COORDINATION_FILE);
        let fail = |e| db_error(COORDINATION_FILE, "open coordination", e);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        conn.pragma_update(None, "synchronous", synchronous.pragma())
            .map_err(fail)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(fail)?;
        if version < SCHEMA_VERSION {
            conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))
                .map_err(fail)?;
        }
        let checkpoints = {
            let mut statement = conn
                .prepare("SELECT name, commit_pos, prepare_pos FROM checkpoints")
                .map_err(fail)?;
            let rows = statement
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, Position::new(r.get(1)?, r.get(2)?)))
                })
                .map_err(fail)?;
            rows.collect::<Result<HashMap<_, _>, _>>().map_err(fail)?
        };
        tracing::debug!(path = %path.display(), checkpoints = checkpoints.len(), "coordination opened");
        Ok(Self {
            leases: LocalCoordination::new(),
            checkpoints: Arc::new(Mutex::new(checkpoints)),
            db: Arc::new(Mutex::new(conn)),
            gate: tokio::sync::Mutex::new(()),
        })
    }
}

#[async_trait::async_trait]
impl Coordination for SqliteCoordination {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let _gate = self.gate.lock().await;
        self.leases.acquire(name, holder, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.leases.release(lease).await
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        Ok(self.checkpoints.lock().get(name).copied())
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        position: Position,
        fence: Option<&Lease>,
    ) -> Result<(), StoreError> {
        let _gate = self.gate.lock().await;
        if let Some(lease) = fence {
            if !self.leases.holds_lease(lease) {
                return Err(StoreError::LeaseLost {
                    name: lease.name.clone(),
                });
            }
        }
        let (db, checkpoints) = (self.db.clone(), self.checkpoints.clone());
        let key = name.to_owned();
        let now = chrono::Utc::now().timestamp_micros();
        // The memory copy is updated with the file, in the same task, so the two agree even if
        // the caller stops waiting.
        tokio::task::spawn_blocking(move || {
            db.lock()
                .prepare_cached(SAVE)
                .and_then(|mut s| s.execute(params![key, position.commit, position.prepare, now]))
                .map_err(|e| db_error(COORDINATION_FILE, "save checkpoint", e))?;
            checkpoints.lock().insert(key, position);
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|e| StoreError::internal(format!("checkpoint save task: {e}")))?
    }
}
