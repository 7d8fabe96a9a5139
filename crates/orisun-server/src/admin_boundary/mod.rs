//! The admin boundary: the boundary that holds the server's own state as events (users, the
//! token signing key, the boundary catalog), its event vocabulary ([`events`]), and the two
//! rules that keep it safe behind the event API: secrets are removed from every event served
//! ([`redact`]) and clients cannot append system events to it ([`guard_save`]).
//!
//! "Admin" names three things in this crate, kept apart by module: this boundary
//! (`admin_boundary`, `ORISUN_ADMIN_BOUNDARY`), the `orisun.Admin` gRPC service
//! ([`crate::admin_service`]), and the admin HTTP port ([`crate::admin_http`],
//! `ORISUN_ADMIN_PORT`).

pub(crate) mod events;
mod redact;

pub use events::is_reserved_event_type;
pub use redact::redact;

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
