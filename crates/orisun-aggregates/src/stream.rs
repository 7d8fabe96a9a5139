//! The two algorithms of aggregate streams, written once over a [`Log`] (the store, or a
//! caller's PostgreSQL transaction): the versioned append and the ranged stream read.
//!
//! An append reads the aggregate's last event (one tag-index seek: O(log n) whatever the
//! boundary's size), checks the expected version against it, and appends with the DCB
//! condition "no event of this aggregate after that one". If another append got in between,
//! the condition fails: an `Any` append re-reads and tries again with the next versions (so
//! concurrent `Any` appends all succeed, with distinct versions), any other expectation
//! reports the version it found. Versions are therefore unique and gap-free per aggregate.

use crate::error::AggregateError;
use crate::event::{stamp, version_of, versioned, VersionedEvent};
use crate::id::AggregateId;
use crate::version::ExpectedVersion;
use orisun_core::{
    AppendCondition, Criterion, Direction, NewEvent, Position, Query, ReadRequest, StoredEvent,
    MAX_READ_LIMIT,
};
use orisun_store::{AppendOutcome, LatestByCriteria, StoreError};
use std::ops::{Bound, RangeBounds};

/// The store operations the algorithms need, on one boundary.
pub(crate) trait Log {
    async fn latest(&self, criteria: &[Criterion]) -> Result<LatestByCriteria, StoreError>;
    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> Result<AppendOutcome, StoreError>;
    async fn read(&self, request: &ReadRequest) -> Result<Vec<StoredEvent>, StoreError>;
}

/// How many times an `Any` append is tried before it gives up ([`AggregateError::Contended`]).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 64;

/// What a successful append reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The version of the first appended event.
    pub first_version: u64,
    /// The version of the last appended event: the aggregate's version after the append.
    pub last_version: u64,
    /// The log position of the last appended event.
    pub position: Position,
    /// True when every event id was already stored by an earlier append (an idempotent retry),
    /// whose versions and position are reported.
    pub already_stored: bool,
}

/// An aggregate's stream, or the requested range of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateStream {
    /// The aggregate.
    pub aggregate: AggregateId,
    /// The aggregate's current version when it was read (its last event's version); 0 when the
    /// aggregate has no events. Unlike the last returned event's version, this is the head even
    /// when the range stops earlier.
    pub current_version: u64,
    /// The events in the requested version range, in version order.
    pub events: Vec<VersionedEvent>,
}

impl AggregateStream {
    /// True when the aggregate has at least one event, whatever the requested range held.
    pub fn exists(&self) -> bool {
        self.current_version > 0
    }
}

/// Reads the aggregate's current version and the position of its last event.
pub(crate) async fn head(
    log: &impl Log,
    aggregate: &AggregateId,
) -> Result<(u64, Position), AggregateError> {
    let latest = log.latest(&[aggregate.criterion()]).await?;
    match latest.events.into_iter().next().flatten() {
        Some(last) => Ok((version_of(aggregate, &last)?, last.position)),
        None => Ok((0, Position::BEFORE_FIRST)),
    }
}

/// Appends `events` to `aggregate` if `expected` holds; see the module documentation.
pub(crate) async fn append(
    log: &impl Log,
    aggregate: &AggregateId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    max_attempts: u32,
) -> Result<Appended, AggregateError> {
    if events.is_empty() {
        return Err(orisun_core::Invalid::new("events", "must not be empty").into());
    }
    let count = events.len() as u64;
    // Refuse reserved fields before touching the store, whatever the versions will be.
    stamp(aggregate, events.clone(), 1)?;
    let condition_on = |after| AppendCondition::new(Query::new([aggregate.criterion()]), after);
    for attempt in 1..=max_attempts.max(1) {
        let (current, last_position) = head(log, aggregate).await?;
        expected.check(aggregate, current)?;
        let stamped = stamp(aggregate, events.clone(), current + 1)?;
        match log.append(stamped, condition_on(last_position)).await {
            Ok(outcome) if outcome.already_stored => {
                return replayed(log, aggregate, outcome.position, count).await;
            }
            Ok(outcome) => {
                tracing::debug!(%aggregate, first_version = current + 1, last_version = current + count, position = %outcome.position, attempt, "appended to aggregate");
                return Ok(Appended {
                    first_version: current + 1,
                    last_version: current + count,
                    position: outcome.position,
                    already_stored: false,
                });
            }
            Err(StoreError::ConditionFailed { .. }) if expected == ExpectedVersion::Any => {
                tracing::debug!(%aggregate, attempt, "aggregate append lost a race; retrying");
            }
            Err(StoreError::ConditionFailed { .. }) => {
                let (actual, _) = head(log, aggregate).await?;
                tracing::debug!(%aggregate, %expected, actual, "aggregate append refused: wrong version");
                return Err(AggregateError::WrongVersion {
                    aggregate: aggregate.clone(),
                    expected,
                    actual,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::warn!(%aggregate, attempts = max_attempts, "aggregate append gave up under contention");
    Err(AggregateError::Contended {
        aggregate: aggregate.clone(),
        attempts: max_attempts,
    })
}

/// Reports the versions of an append that an earlier call already stored, read back from the
/// log (the `count` events of the aggregate ending at `position`).
async fn replayed(
    log: &impl Log,
    aggregate: &AggregateId,
    position: Position,
    count: u64,
) -> Result<Appended, AggregateError> {
    let limit = u32::try_from(count)
        .unwrap_or(MAX_READ_LIMIT)
        .min(MAX_READ_LIMIT);
    let request = ReadRequest::forward(Some(position), limit)
        .with_query(Query::new([aggregate.criterion()]))
        .with_direction(Direction::Desc);
    let page = log.read(&request).await?;
    let versions = page
        .iter()
        .map(|e| version_of(aggregate, e))
        .collect::<Result<Vec<_>, _>>()?;
    let last_version = versions.first().copied().unwrap_or(0);
    let first_version = versions.last().copied().unwrap_or(0);
    Ok(Appended {
        first_version,
        last_version,
        position,
        already_stored: true,
    })
}

/// Reads the events of `aggregate` whose versions lie in `range` (inclusive bounds).
pub(crate) async fn read(
    log: &impl Log,
    aggregate: &AggregateId,
    range: impl RangeBounds<u64>,
) -> Result<AggregateStream, AggregateError> {
    let from = match range.start_bound() {
        Bound::Included(v) => (*v).max(1),
        Bound::Excluded(v) => v.saturating_add(1).max(1),
        Bound::Unbounded => 1,
    };
    let to = match range.end_bound() {
        Bound::Included(v) => Some(*v),
        Bound::Excluded(v) => Some(v.saturating_sub(1)),
        Bound::Unbounded => None,
    };
    let (current, _) = head(log, aggregate).await?;
    let to = to.map_or(current, |to| to.min(current));
    let mut stream = AggregateStream {
        aggregate: aggregate.clone(),
        current_version: current,
        events: Vec::new(),
    };
    if from > to {
        return Ok(stream);
    }
    // Seek straight to the first wanted version through its tag, so that reading the end of a
    // long stream does not scan its beginning.
    let mut cursor = if from == 1 {
        None
    } else {
        let found = log.latest(&[aggregate.version_criterion(from)]).await?;
        match found.events.into_iter().next().flatten() {
            Some(event) => Some(event.position),
            None => {
                return Err(AggregateError::Malformed {
                    aggregate: aggregate.clone(),
                    position: Position::BEFORE_FIRST,
                    reason: format!("version {from} is missing below the head {current}"),
                })
            }
        }
    };
    let query = Query::new([aggregate.criterion()]);
    let mut last_seen: Option<Position> = None;
    let total = to - from + 1;
    loop {
        let wanted = total - stream.events.len() as u64;
        let limit = u32::try_from(wanted + 1)
            .unwrap_or(MAX_READ_LIMIT)
            .min(MAX_READ_LIMIT);
        let page = log
            .read(&ReadRequest::forward(cursor, limit).with_query(query.clone()))
            .await?;
        let full = page.len() as u32 == limit;
        for event in page {
            if last_seen.is_some_and(|seen| event.position <= seen) {
                continue;
            }
            last_seen = Some(event.position);
            let event = versioned(aggregate, event)?;
            if event.version > to {
                return Ok(stream);
            }
            if event.version >= from {
                stream.events.push(event);
            }
        }
        if !full || stream.events.len() as u64 == total {
            return Ok(stream);
        }
        cursor = last_seen;
    }
}
