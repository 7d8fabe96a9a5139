//! How an aggregate event is an ordinary event: its identity and version are fields of its data
//! (stamped on append, read back on every read), so criteria reads, subscriptions, NATS and
//! the gRPC API all see it.

use crate::error::AggregateError;
use crate::id::{AggregateId, AGGREGATE_ID_KEY, AGGREGATE_TYPE_KEY, AGGREGATE_VERSION_KEY};
use orisun_core::{Invalid, JsonObject, NewEvent, StoredEvent};
use serde_json::Value;

/// A stored event of an aggregate, with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedEvent {
    /// The event's version in its aggregate: 1 for the first, gap-free after that.
    pub version: u64,
    /// The event as the log stores it (its data includes the aggregate fields).
    pub event: StoredEvent,
}

/// Writes the aggregate's identity and each event's version (from `first_version` on) into
/// the events' data. A data field that already holds a different aggregate type or id, or any
/// version, is refused: the caller would be asking for two identities at once.
pub(crate) fn stamp(
    aggregate: &AggregateId,
    events: Vec<NewEvent>,
    first_version: u64,
) -> Result<Vec<NewEvent>, Invalid> {
    events
        .into_iter()
        .zip(first_version..)
        .enumerate()
        .map(|(index, (mut event, version))| {
            let field = |key: &str| format!("events[{index}].data.{key}");
            for (key, value) in [
                (AGGREGATE_TYPE_KEY, aggregate.kind()),
                (AGGREGATE_ID_KEY, aggregate.id()),
            ] {
                match event.data.get(key) {
                    None => {}
                    Some(Value::String(s)) if s == value => {}
                    Some(other) => {
                        return Err(Invalid::new(
                            field(key),
                            format!("is reserved for the aggregate ({value:?}), got {other}"),
                        ))
                    }
                }
                event
                    .data
                    .insert(key.to_owned(), Value::String(value.to_owned()));
            }
            if event.data.contains_key(AGGREGATE_VERSION_KEY) {
                return Err(Invalid::new(
                    field(AGGREGATE_VERSION_KEY),
                    "is reserved: the store assigns versions",
                ));
            }
            event
                .data
                .insert(AGGREGATE_VERSION_KEY.to_owned(), Value::from(version));
            Ok(event)
        })
        .collect()
}

/// Reads the version of a stored event of `aggregate`.
pub(crate) fn version_of(
    aggregate: &AggregateId,
    event: &StoredEvent,
) -> Result<u64, AggregateError> {
    let malformed = |reason: String| AggregateError::Malformed {
        aggregate: aggregate.clone(),
        position: event.position,
        reason,
    };
    let data: JsonObject =
        serde_json::from_str(&event.data).map_err(|e| malformed(format!("data: {e}")))?;
    data.get(AGGREGATE_VERSION_KEY)
        .and_then(Value::as_u64)
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            malformed(format!(
                "{AGGREGATE_VERSION_KEY} is {}",
                data.get(AGGREGATE_VERSION_KEY)
                    .map_or("missing".to_owned(), Value::to_string)
            ))
        })
}

/// Pairs a stored event with its version.
pub(crate) fn versioned(
    aggregate: &AggregateId,
    event: StoredEvent,
) -> Result<VersionedEvent, AggregateError> {
    Ok(VersionedEvent {
        version: version_of(aggregate, &event)?,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use orisun_core::Position;
    use serde_json::json;

    fn object(v: Value) -> JsonObject {
        v.as_object().cloned().expect("object")
    }

    fn new_event(data: Value) -> NewEvent {
        NewEvent::new(
            uuid::Uuid::new_v4(),
            "Deposited",
            object(data),
            JsonObject::new(),
        )
        .expect("valid")
    }

    fn id() -> AggregateId {
        AggregateId::new("Account", "a-1").expect("valid")
    }

    #[test]
    fn stamps_identity_and_consecutive_versions() {
        let events = stamp(&id(), vec![new_event(json!({"amount": 5})); 3], 4).expect("stamped");
        let versions: Vec<_> = events
            .iter()
            .map(|e| e.data[AGGREGATE_VERSION_KEY].as_u64())
            .collect();
        assert_eq!(versions, [Some(4), Some(5), Some(6)]);
        assert_eq!(events[0].data[AGGREGATE_TYPE_KEY], "Account");
        assert_eq!(events[0].data[AGGREGATE_ID_KEY], "a-1");
        assert_eq!(events[0].data["amount"], 5);
    }

    #[test]
    fn accepts_the_same_identity_and_refuses_another() {
        assert!(stamp(&id(), vec![new_event(json!({"aggregateId": "a-1"}))], 1).is_ok());
        let e = stamp(
            &id(),
            vec![
                new_event(json!({})),
                new_event(json!({"aggregateId": "a-2"})),
            ],
            1,
        )
        .expect_err("must fail");
        assert_eq!(e.field, "events[1].data.aggregateId");
        let e = stamp(&id(), vec![new_event(json!({"aggregateVersion": 1}))], 1)
            .expect_err("must fail");
        assert_eq!(e.field, "events[0].data.aggregateVersion");
    }

    #[test]
    fn reads_versions_back_and_names_malformed_events() {
        let stored = |data: &str| StoredEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: "Deposited".into(),
            data: data.into(),
            metadata: "{}".into(),
            position: Position::new(3, 0),
            date_created: chrono::Utc::now(),
        };
        assert_eq!(
            version_of(&id(), &stored(r#"{"aggregateVersion": 7}"#)).expect("version"),
            7
        );
        for bad in [
            r#"{}"#,
            r#"{"aggregateVersion": "7"}"#,
            r#"{"aggregateVersion": 0}"#,
        ] {
            match version_of(&id(), &stored(bad)) {
                Err(AggregateError::Malformed { position, .. }) => {
                    assert_eq!(position, Position::new(3, 0))
                }
                other => panic!("{bad}: expected Malformed, got {other:?}"),
            }
        }
    }
}
