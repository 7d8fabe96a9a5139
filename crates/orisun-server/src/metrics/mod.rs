//! Prometheus metrics: the recorder behind the `metrics` facade, the `GET /metrics` route of the
//! admin HTTP port, and the places the server records from.
//!
//! Every crate records through the `metrics` facade (`counter!`, `histogram!`, `gauge!`); this
//! module installs the one process-wide recorder (`metrics-exporter-prometheus`) and renders it
//! in the text exposition format. Where each metric is recorded:
//!
//! - [`rpc`]: the tower layer on the gRPC router (calls by method and status, call latency);
//! - [`store`]: [`ObservedStore`], the `EventStore` the API services call (saves, events,
//!   conflicts, save and read latency, active subscriptions and the positions they delivered);
//! - [`gauges`]: values sampled when `/metrics` is scraped (subscription lag, NATS publisher lag,
//!   database pool usage, process metrics);
//! - the backends' writers (`orisun-sqlite`, `orisun-postgres`): group-commit sizes.
//!
//! The README's "Metrics" table lists every metric.

pub mod gauges;
pub mod rpc;
pub mod store;

pub use gauges::{PoolUsage, Sampler};
pub use rpc::RpcMetricsLayer;
pub use store::{ObservedStore, SubscriptionTracker};

use crate::http_auth::{Authenticated, HttpAuth};
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};

/// Saves that succeeded, by boundary (`boundary`).
pub const SAVES: &str = "orisun_saves_total";
/// Events appended by successful saves, by boundary.
pub const EVENTS_SAVED: &str = "orisun_events_saved_total";
/// Saves refused because their condition failed, by boundary.
pub const CONFLICTS: &str = "orisun_save_conflicts_total";
/// Saves that failed for another reason, by boundary.
pub const SAVE_ERRORS: &str = "orisun_save_errors_total";
/// Latency of a save, by boundary (seconds).
pub const SAVE_SECONDS: &str = "orisun_save_duration_seconds";
/// Latency of a read, by boundary and call (`read` or `latest_by_criteria`), in seconds.
pub const READ_SECONDS: &str = "orisun_read_duration_seconds";
/// gRPC calls, by method and status code name.
pub const RPC_CALLS: &str = "orisun_grpc_requests_total";
/// gRPC call latency by method, until the response (or stream) ends, in seconds.
pub const RPC_SECONDS: &str = "orisun_grpc_request_duration_seconds";
/// Subscriptions open now, by boundary.
pub const SUBSCRIPTIONS: &str = "orisun_subscriptions_active";
/// Events after the position delivered by the furthest-behind subscription, by boundary.
pub const SUBSCRIPTION_LAG: &str = "orisun_subscription_lag_events";
/// Events after the NATS publisher's checkpoint, by boundary.
pub const PUBLISHER_LAG: &str = "orisun_nats_publisher_lag_events";
/// Generation of each projection replica set (grows on every membership change), by set.
pub const REPLICA_SET_GENERATION: &str = "orisun_replica_set_generation";
/// Live workers of each projection replica set, by set.
pub const REPLICA_SET_WORKERS: &str = "orisun_replica_set_workers";
/// Events after a projection partition's checkpoint, by set, boundary, projection, partition.
pub const PARTITION_LAG: &str = "orisun_replica_set_partition_lag_events";
/// Fencing epoch of a projection partition (how often it changed hands), same labels.
pub const PARTITION_EPOCH: &str = "orisun_replica_set_partition_epoch";
/// 1 while a projection partition has no holder (being handed over), else 0; same labels.
pub const PARTITION_UNHELD: &str = "orisun_replica_set_partition_unheld";
/// Connections of the PostgreSQL pool, by state (`in_use`, `idle`, `max`).
pub const POOL_CONNECTIONS: &str = "orisun_db_pool_connections";
/// Callers waiting for a connection of the PostgreSQL pool.
pub const POOL_WAITING: &str = "orisun_db_pool_waiting";
/// Requests per group commit, by backend and boundary (recorded by the backends).
pub const GROUP_COMMIT_REQUESTS: &str = "orisun_group_commit_requests";
/// Events per group commit, by backend and boundary (recorded by the backends).
pub const GROUP_COMMIT_EVENTS: &str = "orisun_group_commit_events";

/// Latency buckets (seconds): 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Size buckets (requests or events in one group commit).
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
];

static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Why metrics could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot install the Prometheus recorder: {0}")]
pub struct MetricsError(String);

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle,
/// so several servers in one process share it) and describes every metric.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Prefix("orisun_group_commit_".into()),
                        SIZE_BUCKETS,
                    )
                })
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| e.to_string())?;
            describe();
            Ok(handle)
        })
        .clone()
        .map_err(MetricsError)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(SAVES, "Saves that succeeded, by boundary.");
    describe_counter!(
        EVENTS_SAVED,
        "Events appended by successful saves, by boundary."
    );
    describe_counter!(
        CONFLICTS,
        "Saves refused because their condition failed, by boundary."
    );
    describe_counter!(
        SAVE_ERRORS,
        "Saves that failed for another reason than their condition, by boundary."
    );
    describe_histogram!(
        SAVE_SECONDS,
        Unit::Seconds,
        "Latency of a save, by boundary."
    );
    describe_histogram!(
        READ_SECONDS,
        Unit::Seconds,
        "Latency of a read, by boundary and call."
    );
    describe_counter!(RPC_CALLS, "gRPC calls, by method and status code.");
    describe_histogram!(
        RPC_SECONDS,
        Unit::Seconds,
        "gRPC call latency (streams: until they end), by method."
    );
    describe_gauge!(SUBSCRIPTIONS, "Subscriptions open now, by boundary.");
    describe_gauge!(
        SUBSCRIPTION_LAG,
        "Events after the position delivered by the furthest-behind subscription, by boundary."
    );
    describe_gauge!(
        PUBLISHER_LAG,
        "Events after the NATS publisher's checkpoint, by boundary."
    );
    describe_gauge!(
        REPLICA_SET_GENERATION,
        "Generation of each projection replica set (grows on every membership change)."
    );
    describe_gauge!(
        REPLICA_SET_WORKERS,
        "Live workers of each projection replica set."
    );
    describe_gauge!(
        PARTITION_LAG,
        "Events after a projection partition's checkpoint."
    );
    describe_gauge!(
        PARTITION_EPOCH,
        "Fencing epoch of a projection partition: how often it changed hands."
    );
    describe_gauge!(
        PARTITION_UNHELD,
        "1 while a projection partition has no holder (being handed over), else 0."
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        "Connections of the PostgreSQL pool, by state."
    );
    describe_gauge!(POOL_WAITING, "Callers waiting for a PostgreSQL connection.");
    describe_histogram!(
        GROUP_COMMIT_REQUESTS,
        "Save requests committed together in one transaction, by backend and boundary."
    );
    describe_histogram!(
        GROUP_COMMIT_EVENTS,
        "Events committed together in one transaction, by backend and boundary."
    );
    metrics_process::Collector::default().describe();
}

/// What `GET /metrics` needs.
#[derive(Clone)]
pub struct MetricsState {
    /// Renders the recorder's metrics.
    pub handle: PrometheusHandle,
    /// Samples the gauges that are read at scrape time.
    pub sampler: Arc<Sampler>,
    /// `ORISUN_METRICS_PUBLIC`: serve without credentials.
    pub public: bool,
    /// Checks credentials when not public.
    pub auth: HttpAuth,
}

impl FromRef<MetricsState> for HttpAuth {
    fn from_ref(state: &MetricsState) -> HttpAuth {
        state.auth.clone()
    }
}

/// Builds the `/metrics` route, to merge into the admin HTTP router.
pub fn router(state: MetricsState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<MetricsState>, request: axum::extract::Request) -> Response {
    if !state.public {
        let (mut parts, _body) = request.into_parts();
        if let Err(refused) = Authenticated::from_request_parts(&mut parts, &state).await {
            return refused.into_response();
        }
    }
    state.sampler.sample().await;
    state.handle.run_upkeep();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.handle.render(),
    )
        .into_response()
}
