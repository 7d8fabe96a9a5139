//! Conversions between the 2025 `eventstore` messages and today's log: stream names and
//! aggregates, stream versions, DCB tags and data fields, events, and aggregate errors.
//!
//! # The mapping
//!
//! - A stream is an aggregate stream of library mode (`orisun-aggregates`). A stream name
//!   without `/` is the aggregate id of type [`STREAM_TYPE`]; `Type/id` names the aggregate
//!   `Type` / `id` (so the streams that library-mode code writes are reachable too). An event's
//!   `stream_id` is built back the same way ([`stream_name`]).
//! - Stream versions count from 0 (Go Orisun's 2025 numbering), aggregate versions from 1:
//!   version `v` of a stream is `aggregateVersion = v + 1`, and expected version -1 means
//!   "a stream without events".
//! - A DCB tag of a saved event becomes a top-level text field of its data; the tags of a read
//!   event are the top-level scalar fields of its data, which are exactly what criteria match.
//! - Positions are today's positions, unchanged.

use super::eventstore_2025 as old;
use crate as pb;
use orisun_aggregates::{
    AggregateError, AggregateId, ExpectedVersion, VersionedEvent, AGGREGATE_ID_KEY,
    AGGREGATE_TYPE_KEY, AGGREGATE_VERSION_KEY,
};
use orisun_core::{
    event_tags, tag_text, AppendCondition, Criterion, Direction, Invalid, JsonObject, NewEvent,
    Position, Query, ReadRequest, StoredEvent, Tag,
};
use serde_json::Value;
use tonic::Status;

use crate::convert::{invalid, status};

/// The aggregate type of a stream whose name has no `/`.
pub const STREAM_TYPE: &str = "stream";

/// The aggregate a stream name stands for; errors name the field `field`.
pub fn stream_aggregate(field: &str, name: &str) -> Result<AggregateId, Invalid> {
    if name.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    let (kind, id) = name.split_once('/').unwrap_or((STREAM_TYPE, name));
    AggregateId::new(kind, id)
        .map_err(|e| Invalid::new(field, format!("{}: {}", e.field, e.reason)))
}

/// The stream name of an aggregate: its id for type [`STREAM_TYPE`] (unless the id holds a `/`),
/// `Type/id` otherwise. [`stream_aggregate`] maps it back to the same aggregate.
pub fn stream_name(kind: &str, id: &str) -> String {
    if kind == STREAM_TYPE && !id.contains('/') {
        id.to_owned()
    } else {
        format!("{kind}/{id}")
    }
}

/// The aggregate expectation of a 2025 expected version: -1 is a stream without events, `v >= 0`
/// is a stream whose last event has version `v`.
pub fn expected_version(field: &str, version: i64) -> Result<ExpectedVersion, Invalid> {
    match version {
        -1 => Ok(ExpectedVersion::NoStream),
        v if v >= 0 => Ok(ExpectedVersion::Exact(v.unsigned_abs() + 1)),
        v => Err(Invalid::new(
            field,
            format!("must be -1 (a stream without events) or a version >= 0, got {v}"),
        )),
    }
}

/// The 2025 stream version of an aggregate version (`aggregateVersion - 1`; -1 for none).
pub fn stream_version(aggregate_version: u64) -> i64 {
    i64::try_from(aggregate_version).map_or(i64::MAX, |v| v - 1)
}

fn expected_stream_version(expected: ExpectedVersion) -> String {
    match expected {
        ExpectedVersion::Any => "any".to_owned(),
        ExpectedVersion::NoStream => "-1".to_owned(),
        ExpectedVersion::Exact(n) => stream_version(n).to_string(),
    }
}

/// Maps an aggregate error to the status a 2025 client expects. A version conflict is
/// `ALREADY_EXISTS` with Go Orisun's message, in stream versions; store errors map as on
/// today's API.
pub fn aggregate_status(e: AggregateError) -> Status {
    match e {
        AggregateError::WrongVersion {
            expected, actual, ..
        } => conflict(&expected_stream_version(expected), stream_version(actual)),
        AggregateError::VersionBeyondHead {
            expected, actual, ..
        } => conflict(
            &stream_version(expected).to_string(),
            stream_version(actual),
        ),
        AggregateError::Invalid(e) => invalid(e),
        AggregateError::Store(e) => status(e),
        e @ AggregateError::Contended { .. } => Status::aborted(e.to_string()),
        e @ AggregateError::Malformed { .. } => Status::failed_precondition(e.to_string()),
    }
}

fn conflict(expected: &str, actual: i64) -> Status {
    Status::already_exists(format!(
        "OptimisticConcurrencyException:StreamVersionConflict: Expected {expected}, Actual {actual}"
    ))
}

impl From<old::Position> for Position {
    fn from(p: old::Position) -> Self {
        Position::new(p.commit_position, p.prepare_position)
    }
}

impl From<Position> for old::Position {
    fn from(p: Position) -> Self {
        Self {
            commit_position: p.commit,
            prepare_position: p.prepare,
        }
    }
}

impl From<old::Position> for pb::Position {
    fn from(p: old::Position) -> Self {
        Self {
            commit_position: p.commit_position,
            prepare_position: p.prepare_position,
        }
    }
}

impl From<pb::Position> for old::Position {
    fn from(p: pb::Position) -> Self {
        Self {
            commit_position: p.commit_position,
            prepare_position: p.prepare_position,
        }
    }
}

impl From<old::Query> for pb::Query {
    fn from(q: old::Query) -> Self {
        Self {
            criteria: q
                .criteria
                .into_iter()
                .map(|c| pb::Criterion {
                    tags: c
                        .tags
                        .into_iter()
                        .map(|t| pb::Tag {
                            key: t.key,
                            value: t.value,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl From<old::Query> for Query {
    fn from(q: old::Query) -> Self {
        pb::Query::from(q).into()
    }
}

/// Parses the events of a save: as today's API does, then each DCB tag becomes a top-level text
/// field of the event's data. A tag whose key the data already holds with another value is bad
/// input (an event cannot say two things at once).
pub fn events_to_save(events: Vec<old::EventToSave>) -> Result<Vec<NewEvent>, Status> {
    if events.is_empty() {
        return Err(Status::invalid_argument(
            "Invalid request: no events provided",
        ));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let mut event =
                NewEvent::from_wire(i, &e.event_id, &e.event_type, &e.data, &e.metadata)?;
            tags_into_data(i, e.tags, &mut event.data)?;
            Ok(event)
        })
        .collect::<Result<_, Invalid>>()
        .map_err(invalid)
}

fn tags_into_data(index: usize, tags: Vec<old::Tag>, data: &mut JsonObject) -> Result<(), Invalid> {
    for (j, tag) in tags.into_iter().enumerate() {
        let field = |name: &str| format!("events[{index}].tags[{j}]{name}");
        if tag.key.is_empty() {
            return Err(Invalid::new(field(".key"), "must not be empty"));
        }
        // A field holding null, an array or an object is never a tag, so a tag naming it
        // could never match: refuse it rather than store an event its tag does not find.
        let held = data.get(&tag.key).map(|v| tag_text(v).ok_or(v));
        match held {
            Some(Err(value)) => {
                return Err(Invalid::new(
                    field(""),
                    format!(
                        "data field {:?} holds {value}, which is never a tag; the tag says {:?}",
                        tag.key, tag.value
                    ),
                ))
            }
            Some(Ok(text)) if text == tag.value.as_str() => {}
            Some(Ok(text)) => {
                return Err(Invalid::new(
                    field(""),
                    format!(
                        "data field {:?} already holds {text:?}, the tag says {:?}",
                        tag.key, tag.value
                    ),
                ))
            }
            None => {
                data.insert(tag.key, Value::String(tag.value));
            }
        }
    }
    Ok(())
}

/// The DCB condition of a save: unset means no check; an unset marker means "before the first
/// event"; an unset or empty query means every event of the boundary.
pub fn consistency_condition(
    condition: Option<old::ConsistencyCondition>,
) -> Option<AppendCondition> {
    let condition = condition?;
    Some(AppendCondition::new(
        condition.query.map(Query::from).unwrap_or_default(),
        condition
            .consistency_marker
            .map_or(Position::BEFORE_FIRST, Position::from),
    ))
}

/// Validates a 2025 `GetEventsRequest` with today's rules and messages (count, direction,
/// criteria) into a read request.
pub fn read_request(request: &old::GetEventsRequest) -> Result<ReadRequest, Status> {
    crate::convert::read_request(&pb::GetEventsRequest {
        query: request.query.clone().map(pb::Query::from),
        from_position: request.from_position.map(pb::Position::from),
        count: request.count,
        direction: request.direction,
        boundary: request.boundary.clone(),
    })
}

/// Applies a read request (query, bound, direction, count) to the events of one stream, which
/// come in version order.
pub fn read_stream(read: &ReadRequest, events: Vec<VersionedEvent>) -> Vec<StoredEvent> {
    let mut events: Vec<StoredEvent> = events
        .into_iter()
        .map(|v| v.event)
        .filter(|e| read.admits(e.position))
        .filter(|e| {
            read.query.matches_all()
                || serde_json::from_str::<JsonObject>(&e.data).is_ok_and(|d| read.query.matches(&d))
        })
        .collect();
    if read.direction == Direction::Desc {
        events.reverse();
    }
    events.truncate(usize::try_from(read.limit).unwrap_or(usize::MAX));
    events
}

/// Restricts a query to one stream: the stream's criterion alone, or each criterion with the
/// stream's tags added.
pub fn within_stream(query: Query, aggregate: &AggregateId) -> Query {
    let stream = aggregate.criterion();
    if query.criteria.is_empty() {
        return Query::new([stream]);
    }
    Query::new(query.criteria.into_iter().map(|mut c| {
        c.tags.extend(stream.tags.iter().cloned());
        c
    }))
}

/// The criterion matching only the event at 2025 stream version `version` of `aggregate`.
pub fn version_criterion(aggregate: &AggregateId, version: u64) -> Criterion {
    let mut criterion = aggregate.criterion();
    criterion.tags.push(Tag::new(
        AGGREGATE_VERSION_KEY,
        version.saturating_add(1).to_string(),
    ));
    criterion
}

/// The stream id and 2025 version an event's data gives it, if it belongs to a stream.
pub fn stream_of(data: &JsonObject) -> Option<(String, u64)> {
    let kind = data.get(AGGREGATE_TYPE_KEY)?.as_str()?;
    let id = data.get(AGGREGATE_ID_KEY)?.as_str()?;
    let version = data
        .get(AGGREGATE_VERSION_KEY)?
        .as_u64()
        .filter(|v| *v > 0)?;
    Some((stream_name(kind, id), version - 1))
}

/// Converts an event as today's API serves it into the 2025 shape: the same id, type, data and
/// metadata bytes, position and time, plus tags, stream id and version read from the data.
pub fn event(e: pb::Event) -> old::Event {
    let data = serde_json::from_str::<JsonObject>(&e.data).unwrap_or_default();
    let tags = event_tags(&data)
        .map(|(key, value)| old::Tag {
            key: key.to_owned(),
            value: value.into_owned(),
        })
        .collect();
    let (stream_id, version) = stream_of(&data).unwrap_or_default();
    old::Event {
        event_id: e.event_id,
        event_type: e.event_type,
        data: e.data,
        metadata: e.metadata,
        tags,
        position: e.position.map(old::Position::from),
        date_created: e.date_created,
        stream_id,
        version,
    }
}

/// Converts a stored event into the 2025 shape (see [`event`]).
pub fn stored_event(e: StoredEvent) -> old::Event {
    event(pb::Event::from(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tonic::Code;

    #[test]
    fn stream_names_map_to_aggregates_and_back() {
        let plain = stream_aggregate("stream.name", "user-1234").expect("valid");
        assert_eq!((plain.kind(), plain.id()), (STREAM_TYPE, "user-1234"));
        assert_eq!(stream_name(plain.kind(), plain.id()), "user-1234");
        let typed = stream_aggregate("stream.name", "Account/acc-1/x").expect("valid");
        assert_eq!((typed.kind(), typed.id()), ("Account", "acc-1/x"));
        assert_eq!(stream_name(typed.kind(), typed.id()), "Account/acc-1/x");
        // An id of the default type holding a `/` keeps its type in the name.
        assert_eq!(stream_name(STREAM_TYPE, "a/b"), "stream/a/b");
        let back = stream_aggregate("s", "stream/a/b").expect("valid");
        assert_eq!((back.kind(), back.id()), (STREAM_TYPE, "a/b"));
        let e = stream_aggregate("stream.name", "").expect_err("empty");
        assert_eq!(e.to_string(), "stream.name: must not be empty");
        let e = stream_aggregate("stream.name", "Account/").expect_err("no id");
        assert_eq!(e.field, "stream.name");
        assert_eq!(e.reason, "aggregate_id: must not be empty");
    }

    #[test]
    fn expected_versions_count_from_zero() {
        assert_eq!(
            expected_version("v", -1).expect("ok"),
            ExpectedVersion::NoStream
        );
        assert_eq!(
            expected_version("v", 0).expect("ok"),
            ExpectedVersion::Exact(1)
        );
        assert_eq!(
            expected_version("v", 4).expect("ok"),
            ExpectedVersion::Exact(5)
        );
        let e = expected_version("stream.expected_version", -2).expect_err("bad");
        assert_eq!(e.field, "stream.expected_version");
        assert_eq!(stream_version(1), 0);
        assert_eq!(stream_version(0), -1);
    }

    #[test]
    fn conflicts_are_reported_in_stream_versions() {
        let aggregate = AggregateId::new(STREAM_TYPE, "s").expect("valid");
        let s = aggregate_status(AggregateError::WrongVersion {
            aggregate: aggregate.clone(),
            expected: ExpectedVersion::Exact(1),
            actual: 3,
        });
        assert_eq!(s.code(), Code::AlreadyExists);
        assert_eq!(
            s.message(),
            "OptimisticConcurrencyException:StreamVersionConflict: Expected 0, Actual 2"
        );
        let s = aggregate_status(AggregateError::WrongVersion {
            aggregate: aggregate.clone(),
            expected: ExpectedVersion::NoStream,
            actual: 1,
        });
        assert!(
            s.message().ends_with("Expected -1, Actual 0"),
            "{}",
            s.message()
        );
        let s = aggregate_status(AggregateError::VersionBeyondHead {
            aggregate,
            expected: 8,
            actual: 2,
        });
        assert_eq!(s.code(), Code::AlreadyExists);
        assert!(
            s.message().ends_with("Expected 7, Actual 1"),
            "{}",
            s.message()
        );
    }

    fn to_save(tags: &[(&str, &str)], data: &str) -> old::EventToSave {
        old::EventToSave {
            event_id: "0191b93c-5f3c-75c8-92ce-5a3300709178".into(),
            event_type: "UserCreated".into(),
            data: data.into(),
            metadata: String::new(),
            tags: tags
                .iter()
                .map(|(k, v)| old::Tag {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn tags_become_data_fields() {
        let events = events_to_save(vec![to_save(
            &[("tenant", "t-1"), ("version", "2")],
            r#"{"version": 2, "name": "x"}"#,
        )])
        .expect("valid");
        assert_eq!(events[0].data["tenant"], "t-1");
        assert_eq!(events[0].data["version"], 2);
        let e = events_to_save(vec![to_save(&[("name", "y")], r#"{"name": "x"}"#)])
            .expect_err("conflict");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(
            e.message(),
            r#"events[0].tags[0]: data field "name" already holds "x", the tag says "y""#
        );
        let e = events_to_save(vec![to_save(&[("n", "null")], r#"{"n": null}"#)])
            .expect_err("a null field is never a tag");
        assert_eq!(
            e.message(),
            r#"events[0].tags[0]: data field "n" holds null, which is never a tag; the tag says "null""#
        );
        let e = events_to_save(vec![to_save(&[("", "y")], "{}")]).expect_err("keyless");
        assert_eq!(e.message(), "events[0].tags[0].key: must not be empty");
        let e = events_to_save(vec![]).expect_err("none");
        assert_eq!(e.message(), "Invalid request: no events provided");
    }

    #[test]
    fn events_carry_tags_stream_and_version() {
        let today = pb::Event {
            event_id: "id".into(),
            event_type: "Deposited".into(),
            data: json!({"eventType": "Deposited", "amount": 5, "aggregateType": "stream",
                "aggregateId": "acc-1", "aggregateVersion": 3, "nested": {"a": 1}})
            .to_string(),
            metadata: "{}".into(),
            position: Some(pb::Position {
                commit_position: 7,
                prepare_position: 2,
            }),
            date_created: None,
        };
        let old = event(today.clone());
        assert_eq!(old.data, today.data);
        assert_eq!(old.stream_id, "acc-1");
        assert_eq!(old.version, 2);
        assert_eq!(
            old.position,
            Some(old::Position {
                commit_position: 7,
                prepare_position: 2
            })
        );
        let tags: Vec<(String, String)> = old.tags.into_iter().map(|t| (t.key, t.value)).collect();
        assert!(tags.contains(&("amount".into(), "5".into())), "{tags:?}");
        assert!(!tags.iter().any(|(k, _)| k == "nested"), "{tags:?}");
        let plain = event(pb::Event {
            data: r#"{"eventType":"X"}"#.into(),
            ..today
        });
        assert_eq!((plain.stream_id.as_str(), plain.version), ("", 0));
    }

    #[test]
    fn queries_are_restricted_to_a_stream() {
        let aggregate = AggregateId::new(STREAM_TYPE, "s").expect("valid");
        let q = within_stream(Query::default(), &aggregate);
        assert_eq!(q.criteria, vec![aggregate.criterion()]);
        let q = within_stream(
            Query::new([Criterion::new([Tag::new("eventType", "A")])]),
            &aggregate,
        );
        assert_eq!(q.criteria[0].tags.len(), 3);
        let data = json!({"eventType": "A", "aggregateType": "stream", "aggregateId": "s"});
        assert!(q.matches(data.as_object().expect("object")));
        let other = json!({"eventType": "A", "aggregateType": "stream", "aggregateId": "t"});
        assert!(!q.matches(other.as_object().expect("object")));
    }
}
