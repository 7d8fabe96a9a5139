//! Replica-set membership kept in the store's database: which workers belong to a named set
//! (their heartbeats), the set's partition count and its generation, and the read-only view of
//! the partition claims (leases and checkpoints) an operator looks at.
//!
//! Membership only says who is alive; it grants nothing. Partitions are still taken with
//! [`Coordination`](crate::Coordination) leases, whose epochs fence every checkpoint move, so a
//! worker that believes in a stale view can waste time but never commit for a partition it no
//! longer holds.

use crate::coordination::LocalCoordination;
use crate::StoreError;
use async_trait::async_trait;
use orisun_core::Position;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The longest replica-set name, in bytes.
pub const MAX_SET_NAME_LEN: usize = 100;

/// Set names that start with this are Orisun's own (the server nodes' list, `orisun.nodes`):
/// projection workers cannot join them, and replica-set listings leave them out.
pub const RESERVED_SET_PREFIX: &str = "orisun.";

/// Checks a replica-set name: 1 to [`MAX_SET_NAME_LEN`] bytes of `[A-Za-z0-9_.-]`.
pub fn validate_set_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > MAX_SET_NAME_LEN {
        return Err(StoreError::invalid(
            "replica_set",
            format!(
                "must be 1 to {MAX_SET_NAME_LEN} bytes, got {} (an empty name is not a set)",
                name.len()
            ),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(StoreError::invalid(
            "replica_set",
            format!("may hold only letters, digits, '_', '.' and '-', got {c:?}"),
        ));
    }
    Ok(())
}

/// The error a worker gets when its partition count disagrees with its set's.
pub fn partition_count_mismatch(set: &str, stored: u32, asked: u32) -> StoreError {
    StoreError::invalid(
        "partitions",
        format!(
            "replica set {set:?} has {stored} partitions, this worker was started with {asked}; \
             to change the count, start the workers under a new replica-set name (see the \
             orisun-projections docs)"
        ),
    )
}

/// One live member of a replica set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The worker's id (unique within the set).
    pub worker: String,
    /// The partitions it reported running at its last heartbeat.
    pub held: Vec<u32>,
    /// How long until its membership expires without another heartbeat.
    pub expires_in: Duration,
}

/// A replica set as the store sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetView {
    /// The set's name.
    pub name: String,
    /// The partition count fixed when the set was created.
    pub partitions: u32,
    /// Grows by one every time the membership changes (a worker joins, leaves or expires).
    pub generation: u64,
    /// Its live members, ordered by worker id.
    pub members: Vec<MemberRecord>,
}

/// One lease (a projection partition's claim) and its checkpoint, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The lease's (and checkpoint's) name.
    pub name: String,
    /// The last holder.
    pub holder: String,
    /// The fencing epoch of the last hand-over.
    pub epoch: u64,
    /// Whether the lease is unexpired (held) right now.
    pub live: bool,
    /// The checkpoint saved under this name, if any.
    pub checkpoint: Option<Position>,
}

/// Replica-set membership shared by every worker that uses the same storage.
#[async_trait]
pub trait Membership: Send + Sync + 'static {
    /// Joins or stays in `set` as `worker` for `ttl`, reporting the partitions it runs
    /// (`held`). Creates the set with `partitions` partitions if it does not exist; fails with
    /// [`StoreError::Invalid`] (field `partitions`) and changes nothing if the set has another
    /// count. Removes members whose heartbeats expired, bumps the generation when the
    /// membership changed, and returns the set's view after the heartbeat.
    async fn heartbeat(
        &self,
        set: &str,
        worker: &str,
        partitions: u32,
        held: &[u32],
        ttl: Duration,
    ) -> Result<SetView, StoreError>;

    /// Leaves `set` at once (bumping its generation) if `worker` is a member.
    async fn leave(&self, set: &str, worker: &str) -> Result<(), StoreError>;

    /// Returns `set` with its live members, `None` when it was never created.
    async fn view(&self, set: &str) -> Result<Option<SetView>, StoreError>;

    /// Returns the names of every replica set, in order.
    async fn sets(&self) -> Result<Vec<String>, StoreError>;

    /// Returns every lease whose name starts with `prefix`, with its checkpoint, by name.
    async fn claims(&self, prefix: &str) -> Result<Vec<ClaimRecord>, StoreError>;
}

/// Process-local membership for the in-memory and embedded stores: correct across tasks of
/// **one process only** (workers in other processes cannot see it). Uses tokio's clock, so
/// tests can pause and advance time.
#[derive(Default)]
pub struct LocalMembership {
    sets: Mutex<BTreeMap<String, LocalSet>>,
    coordination: Option<Arc<LocalCoordination>>,
}

struct LocalSet {
    partitions: u32,
    generation: u64,
    members: BTreeMap<String, (Vec<u32>, Instant)>,
}

impl LocalMembership {
    /// Membership whose [`Membership::claims`] reports nothing (no coordination to look at).
    pub fn new() -> Self {
        Self::default()
    }

    /// Membership whose claims are the leases and checkpoints of `coordination` (the one the
    /// workers take their partitions from).
    pub fn with_coordination(coordination: Arc<LocalCoordination>) -> Self {
        Self {
            sets: Mutex::default(),
            coordination: Some(coordination),
        }
    }

    fn view_of(name: &str, set: &LocalSet, now: Instant) -> SetView {
        SetView {
            name: name.to_owned(),
            partitions: set.partitions,
            generation: set.generation,
            members: set
                .members
                .iter()
                .filter(|(_, (_, until))| *until > now)
                .map(|(worker, (held, until))| MemberRecord {
                    worker: worker.clone(),
                    held: held.clone(),
                    expires_in: *until - now,
                })
                .collect(),
        }
    }
}

#[async_trait]
impl Membership for LocalMembership {
    async fn heartbeat(
        &self,
        set: &str,
        worker: &str,
        partitions: u32,
        held: &[u32],
        ttl: Duration,
    ) -> Result<SetView, StoreError> {
        validate_set_name(set)?;
        if partitions == 0 {
            return Err(StoreError::invalid("partitions", "must be at least 1"));
        }
        let now = Instant::now();
        let mut sets = self.sets.lock();
        let entry = sets.entry(set.to_owned()).or_insert_with(|| LocalSet {
            partitions,
            generation: 0,
            members: BTreeMap::new(),
        });
        if entry.partitions != partitions {
            return Err(partition_count_mismatch(set, entry.partitions, partitions));
        }
        let before = entry.members.len();
        entry.members.retain(|_, (_, until)| *until > now);
        let expired = entry.members.len() != before;
        let joined = entry
            .members
            .insert(worker.to_owned(), (held.to_vec(), now + ttl))
            .is_none();
        if expired || joined {
            entry.generation += 1;
        }
        Ok(Self::view_of(set, entry, now))
    }

    async fn leave(&self, set: &str, worker: &str) -> Result<(), StoreError> {
        if let Some(entry) = self.sets.lock().get_mut(set) {
            if entry.members.remove(worker).is_some() {
                entry.generation += 1;
            }
        }
        Ok(())
    }

    async fn view(&self, set: &str) -> Result<Option<SetView>, StoreError> {
        let now = Instant::now();
        Ok(self
            .sets
            .lock()
            .get(set)
            .map(|entry| Self::view_of(set, entry, now)))
    }

    async fn sets(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.sets.lock().keys().cloned().collect())
    }

    async fn claims(&self, prefix: &str) -> Result<Vec<ClaimRecord>, StoreError> {
        Ok(self
            .coordination
            .as_ref()
            .map(|c| c.claims(prefix))
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_are_checked() {
        assert!(validate_set_name("main-projections.v2_a").is_ok());
        for bad in ["", "a b", "a:b", &"x".repeat(MAX_SET_NAME_LEN + 1)] {
            match validate_set_name(bad) {
                Err(StoreError::Invalid(i)) => assert_eq!(i.field, "replica_set"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
