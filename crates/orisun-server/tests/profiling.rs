//! The CPU profiler (`ORISUN_PPROF_ENABLED`, `ORISUN_PPROF_PORT`): off by default; when on, ADMIN
//! users get a pprof protobuf (which decodes) and a flamegraph SVG, others are refused, and a
//! bad `seconds` gets a 400 that says what is allowed.

mod common;

use base64::Engine;
use common::*;
use pprof::protos::Message;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `GET path` with optional Basic credentials; returns status and raw body.
async fn get(addr: SocketAddr, path: &str, basic: Option<(&str, &str)>) -> (u16, Vec<u8>) {
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
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, response[end + 4..].to_vec())
}

/// A port the OS just handed out and took back (the profiler binds it itself).
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn off_by_default() {
    let server = TestServer::start(Backend::Memory).await;
    // Not on the admin port either.
    let (status, _) = get(server.http, "/debug/pprof/profile?seconds=1", Some(ADMIN)).await;
    assert_eq!(status, 404);
    let config = <orisun_server::Config as clap::Parser>::try_parse_from(["orisun serve"])
        .expect("defaults");
    assert!(!config.pprof.pprof_enabled);
    assert_eq!(config.pprof.pprof_port, 6060);
    server.stop().await.expect("stopped");
}

#[tokio::test]
async fn admin_only_bounded_and_decodable() {
    let port = free_port().await;
    let server = TestServer::start_with(
        Backend::Memory,
        &["--pprof-enabled", "true", "--pprof-port", &port.to_string()],
    )
    .await;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    server.create_user("ops", "ops-pw", &["OPERATIONS"]).await;

    let (status, _) = get(addr, "/debug/pprof/profile?seconds=1", None).await;
    assert_eq!(status, 401);
    let (status, body) = get(
        addr,
        "/debug/pprof/profile?seconds=1",
        Some(("ops", "ops-pw")),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "permission denied: user \"ops\" needs role ADMIN"
    );
    for bad in ["abc", "0", "121"] {
        let (status, body) = get(
            addr,
            &format!("/debug/pprof/profile?seconds={bad}"),
            Some(ADMIN),
        )
        .await;
        assert_eq!(status, 400, "seconds={bad}");
        assert_eq!(
            String::from_utf8_lossy(&body),
            format!("seconds must be a whole number from 1 to 120, got {bad:?}")
        );
    }

    let (status, body) = get(addr, "/debug/pprof/profile?seconds=1", Some(ADMIN)).await;
    assert_eq!(status, 200);
    let profile = pprof::protos::Profile::parse_from_bytes(&body).expect("a pprof protobuf");
    assert!(!profile.sample_type.is_empty(), "{profile:?}");
    assert!(
        profile.duration_nanos >= 1_000_000_000,
        "{}",
        profile.duration_nanos
    );

    // Something to sample: a thread busy for the length of the profile.
    let busy = std::thread::spawn(|| {
        let end = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        let mut x = 0u64;
        while std::time::Instant::now() < end {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        x
    });
    let (status, body) = get(addr, "/debug/pprof/flamegraph?seconds=1", Some(ADMIN)).await;
    busy.join().expect("busy thread");
    assert_eq!(status, 200);
    let svg = String::from_utf8(body).expect("utf-8");
    assert!(svg.contains("<svg"), "{svg}");
    server.stop().await.expect("stopped");
}
