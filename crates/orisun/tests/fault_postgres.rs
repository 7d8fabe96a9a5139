//! PostgreSQL outages while clients save, read and subscribe through one `orisun serve` that
//! is never restarted: a private PostgreSQL cluster (the shared one is never stopped) behind a
//! TCP proxy the test controls. Three outages: the proxy drops every connection and refuses new
//! ones for a while, then `pg_ctl restart -m fast`, then `-m immediate`. During each, calls
//! fail with `UNAVAILABLE` (never `INTERNAL`, never a hang past a 10 s deadline); within 5 s
//! of PostgreSQL's return saves succeed again; the resuming subscription of `orisun-client`
//! delivers the whole log without gap or duplicate; a raw gRPC subscription shows what the
//! server's stream does during an outage.

#[allow(dead_code)]
mod faults;

use base64::Engine;
use faults::process::{ServerProcess, Storage};
use faults::proxy::Proxy;
use faults::workload::{client, orders};
use futures::StreamExt;
use orisun_client::{OrisunClient, RetryPolicy};
use orisun_postgres::testsuite::cluster::Cluster;
use orisun_store::core::{JsonObject, NewEvent, Position, Query, ReadRequest, StoredEvent};
use orisun_store::{EventStore, StoreError};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A call slower than this is a hang.
const DEADLINE: Duration = Duration::from_secs(10);
/// Service must be back this soon after PostgreSQL is.
const RESUME_WITHIN: Duration = Duration::from_secs(5);

/// What one call got.
#[derive(Debug, Clone)]
enum Answer {
    Ok,
    Unavailable,
    /// Anything else: `INTERNAL`, another code, or no answer within [`DEADLINE`].
    Bad(String),
}

/// Every call's answer with when it ended, and the batches saved.
#[derive(Default)]
struct Record {
    answers: Vec<(Instant, &'static str, Answer)>,
    acked: Vec<(Vec<Uuid>, Position)>,
    unanswered: Vec<Vec<Uuid>>,
}

fn classify<T>(result: Result<Result<T, StoreError>, tokio::time::error::Elapsed>) -> Answer {
    match result {
        Ok(Ok(_)) => Answer::Ok,
        Ok(Err(StoreError::Unavailable { .. })) => Answer::Unavailable,
        Ok(Err(e)) => Answer::Bad(format!("{e:?}")),
        Err(_) => Answer::Bad(format!("no answer within {DEADLINE:?}")),
    }
}

/// A writer: saves batches of 1 to 5 events until `stop`, recording every answer.
async fn writer(client: OrisunClient, record: Arc<Mutex<Record>>, stop: Arc<AtomicBool>) {
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let events: Vec<NewEvent> = (0..1 + n % 5)
            .map(|_| {
                NewEvent::new(
                    Uuid::new_v4(),
                    "Saved",
                    JsonObject::new(),
                    JsonObject::new(),
                )
                .expect("valid event")
            })
            .collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let result = tokio::time::timeout(DEADLINE, client.append(&orders(), events, None)).await;
        let position = match &result {
            Ok(Ok(outcome)) => Some(outcome.position),
            _ => None,
        };
        let answer = classify(result);
        let failed = !matches!(answer, Answer::Ok);
        {
            let mut record = record.lock().expect("record");
            record.answers.push((Instant::now(), "save", answer));
            match position {
                Some(at) => record.acked.push((ids, at)),
                None => record.unanswered.push(ids),
            }
        }
        if failed {
            // Not a readiness wait: the pace of a client retrying a failed call.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A reader: reads the newest events until `stop`, recording every answer.
async fn reader(client: OrisunClient, record: Arc<Mutex<Record>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let request =
            ReadRequest::forward(None, 10).with_direction(orisun_store::core::Direction::Desc);
        let answer =
            classify(tokio::time::timeout(DEADLINE, client.read(&orders(), &request)).await);
        let failed = !matches!(answer, Answer::Ok);
        record
            .lock()
            .expect("record")
            .answers
            .push((Instant::now(), "read", answer));
        tokio::time::sleep(Duration::from_millis(if failed { 50 } else { 10 })).await;
    }
}

/// The server's own stream, without the client's resumption: collects events and says how
/// each stream ended, subscribing again after the last event seen, as a client would.
async fn raw_subscriber(
    url: String,
    events: Arc<Mutex<Vec<Position>>>,
    endings: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:changeit")
    );
    let mut after = Position::BEFORE_FIRST;
    while !stop.load(Ordering::SeqCst) {
        let connect = orisun_proto::event_store_client::EventStoreClient::connect(url.clone());
        let Ok(Ok(mut grpc)) = tokio::time::timeout(DEADLINE, connect).await else {
            endings
                .lock()
                .expect("endings")
                .push("cannot connect".into());
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut request = tonic::Request::new(orisun_proto::client::subscribe_request(
            &orders(),
            after,
            &Query::all(),
            "",
        ));
        request
            .metadata_mut()
            .insert("authorization", basic.parse().expect("header value"));
        let called = tokio::time::timeout(DEADLINE, grpc.catch_up_subscribe_to_events(request));
        let mut stream = match called.await {
            Err(_) => {
                endings.lock().expect("endings").push(format!(
                    "HUNG: no answer to the subscribe call within {DEADLINE:?}"
                ));
                continue;
            }
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                endings
                    .lock()
                    .expect("endings")
                    .push(format!("refused: {:?}", status.code()));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(event)) => {
                        let position: Position = event.position.expect("position").into();
                        events.lock().expect("events").push(position);
                        after = position;
                    }
                    Some(Err(status)) => {
                        endings.lock().expect("endings").push(format!("{:?}: {}", status.code(), status.message()));
                        break;
                    }
                    None => {
                        endings.lock().expect("endings").push("ended without a status".into());
                        break;
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                }
            }
        }
    }
}

/// Waits until a save that ended after `since` succeeded; returns how long after `since`.
async fn resumed_after(record: &Arc<Mutex<Record>>, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(30);
    loop {
        let first_ok = record
            .lock()
            .expect("record")
            .answers
            .iter()
            .filter(|(at, kind, a)| *at > since && *kind == "save" && matches!(a, Answer::Ok))
            .map(|(at, _, _)| *at)
            .min();
        if let Some(at) = first_ok {
            return at - since;
        }
        assert!(
            Instant::now() < deadline,
            "no save succeeded within 30 s of PostgreSQL's return"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Failures (any kind) among answers that ended in `[from, to]`.
fn failures_between(record: &Arc<Mutex<Record>>, from: Instant, to: Instant) -> usize {
    record
        .lock()
        .expect("record")
        .answers
        .iter()
        .filter(|(at, _, a)| *at >= from && *at <= to && !matches!(a, Answer::Ok))
        .count()
}

/// Waits until at least `n` more saves succeeded.
async fn await_saves(record: &Arc<Mutex<Record>>, n: usize) {
    let target = record.lock().expect("record").acked.len() + n;
    let deadline = Instant::now() + Duration::from_secs(30);
    while record.lock().expect("record").acked.len() < target {
        assert!(Instant::now() < deadline, "{n} saves within 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Saves 7 events one by one on `other_node` and returns the median time until the
/// subscriber (on the server under test) delivered each.
async fn other_node_delivery(
    other_node: &orisun_postgres::PostgresStore,
    delivered: &Arc<Mutex<Vec<StoredEvent>>>,
) -> Duration {
    let mut took = Vec::new();
    for _ in 0..7 {
        let event = NewEvent::new(
            Uuid::new_v4(),
            "Elsewhere",
            JsonObject::new(),
            JsonObject::new(),
        )
        .expect("valid event");
        let id = event.event_id;
        let saved = Instant::now();
        other_node
            .append(&orders(), vec![event], None)
            .await
            .expect("save on another node");
        let deadline = saved + Duration::from_secs(3);
        loop {
            let seen = delivered
                .lock()
                .expect("delivered")
                .iter()
                .rev()
                .any(|e| e.event_id == id);
            if seen {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "another node's save reached the subscriber within 3 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        took.push(saved.elapsed());
    }
    took.sort();
    took[3]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarts_and_resets_fail_unavailable_and_service_resumes() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(Cluster::start_default)
            .await
            .expect("cluster"),
    );
    cluster.psql(&["CREATE DATABASE orisun"]);
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await;
    let server = ServerProcess::start(
        &Storage::Postgres {
            port: proxy.addr.port(),
            dbname: "orisun".into(),
        },
        &[],
    );

    // The client's resuming subscription, patient enough to outlast each outage.
    let patient = OrisunClient::builder(&server.url)
        .credentials("admin", "changeit")
        .retry_policy(RetryPolicy {
            max_attempts: 1_000,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        })
        .build()
        .expect("client");
    let mut subscription = patient.subscribe(&orders(), Position::BEFORE_FIRST, Query::all());
    let delivered: Arc<Mutex<Vec<StoredEvent>>> = Arc::default();
    let subscriber_error: Arc<Mutex<Option<String>>> = Arc::default();
    let subscriber = {
        let delivered = delivered.clone();
        let subscriber_error = subscriber_error.clone();
        tokio::spawn(async move {
            while let Some(item) = subscription.next().await {
                match item {
                    Ok(event) => delivered.lock().expect("delivered").push(event),
                    Err(e) => {
                        *subscriber_error.lock().expect("error") = Some(format!("{e:?}"));
                        return;
                    }
                }
            }
        })
    };
    // Another node: a store on the cluster itself, not through the proxy.
    let other_node = orisun_postgres::PostgresStore::connect(orisun_postgres::PostgresConfig {
        host: "127.0.0.1".into(),
        port: cluster.port(),
        dbname: "orisun".into(),
        pool_size: 2,
        ..orisun_postgres::PostgresConfig::default()
    })
    .await
    .expect("another node's store");
    let record = Arc::new(Mutex::new(Record::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    // Nothing else writes yet: the subscriber is woken by the other node's NOTIFY.
    let baseline = other_node_delivery(&other_node, &delivered).await;
    for _ in 0..4 {
        tasks.push(tokio::spawn(writer(
            client(&server.url),
            record.clone(),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(reader(
        client(&server.url),
        record.clone(),
        stop.clone(),
    )));
    let raw_events: Arc<Mutex<Vec<Position>>> = Arc::default();
    let raw_endings: Arc<Mutex<Vec<String>>> = Arc::default();
    let raw = tokio::spawn(raw_subscriber(
        server.url.clone(),
        raw_events.clone(),
        raw_endings.clone(),
        stop.clone(),
    ));
    await_saves(&record, 50).await;

    let mut resumes = Vec::new();
    // Outage 1: every connection to PostgreSQL reset, new ones refused for 3 s.
    let began = Instant::now();
    proxy.refuse(true);
    proxy.drop_all();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.refuse(false);
    let back = Instant::now();
    assert!(
        failures_between(&record, began, back) > 0,
        "calls failed during the reset"
    );
    eprintln!("proxy accepts again");
    resumes.push(("connection reset", resumed_after(&record, back).await));
    eprintln!("saves resumed after the reset: {resumes:?}");
    await_saves(&record, 50).await;

    // Outages 2 and 3: PostgreSQL restarted, connections carried by the proxy as before.
    for mode in ["fast", "immediate"] {
        let began = Instant::now();
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.restart(mode))
            .await
            .expect("pg_ctl restart");
        let back = Instant::now();
        eprintln!("PostgreSQL restarted ({mode})");
        assert!(
            failures_between(&record, began, back) > 0,
            "calls failed during the restart"
        );
        resumes.push((mode, resumed_after(&record, back).await));
        await_saves(&record, 50).await;
    }

    eprintln!("stopping the clients");
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("client task");
    }

    // Saves by another node reach the subscriber as fast as before the outages once the
    // LISTEN connection is back (it reconnects with a backoff of up to 5 s; meanwhile the
    // 500 ms poll delivers them): not only through the fallback poll.
    let fast = baseline.max(Duration::from_millis(25)) * 4;
    let back = Instant::now();
    let wake_ups = loop {
        let took = other_node_delivery(&other_node, &delivered).await;
        if took <= fast {
            break took;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "another node's saves still reach the subscriber after {took:?} (before the \
             outages: {baseline:?}): the LISTEN connection did not come back"
        );
    };
    let listen_back = back.elapsed();
    eprintln!("clients stopped");
    tokio::time::timeout(DEADLINE * 2, raw)
        .await
        .expect("the raw subscriber stops")
        .expect("raw subscriber");
    eprintln!(
        "raw subscriber stopped: {:?}",
        raw_endings.lock().expect("endings")
    );
    let checker = client(&server.url);
    let log = faults::ledger::read_after(&checker, None, None).await;

    // The subscription catches up with the whole log.
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered.lock().expect("delivered").len() < log.len() {
        assert!(
            subscriber_error.lock().expect("error").is_none(),
            "the subscription ended: {:?}",
            subscriber_error.lock().expect("error")
        );
        assert!(
            Instant::now() < deadline,
            "the subscription catches up within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    subscriber.abort();

    let record = record.lock().expect("record");
    let bad: Vec<_> = record
        .answers
        .iter()
        .filter_map(|(_, kind, a)| match a {
            Answer::Bad(why) => Some(format!("{kind}: {why}")),
            _ => None,
        })
        .collect();
    assert!(
        bad.is_empty(),
        "answers other than OK or UNAVAILABLE: {bad:?}"
    );
    for (outage, took) in &resumes {
        assert!(
            *took <= RESUME_WITHIN,
            "{outage}: saves resumed after {took:?}"
        );
    }

    // The log: gap-free, every acknowledged batch whole where acknowledged, unanswered
    // batches whole or absent.
    for (k, event) in log.iter().enumerate() {
        assert_eq!(event.position.prepare, k as i64, "gap-free");
    }
    let at: std::collections::HashMap<Uuid, Position> =
        log.iter().map(|e| (e.event_id, e.position)).collect();
    assert_eq!(at.len(), log.len(), "no event id twice");
    for (ids, position) in &record.acked {
        assert_eq!(
            ids.last().and_then(|id| at.get(id)),
            Some(position),
            "stored where acknowledged"
        );
        assert!(
            ids.iter().all(|id| at.contains_key(id)),
            "acknowledged batch stored"
        );
    }
    let mut unanswered_stored = 0;
    for ids in &record.unanswered {
        let found = ids.iter().filter(|id| at.contains_key(id)).count();
        assert!(found == 0 || found == ids.len(), "no partial batch");
        unanswered_stored += usize::from(found > 0);
    }

    // The subscription: the log, in order, once each.
    let delivered = delivered.lock().expect("delivered");
    let ids: Vec<Uuid> = delivered.iter().map(|e| e.event_id).collect();
    let expected: Vec<Uuid> = log.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), expected.len(), "no duplicate");
    assert!(
        ids == expected,
        "the subscription delivered the log in order, without a gap"
    );
    let raw_events = raw_events.lock().expect("raw");
    let distinct: HashSet<&Position> = raw_events.iter().collect();
    assert_eq!(
        distinct.len(),
        raw_events.len(),
        "the raw resubscriptions repeat nothing"
    );

    assert!(
        !server.reap_if_exited(),
        "orisun was not restarted and is still running"
    );
    let endings = raw_endings.lock().expect("endings").clone();
    assert!(
        endings.iter().all(|e| !e.starts_with("HUNG")),
        "the server answered every subscribe call: {endings:?}"
    );
    // How the server's own streams ended, by kind, with counts.
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for ending in &endings {
        *kinds.entry(ending.as_str()).or_default() += 1;
    }
    let unavailable = record
        .answers
        .iter()
        .filter(|(_, _, a)| matches!(a, Answer::Unavailable))
        .count();
    eprintln!(
        "RESULT PostgreSQL outages (proxy reset 3 s, pg_ctl restart -m fast, -m immediate): {} calls, {} UNAVAILABLE, 0 INTERNAL, 0 hangs; saves resumed after {}; {} acknowledged batches, {} unanswered ({} stored whole), lost 0, partial 0; {} events in the log, subscription delivered {} (0 gaps, 0 duplicates); another node's saves delivered after {} ms before the outages and {} ms after (medians of 7; fast again {} ms after the clients stopped); the server's own stream ended {} times: {:?}",
        record.answers.len(),
        unavailable,
        resumes
            .iter()
            .map(|(o, t)| format!("{o} {} ms", t.as_millis()))
            .collect::<Vec<_>>()
            .join(", "),
        record.acked.len(),
        record.unanswered.len(),
        unanswered_stored,
        log.len(),
        delivered.len(),
        baseline.as_millis(),
        wake_ups.as_millis(),
        listen_back.as_millis(),
        endings.len(),
        kinds,
    );
}
