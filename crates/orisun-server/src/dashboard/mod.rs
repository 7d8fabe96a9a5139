//! The admin web dashboard on the admin HTTP port: embedded pages and the JSON API under
//! `/api/` that drives them, behind session cookies.
//!
//! # Where each job lives
//!
//! - [`session`]: login and logout, the session cookie (a token of [`crate::auth`], so it
//!   expires like one and a password change or a deletion on any node ends it) and the
//!   [`session::Session`] extractor every API route takes;
//! - [`csrf`]: the per-session CSRF token and the Origin check of every state change;
//! - [`activity`]: the store decorator that counts appends and conflicts, and the rates;
//! - [`overview`]: the overview page's data and its live server-sent-event stream;
//! - [`users`]: user list, creation, deletion and password change;
//! - [`events`]: the event browser (pages by position, one event);
//! - [`tail`]: the live tail of a boundary as server-sent events;
//! - [`subscribers`]: named subscribers, NATS publishers and projection replica sets, with
//!   their lag;
//! - [`catalog`]: boundaries and index definitions;
//! - [`assets`]: the embedded HTML, CSS and JavaScript.
//!
//! Errors of every route go through [`crate::api_error`], the one mapping to HTTP statuses.
//!
//! The admin HTTP endpoint starts before authentication (probes answer during start-up), so
//! the router is built over a [`DashboardSlot`] that start-up fills; until then the API answers
//! 503.

pub mod activity;
mod assets;
pub mod catalog;
pub mod csrf;
pub mod events;
pub mod overview;
pub mod session;
pub mod subscribers;
pub mod tail;
pub mod users;

use crate::admin_service::AdminService;
use crate::api_error::{http_status, ApiError};
use crate::auth::Auth;
use crate::shutdown::Shutdown;
use crate::subscriptions::SubscriberRegistry;
use activity::Activity;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use orisun_core::Invalid;
use orisun_store::{Coordination, EventStore, Membership, StoreError};
use serde_json::json;
use session::LoggedOut;
use std::sync::{Arc, OnceLock};

/// What the dashboard reads and changes: the running server's parts.
pub struct Dashboard {
    /// Users, tokens and sessions.
    pub auth: Arc<Auth>,
    /// The store (wrapped by [`activity::ObservedStore`]).
    pub store: Arc<dyn EventStore>,
    /// The Admin service, for the boundary catalog.
    pub admin: AdminService,
    /// This node's named subscribers.
    pub subscribers: SubscriberRegistry,
    /// Leases and checkpoints (the NATS publishers' checkpoints).
    pub coordination: Arc<dyn Coordination>,
    /// The cluster's node list and the projection workers' replica sets.
    pub membership: Arc<dyn Membership>,
    /// This node's id.
    pub node_id: String,
    /// The backend's name (`postgres`, `sqlite`, `memory`).
    pub backend: String,
    /// Whether NATS publishing is configured.
    pub nats: bool,
    /// Appends and conflicts seen by this node.
    pub activity: Activity,
    /// Sessions ended by logout on this node.
    pub logged_out: LoggedOut,
    /// Ends the live streams when the server stops (its graceful shutdown waits for them).
    pub shutdown: Shutdown,
}

impl Dashboard {
    /// Ends `stream` when the server starts shutting down.
    pub fn until_shutdown<S: Stream>(&self, stream: S) -> impl Stream<Item = S::Item> {
        let mut shutdown = self.shutdown.clone();
        stream.take_until(Box::pin(async move { shutdown.wait().await }))
    }
}

/// The dashboard once start-up has built it; empty before.
#[derive(Clone, Default)]
pub struct DashboardSlot(Arc<OnceLock<Arc<Dashboard>>>);

impl DashboardSlot {
    /// Installs the dashboard (once; later calls are ignored).
    pub fn install(&self, dashboard: Dashboard) {
        if self.0.set(Arc::new(dashboard)).is_err() {
            tracing::warn!("the dashboard was installed twice; keeping the first");
        }
    }

    /// The dashboard, or 503 while the server starts.
    pub fn get(&self) -> Result<Arc<Dashboard>, DashboardError> {
        self.0.get().cloned().ok_or(DashboardError::Starting)
    }
}

/// Why a dashboard request failed.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A domain error, mapped by [`crate::api_error`].
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A gRPC-shaped error of a shared service (the catalog), mapped by its code.
    #[error("{}", .0.message())]
    Status(#[from] tonic::Status),
    /// A request field broke a rule (the error names it).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The server has not finished starting.
    #[error("the server is starting")]
    Starting,
    /// A state change without a valid CSRF token or from another origin.
    #[error("CSRF check failed: {0}")]
    Csrf(&'static str),
}

impl From<StoreError> for DashboardError {
    fn from(e: StoreError) -> Self {
        Self::Api(ApiError::Store(e))
    }
}

impl From<crate::users::UserError> for DashboardError {
    fn from(e: crate::users::UserError) -> Self {
        Self::Api(ApiError::User(e))
    }
}

impl From<crate::auth::AuthError> for DashboardError {
    fn from(e: crate::auth::AuthError) -> Self {
        Self::Api(ApiError::Auth(e))
    }
}

impl DashboardError {
    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            DashboardError::Api(e) => e.http_status(),
            DashboardError::Status(s) => http_status(s.code()),
            DashboardError::Invalid(_) => http_status(tonic::Code::InvalidArgument),
            DashboardError::Starting => http_status(tonic::Code::Unavailable),
            DashboardError::Csrf(_) => http_status(tonic::Code::PermissionDenied),
        }
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, %status, "dashboard request failed");
        }
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

/// Builds the dashboard routes (pages and API) over `slot`.
pub fn router(slot: DashboardSlot) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/login", get(assets::login_page))
        .route("/favicon.ico", get(assets::favicon))
        .route("/assets/{file}", get(assets::file))
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/overview", get(overview::snapshot))
        .route("/api/overview/stream", get(overview::stream))
        .route("/api/users", get(users::list).post(users::create))
        .route("/api/users/{user_id}", delete(users::remove))
        .route("/api/password", post(users::change_password))
        .route("/api/events/{boundary}", get(events::page))
        .route(
            "/api/events/{boundary}/{commit}/{prepare}",
            get(events::one),
        )
        .route("/api/tail/{boundary}", get(tail::stream))
        .route("/api/subscribers", get(subscribers::list))
        .route(
            "/api/boundaries",
            get(catalog::boundaries).post(catalog::create_boundary),
        )
        .route(
            "/api/indexes",
            get(catalog::indexes).post(catalog::create_index),
        )
        .route(
            "/api/indexes/{boundary}/{name}",
            delete(catalog::drop_index),
        )
        .with_state(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_through_the_one_http_mapping() {
        let cases: [(DashboardError, StatusCode); 5] = [
            (
                Invalid::new("limit", "too big").into(),
                StatusCode::BAD_REQUEST,
            ),
            (DashboardError::Starting, StatusCode::SERVICE_UNAVAILABLE),
            (DashboardError::Csrf("x"), StatusCode::FORBIDDEN),
            (
                crate::auth::AuthError::Expired.into(),
                StatusCode::UNAUTHORIZED,
            ),
            (
                tonic::Status::not_found("gone").into(),
                StatusCode::NOT_FOUND,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error}");
        }
        assert_eq!(
            DashboardError::from(Invalid::new("limit", "too big")).to_string(),
            "limit: too big"
        );
    }
}
