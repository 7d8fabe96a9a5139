//! The events the bench writes to UmaDB: the same data bytes, type and tags as ours. Our server
//! derives an event's tags from its JSON data (`orisun_core::event_tags`: every top-level
//! string, number or boolean field, plus `eventType`); UmaDB stores the tags a client gives, so
//! each of its events is given those same tags, as `key:value` strings.

use super::proto;
use crate::payload::{self, EVENT_TYPE};
use orisun_core::{event_tags, JsonObject, EVENT_TYPE_KEY};
use serde_json::Value;
use uuid::Uuid;

/// Returns the `key:value` tags our server indexes for an event of type [`EVENT_TYPE`] with
/// `data` (the server writes `eventType` into the data before it derives them).
pub fn tags_of(data: &JsonObject) -> Vec<String> {
    let mut stored = JsonObject::new();
    stored.insert(EVENT_TYPE_KEY.to_owned(), Value::from(EVENT_TYPE));
    stored.extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
    event_tags(&stored)
        .map(|(key, value)| format!("{key}:{value}"))
        .collect()
}

/// Returns UmaDB's counterpart of `payload::event(client, entity, n)`: the same JSON data
/// bytes, the same type, a v7 UUID like ours, and the tags our server would index.
pub fn event(client: &str, entity: &str, n: u64) -> proto::Event {
    let fields = payload::fields(client, entity, n);
    let tags = tags_of(&fields);
    proto::Event {
        event_type: EVENT_TYPE.to_owned(),
        tags,
        data: Value::Object(fields).to_string().into_bytes(),
        uuid: Uuid::now_v7().to_string(),
    }
}

/// Returns the tag a conditional save's criterion `key = value` stands for.
pub fn tag(key: &str, value: &str) -> String {
    format!("{key}:{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_data_type_and_tags_as_ours() {
        let ours = payload::event("c7", "e3", 12);
        let uma = event("c7", "e3", 12);
        assert_eq!(uma.data, ours.data.as_bytes());
        assert_eq!(uma.event_type, ours.event_type);
        // What our server indexes: the event as it stores it, eventType included.
        let stored = orisun_core::NewEvent::from_wire(
            0,
            &ours.event_id,
            &ours.event_type,
            &ours.data,
            &ours.metadata,
        )
        .expect("a valid event");
        let mut expected: Vec<String> = event_tags(&stored.data)
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let mut got = uma.tags.clone();
        expected.sort();
        got.sort();
        assert_eq!(got, expected);
        assert_eq!(got.len(), 7, "{got:?}");
        for t in [
            "eventType:BenchEvent",
            "client:c7",
            "entity:e3",
            "n:12",
            "amount:84",
        ] {
            assert!(got.iter().any(|g| g == t), "{t} missing from {got:?}");
        }
        assert_eq!(tag("client", "c7"), "client:c7");
        assert!(Uuid::parse_str(&uma.uuid).is_ok());
    }
}
