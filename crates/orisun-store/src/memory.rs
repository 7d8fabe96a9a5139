//! The in-memory model: the simplest correct implementation, used as the oracle in tests.

use crate::rules::{batch_positions, classify_retry, validate_batch, validate_expected};
use crate::{
    catch_up, AppendOutcome, EventStore, EventStream, HeadWatch, LatestByCriteria, StoreError,
};
use async_trait::async_trait;
use chrono::Utc;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, Direction, JsonObject, NewEvent, Position, Query,
    ReadRequest, StoredEvent,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// An event store that keeps everything in memory. Not durable: for tests and examples.
#[derive(Default, Clone)]
pub struct MemoryStore {
    logs: Arc<Mutex<BTreeMap<BoundaryName, Log>>>,
}

struct Log {
    events: Vec<(StoredEvent, JsonObject)>,
    ids: HashMap<Uuid, Position>,
    head: watch::Sender<Position>,
}

impl Log {
    fn new() -> Self {
        Self {
            events: Vec::new(),
            ids: HashMap::new(),
            head: watch::channel(Position::BEFORE_FIRST).0,
        }
    }

    fn head(&self) -> Position {
        self.events
            .last()
            .map_or(Position::BEFORE_FIRST, |(e, _)| e.position)
    }

    fn latest_matching(&self, criterion: &Criterion) -> Option<&StoredEvent> {
        self.events
            .iter()
            .rev()
            .find(|(_, data)| criterion.matches(data))
            .map(|(e, _)| e)
    }
}

impl MemoryStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_log<T>(
        &self,
        boundary: &BoundaryName,
        f: impl FnOnce(&mut Log) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut logs = self.logs.lock();
        let log = logs
            .get_mut(boundary)
            .ok_or_else(|| StoreError::UnknownBoundary {
                name: boundary.to_string(),
            })?;
        f(log)
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn create_boundary(&self, boundary: &BoundaryName) -> Result<(), StoreError> {
        self.logs
            .lock()
            .entry(boundary.clone())
            .or_insert_with(Log::new);
        Ok(())
    }

    async fn boundaries(&self) -> Result<Vec<BoundaryName>, StoreError> {
        Ok(self.logs.lock().keys().cloned().collect())
    }

    async fn append(
        &self,
        boundary: &BoundaryName,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        validate_batch(&events, condition.as_ref())?;
        self.with_log(boundary, |log| {
            let stored: Vec<Option<Position>> = events
                .iter()
                .map(|e| log.ids.get(&e.event_id).copied())
                .collect();
            if let Some(position) = classify_retry(&events, &stored)? {
                return Ok(AppendOutcome {
                    position,
                    already_stored: true,
                });
            }
            let head = log.head();
            if let Some(condition) = &condition {
                validate_expected(condition.after, head)?;
                let latest = log
                    .events
                    .iter()
                    .rev()
                    .find(|(_, data)| condition.query.matches(data))
                    .map(|(e, _)| e.position);
                if let Some(actual) = latest.filter(|p| *p > condition.after) {
                    return Err(StoreError::ConditionFailed {
                        expected: condition.after,
                        actual,
                    });
                }
            }
            let now = Utc::now();
            let positions = batch_positions(head.prepare + 1, events.len());
            let mut last = head;
            for (event, position) in events.into_iter().zip(positions) {
                log.ids.insert(event.event_id, position);
                let stored = StoredEvent {
                    event_id: event.event_id,
                    data: event.data_json(),
                    metadata: event.metadata_json(),
                    event_type: event.event_type,
                    position,
                    date_created: now,
                };
                log.events.push((stored, event.data));
                last = position;
            }
            log.head.send_replace(last);
            Ok(AppendOutcome {
                position: last,
                already_stored: false,
            })
        })
    }

    async fn read(
        &self,
        boundary: &BoundaryName,
        request: &ReadRequest,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        request.validate()?;
        self.with_log(boundary, |log| {
            let limit = request.limit as usize;
            let matching = |(e, data): &&(StoredEvent, JsonObject)| {
                request.admits(e.position) && request.query.matches(data)
            };
            let page = match request.direction {
                Direction::Asc => log
                    .events
                    .iter()
                    .filter(matching)
                    .take(limit)
                    .map(|(e, _)| e.clone())
                    .collect(),
                Direction::Desc => log
                    .events
                    .iter()
                    .rev()
                    .filter(matching)
                    .take(limit)
                    .map(|(e, _)| e.clone())
                    .collect(),
            };
            Ok(page)
        })
    }

    async fn latest_by_criteria(
        &self,
        boundary: &BoundaryName,
        criteria: &[Criterion],
    ) -> Result<LatestByCriteria, StoreError> {
        crate::rules::validate_criteria(criteria)?;
        self.with_log(boundary, |log| {
            Ok(LatestByCriteria::new(
                criteria
                    .iter()
                    .map(|c| log.latest_matching(c).cloned())
                    .collect(),
            ))
        })
    }

    async fn head(&self, boundary: &BoundaryName) -> Result<Position, StoreError> {
        self.with_log(boundary, |log| Ok(log.head()))
    }

    async fn count(&self, boundary: &BoundaryName) -> Result<u64, StoreError> {
        self.with_log(boundary, |log| Ok(log.events.len() as u64))
    }

    fn subscribe(&self, boundary: &BoundaryName, after: Position, query: Query) -> EventStream {
        catch_up(self.clone(), boundary.clone(), after, query)
    }
}

#[async_trait]
impl HeadWatch for MemoryStore {
    async fn watch_head(
        &self,
        boundary: &BoundaryName,
    ) -> Result<watch::Receiver<Position>, StoreError> {
        self.with_log(boundary, |log| Ok(log.head.subscribe()))
    }
}
