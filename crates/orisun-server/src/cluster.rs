//! The cluster's nodes: every server heartbeats into the membership set [`NODES_SET`] of its
//! store's [`Membership`], so that any node can list the live ones (the dashboard's overview).
//! On PostgreSQL that is every node sharing the database; on the embedded and in-memory
//! backends, which belong to one process, it is this node alone.
//!
//! The set only reports who is alive. It elects nothing: singletons keep their own leases.

use crate::shutdown::Shutdown;
use orisun_store::{Membership, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The membership set of the server nodes. `orisun projections status` and the dashboard's
/// replica-set list leave it out: it holds nodes, not projection workers.
pub const NODES_SET: &str = "orisun.nodes";

/// How long a node stays listed after its last heartbeat (it heartbeats every third of it).
pub const NODE_TTL: Duration = Duration::from_secs(15);

/// One live node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    /// The node's id (as in its logs and lease holders).
    pub node: String,
    /// Milliseconds until it drops out of the list without another heartbeat.
    pub expires_in_ms: u64,
}

/// Keeps `node` listed in [`NODES_SET`] until `shutdown`, then takes it out at once. A failed
/// heartbeat is logged and retried at the next beat; the node drops out of the list only if
/// none succeeds for [`NODE_TTL`].
pub fn keep_listed(
    membership: Arc<dyn Membership>,
    node: String,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = membership
                .heartbeat(NODES_SET, &node, 1, &[], NODE_TTL)
                .await
            {
                tracing::warn!(error = %e, node, "cluster heartbeat failed; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(NODE_TTL / 3) => {}
                () = shutdown.wait() => break,
            }
        }
        if let Err(e) = membership.leave(NODES_SET, &node).await {
            tracing::debug!(error = %e, node, "could not leave the cluster list; it expires");
        }
    })
}

/// Returns the live nodes, ordered by id.
pub async fn nodes(membership: &dyn Membership) -> Result<Vec<NodeStatus>, StoreError> {
    Ok(membership
        .view(NODES_SET)
        .await?
        .map(|view| {
            view.members
                .into_iter()
                .map(|m| NodeStatus {
                    node: m.worker,
                    expires_in_ms: u64::try_from(m.expires_in.as_millis()).unwrap_or(u64::MAX),
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use orisun_store::LocalMembership;

    #[test]
    fn the_nodes_set_is_reserved() {
        assert!(NODES_SET.starts_with(orisun_store::RESERVED_SET_PREFIX));
    }

    #[tokio::test(start_paused = true)]
    async fn nodes_are_listed_while_they_beat_and_leave_on_shutdown() {
        let membership: Arc<dyn Membership> = Arc::new(LocalMembership::new());
        let (stop_a, shutdown_a) = crate::shutdown::channel();
        let (_stop_b, shutdown_b) = crate::shutdown::channel();
        let a = keep_listed(membership.clone(), "node-a".into(), shutdown_a);
        let _b = keep_listed(membership.clone(), "node-b".into(), shutdown_b);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let listed = |nodes: Vec<NodeStatus>| nodes.into_iter().map(|n| n.node).collect::<Vec<_>>();
        assert_eq!(
            listed(nodes(&*membership).await.expect("nodes")),
            ["node-a", "node-b"]
        );

        // Heartbeats keep both listed well past one TTL.
        tokio::time::sleep(NODE_TTL * 3).await;
        assert_eq!(
            listed(nodes(&*membership).await.expect("nodes")),
            ["node-a", "node-b"]
        );

        // A node that stops leaves at once.
        stop_a.trigger();
        a.await.expect("heartbeat task ends");
        assert_eq!(
            listed(nodes(&*membership).await.expect("nodes")),
            ["node-b"]
        );
    }
}
