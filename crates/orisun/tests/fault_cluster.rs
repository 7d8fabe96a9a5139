//! Three real `orisun serve` processes on one PostgreSQL database, publishing to NATS
//! JetStream, under process faults: SIGKILL of the node holding the publisher lease (and a named
//! subscriber), SIGSTOP of the next publisher for longer than its lease, then SIGCONT; and
//! session tokens across nodes.
//!
//! PostgreSQL comes from `ORISUN_TEST_PG` (a fresh database per run), NATS from
//! `ORISUN_TEST_NATS_URL` (default `nats://127.0.0.1:4222`); the boundary, and so the JetStream
//! stream `ORISUN_EVENTS___<boundary>`, is unique to the run and deleted at the end.

mod fault_support;

use anyhow::{bail, ensure, Context as _, Result};
use fault_support::*;
use orisun_postgres::testsuite::TestDb;
use orisun_proto as pb;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Both lease TTLs (publisher and subscriber names) in the test: short, so fail-over is quick.
const TTL: Duration = Duration::from_secs(2);

/// How long the paused node stays stopped: three lease lifetimes.
const PAUSE: Duration = Duration::from_secs(6);

/// Concurrent writers.
const WRITERS: usize = 4;

type Positions = Arc<Mutex<Vec<(i64, i64)>>>;

/// A running `CatchUpSubscribeToEvents` stream: what it delivered, and how it ended.
struct Subscription {
    delivered: Positions,
    ended: JoinHandle<tonic::Code>,
}

impl Subscription {
    fn delivered(&self) -> Vec<(i64, i64)> {
        self.delivered.lock().expect("lock").clone()
    }

    fn last(&self) -> Option<(i64, i64)> {
        self.delivered.lock().expect("lock").last().copied()
    }
}

/// Opens a named subscription strictly after `after` on `addr`; the refusal's status if any.
async fn subscribe(
    addr: &str,
    boundary: &str,
    name: &str,
    after: Option<(i64, i64)>,
) -> Result<Result<Subscription, tonic::Status>> {
    let mut client = events(channel(addr)?);
    let request = pb::CatchUpSubscribeToEventStoreRequest {
        after_position: after.map(|(c, p)| pb::Position {
            commit_position: c,
            prepare_position: p,
        }),
        query: None,
        subscriber_name: name.to_owned(),
        boundary: boundary.to_owned(),
    };
    let mut stream = match client
        .catch_up_subscribe_to_events(Auth::admin().request(request))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => return Ok(Err(status)),
    };
    let delivered: Positions = Arc::default();
    let kept = delivered.clone();
    let ended = tokio::spawn(async move {
        loop {
            match stream.message().await {
                Ok(Some(event)) => kept
                    .lock()
                    .expect("lock")
                    .push(pos(event.position.as_ref())),
                Ok(None) => return tonic::Code::Ok,
                Err(status) => return status.code(),
            }
        }
    });
    Ok(Ok(Subscription { delivered, ended }))
}

/// Subscribes under `name` on `addr`, retrying refusals (`ALREADY_EXISTS` while another holder's
/// lease lives) every 100 ms for up to `limit`; returns the stream and the number of refusals.
async fn subscribe_when_free(
    addr: &str,
    boundary: &str,
    name: &str,
    after: Option<(i64, i64)>,
    limit: Duration,
) -> Result<(Subscription, usize)> {
    let start = Instant::now();
    let mut refusals = 0;
    loop {
        match subscribe(addr, boundary, name, after).await? {
            Ok(sub) => return Ok((sub, refusals)),
            Err(status) if status.code() == tonic::Code::AlreadyExists => refusals += 1,
            Err(status) => bail!("subscription {name} on {addr}: {status}"),
        }
        if start.elapsed() > limit {
            bail!("subscriber name {name} still taken after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The live holder and epoch of lease `name`, read from `orisun.leases`.
async fn lease(pg: &tokio_postgres::Client, name: &str) -> Result<Option<(String, i64)>> {
    let row = pg
        .query_opt(
            "SELECT holder, epoch FROM orisun.leases WHERE name = $1 AND expires_at > now()",
            &[&name],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Polls lease `name` every 20 ms until its live holder satisfies `wanted`; returns how long
/// that took and the holder with its epoch.
async fn wait_for_holder(
    pg: &tokio_postgres::Client,
    name: &str,
    limit: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Result<(Duration, String, i64)> {
    let start = Instant::now();
    loop {
        if let Some((holder, epoch)) = lease(pg, name).await? {
            if wanted(&holder) {
                return Ok((start.elapsed(), holder, epoch));
            }
        }
        if start.elapsed() > limit {
            bail!("no new holder of {name} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The saved checkpoint `name`, read from `orisun.checkpoints`.
async fn checkpoint(pg: &tokio_postgres::Client, name: &str) -> Result<Option<(i64, i64)>> {
    let row = pg
        .query_opt(
            "SELECT commit_pos, prepare_pos FROM orisun.checkpoints WHERE name = $1",
            &[&name],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Index of the node whose id starts `holder`.
fn holder_node(nodes: &[Node], holder: &str) -> Result<usize> {
    nodes
        .iter()
        .position(|n| {
            holder.starts_with(&format!("{}/", n.node_id))
                || holder.starts_with(&format!("{}:", n.node_id))
        })
        .with_context(|| format!("no node holds {holder}"))
}

/// Number of events of `boundary` (Admin GetEventCount through `addr`).
async fn event_count(addr: &str, boundary: &str) -> Result<u64> {
    let count = admin(channel(addr)?)
        .get_event_count(Auth::admin().request(pb::GetEventCountRequest {
            boundary: boundary.to_owned(),
        }))
        .await?
        .into_inner()
        .count;
    Ok(u64::try_from(count)?)
}

/// Messages in the JetStream stream `stream` (0 while it does not exist).
async fn stream_len(js: &async_nats::jetstream::Context, stream: &str) -> u64 {
    match js.get_stream(stream).await {
        Ok(s) => s.cached_info().state.messages,
        Err(_) => 0,
    }
}

/// One message of the stream as read back: stream sequence, message id, event position.
struct Published {
    sequence: u64,
    msg_id: String,
    position: (i64, i64),
}

/// Reads every message of the stream, in stream order.
async fn read_stream(js: &async_nats::jetstream::Context, stream: &str) -> Result<Vec<Published>> {
    use futures::StreamExt as _;
    let stream = js.get_stream(stream).await?;
    let state = stream.cached_info().state.clone();
    if state.messages == 0 {
        return Ok(Vec::new());
    }
    let read: Vec<Result<Published>> =
        futures::stream::iter(state.first_sequence..=state.last_sequence)
            .map(|seq| {
                let stream = &stream;
                async move {
                    let m = stream.get_raw_message(seq).await?;
                    let body: serde_json::Value = serde_json::from_slice(&m.payload)?;
                    let position = (
                        body["position"]["commit_position"]
                            .as_i64()
                            .context("commit")?,
                        body["position"]["prepare_position"]
                            .as_i64()
                            .context("prepare")?,
                    );
                    Ok(Published {
                        sequence: m.sequence,
                        msg_id: m
                            .headers
                            .get("Nats-Msg-Id")
                            .map(|v| v.as_str().to_owned())
                            .unwrap_or_default(),
                        position,
                    })
                }
            })
            .buffered(64)
            .collect()
            .await;
    read.into_iter().collect()
}

/// Writers saving batches of 1 to 5 events through `targets` (the first that answers within
/// 3 s; a batch that timed out is retried with the same event ids, on the next node).
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Result<Vec<String>>>>,
}

impl Writers {
    fn start(boundary: &str, targets: Vec<String>, token: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..WRITERS)
            .map(|w| {
                let (stop, targets, boundary) =
                    (stop.clone(), targets.clone(), boundary.to_owned());
                let auth = Auth::Token(token.to_owned());
                tokio::spawn(async move {
                    let clients = targets
                        .iter()
                        .map(|a| Ok(events(channel(a)?)))
                        .collect::<Result<Vec<_>>>()?;
                    let mut acknowledged = Vec::new();
                    let mut attempt = w;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let size = 1 + (n % 5);
                        let batch = new_events("Written", w, n, size);
                        n += size;
                        loop {
                            let mut client = clients[attempt % clients.len()].clone();
                            let call =
                                client.save_events(auth.request(save(&boundary, batch.clone())));
                            match tokio::time::timeout(Duration::from_secs(3), call).await {
                                Ok(Ok(_)) => break,
                                Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {}
                                Ok(Err(status)) => bail!("save refused: {status}"),
                                Err(_) => {}
                            }
                            attempt += 1;
                        }
                        acknowledged.extend(batch.into_iter().map(|e| e.event_id));
                    }
                    Ok(acknowledged)
                })
            })
            .collect();
        Self { stop, tasks }
    }

    async fn finish(self) -> Result<Vec<String>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await??);
        }
        Ok(all)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_fail_over_without_gap_duplicate_or_stale_checkpoint() -> Result<()> {
    let db = TestDb::create().await;
    let nats_url = std::env::var("ORISUN_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let js = async_nats::jetstream::new(
        tokio::time::timeout(Duration::from_secs(10), async_nats::connect(&nats_url))
            .await
            .context("NATS connect timed out")??,
    );
    let boundary = format!(
        "fault_cluster_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let stream = format!("ORISUN_EVENTS___{boundary}");
    let result = scenario(&db, &nats_url, &js, &boundary, &stream).await;
    let _ = js.delete_stream(&stream).await;
    result
}

async fn scenario(
    db: &TestDb,
    nats_url: &str,
    js: &async_nats::jetstream::Context,
    boundary: &str,
    stream: &str,
) -> Result<()> {
    let started = Instant::now();
    let pg = db.client().await;
    let config = db.config();
    let mut env = vec![
        ("ORISUN_BACKEND", "postgres".to_owned()),
        ("ORISUN_PG_HOST", config.host.clone()),
        ("ORISUN_PG_PORT", config.port.to_string()),
        ("ORISUN_PG_USER", config.user.clone()),
        ("ORISUN_PG_NAME", db.name.clone()),
        ("ORISUN_PG_WRITE_MAX_OPEN_CONNS", "4".to_owned()),
        ("ORISUN_PG_READ_MAX_OPEN_CONNS", "8".to_owned()),
        (
            "ORISUN_BOUNDARIES",
            format!(r#"[{{"name":"{boundary}","description":"fault cluster"}}]"#),
        ),
        ("ORISUN_NATS_URL", nats_url.to_owned()),
        (
            "ORISUN_NATS_PUBLISHER_LEASE_TTL",
            format!("{}s", TTL.as_secs()),
        ),
        ("ORISUN_SUBSCRIBER_LEASE_TTL", format!("{}s", TTL.as_secs())),
    ];
    if let Some(password) = &config.password {
        env.push(("ORISUN_PG_PASSWORD", password.clone()));
    }
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Node::start(&env)?);
    }
    let publisher_lease = format!("nats_publisher:{boundary}");

    // Which node publishes?
    let (_, first_holder, first_epoch) =
        wait_for_holder(&pg, &publisher_lease, Duration::from_secs(15), |_| true).await?;
    let p = holder_node(&nodes, &first_holder)?;
    let others: Vec<usize> = (0..3).filter(|&i| i != p).collect();
    eprintln!("publisher: node {p} ({first_holder}, epoch {first_epoch})");

    // Users and their tokens: carol's is issued by the publisher (to be killed), dave's by
    // another node; both must be honoured everywhere.
    let admin_addr = nodes[others[0]].grpc.clone();
    let mut admin_client = admin(channel(&admin_addr)?);
    let mut user_ids = Vec::new();
    for name in ["carol", "dave"] {
        let created = admin_client
            .create_user(Auth::admin().request(pb::CreateUserRequest {
                name: name.to_owned(),
                username: name.to_owned(),
                password: format!("{name}-secret-1"),
                roles: vec!["ADMIN".to_owned()],
            }))
            .await?
            .into_inner();
        user_ids.push(created.user.context("created user")?.user_id);
    }
    let carol = Auth::Basic(basic("carol", "carol-secret-1"));
    let dave = Auth::Basic(basic("dave", "dave-secret-1"));
    for node in &nodes {
        for user in [&carol, &dave] {
            wait_until(
                "a new user known to every node",
                Duration::from_secs(10),
                || async { Ok(ping_code(&node.grpc, user).await? == tonic::Code::Ok) },
            )
            .await?;
        }
    }
    let carol_token = Auth::Token(token(&nodes[p].grpc, &carol).await?);
    let dave_token = Auth::Token(token(&nodes[others[1]].grpc, &dave).await?);
    for node in &nodes {
        for t in [&carol_token, &dave_token] {
            ensure!(
                ping_code(&node.grpc, t).await? == tonic::Code::Ok,
                "a token issued by one node is refused by {}",
                node.grpc
            );
        }
    }

    // A named subscriber on the publisher's node, writers through the two others (with a token
    // issued by a third: tokens cross nodes all along).
    let (main_sub_p, _) =
        subscribe_when_free(&nodes[p].grpc, boundary, "main", None, TTL * 3).await?;
    let writer_token = token(&nodes[p].grpc, &Auth::admin()).await?;
    let targets: Vec<String> = others.iter().map(|&i| nodes[i].grpc.clone()).collect();
    let writers = Writers::start(boundary, targets, &writer_token);
    wait_until(
        "300 events published and delivered",
        Duration::from_secs(30),
        || async { Ok(stream_len(js, stream).await >= 300 && main_sub_p.delivered().len() >= 300) },
    )
    .await?;

    // SIGKILL the publisher, which also holds the subscriber name "main".
    let killed_at = Instant::now();
    nodes[p].kill9()?;
    let count_at_kill = event_count(&nodes[others[0]].grpc, boundary).await?;
    let (new_holder_after, second_holder, second_epoch) =
        wait_for_holder(&pg, &publisher_lease, Duration::from_secs(15), |h| {
            h != first_holder
        })
        .await?;
    ensure!(
        second_epoch > first_epoch,
        "the lease epoch grows on hand-over"
    );
    let q = holder_node(&nodes, &second_holder)?;
    let r = others
        .iter()
        .copied()
        .find(|&i| i != q)
        .context("third node")?;
    wait_until("publishing resumed", Duration::from_secs(15), || async {
        Ok(stream_len(js, stream).await > count_at_kill)
    })
    .await?;
    let publishing_resumed_after = killed_at.elapsed();
    ensure!(
        publishing_resumed_after < Duration::from_secs(15),
        "fail-over took {publishing_resumed_after:?}"
    );
    eprintln!(
        "kill -9: new publisher (node {q}, epoch {second_epoch}) after {new_holder_after:?}, \
         publishing past the {count_at_kill} events of the kill after {publishing_resumed_after:?}"
    );

    // The subscriber resumes on another node once the dead node's name lease has expired.
    let main_p_code = tokio::time::timeout(Duration::from_secs(10), main_sub_p.ended)
        .await
        .context("the killed node's stream ends")??;
    let main_part_p = main_sub_p.delivered.lock().expect("lock").clone();
    let (main_sub_r, main_refusals) = subscribe_when_free(
        &nodes[r].grpc,
        boundary,
        "main",
        main_part_p.last().copied(),
        TTL * 5,
    )
    .await?;
    let main_resubscribed_after = killed_at.elapsed();
    eprintln!(
        "named subscriber: {} events on the killed node (stream ended {main_p_code:?}), \
         resubscribed on node {r} after {main_resubscribed_after:?} ({main_refusals} refusals)",
        main_part_p.len()
    );

    // A second name on the node about to be paused, and a watch on the publisher checkpoint.
    let (paused_sub_q, _) =
        subscribe_when_free(&nodes[q].grpc, boundary, "paused", None, TTL * 3).await?;
    wait_until(
        "the paused node's subscriber delivers",
        Duration::from_secs(10),
        || async { Ok(!paused_sub_q.delivered().is_empty()) },
    )
    .await?;
    let checkpoints: Positions = Arc::default();
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watch = {
        let (checkpoints, stop, name) = (
            checkpoints.clone(),
            watch_stop.clone(),
            publisher_lease.clone(),
        );
        let pg = db.client().await;
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(c) = checkpoint(&pg, &name).await? {
                    checkpoints.lock().expect("lock").push(c);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(())
        })
    };

    // SIGSTOP the new publisher for three lease lifetimes.
    let paused_at = Instant::now();
    nodes[q].signal("STOP")?;
    // Nothing stored from here on can have been read by the stopped node before it stopped.
    let stored_at_stop = event_count(&nodes[r].grpc, boundary).await?;
    let (third_publisher_after, third_holder, third_epoch) =
        wait_for_holder(&pg, &publisher_lease, Duration::from_secs(15), |h| {
            h != second_holder
        })
        .await?;
    ensure!(
        holder_node(&nodes, &third_holder)? == r,
        "the third node publishes"
    );
    ensure!(
        third_epoch > second_epoch,
        "the lease epoch grows on hand-over"
    );
    let paused_last = paused_sub_q.last();
    let (paused_sub_r, paused_refusals) =
        subscribe_when_free(&nodes[r].grpc, boundary, "paused", paused_last, TTL * 5).await?;
    let paused_name_free_after = paused_at.elapsed();
    if let Some(rest) = PAUSE.checked_sub(paused_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let delivered_before_resume = paused_sub_q.delivered().len();
    let checkpoint_before_resume = checkpoint(&pg, &publisher_lease).await?;
    let logs_before_resume = nodes[q].log_len();
    nodes[q].signal("CONT")?;
    let resumed_at = Instant::now();
    eprintln!(
        "SIGSTOP: publisher moved to node {r} (epoch {third_epoch}) after {third_publisher_after:?}, \
         name \"paused\" taken on node {r} after {paused_name_free_after:?} ({paused_refusals} refusals); \
         resumed after {:?}",
        paused_at.elapsed()
    );

    // Once resumed, the paused node finds both leases lost: its stream ends with ABORTED and
    // its publisher stops without moving the checkpoint or publishing anything twice.
    let paused_code = tokio::time::timeout(Duration::from_secs(10), paused_sub_q.ended)
        .await
        .context("the resumed node's named stream ends")??;
    ensure!(
        paused_code == tonic::Code::Aborted,
        "the resumed node's named stream ended with {paused_code:?}, not ABORTED"
    );
    let paused_part = paused_sub_q.delivered.lock().expect("lock").clone();
    let delivered_after_resume = paused_part.len() - delivered_before_resume;
    // What the stopped node had already handed to its connection before it stopped may still
    // reach the client; what it reads after it resumes must not: every event delivered after
    // the resume was stored before the stop.
    let read_after_resume: Vec<(i64, i64)> = paused_part[delivered_before_resume..]
        .iter()
        .copied()
        .filter(|&(_, prepare)| prepare >= stored_at_stop as i64)
        .collect();
    ensure!(
        read_after_resume.is_empty(),
        "the resumed node delivered {} events stored while it was stopped, under a name another \
         node had taken: {:?}",
        read_after_resume.len(),
        read_after_resume.first()
    );
    wait_until(
        "the resumed node to stop publishing",
        Duration::from_secs(10),
        || async { Ok(nodes[q].logged_since(logs_before_resume, "NATS publisher lease")) },
    )
    .await?;
    let lost_lease_after = resumed_at.elapsed();
    ensure!(
        matches!(lease(&pg, &publisher_lease).await?, Some((h, e)) if h == third_holder && e == third_epoch),
        "the resumed node took the publisher lease back"
    );
    eprintln!(
        "SIGCONT: named stream ABORTED with {delivered_after_resume} events delivered after resume \
         (all stored before the stop, {stored_at_stop} events); \
         publisher stood down after {lost_lease_after:?}; checkpoint before resume {checkpoint_before_resume:?}"
    );

    // Keep writing a little (through the resumed node too), then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acknowledged = writers.finish().await?;

    // The log: every acknowledged event exactly once.
    let log = read_all(&nodes[r].grpc, &Auth::admin(), boundary).await?;
    let log_positions: Vec<(i64, i64)> = log.iter().map(|e| pos(e.position.as_ref())).collect();
    let ids: HashSet<&str> = log.iter().map(|e| e.event_id.as_str()).collect();
    ensure!(ids.len() == log.len(), "an event id is stored twice");
    let lost = acknowledged
        .iter()
        .filter(|id| !ids.contains(id.as_str()))
        .count();
    ensure!(
        lost == 0,
        "{lost} acknowledged events are missing from the log"
    );
    ensure!(
        log_positions.windows(2).all(|w| w[0] < w[1]),
        "the log is not in position order"
    );
    let last = *log_positions.last().context("events")?;

    // JetStream: every event of the log once, in order, at consecutive sequences.
    wait_until(
        "JetStream to hold the whole log",
        Duration::from_secs(30),
        || async { Ok(stream_len(js, stream).await >= log.len() as u64) },
    )
    .await?;
    let published = read_stream(js, stream).await?;
    let published_positions: Vec<(i64, i64)> = published.iter().map(|m| m.position).collect();
    let msg_ids: HashSet<&str> = published.iter().map(|m| m.msg_id.as_str()).collect();
    ensure!(
        msg_ids.len() == published.len(),
        "a message id is published twice"
    );
    ensure!(
        published
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence + 1),
        "stream sequences have a hole"
    );
    for (m, (c, p)) in published.iter().zip(&log_positions) {
        ensure!(
            m.msg_id == format!("{boundary}:{c}:{p}"),
            "message id {}",
            m.msg_id
        );
    }
    ensure!(
        published_positions == log_positions,
        "JetStream holds {} events, the log {}",
        published_positions.len(),
        log_positions.len()
    );

    // The publisher checkpoint reaches the head and never went backwards.
    wait_until(
        "the checkpoint to reach the head",
        Duration::from_secs(10),
        || async { Ok(checkpoint(&pg, &publisher_lease).await? == Some(last)) },
    )
    .await?;
    watch_stop.store(true, Ordering::Relaxed);
    watch.await??;
    let checkpoints = checkpoints.lock().expect("lock").clone();
    ensure!(
        checkpoints.windows(2).all(|w| w[0] <= w[1]),
        "the publisher checkpoint went backwards: {checkpoints:?}"
    );

    // The named subscribers: each name's streams together delivered the log once, in order.
    wait_until(
        "the subscribers to reach the head",
        Duration::from_secs(30),
        || async { Ok(main_sub_r.last() == Some(last) && paused_sub_r.last() == Some(last)) },
    )
    .await?;
    let main_all: Vec<(i64, i64)> = main_part_p
        .iter()
        .copied()
        .chain(main_sub_r.delivered())
        .collect();
    ensure!(
        main_all == log_positions,
        "subscriber \"main\" has a gap or a duplicate across nodes"
    );
    let paused_all: Vec<(i64, i64)> = paused_part
        .iter()
        .copied()
        .filter(|p| Some(*p) <= paused_last)
        .chain(paused_sub_r.delivered())
        .collect();
    ensure!(
        paused_all == log_positions,
        "subscriber \"paused\" has a gap or a duplicate across nodes"
    );

    // Tokens: carol's (issued by the killed node) still works on the survivors, until she
    // changes her password through one of them; dave's ends when he is deleted through another.
    for &i in &[q, r] {
        ensure!(
            ping_code(&nodes[i].grpc, &carol_token).await? == tonic::Code::Ok,
            "carol's token before the change"
        );
    }
    admin(channel(&nodes[r].grpc)?)
        .change_password(carol.request(pb::ChangePasswordRequest {
            user_id: user_ids[0].clone(),
            current_password: "carol-secret-1".to_owned(),
            new_password: "carol-secret-2".to_owned(),
        }))
        .await?;
    admin(channel(&nodes[q].grpc)?)
        .delete_user(Auth::admin().request(pb::DeleteUserRequest {
            user_id: user_ids[1].clone(),
        }))
        .await?;
    let mut revoked_within = Duration::ZERO;
    for &i in &[q, r] {
        for t in [&carol_token, &dave_token] {
            let took = wait_until(
                "a revoked token to be refused",
                Duration::from_secs(5),
                || async {
                    Ok(ping_code(&nodes[i].grpc, t).await? == tonic::Code::Unauthenticated)
                },
            )
            .await?;
            revoked_within = revoked_within.max(took);
        }
    }

    eprintln!(
        "fault_cluster: {} events acknowledged ({} in the log), {} published once each in order, \
         0 lost; checkpoint samples {} (never backwards); \"main\" {} + {} events, \"paused\" {} + {} \
         events, no gap or duplicate; tokens revoked on both survivors within {revoked_within:?}; \
         total {:?}",
        acknowledged.len(),
        log.len(),
        published.len(),
        checkpoints.len(),
        main_part_p.len(),
        main_sub_r.delivered().len(),
        paused_part.len(),
        paused_sub_r.delivered().len(),
        started.elapsed()
    );
    Ok(())
}
