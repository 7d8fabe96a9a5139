//! Orisun's gRPC contract: code generated from `proto/eventstore.proto` and `proto/admin.proto`
//! (package `orisun`, wire-compatible with Go Orisun) and `proto/pubsub.proto` (our PubSub
//! service, with Go Orisun's 2024 message shapes), the descriptor set for reflection, the
//! conversions between wire messages and the domain model for a server ([`convert`]) and a client
//! ([`client`]), and the storage error <-> status mapping ([`status`]).

#[allow(clippy::all, missing_docs)]
mod generated {
    tonic::include_proto!("orisun");
}

pub mod client;
pub mod convert;
pub mod status;

pub use generated::*;

/// The encoded file descriptor set of our .proto files, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("orisun_descriptor");
