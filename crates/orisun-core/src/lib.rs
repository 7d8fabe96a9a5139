//! Orisun's domain model: boundaries, events, positions, queries and append conditions.
//!
//! This crate is pure: it knows nothing of async runtimes, SQL or gRPC. Every rule about what a
//! valid input is lives here, so that every backend and every API applies the same rules.

mod boundary;
mod error;
mod event;
mod position;
mod query;

pub use boundary::BoundaryName;
pub use error::Invalid;
pub use event::{
    event_tags, tag_hash, tag_text, JsonObject, NewEvent, StoredEvent, TagHash, EVENT_TYPE_KEY,
};
pub use position::Position;
pub use query::{AppendCondition, Criterion, Direction, Query, ReadRequest, Tag, MAX_READ_LIMIT};
