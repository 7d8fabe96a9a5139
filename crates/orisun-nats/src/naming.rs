//! Names on the NATS side of a boundary (stream, subjects, message ids, lease and checkpoint
//! names) and the JSON payload of a published event.
//!
//! Stream and subject names follow Go Orisun's current scheme so that existing NATS consumers
//! keep working; the per-event subject and message id add a separator Go Orisun lacks (its
//! `<prepare><commit>` concatenation is ambiguous: prepare 1 + commit 23 and prepare 12 +
//! commit 3 both give `123`).

use orisun_core::{BoundaryName, Position, StoredEvent};
use serde::Serialize;

/// Prefix of every per-boundary event stream (three underscores, as in Go Orisun since
/// August 2025).
pub const STREAM_PREFIX: &str = "ORISUN_EVENTS___";

/// Returns the JetStream stream holding `boundary`'s events: `ORISUN_EVENTS___<boundary>`.
///
/// A boundary name is `[A-Za-z_][A-Za-z0-9_]*`, so the result is always a valid stream name
/// and a valid subject token.
pub fn stream_name(boundary: &BoundaryName) -> String {
    format!("{STREAM_PREFIX}{}", boundary.as_str())
}

/// Returns the subject filter the stream captures: `ORISUN_EVENTS___<boundary>.events.>`.
pub fn stream_subjects(boundary: &BoundaryName) -> String {
    format!("{}.events.>", stream_name(boundary))
}

/// Returns the subject one event is published on:
/// `ORISUN_EVENTS___<boundary>.events.<commit>_<prepare>`.
pub fn event_subject(boundary: &BoundaryName, position: Position) -> String {
    format!(
        "{}.events.{}_{}",
        stream_name(boundary),
        position.commit,
        position.prepare
    )
}

/// Returns the `Nats-Msg-Id` of the event at `position`: `<boundary>:<commit>:<prepare>`.
///
/// Derived from the position alone, so a re-publication of the same event (after a crash, a
/// fail-over or a NATS error) carries the same id and JetStream drops it as a duplicate within
/// the stream's duplicate window.
pub fn message_id(boundary: &BoundaryName, position: Position) -> String {
    format!(
        "{}:{}:{}",
        boundary.as_str(),
        position.commit,
        position.prepare
    )
}

/// Parses a message id made by [`message_id`] for `boundary`; `None` for anything else
/// (another boundary's id, Go Orisun's unseparated ids, foreign messages).
pub fn parse_message_id(boundary: &BoundaryName, id: &str) -> Option<Position> {
    let rest = id.strip_prefix(boundary.as_str())?.strip_prefix(':')?;
    let (commit, prepare) = rest.split_once(':')?;
    let commit = commit.parse::<i64>().ok()?;
    let prepare = prepare.parse::<i64>().ok()?;
    (commit >= 0 && prepare >= 0).then_some(Position::new(commit, prepare))
}

/// Returns the name of the lease electing `boundary`'s publisher, which is also the name of its
/// checkpoint: `nats_publisher:<boundary>`.
pub fn publisher_lease_name(boundary: &BoundaryName) -> String {
    format!("nats_publisher:{}", boundary.as_str())
}

/// The JSON body of a published event.
///
/// The shape is Go Orisun's (`data` and `metadata` are JSON *text*, `date_created` is a
/// protobuf-style `{seconds, nanos}` timestamp), so its consumers decode ours unchanged. Unlike
/// Go Orisun, zero values are written rather than omitted (`"prepare_position":0`,
/// `"nanos":0`), which decodes the same in Go and is easier for everyone else.
#[derive(Debug, Serialize)]
pub struct EventPayload<'a> {
    /// The event's id (a UUID, as text).
    pub event_id: String,
    /// The event's type.
    pub event_type: &'a str,
    /// The event's data, a JSON object as text.
    pub data: &'a str,
    /// The event's metadata, a JSON object as text.
    pub metadata: &'a str,
    /// Where the event sits in its boundary's log.
    pub position: PayloadPosition,
    /// When the event was appended, in UTC.
    pub date_created: PayloadTimestamp,
}

/// A position in an [`EventPayload`].
#[derive(Debug, Serialize)]
pub struct PayloadPosition {
    /// The event's commit position.
    pub commit_position: i64,
    /// The event's prepare position.
    pub prepare_position: i64,
}

/// A timestamp in an [`EventPayload`], as protobuf's `Timestamp` serialises.
#[derive(Debug, Serialize)]
pub struct PayloadTimestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl<'a> EventPayload<'a> {
    /// Builds the payload of `event`.
    pub fn new(event: &'a StoredEvent) -> Self {
        Self {
            event_id: event.event_id.to_string(),
            event_type: &event.event_type,
            data: &event.data,
            metadata: &event.metadata,
            position: PayloadPosition {
                commit_position: event.position.commit,
                prepare_position: event.position.prepare,
            },
            date_created: PayloadTimestamp {
                seconds: event.date_created.timestamp(),
                nanos: event.date_created.timestamp_subsec_nanos(),
            },
        }
    }

    /// Serialises the payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a struct of strings and integers always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn orders() -> BoundaryName {
        BoundaryName::new("orders").expect("valid")
    }

    #[test]
    fn names_follow_go_orisun() {
        let b = orders();
        assert_eq!(stream_name(&b), "ORISUN_EVENTS___orders");
        assert_eq!(stream_subjects(&b), "ORISUN_EVENTS___orders.events.>");
        assert_eq!(
            event_subject(&b, Position::new(23, 1)),
            "ORISUN_EVENTS___orders.events.23_1"
        );
        assert_eq!(publisher_lease_name(&b), "nats_publisher:orders");
    }

    #[test]
    fn message_ids_are_unambiguous_and_round_trip() {
        let b = orders();
        let a = message_id(&b, Position::new(23, 1));
        let c = message_id(&b, Position::new(3, 12));
        assert_eq!(a, "orders:23:1");
        assert_ne!(a, c);
        assert_eq!(parse_message_id(&b, &a), Some(Position::new(23, 1)));
        assert_eq!(parse_message_id(&b, &c), Some(Position::new(3, 12)));
        let other = BoundaryName::new("orders2").expect("valid");
        assert_eq!(parse_message_id(&other, &a), None);
        assert_eq!(parse_message_id(&b, "orders2:1:0"), None);
        assert_eq!(parse_message_id(&b, "123"), None);
        assert_eq!(parse_message_id(&b, "orders:1"), None);
        assert_eq!(parse_message_id(&b, "orders:-1:-1"), None);
    }

    #[test]
    fn payload_has_go_orisun_shape() {
        let event = StoredEvent {
            event_id: Uuid::nil(),
            event_type: "Deposited".into(),
            data: r#"{"eventType":"Deposited","amount":5}"#.into(),
            metadata: "{}".into(),
            position: Position::new(3, 2),
            date_created: chrono::Utc
                .timestamp_opt(1_700_000_000, 5)
                .single()
                .expect("valid"),
        };
        let json: serde_json::Value =
            serde_json::from_slice(&EventPayload::new(&event).to_bytes()).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "event_id": "00000000-0000-0000-0000-000000000000",
                "event_type": "Deposited",
                "data": "{\"eventType\":\"Deposited\",\"amount\":5}",
                "metadata": "{}",
                "position": {"commit_position": 3, "prepare_position": 2},
                "date_created": {"seconds": 1_700_000_000, "nanos": 5}
            })
        );
    }
}
