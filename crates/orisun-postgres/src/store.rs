//! [`PostgresStore`]: the pool, the catalog of boundaries, one group-commit writer per boundary,
//! and the wake-up tasks.

use crate::append::{check_storable, event_size, AppendRequest};
use crate::config::PostgresConfig;
use crate::db::Exec;
use crate::error;
use crate::names::{channel_for, validate_schema, ObjectNames};
use crate::notify;
use crate::read;
use crate::schema::{self, Placement};
use crate::sql::BoundarySql;
use crate::tls::{self, Connector};
use crate::writer::{self, Job, Shared};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, NewEvent, Position, Query, ReadRequest, StoredEvent,
};
use orisun_store::rules::{validate_batch, validate_criteria};
use orisun_store::{
    catch_up, AppendOutcome, EventStore, EventStream, HeadWatch, LatestByCriteria, StoreError,
    POLL_FALLBACK,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

/// An [`EventStore`] on PostgreSQL. Cheap to clone: clones share the pool, the writers and the
/// watches. Background tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: PostgresConfig,
    pool: Pool,
    boundaries: Mutex<HashMap<BoundaryName, Arc<Boundary>>>,
    /// Asks the LISTEN task to listen on a boundary's channel; `None` without `listen`.
    listener: Option<mpsc::UnboundedSender<Arc<Shared>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

/// A boundary this node has opened.
pub(crate) struct Boundary {
    pub(crate) shared: Arc<Shared>,
    writer: mpsc::Sender<Job>,
    /// Whether the LISTEN task was told about it.
    listening: AtomicBool,
}

impl PostgresStore {
    /// Connects, applies the missing migrations (under the migration lock, so several nodes may
    /// start at once) and starts the wake-up tasks.
    pub async fn connect(config: PostgresConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let connector = tls::connector(&config.tls)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &connector {
            Connector::Plain => Manager::from_config(config.pg_config(""), NoTls, manager_config),
            Connector::Rustls(tls) => {
                Manager::from_config(config.pg_config(""), tls.clone(), manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(config.connect_timeout))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| StoreError::internal(format!("cannot build the pool: {e}")))?;
        {
            let mut client = pool.get().await.map_err(|e| error::pool("connect", e))?;
            let tx = client
                .transaction()
                .await
                .map_err(|e| error::db("migrate: begin", e))?;
            schema::migrate(&tx).await?;
            tx.commit()
                .await
                .map_err(|e| error::db("migrate: commit", e))?;
        }
        let (listener, listen_rx) = if config.listen {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let inner = Arc::new(Inner {
            pool,
            boundaries: Mutex::new(HashMap::new()),
            listener,
            tasks: Mutex::new(Vec::new()),
            config,
        });
        let mut tasks = Vec::new();
        if let Some(rx) = listen_rx {
            tasks.push(tokio::spawn(notify::listen(
                inner.config.listener_pg_config(),
                connector,
                rx,
            )));
        }
        tasks.push(tokio::spawn(poll(Arc::downgrade(&inner))));
        inner.tasks.lock().extend(tasks);
        Ok(Self { inner })
    }

    /// Returns the connection pool, for library mode: take a connection, open a transaction,
    /// write your own tables and call [`PostgresStore::append_in_transaction`].
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Returns the configuration the store was opened with.
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
    }

    /// Creates a boundary with its tables in `schema` (created if missing). Idempotent; fails
    /// with [`StoreError::Invalid`] when the boundary already exists in another schema.
    pub async fn create_boundary_in(
        &self,
        boundary: &BoundaryName,
        schema: &str,
    ) -> Result<(), StoreError> {
        validate_schema(schema)?;
        self.create(boundary, schema, true).await
    }

    async fn create(
        &self,
        boundary: &BoundaryName,
        schema: &str,
        strict: bool,
    ) -> Result<(), StoreError> {
        if let Some(open) = self.inner.boundaries.lock().get(boundary).cloned() {
            if !strict || open.shared.sql.names.schema == crate::names::quote(schema) {
                return Ok(());
            }
        }
        let mut client = self.client("create boundary").await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| error::db("create boundary: begin", e))?;
        let placement = schema::create_boundary(&tx, boundary, schema, strict).await?;
        tx.commit()
            .await
            .map_err(|e| error::db("create boundary: commit", e))?;
        self.open(boundary, placement).await?;
        Ok(())
    }

    /// Re-reads a boundary's head and wakes this node's watchers if it moved (for instance
    /// right after committing a transaction that used
    /// [`PostgresStore::append_in_transaction`]).
    pub async fn refresh_head(&self, boundary: &BoundaryName) -> Result<Position, StoreError> {
        let open = self.resolve(boundary).await?;
        let head = self.read_head(&open).await?;
        open.shared.advance(head);
        Ok(head)
    }

    async fn client(&self, context: &str) -> Result<deadpool_postgres::Client, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| error::pool(context, e))
    }

    /// Returns the open boundary, opening it from the catalog if another node created it.
    pub(crate) async fn resolve(
        &self,
        boundary: &BoundaryName,
    ) -> Result<Arc<Boundary>, StoreError> {
        if let Some(open) = self.inner.boundaries.lock().get(boundary) {
            return Ok(open.clone());
        }
        let placement = {
            let client = self.client("boundary lookup").await?;
            schema::placement(&client, boundary).await?
        };
        match placement {
            Some(placement) => self.open(boundary, placement).await,
            None => Err(StoreError::UnknownBoundary {
                name: boundary.to_string(),
            }),
        }
    }

    /// Builds the statements, the head watch and the writer of a boundary.
    async fn open(
        &self,
        boundary: &BoundaryName,
        placement: Placement,
    ) -> Result<Arc<Boundary>, StoreError> {
        let names = ObjectNames::new(&placement.schema, &placement.prefix);
        let sql = BoundarySql::new(names);
        let head = {
            let client = self.client("open boundary").await?;
            read::head(
                Exec::pooled(&client, self.inner.config.statement_cache),
                &sql,
            )
            .await
            .map_err(|e| error::db("open boundary", e))?
            .unwrap_or(Position::BEFORE_FIRST)
        };
        let shared = Arc::new(Shared {
            name: boundary.clone(),
            channel: channel_for(&placement.schema, boundary),
            sql,
            head: watch::channel(head).0,
        });
        let mut boundaries = self.inner.boundaries.lock();
        let open = boundaries.entry(boundary.clone()).or_insert_with(|| {
            Arc::new(Boundary {
                writer: writer::spawn(
                    self.inner.pool.clone(),
                    self.inner.config.statement_cache,
                    shared.clone(),
                ),
                shared,
                listening: AtomicBool::new(false),
            })
        });
        Ok(open.clone())
    }

    async fn read_head(&self, open: &Boundary) -> Result<Position, StoreError> {
        let client = self.client("head").await?;
        let head = read::head(
            Exec::pooled(&client, self.inner.config.statement_cache),
            &open.shared.sql,
        )
        .await
        .map_err(|e| error::db("head", e))?;
        Ok(head.unwrap_or(Position::BEFORE_FIRST))
    }
}

/// The fallback poll: every [`POLL_FALLBACK`], reads the heads of the boundaries someone
/// watches. Ends when the store is dropped.
async fn poll(inner: Weak<Inner>) {
    let mut interval = tokio::time::interval(POLL_FALLBACK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let watched: Vec<Arc<Shared>> = inner
            .boundaries
            .lock()
            .values()
            .filter(|b| b.shared.head.receiver_count() > 0)
            .map(|b| b.shared.clone())
            .collect();
        if watched.is_empty() {
            continue;
        }
        let pool = inner.pool.clone();
        let cache_statements = inner.config.statement_cache;
        drop(inner);
        match pool.get().await {
            Ok(client) => {
                notify::refresh(Exec::pooled(&client, cache_statements), &watched).await;
            }
            Err(e) => tracing::debug!(error = %e, "head poll: no connection"),
        }
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn create_boundary(&self, boundary: &BoundaryName) -> Result<(), StoreError> {
        let schema = self.inner.config.default_schema.clone();
        self.create(boundary, &schema, false).await
    }

    async fn boundaries(&self) -> Result<Vec<BoundaryName>, StoreError> {
        let client = self.client("boundaries").await?;
        let rows = client
            .query_typed(
                "SELECT name FROM orisun.boundaries ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(|e| error::db("boundaries", e))?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get(0).map_err(|e| error::db("boundaries", e))?;
                BoundaryName::new(name).map_err(StoreError::internal)
            })
            .collect()
    }

    async fn append(
        &self,
        boundary: &BoundaryName,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        validate_batch(&events, condition.as_ref())?;
        check_storable(&events)?;
        let open = self.resolve(boundary).await?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            size: events.iter().map(event_size).sum(),
            request: AppendRequest { events, condition },
            reply,
            span: tracing::Span::current(),
        };
        open.writer
            .send(job)
            .await
            .map_err(|_| StoreError::internal("the boundary's writer stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::internal("the boundary's writer dropped the request"))?
    }

    async fn read(
        &self,
        boundary: &BoundaryName,
        request: &ReadRequest,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        request.validate()?;
        let open = self.resolve(boundary).await?;
        let client = self.client("read").await?;
        read::read(
            Exec::pooled(&client, self.inner.config.statement_cache),
            &open.shared.sql,
            request,
        )
        .await
        .map_err(|e| error::db("read", e))
    }

    async fn latest_by_criteria(
        &self,
        boundary: &BoundaryName,
        criteria: &[Criterion],
    ) -> Result<LatestByCriteria, StoreError> {
        validate_criteria(criteria)?;
        let open = self.resolve(boundary).await?;
        let client = self.client("latest by criteria").await?;
        read::latest_by_criteria(
            Exec::pooled(&client, self.inner.config.statement_cache),
            &open.shared.sql,
            criteria,
        )
        .await
        .map_err(|e| error::db("latest by criteria", e))
    }

    async fn head(&self, boundary: &BoundaryName) -> Result<Position, StoreError> {
        let open = self.resolve(boundary).await?;
        self.read_head(&open).await
    }

    async fn count(&self, boundary: &BoundaryName) -> Result<u64, StoreError> {
        // Seqs are gap-free from 0 (assigned under the lock, never drawn from a sequence), so
        // the count is the head's seq + 1.
        let head = self.head(boundary).await?;
        Ok(u64::try_from(head.prepare + 1).unwrap_or(0))
    }

    fn subscribe(&self, boundary: &BoundaryName, after: Position, query: Query) -> EventStream {
        catch_up(self.clone(), boundary.clone(), after, query)
    }
}

#[async_trait]
impl HeadWatch for PostgresStore {
    async fn watch_head(
        &self,
        boundary: &BoundaryName,
    ) -> Result<watch::Receiver<Position>, StoreError> {
        let open = self.resolve(boundary).await?;
        if let Some(listener) = &self.inner.listener {
            if !open.listening.swap(true, Ordering::AcqRel) {
                // The listener ends only with the store, so a send cannot fail while we run.
                let _ = listener.send(open.shared.clone());
            }
        }
        Ok(open.shared.head.subscribe())
    }
}
