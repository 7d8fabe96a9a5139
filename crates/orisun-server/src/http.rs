//! The admin HTTP endpoint (`ORISUN_ADMIN_PORT`): liveness and readiness probes, in JSON.
//!
//! `GET /health` answers 200 as long as the process serves HTTP. `GET /ready` answers 200 only
//! when start-up has finished, the server is not shutting down, and the store answers a head
//! read of the admin boundary within [`READY_TIMEOUT`]; otherwise 503 with the reason. Other
//! routes (the dashboard) can be merged into [`router`]'s result.

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
