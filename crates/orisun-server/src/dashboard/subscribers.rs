//! The subscribers page's API: this node's named subscribers, each boundary's NATS publisher
//! checkpoint, and the library-mode projection workers' replica sets (who holds which
//! partition, its checkpoint), each with its lag (events stored after its position).

use super::session::Session;
use super::{Dashboard, DashboardError};
use axum::Json;
use orisun_core::{BoundaryName, Position};
use orisun_projections::workers::replica_sets_status;
use serde_json::{json, Value};

/// Counts the events of `boundary` after `position` (all of them for `None`): one head read,
/// counted as `/metrics` counts lags.
pub async fn lag(
    dash: &Dashboard,
    boundary: &BoundaryName,
    position: Option<Position>,
) -> Result<u64, DashboardError> {
    let head = dash.store.head(boundary).await?;
    Ok(u64::try_from(crate::metrics::gauges::lag(head, position)).unwrap_or(0))
}

fn position_json(p: Option<Position>) -> Value {
    match p {
        Some(p) => json!({"commit": p.commit, "prepare": p.prepare}),
        None => Value::Null,
    }
}

/// `GET /api/subscribers`: `{"subscribers": [...], "publishers": [...], "nats": bool,
/// "replica_sets": [...]}`, the last as `orisun projections status --json` prints them.
pub async fn list(session: Session) -> Result<Json<Value>, DashboardError> {
    let dash = &session.dash;
    let mut subscribers = Vec::new();
    for s in dash.subscribers.snapshot() {
        let lag = lag(dash, &s.boundary, s.position).await?;
        subscribers.push(json!({
            "boundary": s.boundary.as_str(),
            "name": s.name,
            "node": dash.subscribers.node_id(),
            "position": position_json(s.position),
            "lag": lag,
        }));
    }
    let mut publishers = Vec::new();
    if dash.nats {
        for boundary in dash.store.boundaries().await? {
            let name = orisun_nats::naming::publisher_lease_name(&boundary);
            let checkpoint = dash.coordination.load_checkpoint(&name).await?;
            let checkpoint = checkpoint.filter(|p| !p.is_beginning());
            let lag = lag(dash, &boundary, checkpoint).await?;
            publishers.push(json!({
                "boundary": boundary.as_str(),
                "checkpoint": position_json(checkpoint),
                "lag": lag,
            }));
        }
    }
    let replica_sets =
        replica_sets_status(dash.membership.as_ref(), Some(dash.store.as_ref())).await?;
    Ok(Json(json!({
        "node": dash.node_id,
        "nats": dash.nats,
        "subscribers": subscribers,
        "publishers": publishers,
        "replica_sets": replica_sets,
    })))
}
