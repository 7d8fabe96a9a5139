//! [`PostgresCoordination`]: leases with fencing epochs and checkpoints in the catalog tables
//! `orisun.leases` and `orisun.checkpoints` (migration `0002_coordination.sql`), shared by every
//! node on the database.
//!
//! Each operation is one statement (its own transaction), sent unnamed: nothing is left in the
//! session, so the pool may sit behind a transaction-mode pooler such as PgBouncer. Expiry is
//! judged by the database's clock (`clock_timestamp()`), never a node's.
//!
//! - **Acquire** is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` that takes the row when it
//!   is free, expired or already ours. PostgreSQL locks the conflicting row and re-checks the
//!   condition against its latest version, so two nodes can never both win. The epoch grows
//!   on every hand-over (and on a re-acquisition after expiry), never on a renewal.
//! - **Release** expires the row but keeps it, so epochs keep growing across releases.
//! - **A fenced save** locks the lease row `FOR SHARE` while it checks holder, epoch and expiry,
//!   and writes the checkpoint in the same statement. A hand-over must lock the same row, so
//!   it waits for the save to commit: a successor always loads a checkpoint that no longer
//!   moves under it.

use crate::error;
use crate::PostgresStore;
use async_trait::async_trait;
use deadpool_postgres::Pool;
use orisun_core::Position;
use orisun_store::{Coordination, Lease, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;

const ACQUIRE: &str = "\
INSERT INTO orisun.leases AS l (name, holder, epoch, expires_at)
VALUES ($1, $2, 1, clock_timestamp() + $3::float8 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE
   SET epoch = CASE WHEN l.holder = excluded.holder AND l.expires_at > clock_timestamp()
                    THEN l.epoch ELSE l.epoch + 1 END,
       holder = excluded.holder,
       expires_at = excluded.expires_at
 WHERE l.holder = excluded.holder OR l.expires_at <= clock_timestamp()
RETURNING epoch";

const RELEASE: &str = "\
UPDATE orisun.leases SET expires_at = '-infinity'
 WHERE name = $1 AND holder = $2 AND epoch = $3";

const LOAD: &str = "SELECT commit_pos, prepare_pos FROM orisun.checkpoints WHERE name = $1";

const SAVE: &str = "\
INSERT INTO orisun.checkpoints (name, commit_pos, prepare_pos, updated_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (name) DO UPDATE
   SET commit_pos = excluded.commit_pos, prepare_pos = excluded.prepare_pos,
       updated_at = excluded.updated_at";

const SAVE_FENCED: &str = "\
WITH fence AS (
    SELECT 1 FROM orisun.leases
     WHERE name = $4 AND holder = $5 AND epoch = $6 AND expires_at > clock_timestamp()
       FOR SHARE)
INSERT INTO orisun.checkpoints (name, commit_pos, prepare_pos, updated_at)
SELECT $1, $2, $3, now() FROM fence
ON CONFLICT (name) DO UPDATE
   SET commit_pos = excluded.commit_pos, prepare_pos = excluded.prepare_pos,
       updated_at = excluded.updated_at
RETURNING 1";

/// Leases and checkpoints kept in the store's database; see the module documentation.
#[derive(Clone)]
pub struct PostgresCoordination {
    pool: Pool,
}

impl PostgresCoordination {
    /// Coordinates through the database `pool` connects to (its catalog must be migrated,
    /// which [`PostgresStore::connect`] does).
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self, context: &str) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| error::pool(context, e))
    }
}

impl PostgresStore {
    /// Returns the cluster coordination (leases and checkpoints) kept in this store's
    /// database, on the store's pool.
    pub fn coordination(&self) -> Arc<dyn Coordination> {
        Arc::new(PostgresCoordination::new(self.pool().clone()))
    }
}

fn epoch_param(lease: &Lease) -> Result<i64, StoreError> {
    i64::try_from(lease.epoch).map_err(|_| StoreError::LeaseLost {
        name: lease.name.clone(),
    })
}

#[async_trait]
impl Coordination for PostgresCoordination {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let millis = ttl.as_secs_f64() * 1_000.0;
        let client = self.client("lease acquire").await?;
        let row = client
            .query_typed(
                ACQUIRE,
                &[
                    (&name, Type::TEXT),
                    (&holder, Type::TEXT),
                    (&millis, Type::FLOAT8),
                ],
            )
            .await
            .map_err(|e| error::db("lease acquire", e))?;
        let Some(row) = row.first() else {
            return Ok(None);
        };
        let epoch: i64 = row.try_get(0).map_err(|e| error::db("lease acquire", e))?;
        let epoch = u64::try_from(epoch)
            .map_err(|_| StoreError::internal(format!("lease {name:?} has epoch {epoch}")))?;
        Ok(Some(Lease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            epoch,
        }))
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let epoch = epoch_param(lease)?;
        let client = self.client("lease release").await?;
        client
            .query_typed(
                RELEASE,
                &[
                    (&lease.name, Type::TEXT),
                    (&lease.holder, Type::TEXT),
                    (&epoch, Type::INT8),
                ],
            )
            .await
            .map_err(|e| error::db("lease release", e))?;
        Ok(())
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        let client = self.client("checkpoint load").await?;
        let rows = client
            .query_typed(LOAD, &[(&name, Type::TEXT)])
            .await
            .map_err(|e| error::db("checkpoint load", e))?;
        rows.first()
            .map(|row| {
                let commit: i64 = row.try_get(0)?;
                let prepare: i64 = row.try_get(1)?;
                Ok(Position::new(commit, prepare))
            })
            .transpose()
            .map_err(|e| error::db("checkpoint load", e))
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        position: Position,
        fence: Option<&Lease>,
    ) -> Result<(), StoreError> {
        let client = self.client("checkpoint save").await?;
        save_checkpoint_on(&**client, name, position, fence).await
    }
}

impl PostgresCoordination {
    /// Saves checkpoint `name` inside the caller's transaction `tx`, fenced like
    /// [`Coordination::save_checkpoint`]: it commits or rolls back with `tx`, so a projection's
    /// read-model writes and its checkpoint move together. Takes a share lock on the fencing
    /// lease's row until `tx` ends, so the lease cannot change hands before the commit.
    pub async fn save_checkpoint_in(
        tx: &tokio_postgres::Transaction<'_>,
        name: &str,
        position: Position,
        fence: Option<&Lease>,
    ) -> Result<(), StoreError> {
        save_checkpoint_on(tx, name, position, fence).await
    }
}

/// Saves a checkpoint on a pooled connection or in a caller's transaction.
async fn save_checkpoint_on<C: GenericClient + Sync>(
    client: &C,
    name: &str,
    position: Position,
    fence: Option<&Lease>,
) -> Result<(), StoreError> {
    let (commit, prepare) = (position.commit, position.prepare);
    let Some(lease) = fence else {
        client
            .query_typed(
                SAVE,
                &[
                    (&name, Type::TEXT),
                    (&commit, Type::INT8),
                    (&prepare, Type::INT8),
                ],
            )
            .await
            .map_err(|e| error::db("checkpoint save", e))?;
        return Ok(());
    };
    let epoch = epoch_param(lease)?;
    let saved = client
        .query_typed(
            SAVE_FENCED,
            &[
                (&name, Type::TEXT),
                (&commit, Type::INT8),
                (&prepare, Type::INT8),
                (&lease.name, Type::TEXT),
                (&lease.holder, Type::TEXT),
                (&epoch, Type::INT8),
            ],
        )
        .await
        .map_err(|e| error::db("checkpoint save", e))?;
    if saved.is_empty() {
        tracing::debug!(lease = %lease.name, holder = %lease.holder, epoch = lease.epoch, checkpoint = name, "fenced checkpoint refused: lease lost");
        return Err(StoreError::LeaseLost {
            name: lease.name.clone(),
        });
    }
    Ok(())
}
