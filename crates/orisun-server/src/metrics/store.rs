//! [`ObservedStore`]: the `EventStore` the API services call, measuring what passes through it
//! (saves, events, conflicts, latencies, subscriptions) and tracing each save and read as a span.

use super::{CONFLICTS, EVENTS_SAVED, READ_SECONDS, SAVES, SAVE_ERRORS, SAVE_SECONDS};
use async_trait::async_trait;
use futures::Stream;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, NewEvent, Position, Query, ReadRequest, StoredEvent,
};
use orisun_store::{AppendOutcome, EventStore, EventStream, LatestByCriteria, StoreError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::Instrument;

/// The open subscriptions and the last position each delivered, for the gauges sampled at
/// scrape time (see [`super::gauges`]).
#[derive(Debug, Default)]
pub struct SubscriptionTracker {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (BoundaryName, Position)>>,
}

impl SubscriptionTracker {
    /// Returns, per boundary with open subscriptions, how many are open and the lowest position
    /// one of them delivered (or started after).
    pub fn snapshot(&self) -> HashMap<BoundaryName, (u64, Position)> {
        let mut by_boundary: HashMap<BoundaryName, (u64, Position)> = HashMap::new();
        for (boundary, position) in self.open.lock().values() {
            by_boundary
                .entry(boundary.clone())
                .and_modify(|(n, lowest)| {
                    *n += 1;
                    *lowest = (*lowest).min(*position);
                })
                .or_insert((1, *position));
        }
        by_boundary
    }

    fn open(self: &Arc<Self>, boundary: &BoundaryName, after: Position) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(id, (boundary.clone(), after));
        id
    }

    fn delivered(&self, id: u64, position: Position) {
        if let Some(entry) = self.open.lock().get_mut(&id) {
            entry.1 = position;
        }
    }

    fn close(&self, id: u64) {
        self.open.lock().remove(&id);
    }
}

/// Wraps a store, recording metrics and spans for every call.
pub struct ObservedStore {
    inner: Arc<dyn EventStore>,
    subscriptions: Arc<SubscriptionTracker>,
}

impl ObservedStore {
    /// Observes `inner`, tracking subscriptions in `subscriptions`.
    pub fn new(inner: Arc<dyn EventStore>, subscriptions: Arc<SubscriptionTracker>) -> Self {
        Self {
            inner,
            subscriptions,
        }
    }
}

fn label(boundary: &BoundaryName) -> String {
    boundary.as_str().to_owned()
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
        let count = events.len() as u64;
        let span = tracing::info_span!(
            "save",
            boundary = boundary.as_str(),
            events = count,
            conditional = condition.is_some()
        );
        let started = Instant::now();
        let result = self
            .inner
            .append(boundary, events, condition)
            .instrument(span)
            .await;
        let name = label(boundary);
        match &result {
            Ok(outcome) => {
                metrics::counter!(SAVES, "boundary" => name.clone()).increment(1);
                if !outcome.already_stored {
                    metrics::counter!(EVENTS_SAVED, "boundary" => name.clone()).increment(count);
                }
            }
            Err(StoreError::ConditionFailed { .. }) => {
                metrics::counter!(CONFLICTS, "boundary" => name.clone()).increment(1);
            }
            Err(_) => metrics::counter!(SAVE_ERRORS, "boundary" => name.clone()).increment(1),
        }
        metrics::histogram!(SAVE_SECONDS, "boundary" => name)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn read(
        &self,
        boundary: &BoundaryName,
        request: &ReadRequest,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let span = tracing::info_span!("read", boundary = boundary.as_str());
        let started = Instant::now();
        let result = self.inner.read(boundary, request).instrument(span).await;
        metrics::histogram!(READ_SECONDS, "boundary" => label(boundary), "call" => "read")
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn latest_by_criteria(
        &self,
        boundary: &BoundaryName,
        criteria: &[Criterion],
    ) -> Result<LatestByCriteria, StoreError> {
        let span = tracing::info_span!("latest_by_criteria", boundary = boundary.as_str());
        let started = Instant::now();
        let result = self
            .inner
            .latest_by_criteria(boundary, criteria)
            .instrument(span)
            .await;
        metrics::histogram!(READ_SECONDS, "boundary" => label(boundary), "call" => "latest_by_criteria")
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn head(&self, boundary: &BoundaryName) -> Result<Position, StoreError> {
        self.inner.head(boundary).await
    }

    async fn count(&self, boundary: &BoundaryName) -> Result<u64, StoreError> {
        self.inner.count(boundary).await
    }

    fn subscribe(&self, boundary: &BoundaryName, after: Position, query: Query) -> EventStream {
        let id = self.subscriptions.open(boundary, after);
        Box::pin(Tracked {
            inner: self.inner.subscribe(boundary, after, query),
            tracker: self.subscriptions.clone(),
            id,
        })
    }
}

/// A subscription's stream that reports what it delivered and closes its entry when dropped.
struct Tracked {
    inner: EventStream,
    tracker: Arc<SubscriptionTracker>,
    id: u64,
}

impl Stream for Tracked {
    type Item = Result<StoredEvent, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(event))) = &polled {
            self.tracker.delivered(self.id, event.position);
        }
        polled
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.tracker.close(self.id);
    }
}
