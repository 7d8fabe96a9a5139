//! The read connections of one boundary, and the running of reads off the async threads.

use crate::error::db_error;
use crate::schema;
use orisun_store::StoreError;
use parking_lot::Mutex;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A small pool of read connections, opened on first need. In WAL mode each read runs on its own
/// snapshot and is never blocked by the writer.
pub(crate) struct ReadPool {
    /// The boundary's name, for logs and errors.
    boundary: String,
    /// The boundary's database file.
    path: PathBuf,
    /// Connections not in use.
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection the pool may have open: reads beyond that wait here, in async
    /// code, instead of holding a blocking thread.
    permits: Arc<Semaphore>,
}

impl ReadPool {
    /// Creates a pool of at most `size` connections (at least one) to `path`.
    pub(crate) fn new(boundary: String, path: PathBuf, size: usize) -> Self {
        Self {
            boundary,
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// Runs `f` on a read connection on a blocking thread and returns its result.
    pub(crate) async fn run<T, F>(
        self: &Arc<Self>,
        operation: &'static str,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::unavailable("the read pool is closed"))?;
        let pool = Arc::clone(self);
        // The connection goes back to the pool from the blocking thread itself, so a caller that
        // stops waiting (a dropped future) loses nothing.
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle.lock().pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => schema::open_reader(&pool.path)
                    .map_err(|e| db_error(&pool.boundary, "open read connection", e))?,
            };
            let result = f(&mut conn);
            if conn.is_autocommit() {
                pool.idle.lock().push(conn);
            }
            result.map_err(|e| db_error(&pool.boundary, operation, e))
        });
        task.await.map_err(|e| {
            tracing::error!(boundary = %self.boundary, operation, error = %e, "read task failed");
            StoreError::internal(format!("{operation}: read task failed: {e}"))
        })?
    }
}
