//! The admin HTTP endpoint (`ORISUN_ADMIN_PORT`): liveness and readiness probes, in JSON.
//!
//! `GET /health` answers 200 as long as the process serves HTTP. `GET /ready` answers 200 only
//! when start-up has finished, the server is not shutting down, and the store answers a head
//! read of the admin boundary within [`READY_TIMEOUT`]; otherwise 503 with the reason. The
//! dashboard is mounted beside them by [`router_with_dashboard`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use orisun_core::BoundaryName;
use orisun_store::EventStore;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long `/ready` waits for the store.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the server accepts traffic: false during start-up and shutdown.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the server ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Returns whether the server is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the probes need.
#[derive(Clone)]
pub struct HttpState {
    /// The store whose reachability `/ready` checks.
    pub store: Arc<dyn EventStore>,
    /// The boundary read by the readiness check (it always exists once started).
    pub admin_boundary: BoundaryName,
    /// Start-up and shutdown state.
    pub readiness: Readiness,
}

/// Builds the admin HTTP routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(state)
}

/// Builds the admin HTTP routes with the dashboard ([`crate::dashboard`]) mounted beside them.
pub fn router_with_dashboard(
    state: HttpState,
    dashboard: crate::dashboard::DashboardSlot,
) -> Router {
    router(state).merge(crate::dashboard::router(dashboard))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    if !state.readiness.get() {
        return unavailable("starting or shutting down".to_owned());
    }
    match tokio::time::timeout(READY_TIMEOUT, state.store.head(&state.admin_boundary)).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(Err(e)) => unavailable(format!("store: {e}")),
        Err(_) => unavailable(format!(
            "store did not answer within {} ms",
            READY_TIMEOUT.as_millis()
        )),
    }
}

fn unavailable(reason: String) -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unavailable", "reason": reason})),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use orisun_store::MemoryStore;
    use tower::ServiceExt;

    async fn get(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn ready_follows_start_up_and_the_store() {
        let store = MemoryStore::new();
        let admin = BoundaryName::new("orisun_admin").expect("valid");
        let state = HttpState {
            store: Arc::new(store.clone()),
            admin_boundary: admin.clone(),
            readiness: Readiness::default(),
        };
        let app = router(state.clone());
        assert_eq!(
            get(app.clone(), "/health").await,
            (StatusCode::OK, r#"{"status":"ok"}"#.to_owned())
        );
        let (status, body) = get(app.clone(), "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("starting or shutting down"), "{body}");

        state.readiness.set(true);
        let (status, body) = get(app.clone(), "/ready").await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "admin boundary missing"
        );
        assert!(body.contains("store: "), "{body}");

        store.create_boundary(&admin).await.expect("created");
        assert_eq!(
            get(app, "/ready").await,
            (StatusCode::OK, r#"{"status":"ready"}"#.to_owned())
        );
    }
}
