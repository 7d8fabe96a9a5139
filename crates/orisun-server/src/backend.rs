//! The storage backend chosen by the configuration; the only module that knows the concrete
//! store types (SQLite, PostgreSQL, memory).

use crate::catalog::{Provisioner, StoreProvisioner};
use crate::config::{BackendKind, Config};
use crate::error::ServerError;
use crate::metrics::gauges::{PoolProbe, PoolUsage};
use async_trait::async_trait;
use orisun_core::BoundaryName;
use orisun_postgres::{PostgresConfig, PostgresStore};
use orisun_sqlite::SqliteStore;
use orisun_store::{
    Coordination, EventStore, LocalCoordination, LocalMembership, Membership, MemoryStore,
    StoreError,
};
use std::sync::Arc;

/// Schema of the PostgreSQL boundaries that ORISUN_PG_SCHEMAS does not place.
pub const DEFAULT_PG_SCHEMA: &str = "public";

/// An opened backend: the store, its coordination, its name as the Admin service reports it,
/// and how a new boundary's storage is created.
#[derive(Clone)]
pub struct Backend {
    /// The event store.
    pub store: Arc<dyn EventStore>,
    /// Leases and checkpoints shared by every node on this storage (cluster-wide on
    /// PostgreSQL, process-wide otherwise): what singletons and exclusive subscribers use.
    pub coordination: Arc<dyn Coordination>,
    /// Replica-set membership on the same storage: the cluster's node list and the projection
    /// workers' sets (cluster-wide on PostgreSQL, process-wide otherwise).
    pub membership: Arc<dyn Membership>,
    /// `sqlite`, `postgres` or `memory`: the placement backend of `CreateBoundary`.
    pub name: &'static str,
    /// Creates a boundary in its namespace (the PostgreSQL schema; ignored elsewhere).
    pub provisioner: Arc<dyn Provisioner>,
    /// Reads the connection pool's usage, for `/metrics` (PostgreSQL only).
    pub pool_usage: Option<PoolProbe>,
}

impl Backend {
    /// Wraps any store, creating boundaries with [`EventStore::create_boundary`]; its
    /// coordination is process-local ([`LocalCoordination`]) until
    /// [`Backend::with_coordination`] replaces it.
    pub fn generic(store: Arc<dyn EventStore>, name: &'static str) -> Self {
        Self {
            provisioner: Arc::new(StoreProvisioner(store.clone())),
            coordination: Arc::new(LocalCoordination::new()),
            membership: Arc::new(LocalMembership::new()),
            store,
            name,
            pool_usage: None,
        }
    }

    /// Returns the backend with `coordination` instead of its own.
    pub fn with_coordination(mut self, coordination: Arc<dyn Coordination>) -> Self {
        self.coordination = coordination;
        self
    }

    /// Returns the namespace a start-up boundary is created in: its ORISUN_PG_SCHEMAS schema
    /// (default `public`) on PostgreSQL, its own name elsewhere.
    pub fn namespace(&self, config: &Config, boundary: &BoundaryName) -> String {
        if self.name == BackendKind::Postgres.name() {
            config
                .postgres
                .schema_of(boundary)
                .unwrap_or(DEFAULT_PG_SCHEMA)
                .to_owned()
        } else {
            boundary.as_str().to_owned()
        }
    }
}

impl BackendKind {
    /// The backend's name in the Admin API's boundary placements.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
            BackendKind::Memory => "memory",
        }
    }
}

/// Opens the configured backend.
pub async fn open(config: &Config) -> Result<Backend, ServerError> {
    let kind = config.backend_kind();
    match kind {
        BackendKind::Memory => {
            tracing::warn!("ORISUN_BACKEND=memory: events are lost when the server stops");
            Ok(Backend::generic(Arc::new(MemoryStore::new()), kind.name()))
        }
        BackendKind::Sqlite => {
            let sqlite = config.sqlite.store_config(&config.storage.data_dir);
            // Opening reads the directory and runs migrations: blocking work.
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(sqlite))
                .await
                .map_err(|e| StoreError::internal(format!("opening SQLite: {e}")))??;
            let coordination = store.coordination();
            Ok(Backend::generic(Arc::new(store), kind.name()).with_coordination(coordination))
        }
        BackendKind::Postgres => {
            let pg = PostgresConfig::try_from(&config.postgres)?;
            tracing::info!(host = %pg.host, port = pg.port, dbname = %pg.dbname, user = %pg.user, "connecting to PostgreSQL");
            let store = PostgresStore::connect(pg).await?;
            let pool = store.pool().clone();
            let pool_usage: PoolProbe = Arc::new(move || {
                let status = pool.status();
                PoolUsage {
                    in_use: status.size.saturating_sub(status.available),
                    idle: status.available,
                    max: status.max_size,
                    waiting: status.waiting,
                }
            });
            Ok(Backend {
                store: Arc::new(store.clone()),
                coordination: store.coordination(),
                membership: store.membership(),
                name: kind.name(),
                provisioner: Arc::new(SchemaProvisioner(store)),
                pool_usage: Some(pool_usage),
            })
        }
    }
}

/// Creates PostgreSQL boundaries in the schema named by the namespace.
struct SchemaProvisioner(PostgresStore);

#[async_trait]
impl Provisioner for SchemaProvisioner {
    async fn provision(&self, name: &BoundaryName, namespace: &str) -> Result<(), StoreError> {
        let schema = if namespace.is_empty() {
            DEFAULT_PG_SCHEMA
        } else {
            namespace
        };
        self.0.create_boundary_in(name, schema).await
    }
}
