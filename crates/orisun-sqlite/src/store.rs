//! [`SqliteStore`]: the registry of boundaries and the [`EventStore`] implementation.

use crate::append::{AppendRequest, EventRow};
use crate::coordination::SqliteCoordination;
use crate::error::db_error;
use crate::pool::ReadPool;
use crate::schema::{self, SchemaError};
use crate::tag_merge::TagMerge;
use crate::tag_tail::TagTail;
use crate::writer::{AppendJob, Writer, QUEUE_CAPACITY};
use crate::{read, SqliteConfig, Synchronous};
use async_trait::async_trait;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, NewEvent, Position, Query, ReadRequest,
};
use orisun_store::rules::{validate_batch, validate_criteria};
use orisun_store::{
    catch_up, AppendOutcome, Coordination, EventStore, EventStream, HeadWatch, LatestByCriteria,
    StoreError,
};
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// The file in the data directory whose lock marks the directory as in use by one store.
pub const LOCK_FILE: &str = "orisun.lock";

/// The extension of a boundary's database file.
const DB_EXTENSION: &str = "db";

/// An embedded, durable event store: one SQLite database per boundary under a data directory.
///
/// Cloning is cheap and shares the store. Dropping the last clone closes the queues: each
/// boundary's writer thread commits what was already queued and exits.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: SqliteConfig,
    boundaries: RwLock<BTreeMap<BoundaryName, Arc<Boundary>>>,
    /// Serialises boundary creation, so two creators of one name open one writer.
    creating: tokio::sync::Mutex<()>,
    /// Held (locked) for the store's life: a second store on the same directory, in this process
    /// or another, would have writers whose appends this store's subscribers never hear of.
    _lock: File,
    /// Leases and durable checkpoints for the singletons running on this store.
    coordination: Arc<SqliteCoordination>,
}

/// One open boundary.
struct Boundary {
    /// Where appends go; the writer thread ends when this is dropped.
    jobs: mpsc::Sender<AppendJob>,
    /// Where reads run.
    reads: Arc<ReadPool>,
    /// The head after the last commit; the writer updates it.
    head: Arc<watch::Sender<Position>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("dir", &self.inner.config.dir)
            .field("boundaries", &self.inner.boundaries.read().len())
            .finish()
    }
}

impl SqliteStore {
    /// Opens the store in `config.dir` (creating the directory if needed), opening every
    /// boundary found there and applying pending migrations.
    ///
    /// This blocks on file I/O: call it at startup, or from a blocking thread. It fails with
    /// [`StoreError::Unavailable`] when another store holds the directory.
    pub fn open(config: SqliteConfig) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(&config.dir).map_err(|e| io_error(&config.dir, e))?;
        let lock = lock_dir(&config.dir)?;
        let mut boundaries = BTreeMap::new();
        for name in boundary_files(&config.dir)? {
            let boundary = open_boundary(&config, &name, false)?;
            boundaries.insert(name, Arc::new(boundary));
        }
        let coordination = Arc::new(SqliteCoordination::open(&config.dir, config.synchronous)?);
        tracing::info!(
            dir = %config.dir.display(),
            boundaries = boundaries.len(),
            synchronous = ?config.synchronous,
            "sqlite store opened"
        );
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                config,
                boundaries: RwLock::new(boundaries),
                creating: tokio::sync::Mutex::new(()),
                _lock: lock,
                coordination,
            }),
        })
    }

    /// Returns the configuration the store was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.config
    }

    /// Returns the coordination of this store: leases in memory (the data directory belongs to
    /// one process), checkpoints durable in [`crate::COORDINATION_FILE`].
    pub fn coordination(&self) -> Arc<dyn Coordination> {
        self.inner.coordination.clone()
    }

    fn boundary(&self, name: &BoundaryName) -> Result<Arc<Boundary>, StoreError> {
        self.inner
            .boundaries
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::UnknownBoundary {
                name: name.to_string(),
            })
    }
}

/// Returns the path of a boundary's database file. The name is a validated identifier, so it
/// cannot leave the directory.
fn db_path(dir: &Path, name: &BoundaryName) -> PathBuf {
    dir.join(format!("{name}.{DB_EXTENSION}"))
}

fn io_error(path: &Path, err: std::io::Error) -> StoreError {
    tracing::warn!(path = %path.display(), error = %err, "sqlite data directory unavailable");
    StoreError::unavailable(format!("{}: {err}", path.display()))
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::unavailable(format!(
            "{} is in use by another store",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error(&path, e)),
    }
}

/// Lists the boundaries of the data directory: its `<name>.db` files whose stem is a valid
/// boundary name. The directory is the registry; there is no catalog to keep in step with it.
fn boundary_files(dir: &Path) -> Result<Vec<BoundaryName>, StoreError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let path = entry.map_err(|e| io_error(dir, e))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(DB_EXTENSION) {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        match BoundaryName::new(stem) {
            Ok(name) => names.push(name),
            Err(e) => {
                tracing::warn!(path = %path.display(), reason = %e, "ignoring a file that is not a boundary")
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Opens (or, with `create`, creates) a boundary's file, migrates it and starts its writer.
fn open_boundary(
    config: &SqliteConfig,
    name: &BoundaryName,
    create: bool,
) -> Result<Boundary, StoreError> {
    let path = db_path(&config.dir, name);
    let boundary = name.as_str();
    let mut conn = schema::open_writer(&path, config.synchronous, create)
        .map_err(|e| db_error(boundary, "open", e))?;
    schema::migrate(&mut conn, boundary).map_err(|e| match e {
        SchemaError::Db(e) => db_error(boundary, "migrate", e),
        SchemaError::TooNew { found, known } => StoreError::internal(format!(
            "{}: schema version {found} is newer than this build knows ({known})",
            path.display()
        )),
        SchemaError::OtherBoundary { recorded } if create => StoreError::invalid(
            "boundary",
            format!(
                "{boundary:?} collides with the existing boundary {recorded:?} \
                 (the data directory ignores case)"
            ),
        ),
        SchemaError::OtherBoundary { recorded } => {
            StoreError::internal(format!("{} holds boundary {recorded:?}", path.display()))
        }
    })?;
    if create && config.synchronous != Synchronous::Off {
        // SQLite syncs the directory for the WAL it creates, not for the database file itself:
        // make the new file's directory entry durable before the boundary is reported created.
        File::open(&config.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(&config.dir, e))?;
    }
    let head = read::head(&conn).map_err(|e| db_error(boundary, "read head", e))?;
    let tail = TagTail::load(&conn).map_err(|e| db_error(boundary, "read the tag log", e))?;
    let (head_tx, _) = watch::channel(head);
    let head_tx = Arc::new(head_tx);
    let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
    let writer = Writer {
        boundary: boundary.to_owned(),
        conn,
        jobs: queue,
        head: Arc::clone(&head_tx),
        max_batch_events: config.max_batch_events.max(1),
        tail,
        tag_log_limit: config.tag_log_rows.max(1),
        merge: TagMerge::new(config.tags_recent_rows),
    };
    std::thread::Builder::new()
        .name(format!("sqlite-{boundary}"))
        .spawn(move || writer.run())
        .map_err(|e| {
            tracing::error!(boundary, error = %e, "cannot start the writer thread");
            StoreError::unavailable(format!("cannot start the writer of {boundary:?}: {e}"))
        })?;
    tracing::debug!(boundary, ?head, "boundary opened");
    Ok(Boundary {
        jobs,
        reads: Arc::new(ReadPool::new(
            boundary.to_owned(),
            path,
            config.read_connections,
        )),
        head: head_tx,
    })
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn create_boundary(&self, name: &BoundaryName) -> Result<(), StoreError> {
        if self.inner.boundaries.read().contains_key(name) {
            return Ok(());
        }
        let _creating = self.inner.creating.lock().await;
        if self.inner.boundaries.read().contains_key(name) {
            return Ok(());
        }
        let config = self.inner.config.clone();
        let owned = name.clone();
        let boundary = tokio::task::spawn_blocking(move || open_boundary(&config, &owned, true))
            .await
            .map_err(|e| StoreError::internal(format!("create boundary task failed: {e}")))??;
        self.inner
            .boundaries
            .write()
            .insert(name.clone(), Arc::new(boundary));
        tracing::info!(boundary = %name, "boundary created");
        Ok(())
    }

    async fn boundaries(&self) -> Result<Vec<BoundaryName>, StoreError> {
        Ok(self.inner.boundaries.read().keys().cloned().collect())
    }

    async fn append(
        &self,
        name: &BoundaryName,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        validate_batch(&events, condition.as_ref())?;
        let boundary = self.boundary(name)?;
        let rows = events.iter().map(EventRow::new).collect();
        let (reply, outcome) = oneshot::channel();
        let job = AppendJob {
            request: AppendRequest {
                events,
                rows,
                condition,
            },
            reply,
            span: tracing::Span::current(),
        };
        let stopped = || StoreError::unavailable(format!("the writer of {name:?} has stopped"));
        boundary.jobs.send(job).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    async fn read(
        &self,
        name: &BoundaryName,
        request: &ReadRequest,
    ) -> Result<Vec<orisun_core::StoredEvent>, StoreError> {
        request.validate()?;
        let boundary = self.boundary(name)?;
        let request = request.clone();
        boundary
            .reads
            .run("read", move |conn| read::read(conn, &request))
            .await
    }

    async fn latest_by_criteria(
        &self,
        name: &BoundaryName,
        criteria: &[Criterion],
    ) -> Result<LatestByCriteria, StoreError> {
        validate_criteria(criteria)?;
        let boundary = self.boundary(name)?;
        let criteria = criteria.to_vec();
        let events = boundary
            .reads
            .run("latest by criteria", move |conn| {
                read::latest_by_criteria(conn, &criteria)
            })
            .await?;
        Ok(LatestByCriteria::new(events))
    }

    async fn head(&self, name: &BoundaryName) -> Result<Position, StoreError> {
        let boundary = self.boundary(name)?;
        boundary.reads.run("head", |conn| read::head(conn)).await
    }

    async fn count(&self, name: &BoundaryName) -> Result<u64, StoreError> {
        // Seqs are 0-based and gap-free, so the count is the head's seq + 1: O(1), where
        // `count(*)` would scan the table.
        let head = self.head(name).await?;
        Ok(u64::try_from(head.prepare + 1).expect("the head's seq is at least -1"))
    }

    fn subscribe(&self, name: &BoundaryName, after: Position, query: Query) -> EventStream {
        catch_up(self.clone(), name.clone(), after, query)
    }
}

#[async_trait]
impl HeadWatch for SqliteStore {
    async fn watch_head(
        &self,
        name: &BoundaryName,
    ) -> Result<watch::Receiver<Position>, StoreError> {
        Ok(self.boundary(name)?.head.subscribe())
    }
}
