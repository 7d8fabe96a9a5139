//! The JetStream publisher against a real nats-server: every event once and in order, stream
//! limits, resuming after the stream's tail, fail-over between nodes, and a NATS restart.

mod common;

use anyhow::{Context as _, Result};
use async_nats::jetstream;
use common::*;
use orisun_core::BoundaryName;
use orisun_nats::naming::{publisher_lease_name, stream_name};
use orisun_nats::{StreamLimits, StreamStorage};
use orisun_store::{Coordination, EventStore, LocalCoordination, MemoryStore};
use std::sync::Arc;
use std::time::Duration;

async fn memory_store(boundary: &BoundaryName) -> Result<Arc<dyn EventStore>> {
    let store = Arc::new(MemoryStore::new());
    store.create_boundary(boundary).await?;
    Ok(store)
}

#[tokio::test]
async fn publishes_every_event_once_in_order() -> Result<()> {
    init_tracing();
    let client = connect(&shared_nats_url()).await?;
    let js = jetstream::new(client.clone());
    let boundary = unique_boundary("pub_order");
    let store = memory_store(&boundary).await?;
    let coordination: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());

    // Half the events exist before the publisher starts (catch-up), half arrive while it runs.
    append_mixed(store.as_ref(), &boundary, 0, 1_200).await?;
    let node = Node::spawn(
        store.clone(),
        coordination.clone(),
        &boundary,
        js.clone(),
        test_config(),
        "node-a",
    );
    append_mixed(store.as_ref(), &boundary, 1_200, 1_000).await?;
    let total = store.count(&boundary).await?;
    assert_eq!(total, 2_200);

    wait_for_stream_len(&js, &boundary, total, Duration::from_secs(30)).await?;
    let head = store.head(&boundary).await?;
    wait_for_checkpoint(coordination.as_ref(), &boundary, head).await?;
    let published = assert_stream_matches_store(&js, store.as_ref(), &boundary).await?;
    assert_eq!(published as u64, total);

    node.stop().await?;
    delete_stream(&js, &boundary).await;
    Ok(())
}

#[tokio::test]
async fn applies_and_updates_the_stream_limits() -> Result<()> {
    init_tracing();
    let client = connect(&shared_nats_url()).await?;
    let js = jetstream::new(client.clone());
    let boundary = unique_boundary("pub_limits");
    let store = memory_store(&boundary).await?;
    append_mixed(store.as_ref(), &boundary, 0, 10).await?;
    let coordination: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());

    let mut config = test_config();
    config.limits = StreamLimits {
        max_bytes: 1_048_576,
        max_msgs: 5_000,
        max_age: Duration::from_secs(90),
        storage: StreamStorage::File,
        duplicate_window: Duration::from_secs(120),
        replicas: 1,
    };
    let node = Node::spawn(
        store.clone(),
        coordination.clone(),
        &boundary,
        js.clone(),
        config.clone(),
        "node-a",
    );
    wait_for_stream_len(&js, &boundary, 10, Duration::from_secs(20)).await?;
    node.stop().await?;

    let info = js
        .get_stream(stream_name(&boundary))
        .await?
        .cached_info()
        .clone();
    let c = &info.config;
    assert_eq!(c.name, format!("ORISUN_EVENTS___{}", boundary.as_str()));
    assert_eq!(
        c.subjects,
        vec![format!("ORISUN_EVENTS___{}.events.>", boundary.as_str())]
    );
    assert_eq!(c.storage, jetstream::stream::StorageType::File);
    assert_eq!(c.max_bytes, 1_048_576);
    assert_eq!(c.max_messages, 5_000);
    assert_eq!(c.max_age, Duration::from_secs(90));
    // Clamped to the max age, which JetStream requires.
    assert_eq!(c.duplicate_window, Duration::from_secs(90));
    assert_eq!(c.discard, jetstream::stream::DiscardPolicy::Old);

    // A publisher started with other limits updates the existing stream.
    config.limits.max_msgs = 7_000;
    config.limits.max_age = Duration::from_secs(300);
    config.limits.max_bytes = -1;
    let node = Node::spawn(
        store.clone(),
        coordination.clone(),
        &boundary,
        js.clone(),
        config,
        "node-a",
    );
    append_mixed(store.as_ref(), &boundary, 10, 5).await?;
    wait_for_stream_len(&js, &boundary, 15, Duration::from_secs(20)).await?;
    node.stop().await?;
    let c = js
        .get_stream(stream_name(&boundary))
        .await?
        .cached_info()
        .config
        .clone();
    assert_eq!(c.max_messages, 7_000);
    assert_eq!(c.max_bytes, -1);
    assert_eq!(c.max_age, Duration::from_secs(300));
    assert_eq!(c.duplicate_window, Duration::from_secs(120));
    assert_stream_matches_store(&js, store.as_ref(), &boundary).await?;

    delete_stream(&js, &boundary).await;
    Ok(())
}

/// A checkpoint that lags behind the stream (acknowledged, not yet saved when the node died)
/// does not lead to re-publication, even past the duplicate window: the publisher resumes after
/// the stream's last event.
#[tokio::test]
async fn resumes_after_the_stream_tail_when_the_checkpoint_lags() -> Result<()> {
    init_tracing();
    let client = connect(&shared_nats_url()).await?;
    let js = jetstream::new(client.clone());
    let boundary = unique_boundary("pub_tail");
    let store = memory_store(&boundary).await?;
    let coordination: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());
    let mut config = test_config();
    // A tiny window, so that only the tail logic can prevent duplicates below.
    config.limits.duplicate_window = Duration::from_millis(200);

    append_mixed(store.as_ref(), &boundary, 0, 300).await?;
    let node = Node::spawn(
        store.clone(),
        coordination.clone(),
        &boundary,
        js.clone(),
        config.clone(),
        "node-a",
    );
    wait_for_stream_len(&js, &boundary, 300, Duration::from_secs(20)).await?;
    wait_for_checkpoint(
        coordination.as_ref(),
        &boundary,
        store.head(&boundary).await?,
    )
    .await?;
    node.stop().await?;

    // Rewind the checkpoint far behind what the stream holds, and outlive the window.
    let all = all_events(store.as_ref(), &boundary).await?;
    coordination
        .save_checkpoint(&publisher_lease_name(&boundary), all[9].position, None)
        .await?;
    tokio::time::sleep(Duration::from_millis(400)).await;

    append_mixed(store.as_ref(), &boundary, 300, 50).await?;
    let node = Node::spawn(
        store.clone(),
        coordination.clone(),
        &boundary,
        js.clone(),
        config,
        "node-b",
    );
    wait_for_checkpoint(
        coordination.as_ref(),
        &boundary,
        store.head(&boundary).await?,
    )
    .await?;
    node.stop().await?;
    let published = assert_stream_matches_store(&js, store.as_ref(), &boundary).await?;
    assert_eq!(published, 350);

    delete_stream(&js, &boundary).await;
    Ok(())
}

/// Two nodes contend for one boundary while a writer keeps appending (see
/// [`failover_scenario`]), over one in-memory store and one `LocalCoordination`.
#[tokio::test]
async fn fails_over_between_nodes_without_gap_or_duplicate() -> Result<()> {
    init_tracing();
    let boundary = unique_boundary("pub_failover");
    let store = memory_store(&boundary).await?;
    let coordination: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());
    let node = (store.clone(), coordination);
    failover_scenario(&boundary, [node.clone(), node.clone(), node]).await
}

/// The NATS server is killed while events are being published and started again on the same
/// port and store directory: publishing resumes and the stream ends up complete, in order, with
/// each event once.
#[tokio::test]
async fn survives_a_nats_restart() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let mut server = NatsServer::start(dir.path()).await?;
    let boundary = unique_boundary("pub_restart");
    let store = memory_store(&boundary).await?;
    let coordination: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());
    let config = orisun_nats::NatsConfig {
        publisher: test_config(),
        ..orisun_nats::NatsConfig::new(server.url())
    };
    let client = orisun_nats::connect(&config).await?;
    let js = orisun_nats::jetstream(client, &config.publisher);

    // A backlog, so that the kill lands while the pipeline is full, then a steady writer.
    for chunk in 0..10 {
        store
            .append(&boundary, events(chunk * 1_000, 1_000), None)
            .await?;
    }
    let node = Node::spawn(
        store.clone(),
        coordination.clone(),
        &boundary,
        js.clone(),
        config.publisher.clone(),
        "node-a",
    );
    let writer = tokio::spawn({
        let store = store.clone();
        let boundary = boundary.clone();
        async move {
            for round in 0..100 {
                append_mixed(store.as_ref(), &boundary, 10_000 + round * 30, 30).await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(())
        }
    });

    // Our own observer connection (the publisher's client reconnects on its own).
    let observer = jetstream::new(connect(&server.url()).await?);
    wait_for_stream_len(&observer, &boundary, 2_000, Duration::from_secs(20)).await?;
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart().await?;

    tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .context("writer stuck")???;
    let total = store.count(&boundary).await?;
    assert_eq!(total, 13_000);
    let observer = jetstream::new(connect(&server.url()).await?);
    wait_for_stream_len(&observer, &boundary, total, Duration::from_secs(60)).await?;
    wait_for_checkpoint(
        coordination.as_ref(),
        &boundary,
        store.head(&boundary).await?,
    )
    .await?;
    node.stop().await?;
    assert_stream_matches_store(&observer, store.as_ref(), &boundary).await?;
    Ok(())
}

/// Publishes 20,000 stored events (a catch-up) and reports the rate; asserts only correctness.
#[tokio::test]
async fn catch_up_throughput() -> Result<()> {
    init_tracing();
    let client = connect(&shared_nats_url()).await?;
    let js = jetstream::new(client.clone());
    let boundary = unique_boundary("pub_rate");
    let store = memory_store(&boundary).await?;
    let coordination: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());
    for chunk in 0..20 {
        store
            .append(&boundary, events(chunk * 1_000, 1_000), None)
            .await?;
    }
    let started = std::time::Instant::now();
    let node = Node::spawn(
        store.clone(),
        coordination.clone(),
        &boundary,
        js.clone(),
        test_config(),
        "node-a",
    );
    wait_for_checkpoint(
        coordination.as_ref(),
        &boundary,
        store.head(&boundary).await?,
    )
    .await?;
    let elapsed = started.elapsed();
    node.stop().await?;
    eprintln!(
        "published 20000 events in {:.2?} ({:.0} events/s)",
        elapsed,
        20_000.0 / elapsed.as_secs_f64()
    );
    assert_stream_matches_store(&js, store.as_ref(), &boundary).await?;
    delete_stream(&js, &boundary).await;
    Ok(())
}

/// The entry point the server uses: publishes every boundary of the store, picks up a boundary
/// created later, and releases its leases on stop so that another node can take over at once.
#[tokio::test]
async fn start_publishes_every_boundary_and_discovers_new_ones() -> Result<()> {
    init_tracing();
    let first = unique_boundary("start_a");
    let second = unique_boundary("start_b");
    let later = unique_boundary("start_c");
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    for b in [&first, &second] {
        store.create_boundary(b).await?;
        append_mixed(store.as_ref(), b, 0, 100).await?;
    }
    let coordination: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());
    let excluded = unique_boundary("start_x");
    store.create_boundary(&excluded).await?;
    append_mixed(store.as_ref(), &excluded, 0, 5).await?;
    let config = orisun_nats::NatsConfig {
        publisher: test_config(),
        discovery_interval: Duration::from_millis(100),
        excluded_boundaries: vec![excluded.clone()],
        ..orisun_nats::NatsConfig::new(shared_nats_url())
    };
    let handle = orisun_nats::start(
        config,
        store.clone(),
        coordination.clone(),
        "node-a",
        std::future::pending(),
    )
    .await?;
    let js = handle.jetstream().clone();
    for b in [&first, &second] {
        wait_for_stream_len(&js, b, 100, Duration::from_secs(20)).await?;
    }
    store.create_boundary(&later).await?;
    append_mixed(store.as_ref(), &later, 0, 20).await?;
    wait_for_stream_len(&js, &later, 20, Duration::from_secs(20)).await?;
    assert!(handle.boundaries().contains(&later));
    assert!(!handle.boundaries().contains(&excluded));
    assert!(
        js.get_stream(stream_name(&excluded)).await.is_err(),
        "an excluded boundary gets no stream"
    );

    handle.stop().await;
    let lease = coordination
        .acquire(
            &publisher_lease_name(&first),
            "node-b/nats_publisher",
            Duration::from_secs(1),
        )
        .await?;
    assert!(lease.is_some(), "stop released the lease");
    for b in [&first, &second, &later] {
        assert_stream_matches_store(&js, store.as_ref(), b).await?;
        delete_stream(&js, b).await;
    }
    Ok(())
}

/// The same guarantees over the embedded SQLite store (whose reads run on other threads), with
/// the publisher following appends made while it runs.
#[tokio::test]
async fn publishes_from_the_sqlite_store() -> Result<()> {
    init_tracing();
    let client = connect(&shared_nats_url()).await?;
    let js = jetstream::new(client.clone());
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn EventStore> = {
        let config = orisun_sqlite::SqliteConfig::new(dir.path());
        Arc::new(
            tokio::task::spawn_blocking(move || orisun_sqlite::SqliteStore::open(config)).await??,
        )
    };
    let boundary = unique_boundary("pub_sqlite");
    store.create_boundary(&boundary).await?;
    let coordination: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());

    append_mixed(store.as_ref(), &boundary, 0, 1_000).await?;
    let node = Node::spawn(
        store.clone(),
        coordination.clone(),
        &boundary,
        js.clone(),
        test_config(),
        "node-a",
    );
    append_mixed(store.as_ref(), &boundary, 1_000, 1_000).await?;
    wait_for_checkpoint(
        coordination.as_ref(),
        &boundary,
        store.head(&boundary).await?,
    )
    .await?;
    node.stop().await?;
    assert_eq!(
        assert_stream_matches_store(&js, store.as_ref(), &boundary).await?,
        2_000
    );
    delete_stream(&js, &boundary).await;
    Ok(())
}
