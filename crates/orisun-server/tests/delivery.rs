//! Real-time delivery over gRPC, end to end: subscribers under concurrent writers (and long
//! library-mode transactions) receive every event once and in order, on one node and across
//! two; a slow subscriber loses nothing; wake-ups cross nodes and survive a killed LISTEN
//! connection; subscriber names are exclusive across the cluster and freed on disconnect and on
//! a node's death.

mod common;
mod nodes;

use common::{criterion, event, pos, Backend, Client, TestDb, TestServer};
use futures::StreamExt;
use nodes::{
    assert_ordered, pg_args, pg_connection, position, read_until, save, sentinel, sql, subscribe,
    subscription, Node,
};
use orisun_core::{BoundaryName, NewEvent};
use orisun_postgres::{PostgresConfig, PostgresStore};
use orisun_proto as pb;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Code;

/// Saves per gRPC writer.
const SAVES: usize = 30;
/// Transactions per library-mode writer, each held open [`LONG_TRANSACTION`].
const TRANSACTIONS: usize = 5;
const LONG_TRANSACTION: Duration = Duration::from_millis(200);

/// One of the writers' events; `writer` is a tag the filtered subscriber selects on.
fn written(writer: usize, i: usize, k: usize) -> pb::EventToSave {
    event(
        "Written",
        json!({"writer": writer.to_string(), "i": i, "k": k}),
    )
}

/// A gRPC writer: `SAVES` saves of 1 to 4 events; returns its event ids in save order.
async fn grpc_writer(
    mut client: Client,
    writer: usize,
    acked: watch::Sender<usize>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..SAVES {
        let events: Vec<_> = (0..1 + (i + writer) % 4)
            .map(|k| written(writer, i, k))
            .collect();
        ids.extend(events.iter().map(|e| e.event_id.clone()));
        save(&mut client, "orders", events).await;
        acked.send_modify(|n| *n += 1);
    }
    ids
}

/// A library-mode writer: `TRANSACTIONS` transactions, each appending 1 to 3 events and then
/// held open for [`LONG_TRANSACTION`] (holding the boundary's lock: every other writer waits).
async fn long_transaction_writer(
    store: PostgresStore,
    writer: usize,
    acked: watch::Sender<usize>,
) -> Vec<String> {
    let boundary = BoundaryName::new("orders").expect("valid");
    let mut ids = Vec::new();
    for i in 0..TRANSACTIONS {
        let wire: Vec<_> = (0..1 + (i + writer) % 3)
            .map(|k| written(writer, i, k))
            .collect();
        let events = wire
            .iter()
            .enumerate()
            .map(|(n, e)| {
                NewEvent::from_wire(n, &e.event_id, &e.event_type, &e.data, &e.metadata)
                    .expect("valid event")
            })
            .collect();
        let mut connection = store.pool().get().await.expect("connection");
        let tx = connection.transaction().await.expect("begin");
        store
            .append_in_transaction(&tx, &boundary, events, None)
            .await
            .expect("append in transaction");
        // Not a synchronisation: the point of this writer is to hold the lock this long.
        tokio::time::sleep(LONG_TRANSACTION).await;
        tx.commit().await.expect("commit");
        ids.extend(wire.into_iter().map(|e| e.event_id));
        acked.send_modify(|n| *n += 1);
    }
    ids
}

/// Eight writers save to `orders` concurrently: through the gRPC `writers` (round-robin) and,
/// with `library`, two of them in library-mode transactions held open. Three subscribers on
/// `subscribers` follow: one started before the writes, one that joins a third of the way
/// through (its catch-up races the live writes), and one filtered to writer 3's events. Each
/// receives exactly what was saved, each event once, in position order, with no gap.
async fn subscribers_under_concurrent_writers(
    writers: Vec<Client>,
    library: Option<PostgresStore>,
    mut subscribers: [Client; 3],
) {
    let mut early = subscribe(
        &mut subscribers[0],
        subscription("orders", Some(pos(-1, -1)), "early", vec![]),
    )
    .await;
    let mut filtered = subscribe(
        &mut subscribers[2],
        subscription(
            "orders",
            Some(pos(-1, -1)),
            "filtered",
            vec![criterion(&[("writer", "3")])],
        ),
    )
    .await;

    let (acked, progress) = watch::channel(0usize);
    let grpc_writers = if library.is_some() { 6 } else { 8 };
    let total_saves = grpc_writers * SAVES + (8 - grpc_writers) * TRANSACTIONS;
    let mut tasks = Vec::new();
    for w in 0..grpc_writers {
        let client = writers[w % writers.len()].clone();
        tasks.push(tokio::spawn(grpc_writer(client, w, acked.clone())));
    }
    if let Some(store) = &library {
        for w in grpc_writers..8 {
            tasks.push(tokio::spawn(long_transaction_writer(
                store.clone(),
                w,
                acked.clone(),
            )));
        }
    }
    // The late subscriber joins once a third of the saves are acknowledged, from {0,0}.
    let late = {
        let mut client = subscribers[1].clone();
        let mut progress = progress.clone();
        tokio::spawn(async move {
            progress
                .wait_for(|n| *n >= total_saves / 3)
                .await
                .expect("writers running");
            subscribe(
                &mut client,
                subscription("orders", Some(pos(0, 0)), "late", vec![]),
            )
            .await
        })
    };
    let mut by_writer = Vec::new();
    for task in tasks {
        by_writer.push(task.await.expect("writer"));
    }
    let mut late = late.await.expect("late subscriber");
    // The end marker also carries writer 3's tag, so the filtered subscriber sees it too.
    let mut end = sentinel();
    end.data = json!({"writer": "3", "end": true}).to_string();
    let end_id = end.event_id.clone();
    save(&mut writers[0].clone(), "orders", vec![end]).await;

    let mut all: HashSet<String> = by_writer.iter().flatten().cloned().collect();
    all.insert(end_id.clone());
    let within = Duration::from_secs(30);
    for (name, stream) in [("early", &mut early), ("late", &mut late)] {
        let seen = read_until(stream, &end_id, within).await;
        assert_ordered(&seen);
        let prepares: Vec<i64> = seen.iter().map(|e| position(e).1).collect();
        let expected: Vec<i64> = (0..all.len() as i64).collect();
        assert_eq!(prepares, expected, "{name}: every position once, no gap");
        let ids: HashSet<String> = seen.iter().map(|e| e.event_id.clone()).collect();
        assert_eq!(ids, all, "{name}: exactly the saved events");
    }
    let seen = read_until(&mut filtered, &end_id, within).await;
    assert_ordered(&seen);
    let mut expected = by_writer[3].clone();
    expected.push(end_id);
    let ids: Vec<String> = seen.into_iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids, expected,
        "filtered: writer 3's events, in its save order"
    );
}

/// A store for library-mode writes on the test database (a node without a gRPC server).
async fn library_store(db: &TestDb) -> PostgresStore {
    let config = PostgresConfig {
        pool_size: 4,
        application_name: "orisun_test_library".to_owned(),
        ..PostgresConfig::from_connection_string(&pg_connection(db)).expect("parses")
    };
    PostgresStore::connect(config).await.expect("library store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_subscribers_under_concurrent_writers() {
    let server = TestServer::start(Backend::Sqlite).await;
    let writers = vec![server.client().await, server.client().await];
    let subscribers = [
        server.client().await,
        server.client().await,
        server.client().await,
    ];
    subscribers_under_concurrent_writers(writers, None, subscribers).await;
    server.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_subscribers_under_concurrent_writers_and_long_transactions() {
    let db = TestDb::create().await;
    let node = Node::start(pg_args(&db, &[])).await;
    let library = library_store(&db).await;
    let writers = vec![node.client().await, node.client().await];
    let subscribers = [
        node.client().await,
        node.client().await,
        node.client().await,
    ];
    subscribers_under_concurrent_writers(writers, Some(library), subscribers).await;
    node.stop().await.expect("clean stop");
}

/// Writers on node A (and library-mode transactions from a third process-like store),
/// subscribers on node B: B learns of A's commits only through PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cross_node_subscribers_under_concurrent_writers() {
    let db = TestDb::create().await;
    let a = Node::start(pg_args(&db, &[])).await;
    let b = Node::start(pg_args(&db, &[])).await;
    let library = library_store(&db).await;
    let writers = vec![a.client().await, a.client().await];
    let subscribers = [b.client().await, b.client().await, b.client().await];
    subscribers_under_concurrent_writers(writers, Some(library), subscribers).await;
    a.stop().await.expect("clean stop");
    b.stop().await.expect("clean stop");
}

/// How many events the slow-subscriber test writes, and how.
const SLOW_TOTAL: usize = 50_000;
const SLOW_BATCH: usize = 100;
const SLOW_WRITERS: usize = 4;

/// A subscriber that takes one event per 10 ms while 50,000 events are written (fast, in
/// batches of 100 from four clients) falls tens of thousands of events behind the live feed.
/// It is neither disconnected nor lossy: the server simply reads the next page from storage
/// when the client asks for more (HTTP/2 flow control is the back-pressure).
///
/// To keep the test short, the subscriber reads at 10 ms per event until the writes are done
/// (and for at least 3 s), then drains the rest as fast as it can: it must end with all 50,000
/// exactly once, in order, and then follow new events live ("in sync").
async fn slow_subscriber_loses_nothing(mut reader: Client, writers: Vec<Client>) {
    let mut stream = subscribe(
        &mut reader,
        subscription("orders", Some(pos(-1, -1)), "slow", vec![]),
    )
    .await;
    let started = Instant::now();
    let writing = {
        let mut tasks = Vec::new();
        for w in 0..SLOW_WRITERS {
            let mut client = writers[w % writers.len()].clone();
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..SLOW_TOTAL / SLOW_BATCH / SLOW_WRITERS {
                    let batch: Vec<_> = (0..SLOW_BATCH)
                        .map(|k| event("Tick", json!({"w": w, "i": i, "k": k})))
                        .collect();
                    ids.extend(batch.iter().map(|e| e.event_id.clone()));
                    save(&mut client, "orders", batch).await;
                }
                ids
            }));
        }
        tokio::spawn(async move {
            let mut ids = HashSet::new();
            for task in tasks {
                ids.extend(task.await.expect("writer"));
            }
            ids
        })
    };
    let mut seen = Vec::new();
    while !writing.is_finished() || started.elapsed() < Duration::from_secs(3) {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .expect("not disconnected");
        seen.push(next);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let slow = seen.len();
    let written = writing.await.expect("writers");
    assert_eq!(written.len(), SLOW_TOTAL);
    let behind = SLOW_TOTAL - slow;
    assert!(
        behind > SLOW_TOTAL / 2,
        "the subscriber fell far behind ({slow} read slowly)"
    );
    // Drain fast; the end marker proves everything before it was delivered.
    let end = sentinel();
    let end_id = end.event_id.clone();
    save(&mut writers[0].clone(), "orders", vec![end]).await;
    seen.extend(read_until(&mut stream, &end_id, Duration::from_secs(60)).await);
    assert_ordered(&seen);
    let prepares: Vec<i64> = seen.iter().map(|e| position(e).1).collect();
    let expected: Vec<i64> = (0..=SLOW_TOTAL as i64).collect();
    assert!(prepares == expected, "every position once, no gap");
    let ids: HashSet<String> = seen[..SLOW_TOTAL]
        .iter()
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(ids, written, "exactly the saved events");
    // In sync: the next event arrives live.
    let live = event("Tick", json!({"live": true}));
    let live_id = live.event_id.clone();
    save(&mut writers[0].clone(), "orders", vec![live]).await;
    let next = read_until(&mut stream, &live_id, Duration::from_secs(10)).await;
    assert_eq!(
        next.len(),
        1,
        "nothing between the end marker and the live event"
    );
    eprintln!(
        "slow subscriber: read {slow} events at 10 ms each while {SLOW_TOTAL} were written \
         ({behind} behind), then caught up; total {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_slow_subscriber_loses_nothing() {
    let server = TestServer::start(Backend::Sqlite).await;
    let writers = vec![server.client().await, server.client().await];
    slow_subscriber_loses_nothing(server.client().await, writers).await;
    server.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_slow_subscriber_loses_nothing() {
    let db = TestDb::create().await;
    let node = Node::start(pg_args(&db, &[])).await;
    let writers = vec![node.client().await, node.client().await];
    slow_subscriber_loses_nothing(node.client().await, writers).await;
    node.stop().await.expect("clean stop");
}

/// The LISTEN connections of the nodes on the test database.
const LISTENERS: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE datname = current_database() AND application_name = 'orisun_listener'";

/// Saves one event through `writer` and returns how long it took to reach `stream`.
async fn delivery_time(
    writer: &mut Client,
    stream: &mut tonic::Streaming<pb::Event>,
    n: usize,
) -> Duration {
    let e = event("Ping", json!({"n": n}));
    let id = e.event_id.clone();
    let sent = Instant::now();
    save(writer, "orders", vec![e]).await;
    let seen = read_until(stream, &id, Duration::from_secs(10)).await;
    assert_eq!(seen.len(), 1, "only the event just saved");
    sent.elapsed()
}

/// Two servers on one database: an event saved through A reaches a subscriber on B promptly
/// (NOTIFY), still promptly right after every LISTEN connection was killed (the fallback poll,
/// or the reconnected listener), and promptly again once the listener is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_wake_each_other_and_survive_a_killed_listener() {
    let db = TestDb::create().await;
    let a = Node::start(pg_args(&db, &[])).await;
    let b = Node::start(pg_args(&db, &[])).await;
    let mut writer = a.client().await;
    let mut reader = b.client().await;
    let mut stream = subscribe(&mut reader, subscription("orders", None, "", vec![])).await;
    let client = sql(&db).await;

    let mut times = Vec::new();
    for n in 0..20 {
        times.push(delivery_time(&mut writer, &mut stream, n).await);
    }
    times.sort();
    eprintln!(
        "A -> B (save round trip + delivery): median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    assert!(times[times.len() - 1] < Duration::from_secs(2), "{times:?}");

    let killed: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'orisun_listener') k",
            &[],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(killed >= 1, "the nodes were listening");
    let after_kill = delivery_time(&mut writer, &mut stream, 100).await;
    eprintln!("A -> B right after the listeners were killed: {after_kill:?}");
    assert!(after_kill < Duration::from_secs(2), "{after_kill:?}");

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let listening: i64 = client
            .query_one(LISTENERS, &[])
            .await
            .expect("count")
            .get(0);
        if listening >= killed {
            break;
        }
        assert!(Instant::now() < deadline, "the listeners did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut again = Vec::new();
    for n in 200..205 {
        again.push(delivery_time(&mut writer, &mut stream, n).await);
    }
    eprintln!("A -> B after the listeners reconnected: {again:?}");
    assert!(
        again.iter().all(|t| *t < Duration::from_secs(2)),
        "{again:?}"
    );
    a.stop().await.expect("clean stop");
    b.stop().await.expect("clean stop");
}

/// Subscribes with `name` and returns the status the call fails with.
async fn refused(client: &mut Client, name: &str) -> tonic::Status {
    match client
        .catch_up_subscribe_to_events(subscription("orders", Some(pos(-1, -1)), name, vec![]))
        .await
    {
        Ok(_) => panic!("{name:?} was not refused"),
        Err(status) => status,
    }
}

/// Subscribes with `name`, retrying while it is refused, and returns how long that took.
async fn take_when_free(
    client: &mut Client,
    name: &str,
    within: Duration,
) -> (tonic::Streaming<pb::Event>, Duration) {
    let started = Instant::now();
    loop {
        match client
            .catch_up_subscribe_to_events(subscription("orders", Some(pos(-1, -1)), name, vec![]))
            .await
        {
            Ok(stream) => return (stream.into_inner(), started.elapsed()),
            Err(status) => {
                assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
                assert!(
                    started.elapsed() < within,
                    "{name:?} not free after {within:?}"
                );
            }
        }
    }
}

/// Exclusive subscriber names across two nodes with a 2 s lease: a second stream with the name
/// is refused on the same node and on the other; the name is free again promptly after the
/// holder disconnects, and within the TTL after the holder's node is killed; a stream whose
/// lease is taken from it ends with ABORTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_names_are_exclusive_across_nodes() {
    let ttl = Duration::from_secs(2);
    let db = TestDb::create().await;
    let args = pg_args(&db, &["--subscriber-lease-ttl", "2s"]);
    let a = Node::start(args.clone()).await;
    let b = Node::start(args).await;
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let client = sql(&db).await;

    let first = subscribe(
        &mut ca,
        subscription("orders", Some(pos(-1, -1)), "billing", vec![]),
    )
    .await;
    for (node, c) in [("same node", &mut ca), ("other node", &mut cb)] {
        let status = refused(c, "billing").await;
        assert_eq!(status.code(), Code::AlreadyExists, "{node}: {status:?}");
        assert_eq!(
            status.message(),
            r#"failed to acquire lock: subscriber "billing" is already subscribed to boundary "orders""#
        );
    }
    // The lease outlives its TTL while the stream is open (it is renewed).
    tokio::time::sleep(ttl + ttl / 2).await;
    assert_eq!(
        refused(&mut cb, "billing").await.code(),
        Code::AlreadyExists
    );

    // Disconnecting frees the name at once, for the other node and for the same one.
    drop(first);
    let (on_b, took) = take_when_free(&mut cb, "billing", Duration::from_secs(2)).await;
    eprintln!("name free on the other node {took:?} after the holder disconnected");
    assert!(took < Duration::from_millis(1_500), "{took:?}");
    drop(on_b);
    let (on_a, took) = take_when_free(&mut ca, "billing", Duration::from_secs(2)).await;
    assert!(took < Duration::from_millis(1_500), "{took:?}");

    // A stream whose lease is taken over ends with ABORTED at its next renewal.
    let mut audit = subscribe(
        &mut cb,
        subscription("orders", Some(pos(-1, -1)), "audit", vec![]),
    )
    .await;
    let stolen = client
        .execute(
            "UPDATE orisun.leases SET holder = 'thief', epoch = epoch + 1, \
             expires_at = now() + interval '1 minute' WHERE name = 'subscriber:orders:audit'",
            &[],
        )
        .await
        .expect("steal");
    assert_eq!(stolen, 1);
    let ended = tokio::time::timeout(ttl * 2, audit.next())
        .await
        .expect("ended within a renewal period")
        .expect("a status");
    let status = ended.expect_err("ABORTED");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(status.message().contains("audit"), "{}", status.message());

    // Killing the holder's node: nothing releases the name, which is free once the lease
    // expires, at most a TTL after the last renewal.
    let _keep = on_a;
    a.kill();
    let killed = Instant::now();
    let held: bool = client
        .query_one(
            "SELECT expires_at > now() FROM orisun.leases WHERE name = 'subscriber:orders:billing'",
            &[],
        )
        .await
        .expect("lease row")
        .get(0);
    assert!(
        held,
        "the dead node's lease is still there right after the kill"
    );
    let (_on_b, took) = take_when_free(&mut cb, "billing", ttl * 3).await;
    let since_kill = killed.elapsed();
    eprintln!("name free on the other node {since_kill:?} after the holder's node was killed (TTL {ttl:?})");
    assert!(
        since_kill <= ttl + Duration::from_millis(1_500),
        "{since_kill:?} (attempts took {took:?})"
    );
    b.stop().await.expect("clean stop");
}
