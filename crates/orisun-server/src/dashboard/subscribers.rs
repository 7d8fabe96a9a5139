//! The subscribers page's API: this node's named subscribers and each boundary's NATS
//! publisher checkpoint, each with its lag (events stored after its position).

use super::session::Session;
use super::{Dashboard, DashboardError};
use axum::Json;
use orisun_core::{BoundaryName, Position, ReadRequest};
use serde_json::{json, Value};

/// Lag is counted up to this many events; beyond, the page shows `LAG_CAP+`.
pub const LAG_CAP: u32 = 1_000;

/// Counts the events of `boundary` after `position`, up to [`LAG_CAP`]: `(count, capped)`.
pub async fn lag(
    dash: &Dashboard,
    boundary: &BoundaryName,
    position: Option<Position>,
) -> Result<(usize, bool), DashboardError> {
    let from = position.map(|p| Position::new(p.commit, p.prepare.saturating_add(1)));
    let page = dash
        .store
        .read(boundary, &ReadRequest::forward(from, LAG_CAP))
        .await?;
    Ok((page.len(), page.len() == LAG_CAP as usize))
}

fn position_json(p: Option<Position>) -> Value {
    match p {
        Some(p) => json!({"commit": p.commit, "prepare": p.prepare}),
        None => Value::Null,
    }
}

/// `GET /api/subscribers`: `{"subscribers": [...], "publishers": [...], "nats": bool}`.
pub async fn list(session: Session) -> Result<Json<Value>, DashboardError> {
    let dash = &session.dash;
    let mut subscribers = Vec::new();
    for s in dash.subscribers.snapshot() {
        let (lag, capped) = lag(dash, &s.boundary, s.position).await?;
        subscribers.push(json!({
            "boundary": s.boundary.as_str(),
            "name": s.name,
            "node": dash.subscribers.node_id(),
            "position": position_json(s.position),
            "lag": lag,
            "lag_capped": capped,
        }));
    }
    let mut publishers = Vec::new();
    if dash.nats {
        for boundary in dash.store.boundaries().await? {
            let name = orisun_nats::naming::publisher_lease_name(&boundary);
            let checkpoint = dash.coordination.load_checkpoint(&name).await?;
            let checkpoint = checkpoint.filter(|p| !p.is_beginning());
            let (lag, capped) = lag(dash, &boundary, checkpoint).await?;
            publishers.push(json!({
                "boundary": boundary.as_str(),
                "checkpoint": position_json(checkpoint),
                "lag": lag,
                "lag_capped": capped,
            }));
        }
    }
    Ok(Json(json!({
        "node": dash.node_id,
        "nats": dash.nats,
        "subscribers": subscribers,
        "publishers": publishers,
    })))
}
