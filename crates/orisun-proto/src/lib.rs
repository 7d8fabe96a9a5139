//! Orisun's gRPC contract: code generated from `proto/eventstore.proto` and `proto/admin.proto`
//! (package `orisun`, wire-compatible with Go Orisun) and `proto/pubsub.proto` (our PubSub
//! service, with Go Orisun's 2024 message shapes), the descriptor set for reflection, the
//! conversions between wire messages and the domain model for a server ([`convert`]) and a client
//! ([`client`]), and the storage error <-> status mapping ([`status`]). [`legacy`] holds the
//! older wire APIs still served (`proto/legacy/`) and their conversions.

#[allow(clippy::all, missing_docs)]
mod generated {
    tonic::include_proto!("orisun");
}

pub mod client;
pub mod convert;
pub mod legacy;
pub mod status;

pub use generated::*;

/// The response header of `SaveEvents` that marks an idempotent retry: `true` when every event
/// of the batch was already stored by an earlier save, whose position the response then reports
/// (`AppendOutcome::already_stored`). The message `WriteResult` has no such field and Go Orisun's
/// field numbers are not ours to extend, so it travels as metadata; clients that do not know it
/// ignore it.
pub const ALREADY_STORED_HEADER: &str = "x-orisun-already-stored";

/// The encoded file descriptor set of our .proto files (today's and the legacy ones), served by
/// gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("orisun_descriptor");
