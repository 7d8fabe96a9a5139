//! The system events of the admin boundary: their type names, field names and construction.

use orisun_core::{BoundaryName, Criterion, JsonObject, NewEvent, Tag};
use serde_json::{json, Value};
use uuid::Uuid;

/// A user was created: `{user_id, name, username, roles, password_hash, created_at}`.
pub const USER_CREATED: &str = "$UserCreated";
/// A user was deleted: `{user_id, username}`.
pub const USER_DELETED: &str = "$UserDeleted";
/// A user's password was changed: `{user_id, password_hash}`.
pub const USER_PASSWORD_CHANGED: &str = "$UserPasswordChanged";
/// The cluster's token signing key: `{key_id, key}` (first one wins).
pub const AUTH_KEY_CREATED: &str = "$AuthKeyCreated";
/// A boundary definition: `{boundary, description, placement, existedBeforeCatalog}`.
pub const BOUNDARY_CREATED: &str = "$BoundaryCreated";
/// A boundary became usable: `{boundary}`.
pub const BOUNDARY_ACTIVATED: &str = "$BoundaryActivated";
/// Provisioning a boundary failed: `{boundary, error}`.
pub const BOUNDARY_PROVISIONING_FAILED: &str = "$BoundaryProvisioningFailed";

/// The key Orisun writes event types under (see [`orisun_core::NewEvent`]).
pub const EVENT_TYPE: &str = "eventType";
/// Field: a user's id.
pub const USER_ID: &str = "user_id";
/// Field: a user's login name.
pub const USERNAME: &str = "username";
/// Field: a user's display name.
pub const NAME: &str = "name";
/// Field: a user's roles (array of strings).
pub const ROLES: &str = "roles";
/// Field: an argon2id PHC hash. Secret.
pub const PASSWORD_HASH: &str = "password_hash";
/// Field: a user's creation time (RFC 3339).
pub const CREATED_AT: &str = "created_at";
/// Field: the id of the token key.
pub const KEY_ID: &str = "key_id";
/// Field: the token key (base64). Secret.
pub const KEY: &str = "key";
/// Field: the boundary a catalog event is about.
pub const BOUNDARY: &str = "boundary";

/// The fields of admin-boundary events that must never be served by the event API.
pub const SECRET_FIELDS: [&str; 2] = [PASSWORD_HASH, KEY];

/// Returns true for event types reserved to the server in the admin boundary: every type that
/// starts with `$` (the system namespace, which includes users, keys and the boundary catalog).
pub fn is_reserved_event_type(event_type: &str) -> bool {
    event_type.starts_with('$')
}

/// Builds a system event with Go Orisun's metadata (`schema`, `createdBy`).
pub fn system_event(
    event_type: &str,
    admin_boundary: &BoundaryName,
    created_by: Option<&str>,
    data: Value,
) -> NewEvent {
    let data = match data {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    };
    let mut metadata = JsonObject::new();
    metadata.insert("schema".into(), json!(admin_boundary.as_str()));
    metadata.insert("createdBy".into(), json!(created_by.unwrap_or("SYSTEM")));
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        data: {
            let mut data = data;
            data.insert(EVENT_TYPE.into(), json!(event_type));
            data
        },
        metadata,
    }
}

/// A criterion selecting events of `event_type` whose field `key` equals `value`.
pub fn of_type_with(event_type: &str, key: &str, value: &str) -> Criterion {
    Criterion::new([Tag::new(EVENT_TYPE, event_type), Tag::new(key, value)])
}

/// A criterion selecting every event of `event_type`.
pub fn of_type(event_type: &str) -> Criterion {
    Criterion::new([Tag::new(EVENT_TYPE, event_type)])
}

/// Returns the text of string field `key` of `data`.
pub fn text<'a>(data: &'a JsonObject, key: &str) -> Option<&'a str> {
    data.get(key).and_then(Value::as_str)
}

/// Parses event data text into an object (`None` when it is not one).
pub fn parse(data: &str) -> Option<JsonObject> {
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_types_are_reserved() {
        assert!(is_reserved_event_type(USER_CREATED));
        assert!(is_reserved_event_type("$Anything"));
        assert!(!is_reserved_event_type("UserCreated"));
    }

    #[test]
    fn system_events_carry_type_and_metadata() {
        let b = BoundaryName::new("orisun_admin").expect("valid");
        let e = system_event(USER_DELETED, &b, None, json!({"user_id": "u1"}));
        assert_eq!(e.data[EVENT_TYPE], json!(USER_DELETED));
        assert_eq!(e.metadata["createdBy"], json!("SYSTEM"));
        assert_eq!(e.metadata["schema"], json!("orisun_admin"));
        assert_eq!(text(&e.data, USER_ID), Some("u1"));
    }
}
