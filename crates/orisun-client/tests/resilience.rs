//! Broken connections: the client talks to the server through a TCP proxy the test cuts. A
//! subscription resumes after its last delivered event (no gap, no duplicate), and a save whose
//! answer was lost is retried and reported at its original position, stored once.

mod support;

use futures::StreamExt;
use orisun_client::OrisunClient;
use orisun_store::core::{BoundaryName, Position, Query, StoredEvent};
use orisun_store::{EventStore, EventStream};
use std::time::Duration;
use support::{client_of, numbered, Backend, Proxy, TestServer};
use uuid::Uuid;

async fn next_event(stream: &mut EventStream) -> StoredEvent {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("an event within 20 s")
        .expect("the stream goes on")
        .expect("no error")
}

async fn all_events(client: &OrisunClient, boundary: &BoundaryName) -> Vec<StoredEvent> {
    orisun_store::conformance::read_all(&(std::sync::Arc::new(client.clone()) as _), boundary).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_resumes_after_cuts_without_gap_or_duplicate() {
    let server = TestServer::start(Backend::Sqlite, &[]).await;
    let proxy = Proxy::start(server.grpc).await;
    let direct = server.client();
    let through_proxy = client_of(&proxy.url());
    let boundary = support::unique_boundary();
    direct.create_boundary(&boundary).await.expect("create");

    let mut expected: Vec<Uuid> = Vec::new();
    for n in 0..30 {
        let wanted = numbered("Wanted", n);
        expected.push(wanted.event_id);
        direct
            .append(&boundary, vec![numbered("Other", n), wanted], None)
            .await
            .expect("append");
    }
    let query = Query::new([orisun_store::core::Criterion::new([
        orisun_store::core::Tag::new("eventType", "Wanted"),
    ])]);
    let mut stream = through_proxy.subscribe(&boundary, Position::BEFORE_FIRST, query);
    let mut seen: Vec<StoredEvent> = Vec::new();
    for _ in 0..10 {
        seen.push(next_event(&mut stream).await);
    }

    // Cut while replaying: the server has sent more than the consumer has taken.
    proxy.cut();
    for _ in 10..20 {
        seen.push(next_event(&mut stream).await);
    }

    // Cut while live, with appends in flight on the direct connection.
    let writer = {
        let direct = direct.clone();
        let boundary = boundary.clone();
        tokio::spawn(async move {
            let mut live = Vec::new();
            for n in 30..50 {
                let wanted = numbered("Wanted", n);
                live.push(wanted.event_id);
                direct
                    .append(&boundary, vec![wanted, numbered("Other", n)], None)
                    .await
                    .expect("append");
            }
            live
        })
    };
    for round in 20..50 {
        seen.push(next_event(&mut stream).await);
        if round % 10 == 5 {
            proxy.cut();
        }
    }
    expected.extend(writer.await.expect("writer"));

    // Cuts that the subscription must recover from: what follows each was appended after it,
    // so it can only arrive on a new connection.
    let before = proxy.connections();
    for round in 0..4 {
        proxy.cut();
        for n in 0..5 {
            let wanted = numbered("Wanted", 100 * round + n);
            expected.push(wanted.event_id);
            direct
                .append(&boundary, vec![wanted, numbered("Other", n)], None)
                .await
                .expect("append");
        }
        for _ in 0..5 {
            seen.push(next_event(&mut stream).await);
        }
    }
    assert!(
        proxy.connections() >= before + 4,
        "the subscription reconnected after each cut ({before} connections before, {} after)",
        proxy.connections()
    );

    let delivered: Vec<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(delivered, expected, "every event once, in order");
    assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
    let extra = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(extra.is_err(), "nothing more was pending: {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_whose_answer_was_lost_is_retried_and_stored_once() {
    let server = TestServer::start(Backend::Sqlite, &[]).await;
    let proxy = Proxy::start(server.grpc).await;
    let direct = server.client();
    let through_proxy = client_of(&proxy.url());
    let boundary = support::unique_boundary();
    direct.create_boundary(&boundary).await.expect("create");
    direct
        .append(&boundary, vec![numbered("Before", 0)], None)
        .await
        .expect("append");
    // Opens the proxied connection, so that only the save's answer is held back below.
    through_proxy.ping().await.expect("ping through the proxy");

    proxy.hold_responses();
    let batch = vec![numbered("E", 1), numbered("E", 2), numbered("E", 3)];
    let ids: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
    let save = {
        let client = through_proxy.clone();
        let boundary = boundary.clone();
        tokio::spawn(async move { client.append(&boundary, batch, None).await })
    };
    // The server stores the batch; its answer is swallowed by the proxy.
    let stored = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let head = direct.head(&boundary).await.expect("head");
            if head == Position::new(4, 3) {
                return head;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the save reached the server");
    assert!(!save.is_finished(), "the answer was held back");
    proxy.cut();

    let outcome = save.await.expect("save task").expect("the retry succeeds");
    assert_eq!(outcome.position, stored, "the original position");
    assert!(
        outcome.already_stored,
        "the retry found the batch stored by the lost attempt"
    );
    let all = all_events(&direct, &boundary).await;
    let stored_ids: Vec<Uuid> = all.iter().skip(1).map(|e| e.event_id).collect();
    assert_eq!(stored_ids, ids, "stored once");
    assert_eq!(direct.count(&boundary).await.expect("count"), 4);
    assert!(proxy.connections() >= 2, "the retry used a new connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_wait_out_a_server_that_is_not_there_yet() {
    // A proxy whose target refuses connections at first: the client retries until it answers.
    let server = TestServer::start(Backend::Sqlite, &[]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let client = client_of(&format!("http://{addr}"));
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.boundaries().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Now something listens there: a proxy to the server, on the same address.
    let relay = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let target = server.grpc;
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = relay.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let listed = call
        .await
        .expect("call task")
        .expect("answered after retries");
    assert!(listed.iter().any(|b| b.as_str() == "orisun_admin"));
}
