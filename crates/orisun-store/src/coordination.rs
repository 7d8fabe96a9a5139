//! Cluster coordination kept in the store's database: leases with fencing epochs, and
//! checkpoints. Singletons (a boundary's NATS publisher, an exclusive named subscriber, a
//! projection partition) are elected with a lease and record progress with a fenced checkpoint,
//! so a node that lost its lease can never move a checkpoint its successor relies on.

use crate::membership::ClaimRecord;
use crate::StoreError;
use async_trait::async_trait;
use orisun_core::Position;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Proof of holding a lease: its name, holder and fencing epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// What the lease elects (for example `nats_publisher:orders`).
    pub name: String,
    /// Who holds it (a node id plus a purpose; unique per contender).
    pub holder: String,
    /// Increases every time the lease changes hands; writes fenced by an older epoch fail.
    pub epoch: u64,
}

/// Leases and checkpoints shared by every node that uses the same storage.
#[async_trait]
pub trait Coordination: Send + Sync + 'static {
    /// Takes lease `name` for `holder` until `ttl` from now, or renews it if `holder` already
    /// holds it. Returns `None` when another holder's lease has not expired.
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError>;

    /// Gives the lease up at once if `lease` still holds it; otherwise does nothing.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Returns checkpoint `name`, `None` when it was never saved.
    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError>;

    /// Saves checkpoint `name` if `fence` (when given) is still the current, unexpired holder
    /// of its lease; otherwise fails with [`StoreError::LeaseLost`] and saves nothing.
    async fn save_checkpoint(
        &self,
        name: &str,
        position: Position,
        fence: Option<&Lease>,
    ) -> Result<(), StoreError>;
}

/// Process-local coordination: correct for a single process (the in-memory and embedded
/// stores), and the model the database-backed implementations are tested against. Uses tokio's
/// clock, so tests can pause and advance time.
#[derive(Default)]
pub struct LocalCoordination {
    state: Mutex<LocalState>,
}

#[derive(Default)]
struct LocalState {
    leases: HashMap<String, (String, u64, Instant)>,
    epochs: HashMap<String, u64>,
    checkpoints: HashMap<String, Position>,
}

impl LocalCoordination {
    /// Creates an empty coordinator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a coordinator whose checkpoints start from `checkpoints` (a durable backend loads
    /// them at start-up and persists each save itself).
    pub fn with_checkpoints(checkpoints: HashMap<String, Position>) -> Self {
        Self {
            state: Mutex::new(LocalState {
                checkpoints,
                ..LocalState::default()
            }),
        }
    }

    /// Returns whether `lease` is still the current, unexpired holder of its name (what a
    /// fenced write checks). A durable backend that keeps its checkpoints itself checks its
    /// fence with this.
    pub fn holds_lease(&self, lease: &Lease) -> bool {
        Self::holds(&self.state.lock(), lease)
    }

    fn holds(state: &LocalState, lease: &Lease) -> bool {
        state
            .leases
            .get(&lease.name)
            .is_some_and(|(holder, epoch, until)| {
                holder == &lease.holder && *epoch == lease.epoch && *until > Instant::now()
            })
    }
}

impl LocalCoordination {
    /// Returns the leases whose names start with `prefix`, with their checkpoints.
    pub(crate) fn claims(&self, prefix: &str) -> Vec<ClaimRecord> {
        let now = Instant::now();
        let state = self.state.lock();
        let checkpoints = &state.checkpoints;
        let mut claims: Vec<ClaimRecord> = state
            .leases
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, (holder, epoch, until))| ClaimRecord {
                name: name.clone(),
                holder: holder.clone(),
                epoch: *epoch,
                live: *until > now,
                checkpoint: checkpoints.get(name).copied(),
            })
            .collect();
        claims.sort_by(|a, b| a.name.cmp(&b.name));
        claims
    }
}

#[async_trait]
impl Coordination for LocalCoordination {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let mut state = self.state.lock();
        let now = Instant::now();
        if let Some((current, epoch, until)) = state.leases.get_mut(name) {
            if current == holder && *until > now {
                *until = now + ttl;
                return Ok(Some(Lease {
                    name: name.to_owned(),
                    holder: holder.to_owned(),
                    epoch: *epoch,
                }));
            }
            if *until > now {
                return Ok(None);
            }
        }
        let epoch = {
            let e = state.epochs.entry(name.to_owned()).or_insert(0);
            *e += 1;
            *e
        };
        state
            .leases
            .insert(name.to_owned(), (holder.to_owned(), epoch, now + ttl));
        Ok(Some(Lease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            epoch,
        }))
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        if Self::holds(&state, lease) {
            state.leases.remove(&lease.name);
        }
        Ok(())
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        Ok(self.state.lock().checkpoints.get(name).copied())
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        position: Position,
        fence: Option<&Lease>,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        if let Some(lease) = fence {
            if !Self::holds(&state, lease) {
                return Err(StoreError::LeaseLost {
                    name: lease.name.clone(),
                });
            }
        }
        state.checkpoints.insert(name.to_owned(), position);
        Ok(())
    }
}
