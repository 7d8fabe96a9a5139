//! NATS end to end through the server: events saved over gRPC reach the boundary's JetStream
//! stream (in order, once, with the configured limits; never the admin boundary), publishing
//! resumes from the durable checkpoint after a restart, and the PubSub service works over NATS
//! and in-process.
//!
//! Each test starts its own `nats-server` (JetStream, file storage in a temporary directory, a
//! free port), so stream names never collide between tests or runs. The binary is
//! `/usr/sbin/nats-server` unless `NATS_SERVER_BIN` says otherwise.

mod common;

use common::*;
use futures::StreamExt;
use orisun_nats::async_nats::{self, jetstream};
use orisun_proto as pb;
use orisun_proto::pub_sub_client::PubSubClient;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;

/// A private nats-server, killed on drop.
struct Nats {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_server_bin() -> PathBuf {
    std::env::var("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| Path::new(p).exists())
                .unwrap_or_else(|| "nats-server".into())
        })
}

impl Nats {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (set NATS_SERVER_BIN)");
        let nats = Self {
            url: format!("nats://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(client) = async_nats::connect(&nats.url).await {
                // JetStream answers ("stream not found") once it is up.
                let probe = jetstream::new(client).get_stream("PROBE").await;
                if matches!(&probe, Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(_)))
                {
                    return nats;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(async_nats::connect(&self.url).await.expect("connect"))
    }
}

/// Waits (bounded) until the stream of `boundary` holds `n` messages, and returns them as
/// `(msg id, payload)` in stream order.
async fn stream_messages(
    js: &jetstream::Context,
    boundary: &str,
    n: u64,
) -> Vec<(String, serde_json::Value)> {
    let name = format!("ORISUN_EVENTS___{boundary}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        if let Ok(s) = js.get_stream(&name).await {
            if s.cached_info().state.messages >= n {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not reach {n} messages"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let state = &stream.cached_info().state;
    let mut out = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        let m = stream.get_raw_message(seq).await.expect("message");
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push((
            id,
            serde_json::from_slice(&m.payload).expect("JSON payload"),
        ));
    }
    out
}

async fn save(client: &mut Client, boundary: &str, events: Vec<pb::EventToSave>) {
    client
        .save_events(pb::SaveEventsRequest {
            boundary: boundary.to_owned(),
            query: None,
            events,
        })
        .await
        .expect("saved");
}

/// Checks that the stream holds exactly the boundary's events, in order, with position-derived
/// message ids.
async fn assert_published(client: &mut Client, js: &jetstream::Context, boundary: &str) {
    let stored = read_all(client, boundary).await;
    let published = stream_messages(js, boundary, stored.len() as u64).await;
    assert_eq!(published.len(), stored.len(), "each event once");
    for ((id, payload), event) in published.iter().zip(&stored) {
        let p = event.position.as_ref().expect("position");
        assert_eq!(
            id,
            &format!("{boundary}:{}:{}", p.commit_position, p.prepare_position)
        );
        assert_eq!(payload["event_id"], event.event_id);
        assert_eq!(payload["position"]["commit_position"], p.commit_position);
        assert_eq!(payload["position"]["prepare_position"], p.prepare_position);
    }
}

type PubSub = PubSubClient<InterceptedService<Channel, Credentials>>;

async fn pubsub_client(server: &TestServer, credentials: Credentials) -> PubSub {
    PubSubClient::with_interceptor(server.channel().await, credentials)
}

/// Two consumer names, one message: each name gets it; bad input and missing credentials are
/// refused with precise codes.
async fn pubsub_round_trip(server: &TestServer) {
    let mut client = pubsub_client(server, Credentials::basic(ADMIN.0, ADMIN.1)).await;
    let subject = format!("t{}.greetings", uuid::Uuid::new_v4().simple());
    let mut streams = Vec::new();
    for name in ["a", "b"] {
        streams.push(
            client
                .subscribe_to_pub_sub(pb::SubscribeRequest {
                    subject: subject.clone(),
                    consumer_name: name.into(),
                })
                .await
                .expect("subscribed")
                .into_inner(),
        );
    }
    client
        .publish_to_pub_sub(pb::PublishRequest {
            id: "m1".into(),
            subject: subject.clone(),
            data: b"hello".to_vec(),
        })
        .await
        .expect("published");
    for stream in &mut streams {
        let m = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok")
            .message
            .expect("message");
        assert_eq!(
            (m.id.as_str(), m.subject.as_str(), m.data.as_slice()),
            ("m1", subject.as_str(), &b"hello"[..])
        );
    }
    let refused = client
        .publish_to_pub_sub(pb::PublishRequest {
            id: String::new(),
            subject: "no.wild.*".into(),
            data: Vec::new(),
        })
        .await
        .expect_err("wildcard publish");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("subject"), "{refused:?}");
    let mut anonymous = pubsub_client(server, Credentials::None).await;
    let refused = anonymous
        .publish_to_pub_sub(pb::PublishRequest {
            id: String::new(),
            subject: subject.clone(),
            data: Vec::new(),
        })
        .await
        .expect_err("no credentials");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}

#[tokio::test]
async fn saved_events_reach_jetstream_with_the_configured_limits() {
    let nats = Nats::start().await;
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[
            "--nats-url",
            &nats.url,
            "--nats-event-stream-max-msgs",
            "100000",
            "--nats-event-stream-max-age",
            "10m",
        ],
    )
    .await;
    let mut client = server.client().await;
    for i in 0..10 {
        let batch = (0..(1 + i % 4))
            .map(|j| event("Placed", serde_json::json!({"order": format!("o{i}-{j}")})))
            .collect();
        save(&mut client, "orders", batch).await;
    }
    let js = nats.jetstream().await;
    assert_published(&mut client, &js, "orders").await;

    let config = js
        .get_stream("ORISUN_EVENTS___orders")
        .await
        .expect("stream")
        .cached_info()
        .config
        .clone();
    assert_eq!(config.max_messages, 100_000);
    assert_eq!(config.max_bytes, 536_870_912);
    assert_eq!(config.max_age, Duration::from_secs(600));
    assert_eq!(config.storage, jetstream::stream::StorageType::File);
    // The admin boundary (user records) never leaves the store.
    assert!(js.get_stream("ORISUN_EVENTS___orisun_admin").await.is_err());

    pubsub_round_trip(&server).await;
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn publishing_resumes_from_the_checkpoint_after_a_restart() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().display().to_string();
    let args = [
        "--backend",
        "sqlite",
        "--data-dir",
        &data_dir,
        "--sqlite-synchronous",
        "OFF",
        "--nats-url",
        &nats.url,
    ];
    let js = nats.jetstream().await;
    for round in 0..2 {
        let server = TestServer::start_raw(&args).await;
        let mut client = server.client().await;
        for i in 0..5 {
            save(
                &mut client,
                "payments",
                vec![event("Paid", serde_json::json!({"n": round * 5 + i}))],
            )
            .await;
        }
        assert_published(&mut client, &js, "payments").await;
        server.stop().await.expect("clean stop");
    }
}

#[tokio::test]
async fn pubsub_runs_in_process_without_nats() {
    let server = TestServer::start(Backend::Memory).await;
    pubsub_round_trip(&server).await;
    server.stop().await.expect("clean stop");
}
