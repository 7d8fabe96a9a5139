//! The `orisun.Admin` gRPC service and redaction of admin-boundary secrets.

mod redact;

pub use redact::redact;
