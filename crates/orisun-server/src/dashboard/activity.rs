//! What this node's store sees: an [`EventStore`] decorator ([`ObservedStore`]) that counts
//! saves, appended events and conflicts, and the rates the overview shows ([`Activity`]).
//! Rates come from samples of the counters taken when they are asked for, over the last
//! [`WINDOW`], so nothing runs in the background.

use async_trait::async_trait;
use orisun_core::{AppendCondition, BoundaryName, Criterion, NewEvent, Position, ReadRequest};
use orisun_core::{Query, StoredEvent};
use orisun_store::{AppendOutcome, EventStore, EventStream, LatestByCriteria, StoreError};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The span over which rates are computed.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Counters of appends and conflicts, shared by the decorator and the dashboard.
#[derive(Clone, Default)]
pub struct Activity {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    saves: AtomicU64,
    events: AtomicU64,
    conflicts: AtomicU64,
    samples: Mutex<VecDeque<Sample>>,
}

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    saves: u64,
    events: u64,
    conflicts: u64,
}

/// Totals since start and rates over the last [`WINDOW`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Successful saves since start.
    pub saves: u64,
    /// Events appended since start.
    pub events: u64,
    /// Saves refused by their condition since start.
    pub conflicts: u64,
    /// Events appended per second.
    pub events_per_sec: f64,
    /// Successful saves per second.
    pub saves_per_sec: f64,
    /// Conflicts per second.
    pub conflicts_per_sec: f64,
}

impl Activity {
    /// Wraps `store` so that its appends are counted here.
    pub fn observe(&self, store: Arc<dyn EventStore>) -> Arc<dyn EventStore> {
        Arc::new(ObservedStore {
            inner: store,
            activity: self.clone(),
        })
    }

    fn record(&self, outcome: &Result<AppendOutcome, StoreError>, events: usize) {
        match outcome {
            Ok(_) => {
                self.inner.saves.fetch_add(1, Ordering::Relaxed);
                self.inner
                    .events
                    .fetch_add(events as u64, Ordering::Relaxed);
            }
            Err(StoreError::ConditionFailed { .. }) => {
                self.inner.conflicts.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }

    /// The totals now and the rates since the oldest sample of the last [`WINDOW`].
    pub fn rates(&self) -> Rates {
        let now = Sample {
            at: Instant::now(),
            saves: self.inner.saves.load(Ordering::Relaxed),
            events: self.inner.events.load(Ordering::Relaxed),
            conflicts: self.inner.conflicts.load(Ordering::Relaxed),
        };
        let mut samples = self.inner.samples.lock();
        while samples
            .front()
            .is_some_and(|s| now.at.duration_since(s.at) > WINDOW)
        {
            samples.pop_front();
        }
        let base = samples.front().copied().unwrap_or(now);
        samples.push_back(now);
        let secs = now.at.duration_since(base.at).as_secs_f64();
        let rate = |a: u64, b: u64| {
            if secs > 0.0 {
                a.saturating_sub(b) as f64 / secs
            } else {
                0.0
            }
        };
        Rates {
            saves: now.saves,
            events: now.events,
            conflicts: now.conflicts,
            events_per_sec: rate(now.events, base.events),
            saves_per_sec: rate(now.saves, base.saves),
            conflicts_per_sec: rate(now.conflicts, base.conflicts),
        }
    }
}

/// An [`EventStore`] that forwards every call and counts appends in an [`Activity`].
pub struct ObservedStore {
    inner: Arc<dyn EventStore>,
    activity: Activity,
}

#[async_trait]
impl EventStore for ObservedStore {
    async fn create_boundary(&self, boundary: &BoundaryName) -> Result<(), StoreError> {
        self.inner.create_boundary(boundary).await
    }

    async fn boundaries(&self) -> Result<Vec<BoundaryName>, StoreError> {
        self.inner.boundaries().await
    }

    async fn append(
        &self,
        boundary: &BoundaryName,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        let count = events.len();
        let outcome = self.inner.append(boundary, events, condition).await;
        self.activity.record(&outcome, count);
        outcome
    }

    async fn read(
        &self,
        boundary: &BoundaryName,
        request: &ReadRequest,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.read(boundary, request).await
    }

    async fn latest_by_criteria(
        &self,
        boundary: &BoundaryName,
        criteria: &[Criterion],
    ) -> Result<LatestByCriteria, StoreError> {
        self.inner.latest_by_criteria(boundary, criteria).await
    }

    async fn head(&self, boundary: &BoundaryName) -> Result<Position, StoreError> {
        self.inner.head(boundary).await
    }

    async fn count(&self, boundary: &BoundaryName) -> Result<u64, StoreError> {
        self.inner.count(boundary).await
    }

    fn subscribe(&self, boundary: &BoundaryName, after: Position, query: Query) -> EventStream {
        self.inner.subscribe(boundary, after, query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orisun_store::MemoryStore;
    use serde_json::json;

    fn event(id: &str) -> NewEvent {
        let data = json!({"eventType": "Tested", "id": id});
        NewEvent::new(
            uuid::Uuid::new_v4(),
            "Tested",
            data.as_object().expect("object").clone(),
            Default::default(),
        )
        .expect("valid")
    }

    #[tokio::test(start_paused = true)]
    async fn counts_appends_and_conflicts_and_their_rates() {
        let activity = Activity::default();
        let store = activity.observe(Arc::new(MemoryStore::new()));
        let b = BoundaryName::new("b").expect("valid");
        store.create_boundary(&b).await.expect("created");
        assert_eq!(activity.rates().events_per_sec, 0.0);
        store
            .append(&b, vec![event("1"), event("2")], None)
            .await
            .expect("saved");
        let stale = AppendCondition::new(Query::all(), Position::BEFORE_FIRST);
        store
            .append(&b, vec![event("3")], Some(stale))
            .await
            .expect_err("conflict");
        tokio::time::advance(Duration::from_secs(2)).await;
        let rates = activity.rates();
        assert_eq!((rates.saves, rates.events, rates.conflicts), (1, 2, 1));
        assert_eq!(rates.events_per_sec, 1.0);
        assert_eq!(rates.conflicts_per_sec, 0.5);
        // Past the window, old activity no longer counts towards the rate.
        tokio::time::advance(WINDOW + Duration::from_secs(1)).await;
        assert_eq!(activity.rates().events_per_sec, 0.0);
        assert_eq!(activity.rates().events, 2);
    }
}
