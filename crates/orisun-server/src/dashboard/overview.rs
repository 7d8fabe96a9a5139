//! The overview page: boundaries with their event counts and heads, append and conflict rates,
//! the user count, this node and the other live nodes on the same storage, and the backend; as one snapshot and as a live server-sent-event
//! stream that sends a fresh snapshot every [`INTERVAL`].

use super::session::Session;
use super::Dashboard;
use super::DashboardError;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How often the live stream sends a snapshot.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Reads the overview now.
pub async fn read(dash: &Dashboard) -> Result<Value, DashboardError> {
    let mut boundaries = Vec::new();
    for name in dash.store.boundaries().await? {
        let (count, head) = tokio::try_join!(dash.store.count(&name), dash.store.head(&name))?;
        boundaries.push(json!({
            "name": name.as_str(),
            "events": count,
            "head": {"commit": head.commit, "prepare": head.prepare},
        }));
    }
    let users = dash.auth.user_count().await?;
    // Every node sharing the storage, from the cluster's node list; this one even before its
    // first heartbeat is recorded.
    let mut nodes: Vec<Value> = crate::cluster::nodes(dash.membership.as_ref())
        .await?
        .into_iter()
        .map(|n| json!({"id": n.node, "this": n.node == dash.node_id}))
        .collect();
    if !nodes.iter().any(|n| n["this"] == json!(true)) {
        nodes.insert(0, json!({"id": dash.node_id, "this": true}));
    }
    Ok(json!({
        "boundaries": boundaries,
        "rates": dash.activity.rates(),
        "users": users,
        "backend": dash.backend,
        "admin_boundary": dash.auth.admin_boundary().as_str(),
        "node": {
            "id": dash.node_id,
            "subscribers": dash.subscribers.active(),
        },
        "nodes": nodes,
    }))
}

/// `GET /api/overview`: one snapshot.
pub async fn snapshot(session: Session) -> Result<Json<Value>, DashboardError> {
    Ok(Json(read(&session.dash).await?))
}

/// `GET /api/overview/stream`: a snapshot every [`INTERVAL`] as server-sent events named
/// `overview` (`failure` with a message when a snapshot cannot be read; the stream goes on).
pub async fn stream(session: Session) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let dash: Arc<Dashboard> = session.dash;
    let stream = futures::stream::unfold((dash.clone(), true), |(dash, first)| async move {
        if !first {
            tokio::time::sleep(INTERVAL).await;
        }
        let event = match read(&dash).await {
            Ok(value) => Event::default().event("overview").data(value.to_string()),
            Err(e) => Event::default()
                .event("failure")
                .data(json!({"error": e.to_string()}).to_string()),
        };
        Some((Ok(event), (dash, false)))
    });
    Sse::new(dash.until_shutdown(stream)).keep_alive(KeepAlive::default())
}
