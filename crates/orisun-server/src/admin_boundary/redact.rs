//! Redaction of admin-boundary secrets from events served by the event API.

use crate::admin_boundary::events::{self, AUTH_KEY_CREATED, SECRET_FIELDS};
use orisun_core::{BoundaryName, StoredEvent};
use serde_json::Value;

/// Removes secrets from an event of the admin boundary: the `password_hash` of `$UserCreated`
/// and `$UserPasswordChanged` (and of any other admin-boundary event) and the `key` of
/// `$AuthKeyCreated`. Events of other boundaries are returned unchanged.
///
/// Users are events in the admin boundary, but their password hashes (and the cluster's token
/// key) are never readable through `GetEvents`, `GetLatestByCriteria` or subscriptions: the
/// server applies this to every event it serves. Data that cannot be parsed is replaced by an
/// object holding only `eventType`, so a malformed event cannot leak a secret either.
pub fn redact(
    boundary: &BoundaryName,
    admin_boundary: &BoundaryName,
    mut event: StoredEvent,
) -> StoredEvent {
    if boundary != admin_boundary {
        return event;
    }
    let mut secret = SECRET_FIELDS.iter().any(|f| event.data.contains(f));
    if event.event_type == AUTH_KEY_CREATED {
        secret = true;
    }
    if !secret {
        return event;
    }
    let mut data = match events::parse(&event.data) {
        Some(data) => data,
        None => {
            let mut data = orisun_core::JsonObject::new();
            data.insert(
                events::EVENT_TYPE.into(),
                Value::String(event.event_type.clone()),
            );
            data
        }
    };
    data.remove(events::PASSWORD_HASH);
    if event.event_type == AUTH_KEY_CREATED {
        data.remove(events::KEY);
    }
    event.data = Value::Object(data).to_string();
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin_boundary::events::{USER_CREATED, USER_PASSWORD_CHANGED};
    use chrono::Utc;
    use orisun_core::Position;
    use serde_json::json;
    use uuid::Uuid;

    fn event(data: Value) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::now_v7(),
            event_type: data["eventType"].as_str().unwrap_or_default().to_owned(),
            data: data.to_string(),
            metadata: "{}".into(),
            position: Position::new(1, 0),
            date_created: Utc::now(),
        }
    }

    fn names() -> (BoundaryName, BoundaryName) {
        (
            BoundaryName::new("orisun_admin").expect("valid"),
            BoundaryName::new("orders").expect("valid"),
        )
    }

    #[test]
    fn removes_password_hashes_and_keys_from_admin_events() {
        let (admin, _) = names();
        for data in [
            json!({"eventType": USER_CREATED, "user_id": "u", "username": "bob",
                   "password_hash": "$argon2id$v=19$secret"}),
            json!({"eventType": USER_PASSWORD_CHANGED, "user_id": "u",
                   "password_hash": "$argon2id$v=19$secret"}),
            json!({"eventType": AUTH_KEY_CREATED, "key_id": "k", "key": "c2VjcmV0"}),
        ] {
            let out = redact(&admin, &admin, event(data.clone()));
            assert!(
                !out.data.contains("secret") && !out.data.contains("c2VjcmV0"),
                "{}",
                out.data
            );
            let parsed: Value = serde_json::from_str(&out.data).expect("json");
            assert_eq!(parsed["eventType"], data["eventType"]);
            assert!(parsed.get("password_hash").is_none() && parsed.get("key").is_none());
        }
        let out = redact(
            &admin,
            &admin,
            event(json!({"eventType": USER_CREATED, "username": "bob",
            "password_hash": "x"})),
        );
        assert_eq!(
            serde_json::from_str::<Value>(&out.data).expect("json")["username"],
            "bob"
        );
    }

    #[test]
    fn leaves_other_boundaries_and_harmless_events_alone() {
        let (admin, orders) = names();
        let e = event(json!({"eventType": "Paid", "password_hash": "mine", "key": "k"}));
        assert_eq!(redact(&orders, &admin, e.clone()), e);
        let e = event(json!({"eventType": "$BoundaryActivated", "boundary": "orders"}));
        assert_eq!(redact(&admin, &admin, e.clone()), e);
    }

    #[test]
    fn unparseable_admin_data_never_leaks() {
        let (admin, _) = names();
        let mut e = event(json!({"eventType": USER_CREATED}));
        e.data = "{\"password_hash\": broken".into();
        let out = redact(&admin, &admin, e);
        assert_eq!(out.data, json!({"eventType": USER_CREATED}).to_string());
    }
}
