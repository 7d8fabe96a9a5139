//! The `orisun.Admin` gRPC service, the boundary catalog, and the protection of the admin
//! boundary's secrets from the event API.
//!
//! # Differences from Go Orisun (deliberate)
//!
//! - Every Admin RPC needs role `ADMIN` (Go checks no role); `ChangePassword` is open to any
//!   authenticated user for their own user id; `ValidateCredentials` needs `ADMIN` (it is a
//!   password oracle).
//! - `CreateUser` accepts only the roles `ADMIN` and `OPERATIONS` (`INVALID_ARGUMENT` for any
//!   other string; Go stores free strings) and reports a duplicate username as `ALREADY_EXISTS`
//!   (Go: `INTERNAL`). Usernames cannot contain `:` (Basic credentials could not carry them).
//! - A deleted username can be created again; `ListUsers` shows live users with their real
//!   `created_at`; the first `ChangePassword` works (Go bugs 14 and 15).
//! - `CreateBoundary` provisions synchronously and answers `ACTIVE` (or `FAILED` with
//!   `last_error`) instead of `PROVISIONING`; the placement backend must be the running one.
//! - `GetUserCount` and `GetEventCount` are exact (Go reads approximate projected counters);
//!   `GetEventCount` of an unknown boundary is `FAILED_PRECONDITION`, like every other call on
//!   a boundary that does not exist.
//! - Password hashes and the token key are removed from admin-boundary events served by the
//!   event API ([`redact`]), and clients cannot append `$`-typed events to the admin boundary
//!   ([`guard_save`]), so nobody can forge users or passwords through `SaveEvents`.

mod catalog;
mod redact;
mod service;

pub use catalog::{Provisioner, StartupBoundary, StoreProvisioner};
pub use redact::redact;
pub use service::AdminService;

use crate::auth::is_reserved_event_type;
use orisun_core::{BoundaryName, NewEvent};
use tonic::Status;

/// Refuses a `SaveEvents` that would append a system event (a type starting with `$`, such as
/// `$UserCreated`) to the admin boundary: `PERMISSION_DENIED`. The server calls it before every
/// append; without it an `OPERATIONS` user could create an `ADMIN` user or reset a password.
pub fn guard_save(
    boundary: &BoundaryName,
    admin_boundary: &BoundaryName,
    events: &[NewEvent],
) -> Result<(), Status> {
    if boundary != admin_boundary {
        return Ok(());
    }
    match events
        .iter()
        .enumerate()
        .find(|(_, e)| is_reserved_event_type(&e.event_type))
    {
        Some((i, e)) => Err(Status::permission_denied(format!(
            "events[{i}].event_type: {:?} is reserved in the admin boundary {:?}; use the Admin service",
            e.event_type,
            admin_boundary.as_str()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use uuid::Uuid;

    #[test]
    fn system_events_cannot_be_saved_to_the_admin_boundary() {
        let admin = BoundaryName::new("orisun_admin").expect("valid");
        let orders = BoundaryName::new("orders").expect("valid");
        let event =
            |t: &str| NewEvent::new(Uuid::now_v7(), t, Map::new(), Map::new()).expect("valid");
        let forged = [event("Note"), event("$UserCreated")];
        let err = guard_save(&admin, &admin, &forged).expect_err("reserved");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(
            err.message().starts_with("events[1].event_type"),
            "{}",
            err.message()
        );
        assert!(guard_save(&orders, &admin, &forged).is_ok());
        assert!(guard_save(&admin, &admin, &[event("Note")]).is_ok());
    }
}
