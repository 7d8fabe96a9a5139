//! The events the bench writes: a realistic, moderately sized JSON object (about 150–200 bytes, six
//! top-level fields) so that parsing, tag indexing and storage costs are those of real events.

use orisun_proto::EventToSave;
use serde_json::{json, Value};
use uuid::Uuid;

/// Event type of every bench event.
pub const EVENT_TYPE: &str = "BenchEvent";

/// Number of distinct `entity` values of the preloaded boundary: each appears
/// `preload / ENTITIES` times, so a conditional save's criterion matches many old events.
pub const ENTITIES: u64 = 1_000;

/// Returns the data of event `n` of context `client` about `entity`, as a JSON object (for
/// library mode, which builds `NewEvent`s in-process).
pub fn fields(client: &str, entity: &str, n: u64) -> serde_json::Map<String, Value> {
    [
        ("client", Value::from(client)),
        ("entity", Value::from(entity)),
        ("n", Value::from(n)),
        ("amount", Value::from((n % 10_000) * 7)),
        ("currency", Value::from("EUR")),
        (
            "note",
            Value::from("orisun-bench event: a payload of roughly the size of a real domain event"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Returns the JSON data of event `n` of context `client` about `entity`.
pub fn data(client: &str, entity: &str, n: u64) -> String {
    Value::Object(fields(client, entity, n)).to_string()
}

/// Returns one event to save.
pub fn event(client: &str, entity: &str, n: u64) -> EventToSave {
    EventToSave {
        event_id: Uuid::now_v7().to_string(),
        event_type: EVENT_TYPE.to_owned(),
        data: data(client, entity, n),
        metadata: r#"{"source":"orisun-bench"}"#.to_owned(),
    }
}

/// Returns an event whose data carries the time it was sent, in microseconds on the bench's
/// clock, for the commit-to-subscriber latency.
pub fn timed_event(n: u64, sent_micros: u64) -> EventToSave {
    EventToSave {
        event_id: Uuid::now_v7().to_string(),
        event_type: EVENT_TYPE.to_owned(),
        data: json!({"client": "latency", "n": n, "sent_us": sent_micros}).to_string(),
        metadata: r#"{"source":"orisun-bench"}"#.to_owned(),
    }
}

/// Returns the send time written by [`timed_event`], if `data` has one.
pub fn sent_micros(data: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()?
        .get("sent_us")?
        .as_u64()
}

/// Returns the preloaded boundary's entity of event `n`.
pub fn entity_of(n: u64) -> String {
    format!("e{}", n % ENTITIES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_objects_of_realistic_size() {
        let e = event("c1", "e7", 123);
        let v: serde_json::Value = serde_json::from_str(&e.data).expect("json");
        assert_eq!(v["entity"], "e7");
        assert_eq!(v["n"], 123);
        assert!((120..400).contains(&e.data.len()), "{}", e.data.len());
        assert!(Uuid::parse_str(&e.event_id).is_ok());
    }

    #[test]
    fn send_time_round_trips() {
        let e = timed_event(5, 987_654);
        assert_eq!(sent_micros(&e.data), Some(987_654));
        assert_eq!(sent_micros(&data("c", "e", 1)), None);
        assert_eq!(entity_of(1_007), "e7");
    }
}
