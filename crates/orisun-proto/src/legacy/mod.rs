//! Older Orisun wire APIs still served, each generated from its own `.proto` under
//! `proto/legacy/`, and the conversions between their messages and today's log.
//!
//! - [`eventstore_2025`]: package `eventstore` (2025: streams with expected versions, plus the
//!   DCB consistency condition and event tags of late 2024 / early 2025 at their old numbers);
//!   its conversions are in [`v2025`].
//!
//! The 2024 DCB service cannot be served beside it: both are `eventstore.EventStore`, and their
//! `SaveEventsRequest`s give field numbers 2 and 3 different meanings (see the README section
//! "Older Orisun clients").

/// Code generated from `proto/legacy/eventstore_2025.proto` (package `eventstore`).
#[allow(clippy::all, missing_docs)]
pub mod eventstore_2025 {
    tonic::include_proto!("eventstore");
}

pub mod v2025;
