//! Replica-set workers on the in-memory store with process-local membership and coordination
//! (what the embedded backend uses): two workers in one process share the partitions, every
//! event is handled, and when one stops the other takes over all of them; a worker whose
//! heartbeats lapse drops its partitions.

use async_trait::async_trait;
use orisun_core::{BoundaryName, JsonObject, NewEvent};
use orisun_projections::workers::{replica_set_status, Worker, WorkerConfig, WorkerStatus};
use orisun_projections::{Batch, Handler, HandlerError, Processor, ProjectionConfig};
use orisun_store::{
    ClaimRecord, Coordination, EventStore, LocalCoordination, LocalMembership, Membership,
    MemoryStore, SetView, StoreError,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Default)]
struct Seen(Mutex<BTreeSet<Uuid>>);

struct Collect(Arc<Seen>);

#[async_trait]
impl Handler for Collect {
    async fn handle(&self, batch: &Batch) -> Result<(), HandlerError> {
        let mut seen = self.0 .0.lock().expect("not poisoned");
        seen.extend(batch.events.iter().map(|e| e.event_id));
        Ok(())
    }
}

async fn append(store: &MemoryStore, boundary: &BoundaryName, count: usize) -> Vec<Uuid> {
    let events: Vec<NewEvent> = (0..count)
        .map(|i| {
            let data = serde_json::json!({"aggregateId": format!("acc-{}", i % 37)});
            NewEvent::new(
                Uuid::new_v4(),
                "Touched",
                data.as_object().cloned().expect("object"),
                JsonObject::new(),
            )
            .expect("valid")
        })
        .collect();
    let ids = events.iter().map(|e| e.event_id).collect();
    store.append(boundary, events, None).await.expect("append");
    ids
}

async fn until(
    status: &mut watch::Receiver<WorkerStatus>,
    what: &str,
    check: impl Fn(&WorkerStatus) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| check(s)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("worker alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_then_one_takes_over() {
    let store = Arc::new(MemoryStore::new());
    let boundary = BoundaryName::new("local").expect("valid");
    store.create_boundary(&boundary).await.expect("boundary");
    let mut expected: BTreeSet<Uuid> = append(&store, &boundary, 500).await.into_iter().collect();
    let coordination = Arc::new(LocalCoordination::new());
    let membership = Arc::new(LocalMembership::with_coordination(coordination.clone()));
    let seen = Arc::new(Seen::default());
    let worker = |name: &str| {
        let config = WorkerConfig::new("local-set", 6)
            .expect("valid")
            .ttl(Duration::from_millis(600))
            .worker(name);
        let projection = ProjectionConfig::new("collect", boundary.clone()).expect("valid");
        let (store, coordination, seen) = (store.clone(), coordination.clone(), seen.clone());
        Worker::new(membership.clone(), config).projection(projection, move |c| {
            let coordination: Arc<dyn Coordination> = coordination.clone();
            Processor::new(store.clone(), coordination, c, Collect(seen.clone()))
        })
    };
    let (one, two) = (worker("one"), worker("two"));
    let (mut s1, mut s2) = (one.status(), two.status());
    let (c1, c2) = (CancellationToken::new(), CancellationToken::new());
    let t1 = tokio::spawn(one.run(c1.clone()));
    let t2 = tokio::spawn(two.run(c2.clone()));
    until(&mut s1, "a share for one", |s| s.held.len() == 3).await;
    until(&mut s2, "a share for two", |s| s.held.len() == 3).await;
    let shares: BTreeSet<u32> = s1
        .borrow()
        .held
        .iter()
        .chain(&s2.borrow().held)
        .copied()
        .collect();
    assert_eq!(shares, (0..6).collect(), "every partition exactly once");

    expected.extend(append(&store, &boundary, 300).await);
    tokio::time::timeout(Duration::from_secs(10), async {
        while *seen.0.lock().expect("not poisoned") != expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("every event handled");

    c1.cancel();
    t1.await.expect("joined").expect("clean stop");
    until(&mut s2, "two to take everything", |s| s.held.len() == 6).await;
    expected.extend(append(&store, &boundary, 300).await);
    tokio::time::timeout(Duration::from_secs(10), async {
        while *seen.0.lock().expect("not poisoned") != expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("events after the hand-over handled");
    let status = replica_set_status(&*membership, Some(&*store), "local-set")
        .await
        .expect("status")
        .expect("exists");
    assert_eq!(status.members.len(), 1);
    assert!(
        status.generation >= 3,
        "two joins and a leave: {}",
        status.generation
    );
    assert_eq!(status.claims.len(), 6);
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let status = replica_set_status(&*membership, Some(&*store), "local-set")
                .await
                .expect("status")
                .expect("exists");
            if status
                .claims
                .iter()
                .all(|c| c.holder.as_deref() == Some("two") && c.lag == Some(0))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("two holds every partition, caught up");
    c2.cancel();
    t2.await.expect("joined").expect("clean stop");
}

/// Membership whose heartbeats fail on command.
struct Flaky {
    inner: LocalMembership,
    failing: AtomicBool,
}

#[async_trait]
impl Membership for Flaky {
    async fn heartbeat(
        &self,
        set: &str,
        worker: &str,
        partitions: u32,
        held: &[u32],
        ttl: Duration,
    ) -> Result<SetView, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("membership store down"));
        }
        self.inner
            .heartbeat(set, worker, partitions, held, ttl)
            .await
    }

    async fn leave(&self, set: &str, worker: &str) -> Result<(), StoreError> {
        self.inner.leave(set, worker).await
    }

    async fn view(&self, set: &str) -> Result<Option<SetView>, StoreError> {
        self.inner.view(set).await
    }

    async fn sets(&self) -> Result<Vec<String>, StoreError> {
        self.inner.sets().await
    }

    async fn claims(&self, prefix: &str) -> Result<Vec<ClaimRecord>, StoreError> {
        self.inner.claims(prefix).await
    }
}

/// A worker whose heartbeats stop getting through drops every partition once its membership
/// lapses (fail-safe), and takes them again when heartbeats succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_heartbeats_lapse_drops_its_partitions() {
    let store = Arc::new(MemoryStore::new());
    let boundary = BoundaryName::new("lapse").expect("valid");
    store.create_boundary(&boundary).await.expect("boundary");
    append(&store, &boundary, 50).await;
    let coordination = Arc::new(LocalCoordination::new());
    let membership = Arc::new(Flaky {
        inner: LocalMembership::with_coordination(coordination.clone()),
        failing: AtomicBool::new(false),
    });
    let ttl = Duration::from_millis(600);
    let config = WorkerConfig::new("lapse-set", 4)
        .expect("valid")
        .ttl(ttl)
        .worker("solo");
    let projection = ProjectionConfig::new("collect", boundary.clone()).expect("valid");
    let seen = Arc::new(Seen::default());
    let (s, c) = (store.clone(), coordination.clone());
    let worker = Worker::new(membership.clone(), config).projection(projection, move |cfg| {
        let coordination: Arc<dyn Coordination> = c.clone();
        Processor::new(s.clone(), coordination, cfg, Collect(seen.clone()))
    });
    let mut status = worker.status();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(worker.run(cancel.clone()));
    until(&mut status, "all four partitions", |s| s.held.len() == 4).await;

    membership.failing.store(true, Ordering::SeqCst);
    let failed_at = tokio::time::Instant::now();
    until(&mut status, "every partition dropped", |s| {
        s.held.is_empty() && s.partitions_lost == 4
    })
    .await;
    assert!(
        failed_at.elapsed() >= ttl / 3,
        "dropped before the membership could have lapsed"
    );
    // The processors stopped and gave their leases back.
    tokio::time::timeout(Duration::from_secs(5), async {
        while membership
            .claims("projection@lapse-set:")
            .await
            .expect("claims")
            .iter()
            .any(|c| c.live)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("leases released");

    membership.failing.store(false, Ordering::SeqCst);
    until(&mut status, "the partitions back", |s| s.held.len() == 4).await;
    cancel.cancel();
    task.await.expect("joined").expect("clean stop");
}
