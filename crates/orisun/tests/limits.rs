//! Load and limits of one `orisun serve` process (embedded backend): 1,000 subscriptions beside
//! 64 writers, then 10,000 idle HTTP/2 connections; slowloris connections, a subscriber that
//! never reads, and a 64 MiB request. Each records the server's resident memory and open file
//! descriptors (from `/proc`) and prints them.
//!
//! The load runs `ORISUN_LIMITS_LOAD_SECS` seconds (20 by default; the README's figures come
//! from `ORISUN_LIMITS_LOAD_SECS=120`).

mod fault_support;

use anyhow::{ensure, Result};
use fault_support::*;
use futures::{StreamExt as _, TryStreamExt as _};
use orisun_proto as pb;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The tests measure one server each; running them at once would blur both the figures and the
/// latency checks on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The HTTP/2 client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
/// A SETTINGS acknowledgement.
const SETTINGS_ACK: [u8; 9] = [0, 0, 0, 4, 1, 0, 0, 0, 0];

fn load_duration() -> Duration {
    Duration::from_secs(
        std::env::var("ORISUN_LIMITS_LOAD_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    )
}

fn boundaries(names: &[&str]) -> String {
    let list: Vec<String> = names
        .iter()
        .map(|n| format!(r#"{{"name":"{n}","description":"{n}"}}"#))
        .collect();
    format!("[{}]", list.join(","))
}

/// FNV-1a over a sequence of positions: two equal digests and counts mean the same sequence.
fn digest(hash: u64, (commit, prepare): (i64, i64)) -> u64 {
    let mut h = hash;
    for b in commit
        .to_le_bytes()
        .into_iter()
        .chain(prepare.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// What one subscription received: a count, a digest of the positions in order, and whether
/// any position failed to grow.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    digest: AtomicU64,
    disorder: AtomicBool,
    ended: AtomicBool,
}

/// Opens an anonymous subscription from the start of `boundary` and counts what arrives.
async fn count_subscription(
    client: &mut pb::event_store_client::EventStoreClient<tonic::transport::Channel>,
    auth: &Auth,
    boundary: &str,
) -> Result<Arc<Received>> {
    let mut stream = client
        .catch_up_subscribe_to_events(auth.request(pb::CatchUpSubscribeToEventStoreRequest {
            after_position: None,
            query: None,
            subscriber_name: String::new(),
            boundary: boundary.to_owned(),
        }))
        .await?
        .into_inner();
    let received = Arc::new(Received::default());
    received.digest.store(FNV_START, Ordering::Relaxed);
    let kept = received.clone();
    tokio::spawn(async move {
        let mut last = (-1, -1);
        let mut hash = FNV_START;
        while let Ok(Some(event)) = stream.message().await {
            let p = pos(event.position.as_ref());
            if p <= last {
                kept.disorder.store(true, Ordering::Relaxed);
            }
            last = p;
            hash = digest(hash, p);
            kept.digest.store(hash, Ordering::Relaxed);
            kept.count.fetch_add(1, Ordering::Release);
        }
        kept.ended.store(true, Ordering::Relaxed);
    });
    Ok(received)
}

/// Samples a process's usage every 250 ms, keeping the largest figures.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Usage>,
}

impl Sampler {
    fn start(pid: u32) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let first = Usage::of(pid)?;
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = first;
            while !flag.load(Ordering::Relaxed) {
                if let Ok(u) = Usage::of(pid) {
                    peak.rss_kib = peak.rss_kib.max(u.rss_kib);
                    peak.hwm_kib = peak.hwm_kib.max(u.hwm_kib);
                    peak.fds = peak.fds.max(u.fds);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            peak
        });
        Ok(Self { stop, task })
    }

    async fn peak(self) -> Result<Usage> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// Opens a TCP connection to `addr` and completes an HTTP/2 handshake on it (preface, SETTINGS,
/// the server's SETTINGS acknowledged), then leaves it idle.
async fn idle_http2(addr: &str) -> Result<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(PREFACE).await?;
    tcp.write_all(&SETTINGS).await?;
    let mut header = [0u8; 9];
    tcp.read_exact(&mut header).await?;
    ensure!(header[3] == 4, "the server's first frame is SETTINGS");
    let mut payload = vec![0u8; usize::from(header[1]) << 8 | usize::from(header[2])];
    tcp.read_exact(&mut payload).await?;
    tcp.write_all(&SETTINGS_ACK).await?;
    Ok(tcp)
}

/// A save of one small event and a read of it; returns how long both took.
async fn save_and_read(addr: &str, auth: &Auth, boundary: &str) -> Result<Duration> {
    let started = Instant::now();
    let mut client = events(channel(addr)?);
    let saved = client
        .save_events(auth.request(save(boundary, new_events("Probe", 0, 0, 1))))
        .await?
        .into_inner();
    let read = client
        .get_events(auth.request(pb::GetEventsRequest {
            query: None,
            from_position: saved.log_position,
            count: 1,
            direction: pb::Direction::Asc as i32,
            boundary: boundary.to_owned(),
        }))
        .await?
        .into_inner();
    ensure!(read.events.len() == 1, "the saved event reads back");
    Ok(started.elapsed())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_subscriptions_beside_64_writers_then_10k_idle_connections() -> Result<()> {
    let _serial = SERIAL.lock().await;
    const SUBSCRIPTIONS: usize = 1_000;
    const WRITERS: usize = 64;
    const IDLE: usize = 10_000;
    let server = Node::start(&[("ORISUN_BOUNDARIES", boundaries(&["load"]))])?;
    let auth = Auth::Token(token(&server.grpc, &Auth::admin()).await?);
    let start_usage = server.usage()?;

    // 1,000 subscriptions over 20 connections.
    let channels: Vec<_> = (0..20)
        .map(|_| channel(&server.grpc))
        .collect::<Result<_>>()?;
    let subscribing = Instant::now();
    let subscriptions: Vec<Arc<Received>> = futures::stream::iter(0..SUBSCRIPTIONS)
        .map(|i| {
            let mut client = events(channels[i % channels.len()].clone());
            let auth = auth.clone();
            async move { count_subscription(&mut client, &auth, "load").await }
        })
        .buffer_unordered(50)
        .try_collect()
        .await?;
    let subscribed_in = subscribing.elapsed();

    // 64 writers, each saving a batch of 1 to 4 events about every 250 ms.
    let sampler = Sampler::start(server.pid)?;
    let load = load_duration();
    let began = Instant::now();
    let write_channels: Vec<_> = (0..8)
        .map(|_| channel(&server.grpc))
        .collect::<Result<_>>()?;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let mut client = events(write_channels[w % write_channels.len()].clone());
            let auth = auth.clone();
            tokio::spawn(async move {
                let (mut saved, mut n, mut slowest) = (0u64, 0u64, Duration::ZERO);
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while began.elapsed() < load {
                    tick.tick().await;
                    let size = 1 + (n % 4);
                    let sent = Instant::now();
                    client
                        .save_events(auth.request(save("load", new_events("Load", w, n, size))))
                        .await?;
                    slowest = slowest.max(sent.elapsed());
                    n += 1;
                    saved += size;
                }
                anyhow::Ok((saved, slowest))
            })
        })
        .collect();
    let (mut acknowledged, mut slowest_save) = (0u64, Duration::ZERO);
    for w in writers {
        let (saved, slowest) = w.await??;
        acknowledged += saved;
        slowest_save = slowest_save.max(slowest);
    }
    let written_in = began.elapsed();

    // Every subscription gets every event, in log order. The server is saturated while the
    // writers run, so the subscribers finish catching up afterwards.
    let caught_up_in = wait_until(
        "every subscription to receive every event",
        load * 4 + Duration::from_secs(60),
        || async {
            Ok(subscriptions.iter().all(|s| {
                s.count.load(Ordering::Acquire) >= acknowledged || s.ended.load(Ordering::Relaxed)
            }))
        },
    )
    .await?;
    let peak = sampler.peak().await?;
    let log = read_all(&server.grpc, &auth, "load").await?;
    ensure!(
        log.len() as u64 == acknowledged,
        "{} events stored, {acknowledged} acknowledged",
        log.len()
    );
    let expected = log
        .iter()
        .fold(FNV_START, |h, e| digest(h, pos(e.position.as_ref())));
    let complete = subscriptions
        .iter()
        .filter(|s| {
            s.count.load(Ordering::Acquire) == acknowledged
                && s.digest.load(Ordering::Relaxed) == expected
                && !s.disorder.load(Ordering::Relaxed)
                && !s.ended.load(Ordering::Relaxed)
        })
        .count();
    ensure!(
        complete == SUBSCRIPTIONS,
        "{complete} of {SUBSCRIPTIONS} subscriptions got every event in order"
    );
    let loaded = server.usage()?;
    eprintln!(
        "limits/load: {SUBSCRIPTIONS} subscriptions (opened in {subscribed_in:?}) x {acknowledged} events ({} deliveries, all in order) \
         from {WRITERS} writers in {written_in:?} (slowest save {slowest_save:?}), subscribers caught up \
         {caught_up_in:?} after the last save; server RSS {:.1} MiB at start, peak {:.1} MiB, {:.1} MiB after; \
         fds {} at start, peak {}",
        SUBSCRIPTIONS as u64 * acknowledged,
        mib(start_usage.rss_kib),
        mib(peak.rss_kib),
        mib(loaded.rss_kib),
        start_usage.fds,
        peak.fds
    );
    drop(subscriptions);
    drop(channels);
    eprintln!(
        "limits/load: the load phase took {:?} from the first save to the last delivery",
        began.elapsed()
    );

    // 10,000 idle HTTP/2 connections.
    let before_idle = server.usage()?;
    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(idle_http2(&server.grpc).await?);
    }
    let opened_in = opened.elapsed();
    let held = server.usage()?;
    ensure!(
        held.fds >= IDLE,
        "the server holds the {IDLE} connections ({} fds)",
        held.fds
    );
    let probe = save_and_read(&server.grpc, &auth, "load").await?;
    ensure!(
        probe < Duration::from_secs(2),
        "a save and a read took {probe:?} beside {IDLE} idle connections"
    );
    let per_connection = (held.rss_kib.saturating_sub(before_idle.rss_kib) * 1024) / IDLE as u64;
    ensure!(
        per_connection < 256 * 1024,
        "{per_connection} bytes of RSS per idle connection"
    );
    drop(idle);
    let released = wait_until(
        "the idle connections' descriptors to be closed",
        Duration::from_secs(30),
        || async { Ok(server.usage()?.fds < before_idle.fds + 100) },
    )
    .await?;
    eprintln!(
        "limits/idle: {IDLE} idle HTTP/2 connections opened in {opened_in:?}; server RSS {:.1} -> {:.1} MiB \
         ({per_connection} bytes each), fds {} -> {}; save+read beside them {probe:?}; descriptors \
         released {released:?} after the clients closed",
        mib(before_idle.rss_kib),
        mib(held.rss_kib),
        before_idle.fds,
        held.fds
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_cost_bounded_memory_and_block_no_one() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let server = Node::start(&[
        ("ORISUN_BOUNDARIES", boundaries(&["hostile"])),
        ("ORISUN_GRPC_HANDSHAKE_TIMEOUT", "2s".to_owned()),
        ("ORISUN_GRPC_KEEP_ALIVE_TIME", "2s".to_owned()),
        ("ORISUN_GRPC_KEEP_ALIVE_TIMEOUT", "1s".to_owned()),
    ])?;
    let auth = Auth::Token(token(&server.grpc, &Auth::admin()).await?);

    // A 64 MiB request is refused, and never held twice.
    let before = server.usage()?;
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(64 * 1024 * 1024));
    let request = save(
        "hostile",
        vec![pb::EventToSave {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: "Huge".to_owned(),
            data: big,
            metadata: "{}".to_owned(),
        }],
    );
    let refused = events(channel(&server.grpc)?)
        .save_events(auth.request(request))
        .await
        .expect_err("a 64 MiB request is refused");
    ensure!(
        refused.code() == tonic::Code::ResourceExhausted,
        "a 64 MiB request got {refused:?}"
    );
    let after = server.usage()?;
    let growth = after.hwm_kib.saturating_sub(before.hwm_kib);
    ensure!(
        growth < 64 * 1024,
        "the peak RSS grew {growth} KiB for a refused 64 MiB request"
    );
    eprintln!(
        "limits/oversize: 64 MiB request -> RESOURCE_EXHAUSTED ({}); server peak RSS {:.1} -> {:.1} MiB (+{:.1} MiB)",
        refused.message(),
        mib(before.hwm_kib),
        mib(after.hwm_kib),
        mib(growth)
    );

    // Slowloris: half a preface, or a preface and half a HEADERS frame, then silence.
    const HALF_PREFACE: usize = 2_000;
    const HALF_HEADERS: usize = 500;
    let baseline = server.usage()?;
    let mut loris = Vec::new();
    for _ in 0..HALF_PREFACE {
        let mut tcp = TcpStream::connect(&server.grpc).await?;
        tcp.write_all(&PREFACE[..10]).await?;
        loris.push(tcp);
    }
    for _ in 0..HALF_HEADERS {
        let mut tcp = TcpStream::connect(&server.grpc).await?;
        tcp.write_all(PREFACE).await?;
        tcp.write_all(&SETTINGS).await?;
        // HEADERS of stream 1 announcing 1,000 bytes, of which 5 are sent.
        tcp.write_all(&[
            0, 0x03, 0xe8, 1, 4, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41, 0x8a,
        ])
        .await?;
        loris.push(tcp);
    }
    let held = server.usage()?;
    let probe = save_and_read(&server.grpc, &auth, "hostile").await?;
    ensure!(
        probe < Duration::from_secs(1),
        "a save and a read took {probe:?} beside slowloris connections"
    );
    // The server must close each of them: a read ends (EOF or reset) instead of waiting.
    let closing = Instant::now();
    let mut open = 0;
    for tcp in loris.iter_mut() {
        let left = Duration::from_secs(20).saturating_sub(closing.elapsed());
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(left, tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => {
                    open += 1;
                    break;
                }
            }
        }
    }
    ensure!(
        open == 0,
        "{open} slowloris connections still open 20 s after they stalled"
    );
    let dropped_in = closing.elapsed();
    let after_loris = server.usage()?;
    ensure!(
        after_loris.fds < baseline.fds + 50,
        "the server still holds {} descriptors ({} before the slowloris)",
        after_loris.fds,
        baseline.fds
    );
    drop(loris);
    eprintln!(
        "limits/slowloris: {HALF_PREFACE} half prefaces + {HALF_HEADERS} half HEADERS held: server RSS \
         {:.1} -> {:.1} MiB, fds {} -> {}; save+read meanwhile {probe:?}; all closed by the server \
         {dropped_in:?} after the check began, fds back to {}",
        mib(baseline.rss_kib),
        mib(held.rss_kib),
        baseline.fds,
        held.fds,
        after_loris.fds
    );

    // A subscriber that never reads. 10,000 events of 4 KiB first warm the server up (caches,
    // allocator) with only a reading subscriber; then the stalled one subscribes from the
    // start and 20,000 more are written and read, 5,000 (20 MiB) at a time. What the stalled
    // stream holds is bounded (a page and the HTTP/2 windows): once the caches are warm,
    // memory must not grow with the 40 MiB of the last two quarters that it does not read
    // (a stream that buffered them would add at least that much).
    let mut reader_client = events(channel(&server.grpc)?);
    let reader = count_subscription(&mut reader_client, &auth, "hostile").await?;
    let padding = "p".repeat(4_000);
    let mut writer = events(channel(&server.grpc)?);
    let mut slowest = Duration::ZERO;
    let mut after_quarter = Vec::new();
    let mut stalled = None;
    for quarter in 0..6u64 {
        if quarter == 2 {
            stalled = Some(
                events(channel(&server.grpc)?)
                    .catch_up_subscribe_to_events(auth.request(
                        pb::CatchUpSubscribeToEventStoreRequest {
                            after_position: None,
                            query: None,
                            subscriber_name: "never_reads".to_owned(),
                            boundary: "hostile".to_owned(),
                        },
                    ))
                    .await?,
            );
        }
        for batch in 0..50u64 {
            let first = (quarter * 50 + batch) * 100;
            let events: Vec<pb::EventToSave> = (first..first + 100)
                .map(|n| pb::EventToSave {
                    event_id: uuid::Uuid::new_v4().to_string(),
                    event_type: "Padded".to_owned(),
                    data: format!(r#"{{"n":{n},"pad":"{padding}"}}"#),
                    metadata: "{}".to_owned(),
                })
                .collect();
            let sent = Instant::now();
            writer
                .save_events(auth.request(save("hostile", events)))
                .await?;
            slowest = slowest.max(sent.elapsed());
        }
        // Counted, not read back: reading 40 MiB pages would itself move the server's memory.
        let log_len = (quarter + 1) * 5_000 + 1;
        wait_until(
            "the reading subscriber to catch up",
            Duration::from_secs(60),
            || async { Ok(reader.count.load(Ordering::Acquire) >= log_len) },
        )
        .await?;
        after_quarter.push(server.usage()?);
    }
    ensure!(stalled.is_some(), "the stalled subscription is open");
    ensure!(
        !reader.disorder.load(Ordering::Relaxed),
        "the reader got events out of order"
    );
    let late_growth = after_quarter[5]
        .rss_kib
        .saturating_sub(after_quarter[3].rss_kib);
    ensure!(
        late_growth < 8 * 1024,
        "RSS grew {late_growth} KiB over 40 MiB of events a subscriber never reads"
    );
    ensure!(slowest < Duration::from_secs(2), "a save took {slowest:?}");
    let figures: Vec<String> = after_quarter
        .iter()
        .map(|u| format!("{:.1}", mib(u.rss_kib)))
        .collect();
    eprintln!(
        "limits/never-reads: 30,000 events of 4 KiB written, the last 20,000 while one subscriber \
         never reads; the other received all {} in order; slowest save {slowest:?}; server RSS \
         after each 5,000 events: {} MiB (stalled subscriber opened after the second; last 10,000: \
         +{:.1} MiB)",
        reader.count.load(Ordering::Acquire),
        figures.join(" / "),
        mib(late_growth)
    );
    Ok(())
}
