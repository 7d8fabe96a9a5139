//! [`PostgresMembership`]: replica-set membership in the catalog tables `orisun.replica_sets`
//! and `orisun.replica_members` (migration `0003_membership.sql`), shared by every worker on
//! the database, and the operator's view of projection claims (`orisun.leases` joined with
//! `orisun.checkpoints`).
//!
//! A heartbeat is one short transaction: it creates the set if needed, locks the set's row
//! (so concurrent heartbeats of one set are serialised and the generation counts every
//! membership change exactly once), checks the partition count, deletes expired members,
//! upserts the caller and reads the live members. Expiry is judged by the database's clock
//! (`clock_timestamp()`), never a worker's.

use crate::error;
use crate::PostgresStore;
use async_trait::async_trait;
use deadpool_postgres::Pool;
use orisun_core::Position;
use orisun_store::{
    partition_count_mismatch, validate_set_name, ClaimRecord, MemberRecord, Membership, SetView,
    StoreError,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;

const CREATE_SET: &str = "\
INSERT INTO orisun.replica_sets (name, partitions) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING";

const LOCK_SET: &str =
    "SELECT partitions, generation FROM orisun.replica_sets WHERE name = $1 FOR UPDATE";

const EXPIRE: &str = "\
DELETE FROM orisun.replica_members WHERE set_name = $1 AND expires_at <= clock_timestamp()";

/// `xmax = 0` holds for a freshly inserted row and not for an updated one: it tells a join
/// from a heartbeat.
const UPSERT_MEMBER: &str = "\
INSERT INTO orisun.replica_members (set_name, worker, held, expires_at)
VALUES ($1, $2, $3, clock_timestamp() + $4::float8 * interval '1 millisecond')
ON CONFLICT (set_name, worker) DO UPDATE
   SET held = excluded.held, expires_at = excluded.expires_at
RETURNING (xmax = 0) AS joined";

const BUMP: &str = "\
UPDATE orisun.replica_sets SET generation = generation + 1 WHERE name = $1 RETURNING generation";

const SET: &str = "SELECT partitions, generation FROM orisun.replica_sets WHERE name = $1";

const MEMBERS: &str = "\
SELECT worker, held,
       (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::float8
  FROM orisun.replica_members
 WHERE set_name = $1 AND expires_at > clock_timestamp()
 ORDER BY worker";

const LEAVE: &str = "DELETE FROM orisun.replica_members WHERE set_name = $1 AND worker = $2";

const SETS: &str = "SELECT name FROM orisun.replica_sets ORDER BY name";

const CLAIMS: &str = "\
SELECT l.name, l.holder, l.epoch, l.expires_at > clock_timestamp(), c.commit_pos, c.prepare_pos
  FROM orisun.leases l LEFT JOIN orisun.checkpoints c ON c.name = l.name
 WHERE starts_with(l.name, $1)
 ORDER BY l.name";

/// Replica-set membership kept in the store's database; see the module documentation.
#[derive(Clone)]
pub struct PostgresMembership {
    pool: Pool,
}

impl PostgresMembership {
    /// Keeps membership in the database `pool` connects to (its catalog must be migrated,
    /// which [`PostgresStore::connect`] does).
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self, context: &str) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| error::pool(context, e))
    }
}

impl PostgresStore {
    /// Returns the replica-set membership kept in this store's database, on the store's pool.
    pub fn membership(&self) -> Arc<dyn Membership> {
        Arc::new(PostgresMembership::new(self.pool().clone()))
    }
}

fn to_u32(value: i32, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::internal(format!("{what} is {value}")))
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::internal(format!("{what} is {value}")))
}

async fn members<C: GenericClient + Sync>(
    client: &C,
    set: &str,
) -> Result<Vec<MemberRecord>, StoreError> {
    let rows = client
        .query_typed(MEMBERS, &[(&set, Type::TEXT)])
        .await
        .map_err(|e| error::db("membership members", e))?;
    rows.iter()
        .map(|row| {
            let worker: String = row.get(0);
            let held: Vec<i32> = row.get(1);
            let millis: f64 = row.get(2);
            Ok(MemberRecord {
                worker,
                held: held
                    .into_iter()
                    .map(|p| to_u32(p, "a held partition"))
                    .collect::<Result<_, _>>()?,
                expires_in: Duration::from_secs_f64(millis.max(0.0) / 1_000.0),
            })
        })
        .collect()
}

#[async_trait]
impl Membership for PostgresMembership {
    async fn heartbeat(
        &self,
        set: &str,
        worker: &str,
        partitions: u32,
        held: &[u32],
        ttl: Duration,
    ) -> Result<SetView, StoreError> {
        validate_set_name(set)?;
        let count = i32::try_from(partitions)
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| {
                StoreError::invalid("partitions", format!("must be 1 to {}", i32::MAX))
            })?;
        let held: Vec<i32> = held
            .iter()
            .map(|p| i32::try_from(*p).map_err(|_| StoreError::invalid("held", "out of range")))
            .collect::<Result<_, _>>()?;
        let millis = ttl.as_secs_f64() * 1_000.0;
        let db = |e| error::db("membership heartbeat", e);
        let mut client = self.client("membership heartbeat").await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.query_typed(CREATE_SET, &[(&set, Type::TEXT), (&count, Type::INT4)])
            .await
            .map_err(db)?;
        let row = tx
            .query_typed(LOCK_SET, &[(&set, Type::TEXT)])
            .await
            .map_err(db)?;
        let row = row
            .first()
            .ok_or_else(|| StoreError::internal(format!("replica set {set:?} vanished")))?;
        let stored: i32 = row.get(0);
        let mut generation: i64 = row.get(1);
        if stored != count {
            // Dropping the transaction rolls it back: nothing changed.
            return Err(partition_count_mismatch(
                set,
                to_u32(stored, "the partition count")?,
                partitions,
            ));
        }
        let expired = tx
            .execute_typed(EXPIRE, &[(&set, Type::TEXT)])
            .await
            .map_err(db)?;
        let joined: bool = tx
            .query_typed(
                UPSERT_MEMBER,
                &[
                    (&set, Type::TEXT),
                    (&worker, Type::TEXT),
                    (&held, Type::INT4_ARRAY),
                    (&millis, Type::FLOAT8),
                ],
            )
            .await
            .map_err(db)?
            .first()
            .map(|r| r.get(0))
            .unwrap_or(false);
        if expired > 0 || joined {
            generation = tx
                .query_typed(BUMP, &[(&set, Type::TEXT)])
                .await
                .map_err(db)?
                .first()
                .map(|r| r.get(0))
                .unwrap_or(generation);
            tracing::info!(
                set,
                worker,
                joined,
                expired,
                generation,
                "replica set membership changed"
            );
        }
        let members = members(&*tx, set).await?;
        tx.commit().await.map_err(db)?;
        Ok(SetView {
            name: set.to_owned(),
            partitions,
            generation: to_u64(generation, "the generation")?,
            members,
        })
    }

    async fn leave(&self, set: &str, worker: &str) -> Result<(), StoreError> {
        let db = |e| error::db("membership leave", e);
        let mut client = self.client("membership leave").await?;
        let tx = client.transaction().await.map_err(db)?;
        // Lock the set first, as a heartbeat does, so the generation counts this change once.
        tx.query_typed(LOCK_SET, &[(&set, Type::TEXT)])
            .await
            .map_err(db)?;
        let left = tx
            .execute_typed(LEAVE, &[(&set, Type::TEXT), (&worker, Type::TEXT)])
            .await
            .map_err(db)?;
        if left > 0 {
            tx.query_typed(BUMP, &[(&set, Type::TEXT)])
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn view(&self, set: &str) -> Result<Option<SetView>, StoreError> {
        let db = |e| error::db("membership view", e);
        let mut client = self.client("membership view").await?;
        // One snapshot for the set and its members.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db)?;
        let rows = tx
            .query_typed(SET, &[(&set, Type::TEXT)])
            .await
            .map_err(db)?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let partitions: i32 = row.get(0);
        let generation: i64 = row.get(1);
        let members = members(&*tx, set).await?;
        tx.commit().await.map_err(db)?;
        Ok(Some(SetView {
            name: set.to_owned(),
            partitions: to_u32(partitions, "the partition count")?,
            generation: to_u64(generation, "the generation")?,
            members,
        }))
    }

    async fn sets(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client("membership sets").await?;
        let rows = client
            .query_typed(SETS, &[])
            .await
            .map_err(|e| error::db("membership sets", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn claims(&self, prefix: &str) -> Result<Vec<ClaimRecord>, StoreError> {
        let client = self.client("membership claims").await?;
        let rows = client
            .query_typed(CLAIMS, &[(&prefix, Type::TEXT)])
            .await
            .map_err(|e| error::db("membership claims", e))?;
        rows.iter()
            .map(|row| {
                let commit: Option<i64> = row.get(4);
                let prepare: Option<i64> = row.get(5);
                Ok(ClaimRecord {
                    name: row.get(0),
                    holder: row.get(1),
                    epoch: to_u64(row.get(2), "a lease epoch")?,
                    live: row.get(3),
                    checkpoint: commit.zip(prepare).map(|(c, p)| Position::new(c, p)),
                })
            })
            .collect()
    }
}
