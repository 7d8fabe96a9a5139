//! `GET /metrics` on the admin port: the exposition parses, and the counters move by exactly
//! what known saves, conflicts and subscriptions did; credentials are needed unless
//! `ORISUN_METRICS_PUBLIC=true`.
//!
//! The recorder is process-wide, so only one test here saves events to `orders`/`payments`.

mod common;

use common::*;
use orisun_proto as pb;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One sample of the exposition: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (comments skipped; label values without escapes).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label=value");
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The value of the series `name` whose labels include `labels`; 0 when absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// `GET path` with optional Basic credentials; returns status and body.
async fn get(addr: SocketAddr, path: &str, basic: Option<(&str, &str)>) -> (u16, String) {
    use base64::Engine;
    let auth = basic
        .map(|(u, p)| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Authorization: Basic {encoded}\r\n")
        })
        .unwrap_or_default();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    // Bodies may come chunked; undo it.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, rest)) = body.split_once("\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

async fn scrape(server: &TestServer) -> Vec<Sample> {
    let (status, body) = get(server.http, "/metrics", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    parse(&body)
}

fn save(boundary: &str, events: Vec<pb::EventToSave>) -> pb::SaveEventsRequest {
    pb::SaveEventsRequest {
        boundary: boundary.to_owned(),
        query: None,
        events,
    }
}

#[tokio::test]
async fn counters_move_by_what_saves_conflicts_and_subscriptions_did() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut client = server.client().await;
    let before = scrape(&server).await;
    let orders = [("boundary", "orders")];

    // Three saves of two events, then one conflicting save of one event.
    for i in 0..3 {
        let account = format!("a{i}");
        client
            .save_events(save(
                "orders",
                vec![
                    event("Opened", json!({ "accountId": account })),
                    event("Credited", json!({ "accountId": account })),
                ],
            ))
            .await
            .expect("saved");
    }
    let conflict = client
        .save_events(pb::SaveEventsRequest {
            boundary: "orders".into(),
            query: Some(pb::SaveQuery {
                expected_position: Some(pos(-1, -1)),
                subset_query: Some(pb::Query {
                    criteria: vec![criterion(&[("accountId", "a0")])],
                }),
            }),
            events: vec![event("Opened", json!({"accountId": "a0"}))],
        })
        .await;
    assert_eq!(
        conflict.expect_err("conflict").code(),
        tonic::Code::AlreadyExists
    );
    assert_eq!(read_all(&mut client, "orders").await.len(), 6);

    let after = scrape(&server).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(delta("orisun_saves_total", &orders), 3.0);
    assert_eq!(delta("orisun_events_saved_total", &orders), 6.0);
    assert_eq!(delta("orisun_save_conflicts_total", &orders), 1.0);
    assert_eq!(delta("orisun_save_errors_total", &orders), 0.0);
    assert_eq!(delta("orisun_save_duration_seconds_count", &orders), 4.0);
    assert_eq!(
        delta(
            "orisun_read_duration_seconds_count",
            &[orders[0], ("call", "read")]
        ),
        1.0
    );
    let saves = [("method", "/orisun.EventStore/SaveEvents")];
    assert_eq!(
        delta("orisun_grpc_requests_total", &[saves[0], ("code", "OK")]),
        3.0
    );
    assert_eq!(
        delta(
            "orisun_grpc_requests_total",
            &[saves[0], ("code", "ALREADY_EXISTS")]
        ),
        1.0
    );
    assert_eq!(
        delta("orisun_grpc_request_duration_seconds_count", &saves),
        4.0
    );
    // Every request reached the writer (the conflict is decided there): 4 requests, 7 events.
    let sqlite_orders = [("backend", "sqlite"), ("boundary", "orders")];
    assert_eq!(
        delta("orisun_group_commit_requests_sum", &sqlite_orders),
        4.0
    );
    assert_eq!(delta("orisun_group_commit_events_sum", &sqlite_orders), 7.0);
    assert!(value(&after, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(value(&after, "process_start_time_seconds", &[]) > 0.0);

    // A subscription that has delivered the whole log: one active, no lag.
    let mut stream = client
        .catch_up_subscribe_to_events(pb::CatchUpSubscribeToEventStoreRequest {
            after_position: Some(pos(-1, -1)),
            query: None,
            subscriber_name: String::new(),
            boundary: "orders".into(),
        })
        .await
        .expect("subscribed")
        .into_inner();
    for _ in 0..6 {
        stream.message().await.expect("stream").expect("event");
    }
    let during = scrape(&server).await;
    assert_eq!(value(&during, "orisun_subscriptions_active", &orders), 1.0);
    assert_eq!(
        value(&during, "orisun_subscription_lag_events", &orders),
        0.0
    );

    // Closing the stream ends the subscription on the server (it notices asynchronously).
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = scrape(&server).await;
        if value(&now, "orisun_subscriptions_active", &orders) == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await.expect("stopped");
}

#[tokio::test]
async fn metrics_need_credentials_of_any_user() {
    let server = TestServer::start(Backend::Memory).await;
    let (status, body) = get(server.http, "/metrics", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing authorization header"), "{body}");
    let (status, _) = get(server.http, "/metrics", Some(("admin", "wrong"))).await;
    assert_eq!(status, 401);
    server
        .create_user("watcher", "watch-pw", &["OPERATIONS"])
        .await;
    let (status, body) = get(server.http, "/metrics", Some(("watcher", "watch-pw"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("# TYPE orisun_grpc_requests_total counter"),
        "{body}"
    );
    // The probes stay open.
    assert_eq!(get(server.http, "/health", None).await.0, 200);
    assert_eq!(get(server.http, "/ready", None).await.0, 200);
    server.stop().await.expect("stopped");
}

#[tokio::test]
async fn metrics_are_public_when_configured() {
    let server = TestServer::start_with(Backend::Memory, &["--metrics-public", "true"]).await;
    let (status, body) = get(server.http, "/metrics", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(!parse(&body).is_empty());
    server.stop().await.expect("stopped");
}
