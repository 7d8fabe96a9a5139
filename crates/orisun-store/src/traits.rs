//! The `EventStore` trait: the one contract between the API layers and the backends.

use crate::{EventStream, StoreError};
use async_trait::async_trait;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, NewEvent, Position, Query, ReadRequest, StoredEvent,
};

/// What a successful append reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Position of the last event of the batch (Go Orisun's `WriteResult.log_position`).
    pub position: Position,
    /// True when every event of the batch was already stored by an earlier save, which is then
    /// reported instead of appending again (an idempotent retry).
    pub already_stored: bool,
}

/// The latest event per criterion, read from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestByCriteria {
    /// One entry per requested criterion, in request order; `None` when nothing matches.
    pub events: Vec<Option<StoredEvent>>,
    /// The highest position among the found events, `{-1,-1}` when none was found. Passing it as
    /// the expected position of a save conditioned on the same criteria detects any later match.
    pub context_position: Position,
}

impl LatestByCriteria {
    /// Builds the answer from one entry per criterion, computing the context position.
    pub fn new(events: Vec<Option<StoredEvent>>) -> Self {
        let context_position = events
            .iter()
            .flatten()
            .map(|e| e.position)
            .max()
            .unwrap_or(Position::BEFORE_FIRST);
        Self {
            events,
            context_position,
        }
    }
}

/// An append-only, totally ordered event log per boundary.
///
/// Invariants every implementation keeps (the conformance suite checks them):
/// - positions follow the rules of [`Position`]; the first event of a boundary is `{1,0}`;
/// - a batch is appended entirely or not at all;
/// - what a reader sees is always a prefix of the log: an event is never visible before every
///   event with a lower position is;
/// - a failed call changes nothing.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Creates the boundary if it does not exist. Idempotent.
    async fn create_boundary(&self, boundary: &BoundaryName) -> Result<(), StoreError>;

    /// Lists the existing boundaries, by name.
    async fn boundaries(&self) -> Result<Vec<BoundaryName>, StoreError>;

    /// Appends `events` atomically, unless `condition` fails (see [`AppendCondition`]).
    ///
    /// Errors: [`StoreError::Invalid`] for an empty batch, an event id repeated in the batch, a
    /// condition whose expected position is after the head or whose criteria are invalid;
    /// [`StoreError::ConditionFailed`]; [`StoreError::DuplicateEvents`] when only some of the
    /// event ids are already stored; [`StoreError::UnknownBoundary`].
    async fn append(
        &self,
        boundary: &BoundaryName,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<AppendOutcome, StoreError>;

    /// Reads one page of events (see [`ReadRequest`]).
    async fn read(
        &self,
        boundary: &BoundaryName,
        request: &ReadRequest,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Returns the latest event matching each criterion, all from one snapshot.
    async fn latest_by_criteria(
        &self,
        boundary: &BoundaryName,
        criteria: &[Criterion],
    ) -> Result<LatestByCriteria, StoreError>;

    /// Returns the position of the boundary's last event, `{-1,-1}` when it is empty.
    async fn head(&self, boundary: &BoundaryName) -> Result<Position, StoreError>;

    /// Returns the number of events in the boundary.
    async fn count(&self, boundary: &BoundaryName) -> Result<u64, StoreError>;

    /// Subscribes to the events of `boundary` matching `query` with a position strictly after
    /// `after`: first those already stored, then new ones as they are appended, in position
    /// order, each exactly once. `{-1,-1}` and `{0,0}` start at the beginning of the log.
    ///
    /// The stream is pull-based: a consumer that reads slowly simply reads later. Errors
    /// (including [`StoreError::UnknownBoundary`]) arrive as the stream's item, after which it
    /// ends; a stream that yielded no error never ends by itself. In-process stores implement
    /// this with [`crate::catch_up`]; a remote client with its own streaming call.
    fn subscribe(&self, boundary: &BoundaryName, after: Position, query: Query) -> EventStream;
}
