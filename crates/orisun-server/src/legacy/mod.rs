//! Older Orisun wire APIs served next to today's package `orisun`, on the same port, behind the
//! same auth layer and over the same log. One file per served service:
//!
//! - [`eventstore_2025`]: `eventstore.EventStore`, the stream API of 2025 (with the DCB
//!   condition and tags of late 2024 / early 2025 at their old field numbers).
//!
//! The index RPCs that Go Orisun served on `orisun.Admin` in 2026 are part of today's Admin
//! service ([`crate::admin_service`]), sharing [`crate::indexes`] with `orisun.EventStore`.

pub mod eventstore_2025;
