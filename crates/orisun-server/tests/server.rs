//! End-to-end tests of the server around the API: admin HTTP probes, gRPC health and
//! reflection (and their authentication), gzip, message-size limits, start-up boundaries and
//! graceful shutdown.

mod common;

use common::*;
use futures::StreamExt;
use orisun_proto as pb;
use serde_json::json;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

per_backend!(graceful_shutdown, startup_boundaries_and_probes);

#[tokio::test]
async fn http_probes() {
    let server = TestServer::start(Backend::Memory).await;
    let (status, body) = http_get(server.http, "/health").await.expect("GET /health");
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"status":"ok"}"#);
    let (status, body) = http_get(server.http, "/ready").await.expect("GET /ready");
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"status":"ready"}"#);
    let (status, _) = http_get(server.http, "/nope").await.expect("GET /nope");
    assert_eq!(status, 404);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn health_is_open_and_serving() {
    let server = TestServer::start(Backend::Memory).await;
    let mut health = HealthClient::new(server.channel().await);
    let response = health
        .check(HealthCheckRequest {
            service: "orisun.EventStore".into(),
        })
        .await
        .expect("health needs no credentials")
        .into_inner();
    assert_eq!(response.status(), ServingStatus::Serving);
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("overall health")
        .into_inner();
    assert_eq!(overall.status(), ServingStatus::Serving);
    server.stop().await.expect("clean stop");
}

async fn list_services(
    server: &TestServer,
    credentials: Credentials,
) -> Result<Vec<String>, tonic::Status> {
    let mut client = ServerReflectionClient::with_interceptor(server.channel().await, credentials);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner();
    let response = responses.next().await.expect("a reflection response")?;
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            Ok(names)
        }
        other => panic!("unexpected reflection response {other:?}"),
    }
}

#[tokio::test]
async fn reflection_is_authenticated_and_lists_services() {
    let server = TestServer::start(Backend::Memory).await;
    let names = list_services(&server, Credentials::basic(ADMIN.0, ADMIN.1))
        .await
        .expect("reflection");
    for expected in ["orisun.Admin", "orisun.EventStore", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let err = list_services(&server, Credentials::None)
        .await
        .expect_err("reflection needs credentials");
    assert_eq!(err.code(), Code::Unauthenticated);
    server.stop().await.expect("clean stop");

    let server =
        TestServer::start_with(Backend::Memory, &["--grpc-enable-reflection", "false"]).await;
    let err = list_services(&server, Credentials::basic(ADMIN.0, ADMIN.1))
        .await
        .expect_err("reflection disabled");
    assert_eq!(err.code(), Code::Unimplemented);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn gzip_both_ways() {
    let server = TestServer::start(Backend::Memory).await;
    let mut c = server
        .client()
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let big = "x".repeat(100_000);
    c.save_events(pb::SaveEventsRequest {
        boundary: "orders".into(),
        query: None,
        events: vec![event("Big", json!({ "payload": big }))],
    })
    .await
    .expect("gzip request");
    let response = c
        .get_events(pb::GetEventsRequest {
            boundary: "orders".into(),
            count: 10,
            ..Default::default()
        })
        .await
        .expect("gzip response");
    assert_eq!(
        response
            .metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip"),
        "the server compresses for a client that accepts gzip"
    );
    assert!(response.into_inner().events[0].data.contains(&big));
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn oversize_request_is_resource_exhausted_and_changes_nothing() {
    let server = TestServer::start_with(
        Backend::Memory,
        &["--grpc-max-receive-message-size", "4096"],
    )
    .await;
    let mut c = server.client().await;
    let err = c
        .save_events(pb::SaveEventsRequest {
            boundary: "orders".into(),
            query: None,
            events: vec![event("Big", json!({ "payload": "y".repeat(10_000) }))],
        })
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .starts_with("Error, decoded message length too large"),
        "{}",
        err.message()
    );
    assert!(read_all(&mut c, "orders").await.is_empty());
    // A small request on the same server still works.
    c.save_events(pb::SaveEventsRequest {
        boundary: "orders".into(),
        query: None,
        events: vec![event("Small", json!({}))],
    })
    .await
    .expect("small request");
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn oversize_response_is_resource_exhausted() {
    let server =
        TestServer::start_with(Backend::Memory, &["--grpc-max-send-message-size", "4096"]).await;
    let mut c = server.client().await;
    for i in 0..3 {
        c.save_events(pb::SaveEventsRequest {
            boundary: "orders".into(),
            query: None,
            events: vec![event(
                "Big",
                json!({ "i": i, "payload": "z".repeat(2_000) }),
            )],
        })
        .await
        .expect("each save is small enough");
    }
    let read = |count: u32| pb::GetEventsRequest {
        boundary: "orders".into(),
        count,
        ..Default::default()
    };
    c.get_events(read(1)).await.expect("one event fits");
    let err = c.get_events(read(3)).await.expect_err("three do not");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .starts_with("Error, encoded message length too large"),
        "{}",
        err.message()
    );
    server.stop().await.expect("clean stop");
}

async fn startup_boundaries_and_probes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let names: Vec<String> = admin
        .list_boundaries(pb::ListBoundariesRequest {})
        .await
        .expect("list boundaries")
        .into_inner()
        .boundaries
        .into_iter()
        .map(|b| b.name)
        .collect();
    for expected in ["orders", "payments", "orisun_admin"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    // ORISUN_PG_SCHEMAS places boundaries (the test servers map orisun_admin to schema admin);
    // elsewhere a boundary's namespace is its name.
    let placement = |name: &str| {
        let mut admin = admin.clone();
        let name = name.to_owned();
        async move {
            admin
                .get_boundary(pb::GetBoundaryRequest { name })
                .await
                .expect("get boundary")
                .into_inner()
                .boundary
                .and_then(|b| b.placement)
                .expect("placement")
        }
    };
    let admin_placement = placement("orisun_admin").await;
    let payments_placement = placement("payments").await;
    match backend {
        Backend::Postgres => {
            assert_eq!(admin_placement.backend, "postgres");
            assert_eq!(admin_placement.namespace, "admin");
            assert_eq!(payments_placement.namespace, "public");
        }
        Backend::Sqlite => {
            assert_eq!(admin_placement.backend, "sqlite");
            assert_eq!(payments_placement.namespace, "payments");
        }
        Backend::Memory => assert_eq!(admin_placement.backend, "memory"),
    }
    let (status, _) = http_get(server.http, "/ready").await.expect("GET /ready");
    assert_eq!(status, 200);
    server.stop().await.expect("clean stop");
}

async fn graceful_shutdown(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let mut c = server.client().await;
    c.save_events(pb::SaveEventsRequest {
        boundary: "orders".into(),
        query: None,
        events: vec![event("A", json!({}))],
    })
    .await
    .expect("saved");
    let mut stream = c
        .catch_up_subscribe_to_events(pb::CatchUpSubscribeToEventStoreRequest {
            after_position: Some(pos(-1, -1)),
            query: None,
            subscriber_name: "s".into(),
            boundary: "orders".into(),
        })
        .await
        .expect("subscribed")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("event in time")
        .expect("open")
        .expect("event");
    assert_eq!(first.event_type, "A");

    server.begin_stop();
    // The subscriber gets a final status instead of hanging or seeing a reset.
    let last = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("final status in time")
        .expect("a final item");
    let status = last.expect_err("a status, not an event");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "server shutting down");
    let http = server.http;
    let grpc = server.grpc;
    server
        .join()
        .await
        .expect("serve returns Ok after a graceful shutdown");
    // Both ports are closed.
    assert!(http_get(http, "/health").await.is_err());
    assert!(tokio::net::TcpStream::connect(grpc).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_saves_survive_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().display().to_string();
    let args = ["--backend", "sqlite", "--data-dir", path.as_str()];
    let mut server = TestServer::start_raw(&args).await;
    let mut saves = Vec::new();
    for i in 0..20 {
        // One connection each, so some calls are in flight when the shutdown starts.
        let mut c = server.client().await;
        saves.push(tokio::spawn(async move {
            let e = event("A", json!({ "i": i }));
            let id = e.event_id.clone();
            let result = c
                .save_events(pb::SaveEventsRequest {
                    boundary: "orders".into(),
                    query: None,
                    events: vec![e],
                })
                .await;
            (id, result)
        }));
    }
    server.begin_stop();
    let mut acknowledged = Vec::new();
    for save in saves {
        let (id, result) = save.await.expect("joined");
        match result {
            Ok(_) => acknowledged.push(id),
            // A call the server never started is refused, never half-done.
            Err(status) => assert!(
                matches!(
                    status.code(),
                    Code::Unavailable | Code::Cancelled | Code::Unknown
                ),
                "{status:?}"
            ),
        }
    }
    server.join().await.expect("clean stop");

    let server = TestServer::start_raw(&args).await;
    let mut c = server.client().await;
    let stored: Vec<String> = read_all(&mut c, "orders")
        .await
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged save {id} lost");
    }
    server.stop().await.expect("clean stop");
}
