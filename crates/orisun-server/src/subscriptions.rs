//! Exclusive subscriber names: at most one live `CatchUpSubscribeToEvents` stream per
//! `(boundary, subscriber_name)` across the cluster.
//!
//! Go Orisun takes a cluster-wide lock named `<boundary>__<subscriber_name>` and gives up after
//! about a second. Here a name is a lease `subscriber:<boundary>:<name>` of the store's
//! [`Coordination`] (the database on PostgreSQL, so every node sharing it sees it), held by
//! `<node id>:<stream id>`:
//!
//! - A stream takes the lease before it starts. If another stream holds it, the new one retries
//!   for up to [`ACQUIRE_WAIT`] (so a client that reconnects right after a drop is not refused),
//!   then fails with `ALREADY_EXISTS`. Streams of the same node are first checked in memory
//!   (no database round trip for them) and are woken as soon as the name is released.
//! - While the stream is open the lease is renewed every third of its TTL
//!   (`ORISUN_SUBSCRIBER_LEASE_TTL`, 10 s by default). If a renewal finds the lease gone (or
//!   cannot reach the store before the lease expires), the stream ends with `ABORTED`: another
//!   stream may already own the name.
//! - When the stream ends or the client goes away, the lease is released at once. When a node
//!   dies, its leases expire: the name is free again at most one TTL later.
//!
//! Anonymous subscribers (empty name) are not exclusive and take no lease, unlike Go Orisun
//! where all anonymous subscribers of a boundary exclude each other (lock `<boundary>__`): a
//! subscriber that wants exclusivity names itself.

use orisun_core::{BoundaryName, Position};
use orisun_proto::convert::status;
use orisun_store::{keep_lease_with_validity, Coordination, LeaseLoss, LeaseValidity};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Status;

/// How long a subscription waits for its name to be released (Go: 3 tries of 500 ms).
pub const ACQUIRE_WAIT: Duration = Duration::from_secs(1);

/// Interval between two attempts to take a name held on another node.
const RETRY: Duration = Duration::from_millis(100);

/// Default lifetime of a subscriber lease (`ORISUN_SUBSCRIBER_LEASE_TTL`).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// The longest subscriber name accepted.
pub const MAX_NAME_LEN: usize = 255;

type Key = (BoundaryName, String);

/// The subscriber names held by this node's streams, backed by cluster-wide leases.
#[derive(Clone)]
pub struct SubscriberRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    coordination: Arc<dyn Coordination>,
    /// Identifies this node in lease holders, so operators can tell who holds a name.
    node_id: String,
    ttl: Duration,
    /// Names held by streams of this node: checked before the cluster lease, so streams of one
    /// node never contend through the database.
    active: Mutex<HashSet<Key>>,
    /// The last position each named stream of this node delivered (for the dashboard).
    positions: Mutex<HashMap<Key, Position>>,
    released: Notify,
}

impl Inner {
    fn forget(&self, key: &Key) {
        self.positions.lock().remove(key);
        self.active.lock().remove(key);
        self.released.notify_waiters();
    }
}

/// Holds a subscriber name until dropped (when the stream ends or the client goes away), then
/// releases it.
pub struct Lease {
    key: Option<Key>,
    inner: Arc<Inner>,
    held: Option<orisun_store::Lease>,
    renewal: Option<JoinHandle<()>>,
    lost: Option<oneshot::Receiver<String>>,
    /// Until when the name's lease is known to be held (`None`: anonymous, never fenced).
    validity: Option<LeaseValidity>,
}

/// Where a named stream has got to: records the position of each event it delivers.
#[derive(Clone)]
pub struct Progress {
    key: Option<Key>,
    inner: Arc<Inner>,
}

impl Progress {
    /// Records that the stream delivered the event at `position`.
    pub fn record(&self, position: Position) {
        if let Some(key) = &self.key {
            if let Some(p) = self.inner.positions.lock().get_mut(key) {
                *p = position;
            }
        }
    }
}

/// A named subscription running on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberStatus {
    /// The boundary it reads.
    pub boundary: BoundaryName,
    /// Its name.
    pub name: String,
    /// The position of the last event it delivered; `None` before the first.
    pub position: Option<Position>,
}

impl Lease {
    /// The handle that records this stream's progress (does nothing for anonymous streams).
    pub fn progress(&self) -> Progress {
        Progress {
            key: self.key.clone(),
            inner: self.inner.clone(),
        }
    }

    fn anonymous(inner: Arc<Inner>) -> Self {
        Self {
            key: None,
            inner,
            held: None,
            renewal: None,
            lost: None,
            validity: None,
        }
    }

    /// Whether the stream may deliver now: the name's lease is known to be held (always, for an
    /// anonymous stream). A node resumed after a pause past its lease finds this false at once,
    /// before its renewal has even been answered.
    pub fn is_current(&self) -> bool {
        self.validity.as_ref().is_none_or(LeaseValidity::is_valid)
    }

    /// Completes when the name was lost (its lease could not be renewed), with the reason;
    /// never completes for an anonymous subscriber or while the lease is renewed.
    pub async fn lost(&mut self) -> String {
        match self.lost.as_mut() {
            Some(rx) => match rx.await {
                Ok(reason) => reason,
                Err(_) => "the lease renewal stopped".to_owned(),
            },
            None => std::future::pending().await,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        let Some(key) = self.key.take() else { return };
        let Some(held) = self.held.take() else {
            self.inner.forget(&key);
            return;
        };
        // Release the cluster lease first, then wake this node's waiters, so that they find
        // the name free. Without a runtime (process exit) the lease simply expires.
        let inner = self.inner.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = inner.coordination.release(&held).await {
                        tracing::warn!(lease = %held.name, error = %e, "subscriber lease not released; it expires on its own");
                    }
                    inner.forget(&key);
                });
            }
            Err(_) => inner.forget(&key),
        }
    }
}

impl SubscriberRegistry {
    /// Creates the registry of a node: names are leases of `coordination` held by
    /// `<node_id>:<stream id>` for `ttl` at a time.
    pub fn new(
        coordination: Arc<dyn Coordination>,
        node_id: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                coordination,
                node_id: node_id.into(),
                ttl,
                active: Mutex::new(HashSet::new()),
                positions: Mutex::new(HashMap::new()),
                released: Notify::new(),
            }),
        }
    }

    /// Takes the name `subscriber` for `boundary`, waiting up to `wait` for a current holder to
    /// let go: `ALREADY_EXISTS` if it does not, `UNAVAILABLE` if the store cannot be reached.
    /// An empty name is never exclusive.
    pub async fn acquire(
        &self,
        boundary: &BoundaryName,
        subscriber: &str,
        wait: Duration,
    ) -> Result<Lease, Status> {
        if subscriber.is_empty() {
            return Ok(Lease::anonymous(self.inner.clone()));
        }
        let taken = || {
            Status::already_exists(format!(
                "failed to acquire lock: subscriber {subscriber:?} is already subscribed to boundary {:?}",
                boundary.as_str()
            ))
        };
        let key = (boundary.clone(), subscriber.to_owned());
        let deadline = Instant::now() + wait;
        // This node first: wait for a local holder's release, without asking the store.
        loop {
            let notified = self.inner.released.notified();
            tokio::pin!(notified);
            // Register for the wake-up before looking, so a release in between is not missed.
            notified.as_mut().enable();
            if self.inner.active.lock().insert(key.clone()) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(taken());
            }
        }
        // From here the guard owns the local name: every early return gives it back.
        let mut guard = Lease::anonymous(self.inner.clone());
        self.inner
            .positions
            .lock()
            .insert(key.clone(), Position::BEFORE_FIRST);
        guard.key = Some(key);
        let name = format!("subscriber:{}:{subscriber}", boundary.as_str());
        let holder = format!("{}:{}", self.inner.node_id, uuid::Uuid::new_v4().simple());
        let coordination = &self.inner.coordination;
        let held = loop {
            let asked = Instant::now();
            match coordination.acquire(&name, &holder, self.inner.ttl).await {
                Ok(Some(lease)) => break (lease, asked),
                Ok(None) if Instant::now() + RETRY <= deadline => {
                    tokio::time::sleep(RETRY).await;
                }
                Ok(None) => return Err(taken()),
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "cannot take a subscriber lease");
                    return Err(status(e));
                }
            }
        };
        let (lease, asked) = held;
        tracing::debug!(lease = %lease.name, holder = %lease.holder, epoch = lease.epoch, "subscriber lease taken");
        let (lost_tx, lost_rx) = oneshot::channel();
        let validity = LeaseValidity::new(asked + self.inner.ttl);
        guard.renewal = Some(tokio::spawn(renew(
            coordination.clone(),
            lease.clone(),
            self.inner.ttl,
            asked,
            validity.clone(),
            lost_tx,
        )));
        guard.held = Some(lease);
        guard.lost = Some(lost_rx);
        guard.validity = Some(validity);
        Ok(guard)
    }

    /// Returns the number of named subscriptions running on this node.
    pub fn active(&self) -> usize {
        self.inner.active.lock().len()
    }

    /// This node's id (the prefix of its lease holders).
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// The named subscriptions running on this node, by boundary and name, with the position
    /// each delivered last.
    pub fn snapshot(&self) -> Vec<SubscriberStatus> {
        let active: Vec<Key> = self.inner.active.lock().iter().cloned().collect();
        let positions = self.inner.positions.lock();
        let mut out: Vec<SubscriberStatus> = active
            .into_iter()
            .map(|key| SubscriberStatus {
                position: positions.get(&key).copied().filter(|p| !p.is_beginning()),
                boundary: key.0,
                name: key.1,
            })
            .collect();
        out.sort_by(|a, b| (&a.boundary, &a.name).cmp(&(&b.boundary, &b.name)));
        out
    }
}

/// Keeps `lease` until aborted; reports on `lost` why it could not.
async fn renew(
    coordination: Arc<dyn Coordination>,
    lease: orisun_store::Lease,
    ttl: Duration,
    acquired: Instant,
    validity: LeaseValidity,
    lost: oneshot::Sender<String>,
) {
    let loss = keep_lease_with_validity(&*coordination, &lease, ttl, acquired, &validity).await;
    let reason = match loss {
        LeaseLoss::TakenOver => "another subscriber took the name".to_owned(),
        other => other.to_string(),
    };
    tracing::warn!(lease = %lease.name, holder = %lease.holder, %reason, "subscriber lease lost");
    let _ = lost.send(reason);
}

/// Returns the message of the `ABORTED` status that ends a stream whose name was lost.
pub fn lost_message(boundary: &BoundaryName, subscriber: &str, reason: &str) -> String {
    format!(
        "subscriber {subscriber:?} lost its lease on boundary {:?} ({reason}); resubscribe from the last position received",
        boundary.as_str()
    )
}

/// Checks a subscriber name: at most [`MAX_NAME_LEN`] bytes, no whitespace or control
/// characters (names become lock and consumer names).
pub fn validate_name(name: &str) -> Result<(), Status> {
    if name.len() > MAX_NAME_LEN {
        return Err(Status::invalid_argument(format!(
            "subscriber_name: longer than {MAX_NAME_LEN} bytes"
        )));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Status::invalid_argument(format!(
            "subscriber_name: {name:?} must not contain whitespace or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use orisun_store::testsuite::FlakyCoordination;
    use orisun_store::LocalCoordination;
    use std::sync::atomic::Ordering;
    use tonic::Code;

    fn b(name: &str) -> BoundaryName {
        BoundaryName::new(name).expect("valid")
    }

    const TTL: Duration = Duration::from_secs(3);

    fn registry(c: Arc<dyn Coordination>, node: &str) -> SubscriberRegistry {
        SubscriberRegistry::new(c, node, TTL)
    }

    #[tokio::test(start_paused = true)]
    async fn one_holder_per_name_and_boundary() {
        let reg = registry(Arc::new(LocalCoordination::new()), "n1");
        let first = reg.acquire(&b("a"), "s", ACQUIRE_WAIT).await.expect("free");
        let err = reg
            .acquire(&b("a"), "s", ACQUIRE_WAIT)
            .await
            .err()
            .expect("taken");
        assert_eq!(err.code(), Code::AlreadyExists);
        assert!(err.message().starts_with("failed to acquire lock: "));
        let _other_boundary = reg.acquire(&b("b"), "s", ACQUIRE_WAIT).await.expect("free");
        let _anon1 = reg.acquire(&b("a"), "", ACQUIRE_WAIT).await.expect("anon");
        let _anon2 = reg.acquire(&b("a"), "", ACQUIRE_WAIT).await.expect("anon");
        assert_eq!(reg.active(), 2);
        drop(first);
        let _again = reg
            .acquire(&b("a"), "s", ACQUIRE_WAIT)
            .await
            .expect("released");
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_a_release() {
        let reg = registry(Arc::new(LocalCoordination::new()), "n1");
        let first = reg.acquire(&b("a"), "s", ACQUIRE_WAIT).await.expect("free");
        let waiter = {
            let reg = reg.clone();
            tokio::spawn(async move { reg.acquire(&b("a"), "s", ACQUIRE_WAIT).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(first);
        assert!(waiter.await.expect("joined"));
    }

    /// Two nodes share one coordinator: a name is exclusive across them, renewals keep it
    /// held for longer than its TTL, and a release frees it for the other node at once.
    #[tokio::test(start_paused = true)]
    async fn names_are_exclusive_across_nodes() {
        let shared: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());
        let (n1, n2) = (registry(shared.clone(), "n1"), registry(shared, "n2"));
        let mut first = n1.acquire(&b("a"), "s", ACQUIRE_WAIT).await.expect("free");
        tokio::time::sleep(TTL * 3).await;
        let err = n2
            .acquire(&b("a"), "s", ACQUIRE_WAIT)
            .await
            .err()
            .expect("still held: renewed");
        assert_eq!(err.code(), Code::AlreadyExists);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), first.lost())
                .await
                .is_err(),
            "not lost"
        );
        let waiter = {
            let n2 = n2.clone();
            tokio::spawn(async move { n2.acquire(&b("a"), "s", ACQUIRE_WAIT).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(first);
        assert!(waiter.await.expect("joined"), "released across nodes");
    }

    /// A dead node (its renewals stopped) frees the name after at most the TTL.
    #[tokio::test(start_paused = true)]
    async fn a_dead_holder_frees_the_name_after_the_ttl() {
        let shared: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());
        let (n1, n2) = (registry(shared.clone(), "n1"), registry(shared, "n2"));
        let mut first = n1.acquire(&b("a"), "s", ACQUIRE_WAIT).await.expect("free");
        // Simulate the death: no more renewals, no release.
        first.renewal.take().expect("renewing").abort();
        first.held = None;
        let died = Instant::now();
        loop {
            match n2.acquire(&b("a"), "s", ACQUIRE_WAIT).await {
                Ok(_) => break,
                Err(e) => assert_eq!(e.code(), Code::AlreadyExists),
            }
        }
        assert!(died.elapsed() <= TTL + ACQUIRE_WAIT, "{:?}", died.elapsed());
        assert!(died.elapsed() >= TTL - ACQUIRE_WAIT, "{:?}", died.elapsed());
    }

    /// Renewal survives a short outage, reports a long one before the lease expires, and
    /// reports a lease taken by someone else.
    #[tokio::test(start_paused = true)]
    async fn renewal_failures_end_the_stream() {
        let flaky = Arc::new(FlakyCoordination::new());
        let reg = registry(flaky.clone(), "n1");
        let mut lease = reg.acquire(&b("a"), "s", ACQUIRE_WAIT).await.expect("free");
        // An outage shorter than the TTL is ridden out.
        flaky.failing.store(true, Ordering::SeqCst);
        tokio::time::sleep(TTL / 2).await;
        flaky.failing.store(false, Ordering::SeqCst);
        assert!(
            tokio::time::timeout(TTL * 2, lease.lost()).await.is_err(),
            "a short outage is ridden out"
        );
        // A longer one ends the stream before the lease could have been taken over.
        flaky.failing.store(true, Ordering::SeqCst);
        let since = Instant::now();
        let reason = tokio::time::timeout(TTL * 2, lease.lost())
            .await
            .expect("lost");
        assert!(since.elapsed() <= TTL, "{:?}", since.elapsed());
        assert!(reason.contains("could not be renewed"), "{reason}");
        drop(lease);
        flaky.failing.store(false, Ordering::SeqCst);

        let mut lease = reg.acquire(&b("a"), "s", ACQUIRE_WAIT).await.expect("free");
        flaky.stolen.store(true, Ordering::SeqCst);
        let reason = tokio::time::timeout(TTL, lease.lost()).await.expect("lost");
        assert_eq!(reason, "another subscriber took the name");
    }

    #[test]
    fn names() {
        assert!(validate_name("").is_ok());
        assert!(validate_name("orders-projection.v2").is_ok());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"x".repeat(256)).is_err());
    }
}
