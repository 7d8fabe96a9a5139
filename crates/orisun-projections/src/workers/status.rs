//! The operator's view of replica sets: [`ReplicaSetStatus`] (members, which worker holds
//! which partition, each partition's checkpoint and lag, the set's generation), read from the
//! shared membership and leases so that it shows every worker, and [`WorkerStatus`], one
//! worker's own view. Both are serde-serialisable and stable: the CLI prints them as JSON and
//! the dashboard shows them.

use crate::workers::WorkerConfig;
use orisun_core::{BoundaryName, Position};
use orisun_store::{EventStore, Membership, SetView, StoreError, RESERVED_SET_PREFIX};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The lease and checkpoint name prefix of every projection partition run in replica set `set`.
pub fn claim_prefix(set: &str) -> String {
    format!("projection@{set}:")
}

/// One replica set, as the shared storage sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetStatus {
    /// The set's name.
    pub name: String,
    /// Its fixed partition count.
    pub partitions: u32,
    /// Grows on every membership change.
    pub generation: u64,
    /// Its live members, by worker id.
    pub members: Vec<MemberStatus>,
    /// Every projection partition ever run in the set, by boundary, projection and partition.
    pub claims: Vec<PartitionStatus>,
}

/// A live member of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// The worker's id.
    pub worker: String,
    /// The partitions it reported running at its last heartbeat.
    pub held: Vec<u32>,
    /// Milliseconds until its membership expires without a heartbeat.
    pub expires_in_ms: u64,
}

/// One projection partition of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStatus {
    /// The boundary the projection follows.
    pub boundary: String,
    /// The projection.
    pub projection: String,
    /// The partition index.
    pub partition: u32,
    /// The worker holding its lease now; `None` when nobody does (it is being handed over).
    pub holder: Option<String>,
    /// The lease's fencing epoch: how many times the partition changed hands.
    pub epoch: u64,
    /// The saved checkpoint, `None` before the first batch.
    pub checkpoint: Option<CheckpointStatus>,
    /// Events of the boundary after the checkpoint, when the head could be read.
    pub lag: Option<u64>,
}

/// A checkpoint: the position of the last event read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointStatus {
    /// Commit position.
    pub commit: i64,
    /// Prepare position.
    pub prepare: i64,
}

/// One worker's own view: what it runs and what it has lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// The set.
    pub set: String,
    /// This worker.
    pub worker: String,
    /// The set's generation at the last heartbeat (0 before joining).
    pub generation: u64,
    /// The set's live members at the last heartbeat.
    pub members: Vec<String>,
    /// The partitions this worker runs (or is taking over).
    pub held: Vec<u32>,
    /// Partitions lost since start: taken over by another worker, or dropped because this
    /// worker's membership lapsed. The batch in hand of each was refused.
    pub partitions_lost: u64,
}

impl WorkerStatus {
    pub(crate) fn new(config: &WorkerConfig) -> Self {
        Self {
            set: config.set.clone(),
            worker: config.worker.clone(),
            generation: 0,
            members: Vec::new(),
            held: Vec::new(),
            partitions_lost: 0,
        }
    }
}

/// Returns the status of every replica set in `membership` but Orisun's own (named
/// `orisun.*`). With `store`, each partition's lag is counted against its boundary's head.
pub async fn replica_sets_status(
    membership: &dyn Membership,
    store: Option<&dyn EventStore>,
) -> Result<Vec<ReplicaSetStatus>, StoreError> {
    let mut all = Vec::new();
    let sets = membership.sets().await?;
    for set in sets.iter().filter(|s| !s.starts_with(RESERVED_SET_PREFIX)) {
        if let Some(status) = replica_set_status(membership, store, set).await? {
            all.push(status);
        }
    }
    Ok(all)
}

/// Returns the status of replica set `set`, `None` when it was never created. With `store`,
/// each partition's lag is counted against its boundary's head.
pub async fn replica_set_status(
    membership: &dyn Membership,
    store: Option<&dyn EventStore>,
    set: &str,
) -> Result<Option<ReplicaSetStatus>, StoreError> {
    let Some(view) = membership.view(set).await? else {
        return Ok(None);
    };
    let prefix = claim_prefix(set);
    let mut heads: BTreeMap<String, Option<Position>> = BTreeMap::new();
    let mut claims = Vec::new();
    for claim in membership.claims(&prefix).await? {
        let Some((boundary, projection, partition)) = parse_claim(&claim.name[prefix.len()..])
        else {
            continue;
        };
        if partition.1 != view.partitions {
            // A partition of an earlier count under the same set name: not part of this set.
            continue;
        }
        let head = match (store, heads.get(&boundary)) {
            (_, Some(head)) => *head,
            (Some(store), None) => {
                let head = match BoundaryName::new(boundary.clone()) {
                    Ok(name) => store.head(&name).await.ok(),
                    Err(_) => None,
                };
                heads.insert(boundary.clone(), head);
                head
            }
            (None, None) => None,
        };
        let checkpoint = claim.checkpoint;
        let lag = head.map(|h| {
            let done = checkpoint.map_or(-1, |c| c.prepare).max(-1);
            u64::try_from(h.prepare.max(-1) - done).unwrap_or(0)
        });
        claims.push(PartitionStatus {
            boundary,
            projection,
            partition: partition.0,
            holder: claim.live.then_some(claim.holder),
            epoch: claim.epoch,
            checkpoint: checkpoint.map(|c| CheckpointStatus {
                commit: c.commit,
                prepare: c.prepare,
            }),
            lag,
        });
    }
    Ok(Some(status_of(view, claims)))
}

fn status_of(view: SetView, claims: Vec<PartitionStatus>) -> ReplicaSetStatus {
    ReplicaSetStatus {
        name: view.name,
        partitions: view.partitions,
        generation: view.generation,
        members: view
            .members
            .into_iter()
            .map(|m| MemberStatus {
                worker: m.worker,
                held: m.held,
                expires_in_ms: u64::try_from(m.expires_in.as_millis()).unwrap_or(u64::MAX),
            })
            .collect(),
        claims,
    }
}

/// Splits `<boundary>:<projection>:<index>/<count>` (what follows the set's prefix).
fn parse_claim(rest: &str) -> Option<(String, String, (u32, u32))> {
    let (boundary, rest) = rest.split_once(':')?;
    let (projection, partition) = rest.rsplit_once(':')?;
    let (index, count) = partition.split_once('/')?;
    Some((
        boundary.to_owned(),
        projection.to_owned(),
        (index.parse().ok()?, count.parse().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_names_parse_back() {
        assert_eq!(
            parse_claim("bank:balances.v2:3/8"),
            Some(("bank".to_owned(), "balances.v2".to_owned(), (3, 8)))
        );
        assert_eq!(parse_claim("bank:balances"), None);
        assert_eq!(parse_claim("bank:balances:x/8"), None);
    }
}
