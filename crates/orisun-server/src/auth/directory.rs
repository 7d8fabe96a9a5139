//! The in-memory projection of the admin boundary's user and key events.

use super::token::TokenKey;
use super::Role;
use crate::admin_boundary::events::{
    self, AUTH_KEY_CREATED, CREATED_AT, KEY, NAME, PASSWORD_HASH, ROLES, USERNAME, USER_CREATED,
    USER_DELETED, USER_ID, USER_PASSWORD_CHANGED,
};
use chrono::{DateTime, Utc};
use orisun_core::{Position, StoredEvent};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// A live user as the projection knows it, secret included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user's id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Login name.
    pub username: String,
    /// Known roles (unknown role strings from older data are dropped).
    pub roles: Vec<Role>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// The `prepare` position of the event that set the current password: changes with every
    /// password change, and tokens carry it.
    pub epoch: i64,
}

/// Users and the token key, folded from the admin boundary in log order.
#[derive(Debug, Default)]
pub struct Directory {
    users: HashMap<String, UserRecord>,
    by_username: HashMap<String, String>,
    deleted: HashSet<String>,
    key: Option<TokenKey>,
    cursor: Option<Position>,
}

impl Directory {
    /// The position of the last event applied (`{-1,-1}` before any).
    pub fn cursor(&self) -> Position {
        self.cursor.unwrap_or(Position::BEFORE_FIRST)
    }

    /// The token key, once one has been seen.
    pub fn key(&self) -> Option<&TokenKey> {
        self.key.as_ref()
    }

    /// The live user with this id.
    pub fn user(&self, user_id: &str) -> Option<&UserRecord> {
        self.users.get(user_id)
    }

    /// True when this id belonged to a user that was deleted.
    pub fn was_deleted(&self, user_id: &str) -> bool {
        self.deleted.contains(user_id)
    }

    /// The live user with this username.
    pub fn by_username(&self, username: &str) -> Option<&UserRecord> {
        self.by_username
            .get(username)
            .and_then(|id| self.users.get(id))
    }

    /// The live users, oldest first.
    pub fn users(&self) -> Vec<UserRecord> {
        let mut users: Vec<UserRecord> = self.users.values().cloned().collect();
        users.sort_by(|a, b| (a.created_at, &a.user_id).cmp(&(b.created_at, &b.user_id)));
        users
    }

    /// The number of live users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Applies one event of the admin boundary. Events at or before the cursor are ignored, so
    /// feeding the same event twice (from the live follower and a catch-up read) is harmless.
    /// Returns true when the event was new.
    pub fn apply(&mut self, event: &StoredEvent) -> bool {
        if self.cursor.is_some_and(|c| event.position <= c) {
            return false;
        }
        self.cursor = Some(event.position);
        let relevant = matches!(
            event.event_type.as_str(),
            USER_CREATED | USER_DELETED | USER_PASSWORD_CHANGED | AUTH_KEY_CREATED
        );
        if !relevant {
            return true;
        }
        let Some(data) = events::parse(&event.data) else {
            tracing::warn!(position = %event.position, event_type = %event.event_type,
                "admin boundary event has no JSON object data; ignored");
            return true;
        };
        match event.event_type.as_str() {
            USER_CREATED => self.user_created(event, &data),
            USER_DELETED => {
                if let Some(id) = events::text(&data, USER_ID) {
                    if let Some(user) = self.users.remove(id) {
                        if self.by_username.get(&user.username).map(String::as_str) == Some(id) {
                            self.by_username.remove(&user.username);
                        }
                    }
                    self.deleted.insert(id.to_owned());
                }
            }
            USER_PASSWORD_CHANGED => {
                let id = events::text(&data, USER_ID);
                let hash = events::text(&data, PASSWORD_HASH);
                if let (Some(user), Some(hash)) = (id.and_then(|id| self.users.get_mut(id)), hash) {
                    user.password_hash = hash.to_owned();
                    user.epoch = event.position.prepare;
                }
            }
            AUTH_KEY_CREATED if self.key.is_none() => {
                match events::text(&data, KEY).and_then(TokenKey::from_base64) {
                    Some(key) => self.key = Some(key),
                    None => tracing::warn!(position = %event.position,
                        "ignoring a malformed $AuthKeyCreated event"),
                }
            }
            _ => {}
        }
        true
    }

    fn user_created(&mut self, event: &StoredEvent, data: &orisun_core::JsonObject) {
        let (Some(user_id), Some(username), Some(hash)) = (
            events::text(data, USER_ID),
            events::text(data, USERNAME),
            events::text(data, PASSWORD_HASH),
        ) else {
            tracing::warn!(position = %event.position, "ignoring a malformed $UserCreated event");
            return;
        };
        let roles = data
            .get(ROLES)
            .and_then(Value::as_array)
            .map(|roles| {
                let mut parsed: Vec<Role> = Vec::with_capacity(roles.len());
                for role in roles
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(Role::parse)
                {
                    if !parsed.contains(&role) {
                        parsed.push(role);
                    }
                }
                parsed
            })
            .unwrap_or_default();
        let created_at = events::text(data, CREATED_AT)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(event.date_created, |t| t.with_timezone(&Utc));
        let record = UserRecord {
            user_id: user_id.to_owned(),
            name: events::text(data, NAME).unwrap_or_default().to_owned(),
            username: username.to_owned(),
            roles,
            password_hash: hash.to_owned(),
            created_at,
            epoch: event.position.prepare,
        };
        self.by_username
            .insert(record.username.clone(), record.user_id.clone());
        self.users.insert(record.user_id.clone(), record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn ev(prepare: i64, data: Value) -> StoredEvent {
        let event_type = data["eventType"].as_str().unwrap_or_default().to_owned();
        StoredEvent {
            event_id: Uuid::now_v7(),
            event_type,
            data: data.to_string(),
            metadata: "{}".into(),
            position: Position::new(prepare + 1, prepare),
            date_created: Utc::now(),
        }
    }

    fn created(prepare: i64, id: &str, username: &str) -> StoredEvent {
        ev(
            prepare,
            json!({"eventType": USER_CREATED, "user_id": id, "name": "N", "username": username,
                   "roles": ["OPERATIONS", "bogus", "ADMIN", "OPERATIONS"], "password_hash": "h0",
                   "created_at": "2026-01-02T03:04:05Z"}),
        )
    }

    #[test]
    fn folds_users_in_order_and_ignores_replays() {
        let mut d = Directory::default();
        assert!(d.apply(&created(0, "u1", "alice")));
        assert!(!d.apply(&created(0, "u1", "alice")), "replay ignored");
        let u = d.by_username("alice").expect("alice");
        assert_eq!(
            u.roles,
            vec![Role::Operations, Role::Admin],
            "stored order, known roles"
        );
        assert_eq!(u.epoch, 0);
        assert_eq!(u.created_at.to_rfc3339(), "2026-01-02T03:04:05+00:00");

        d.apply(&ev(
            1,
            json!({"eventType": USER_PASSWORD_CHANGED, "user_id": "u1", "password_hash": "h1"}),
        ));
        let u = d.user("u1").expect("u1");
        assert_eq!((u.password_hash.as_str(), u.epoch), ("h1", 1));

        d.apply(&ev(
            2,
            json!({"eventType": USER_DELETED, "user_id": "u1", "username": "alice"}),
        ));
        assert!(d.user("u1").is_none());
        assert!(d.by_username("alice").is_none());
        assert!(d.was_deleted("u1"));
        assert_eq!(d.len(), 0);

        d.apply(&created(3, "u2", "alice"));
        assert_eq!(
            d.by_username("alice").map(|u| u.user_id.as_str()),
            Some("u2")
        );
        assert_eq!(d.cursor(), Position::new(4, 3));
    }

    #[test]
    fn first_key_wins() {
        let mut d = Directory::default();
        let k1 = TokenKey::generate();
        let k2 = TokenKey::generate();
        d.apply(&ev(
            0,
            json!({"eventType": AUTH_KEY_CREATED, "key": k1.to_base64()}),
        ));
        d.apply(&ev(
            1,
            json!({"eventType": AUTH_KEY_CREATED, "key": k2.to_base64()}),
        ));
        assert_eq!(d.key(), Some(&k1));
    }
}
