//! OpenTelemetry: an in-test OTLP/gRPC receiver gets the spans of a conditional save (the
//! call, `auth`, `save`, `group_commit`, `condition_check`) in the caller's trace (W3C
//! `traceparent`), on SQLite and on PostgreSQL; once the receiver is stopped, saves still
//! succeed, about as fast as with tracing off (measured in the same test).
//!
//! The `tracing` subscriber is process-wide, so this file holds one test.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use orisun_proto as pb;
use orisun_server::config::OtelSection;
use parking_lot::Mutex;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// A received span: trace id, span id, parent span id (hex), name.
#[derive(Debug, Clone)]
struct Received {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                        name: span.name,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Whether the OpenTelemetry layer sees spans (off: the "tracing off" baseline).
static TRACING: AtomicBool = AtomicBool::new(true);

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn save(account: &str) -> pb::SaveEventsRequest {
    pb::SaveEventsRequest {
        boundary: "orders".into(),
        query: None,
        events: vec![event("Opened", json!({ "accountId": account }))],
    }
}

/// A save that expects no event of its account yet.
fn conditional_save(account: &str) -> pb::SaveEventsRequest {
    let mut request = save(account);
    request.query = Some(pb::SaveQuery {
        expected_position: Some(common::pos(-1, -1)),
        subset_query: Some(pb::Query {
            criteria: vec![common::criterion(&[("accountId", account)])],
        }),
    });
    request
}

async fn timed_saves(client: &mut Client, n: usize) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        client
            .save_events(save(&format!("t{i}")))
            .await
            .expect("a save succeeds whatever the collector does");
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_and_a_dead_collector_costs_nothing() {
    // The receiver.
    let receiver = Receiver::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let collector = listener.local_addr().expect("address");
    let (stop_receiver, receiver_stopped) = oneshot::channel::<()>();
    let receiver_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                let _ = receiver_stopped.await;
            }),
    );

    // The process's subscriber: the server's OpenTelemetry layer, switchable for the baseline.
    let section = OtelSection {
        otel_enabled: true,
        otel_endpoint: collector.to_string(),
        otel_service_name: "orisun-test".into(),
    };
    let (layer, _guard) = orisun_server::telemetry::layer(&section)
        .expect("exporter")
        .expect("enabled");
    let switch = tracing_subscriber::filter::filter_fn(|_| TRACING.load(Ordering::Relaxed));
    tracing_subscriber::registry()
        .with(layer.with_filter(switch))
        .try_init()
        .expect("the only subscriber of this test binary");

    let server = TestServer::start(Backend::Sqlite).await;
    let mut client = server.client().await;

    // A conditional save in the caller's trace.
    let mut request = tonic::Request::new(conditional_save("traced"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CALLER_SPAN}-01")
            .parse()
            .expect("ascii"),
    );
    client.save_events(request).await.expect("saved");

    let wanted = [
        "/orisun.EventStore/SaveEvents",
        "auth",
        "save",
        "group_commit",
        "condition_check",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let ours = loop {
        let ours: Vec<Received> = receiver
            .spans
            .lock()
            .iter()
            .filter(|s| s.trace_id == TRACE_ID)
            .cloned()
            .collect();
        if wanted.iter().all(|w| ours.iter().any(|s| s.name == *w)) {
            break ours;
        }
        assert!(Instant::now() < deadline, "spans not exported: {ours:?}");
        // Waiting for the batch exporter's next round (every 500 ms).
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let by_name = |name: &str| ours.iter().find(|s| s.name == name).expect(name).clone();
    let rpc = by_name("/orisun.EventStore/SaveEvents");
    assert_eq!(
        rpc.parent, CALLER_SPAN,
        "the call continues the caller's span"
    );
    assert_eq!(by_name("auth").parent, rpc.span_id);
    let store_save = by_name("save");
    assert_eq!(store_save.parent, rpc.span_id);
    let group_commit = by_name("group_commit");
    assert_eq!(group_commit.parent, store_save.span_id);
    assert_eq!(by_name("condition_check").parent, group_commit.span_id);

    // PostgreSQL's writer traces its condition checks the same way.
    let pg = TestServer::start(Backend::Postgres).await;
    let mut pg_client = pg.client().await;
    const PG_TRACE_ID: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
    let mut request = tonic::Request::new(conditional_save("traced-pg"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{PG_TRACE_ID}-{CALLER_SPAN}-01")
            .parse()
            .expect("ascii"),
    );
    pg_client.save_events(request).await.expect("saved");
    let deadline = Instant::now() + Duration::from_secs(20);
    let pg_spans = loop {
        let spans: Vec<Received> = receiver
            .spans
            .lock()
            .iter()
            .filter(|s| s.trace_id == PG_TRACE_ID)
            .cloned()
            .collect();
        if wanted.iter().all(|w| spans.iter().any(|s| s.name == *w)) {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL spans not exported: {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pg_by_name = |name: &str| {
        pg_spans
            .iter()
            .find(|s| s.name == name)
            .expect(name)
            .clone()
    };
    assert_eq!(
        pg_by_name("condition_check").parent,
        pg_by_name("group_commit").span_id
    );
    drop(pg_client);
    pg.stop().await.expect("clean stop");

    // The collector goes away: its port is closed from now on.
    stop_receiver.send(()).expect("receiver running");
    receiver_task
        .await
        .expect("joined")
        .expect("receiver stopped");

    // Same client, same server: tracing off, then on with the collector down.
    const SAVES: usize = 200;
    TRACING.store(false, Ordering::Relaxed);
    let off = timed_saves(&mut client, SAVES).await;
    TRACING.store(true, Ordering::Relaxed);
    let on = timed_saves(&mut client, SAVES).await;
    eprintln!("{SAVES} saves: tracing off {off:?}, on with the collector down {on:?}");
    assert!(
        on <= off * 3 + Duration::from_secs(1),
        "a dead collector slowed saves: {on:?} against {off:?} with tracing off"
    );
    server.stop().await.expect("stopped");
}
