//! Fuzz targets for every wire -> domain decode path of the contract: protobuf bytes of each
//! request, event data and metadata JSON (`NewEvent::from_wire`), criteria and queries,
//! positions and read requests, boundary names, the client's decoding of answers and statuses,
//! and the 2025 API's stream names and tags.
//!
//! Each target runs for `ORISUN_FUZZ_SECONDS` (default 10) on random and near-valid input
//! (mutations of valid JSON, names and encoded messages) and checks: no panic, a precise error
//! (the right field, code and wording) for bad input, and that valid input decodes to what was
//! encoded. Soak: `ORISUN_FUZZ_SECONDS=60 cargo test -p orisun-proto --test fuzz -- --nocapture`.

use orisun_core::{BoundaryName, Criterion, Direction, NewEvent, Position, Query, StoredEvent};
use orisun_proto as pb;
use orisun_proto::legacy::{eventstore_2025 as old, v2025};
use orisun_proto::{client, convert, status};
use orisun_store::testsuite::fuzz::{fuzz, mutated, odd_text};
use orisun_store::StoreError;
use proptest::prelude::*;
use prost::Message;
use serde_json::{Map, Value};
use tonic::Code;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Generators

/// Any JSON value a client could send, nested a few levels, with odd strings and keys.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        odd_text(12).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((odd_text(6), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A JSON object, mostly with plain keys (so tags and criteria meet) and sometimes odd ones.
fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        3 => prop::sample::select(vec!["a", "b", "id", "eventType", "n", ""]).prop_map(String::from),
        1 => odd_text(6),
    ];
    prop::collection::vec((key, json_value()), 0..6).prop_map(|kv| kv.into_iter().collect())
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// An event as a client writes it: id, type, data and metadata text.
#[derive(Debug, Clone)]
struct WireEvent {
    id: String,
    event_type: String,
    data: String,
    metadata: String,
}

fn wire_event() -> impl Strategy<Value = WireEvent> {
    let event_type = prop_oneof![
        4 => "[A-Za-z][A-Za-z0-9]{0,12}",
        1 => odd_text(8),
    ];
    let metadata = prop_oneof![
        1 => Just(String::new()),
        1 => Just("null".to_owned()),
        1 => Just("  ".to_owned()),
        4 => json_object().prop_map(|m| Value::Object(m).to_string()),
    ];
    let data = prop_oneof![
        1 => Just(String::new()),
        6 => json_object().prop_map(|m| Value::Object(m).to_string()),
        1 => json_object().prop_map(|m| format!(" \n{:#}\t", Value::Object(m))),
    ];
    (any::<u128>(), any::<bool>(), event_type, data, metadata).prop_map(
        |(id, hyphens, event_type, data, metadata)| {
            let id = Uuid::from_u128(id);
            WireEvent {
                id: if hyphens {
                    id.to_string()
                } else {
                    id.simple().to_string()
                },
                event_type,
                data,
                metadata,
            }
        },
    )
}

/// A wire event with one of its fields edited a little (or replaced by anything at all).
fn near_valid_event() -> impl Strategy<Value = (usize, WireEvent)> {
    (0usize..40, wire_event(), 0usize..4)
        .prop_flat_map(|(index, e, field)| {
            let original = match field {
                0 => e.id.clone(),
                1 => e.event_type.clone(),
                2 => e.data.clone(),
                _ => e.metadata.clone(),
            };
            let edited = prop_oneof![4 => mutated(original), 1 => any::<String>()];
            (Just(index), Just(e), Just(field), edited)
        })
        .prop_map(|(index, mut e, field, edited)| {
            match field {
                0 => e.id = edited,
                1 => e.event_type = edited,
                2 => e.data = edited,
                _ => e.metadata = edited,
            }
            (index, e)
        })
}

fn tag() -> impl Strategy<Value = pb::Tag> {
    let key = prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "id", "eventType", "n"]).prop_map(String::from),
        1 => Just(String::new()),
        1 => odd_text(5),
    ];
    let value = prop_oneof![
        3 => prop::sample::select(vec!["1", "x", "true", "false", "1.5", "-0", "", "null"])
            .prop_map(String::from),
        1 => odd_text(6),
    ];
    (key, value).prop_map(|(key, value)| pb::Tag { key, value })
}

fn query() -> impl Strategy<Value = pb::Query> {
    prop::collection::vec(
        prop::collection::vec(tag(), 0..4).prop_map(|tags| pb::Criterion { tags }),
        0..4,
    )
    .prop_map(|criteria| pb::Query { criteria })
}

fn position() -> impl Strategy<Value = pb::Position> {
    let n = prop_oneof![
        3 => -2i64..20,
        1 => any::<i64>(),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
    ];
    (n.clone(), n).prop_map(|(commit_position, prepare_position)| pb::Position {
        commit_position,
        prepare_position,
    })
}

/// Bytes: random, or a valid encoding with a few bytes changed, dropped or appended.
fn bytes_near(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((0u8..3, any::<usize>(), any::<u8>()), 1..6);
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256),
        3 => edits.prop_map(move |edits| {
            let mut b = valid.clone();
            for (kind, at, byte) in edits {
                let i = if b.is_empty() { 0 } else { at % b.len() };
                match kind {
                    0 if !b.is_empty() => b[i] = byte,
                    1 if !b.is_empty() => {
                        b.remove(i);
                    }
                    _ => b.insert(i, byte),
                }
            }
            b
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Oracles

/// What `from_wire` must say about an event: `None` when valid, else the field it must name.
/// Written from the documented rules, independently of `orisun-core`'s code.
fn expected_error(e: &WireEvent) -> Option<&'static str> {
    if Uuid::parse_str(&e.id).is_err() {
        return Some("event_id");
    }
    if e.event_type.is_empty() {
        return Some("event_type");
    }
    let parse = |text: &str, null_ok: bool| -> Result<Value, ()> {
        let t = text.trim();
        if t.is_empty() || (null_ok && t == "null") {
            return Ok(Value::Object(Map::new()));
        }
        match serde_json::from_str::<Value>(t) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(()),
        }
    };
    let Ok(data) = parse(&e.data, false) else {
        return Some("data");
    };
    let Ok(metadata) = parse(&e.metadata, true) else {
        return Some("metadata");
    };
    if e.event_type.contains('\0') {
        return Some("event_type");
    }
    if has_nul(&data) {
        return Some("data");
    }
    if has_nul(&metadata) {
        return Some("metadata");
    }
    None
}

fn check_from_wire(index: usize, e: &WireEvent) -> Result<(), String> {
    let result = NewEvent::from_wire(index, &e.id, &e.event_type, &e.data, &e.metadata);
    match (expected_error(e), result) {
        (None, Ok(event)) => check_decoded(index, e, &event),
        (Some(field), Err(err)) => {
            let want = format!("events[{index}].{field}");
            if err.field != want {
                return Err(format!(
                    "error names {:?}, expected {want:?}: {err}",
                    err.field
                ));
            }
            let precise = [
                "is not a UUID",
                "must not be empty",
                "invalid JSON: ",
                "must be a JSON object, got ",
                "must not contain the NUL character",
            ];
            if !precise.iter().any(|p| err.reason.contains(p)) {
                return Err(format!("imprecise reason: {err}"));
            }
            Ok(())
        }
        (None, Err(err)) => Err(format!("valid event refused: {err}")),
        (Some(field), Ok(event)) => Err(format!("bad {field} accepted: {event:?}")),
    }
}

/// A valid event decodes to what was written: the id, the type, the data with `eventType` set
/// to the type (in place if the client sent one, else last), the metadata (`{}` when empty),
/// and decoding its own JSON text gives the same event again.
fn check_decoded(index: usize, e: &WireEvent, event: &NewEvent) -> Result<(), String> {
    let as_object = |text: &str| -> Map<String, Value> {
        match serde_json::from_str::<Value>(text.trim()) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    };
    let mut data = as_object(&e.data);
    data.insert("eventType".into(), Value::String(e.event_type.clone()));
    let metadata = as_object(&e.metadata);
    let expected_id = Uuid::parse_str(&e.id).map_err(|x| x.to_string())?;
    if event.event_id != expected_id || event.event_type != e.event_type {
        return Err(format!("id or type changed: {event:?}"));
    }
    let data_text = serde_json::to_string(&data).map_err(|x| x.to_string())?;
    if event.data_json() != data_text {
        return Err(format!("data {} != {data_text}", event.data_json()));
    }
    let metadata_text = serde_json::to_string(&metadata).map_err(|x| x.to_string())?;
    if event.metadata_json() != metadata_text {
        return Err(format!(
            "metadata {} != {metadata_text}",
            event.metadata_json()
        ));
    }
    let again = NewEvent::from_wire(
        index,
        &event.event_id.to_string(),
        &event.event_type,
        &event.data_json(),
        &event.metadata_json(),
    )
    .map_err(|x| format!("re-decoding its own text failed: {x}"))?;
    if &again != event {
        return Err(format!("re-decoding changed the event: {again:?}"));
    }
    Ok(())
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && name.len() <= 63 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a tag matches, from the documented rule: a string field equal to the value, or a
/// number or boolean whose JSON text is the value.
fn tag_matches(data: &Map<String, Value>, tag: &pb::Tag) -> bool {
    match data.get(&tag.key) {
        Some(Value::String(s)) => *s == tag.value,
        Some(v @ (Value::Number(_) | Value::Bool(_))) => {
            // The JSON text, not the value: `1` matches "1" but a string "1" is not a number.
            let text = v.to_string();
            text == tag.value
        }
        _ => false,
    }
}

fn invalid_argument(status: &tonic::Status, prefix: &str) -> Result<(), String> {
    if status.code() != Code::InvalidArgument || !status.message().starts_with(prefix) {
        return Err(format!(
            "expected INVALID_ARGUMENT starting {prefix:?}, got {status:?}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Targets

#[test]
fn event_json_round_trips() {
    fuzz(
        "event_json_round_trips",
        (0usize..40, wire_event()),
        |(i, e)| check_from_wire(*i, e),
    );
}

#[test]
fn event_json_near_valid() {
    fuzz("event_json_near_valid", near_valid_event(), |(i, e)| {
        check_from_wire(*i, e)
    });
}

/// Whole `SaveEventsRequest`s from protobuf bytes: each decodable one converts without panic,
/// errors are `INVALID_ARGUMENT` naming the event field, and the events of a valid request are
/// those `from_wire` gives one by one.
#[test]
fn save_request_bytes() {
    let valid = pb::SaveEventsRequest {
        boundary: "orders".into(),
        query: Some(pb::SaveQuery {
            expected_position: Some(pb::Position {
                commit_position: 3,
                prepare_position: 2,
            }),
            subset_query: Some(pb::Query {
                criteria: vec![pb::Criterion {
                    tags: vec![pb::Tag {
                        key: "id".into(),
                        value: "1".into(),
                    }],
                }],
            }),
        }),
        events: vec![pb::EventToSave {
            event_id: Uuid::from_u128(7).to_string(),
            event_type: "Created".into(),
            data: r#"{"id":1,"name":"x"}"#.into(),
            metadata: r#"{"by":"me"}"#.into(),
        }],
    }
    .encode_to_vec();
    fuzz("save_request_bytes", bytes_near(valid), |bytes| {
        let Ok(request) = pb::SaveEventsRequest::decode(bytes.as_slice()) else {
            return Ok(());
        };
        if let Err(s) = convert::boundary(&request.boundary) {
            invalid_argument(&s, "boundary: ")?;
        }
        let condition = convert::append_condition(request.query.clone());
        let expected_condition = request.query.as_ref().and_then(|q| q.subset_query.as_ref());
        if condition.is_some() != expected_condition.is_some() {
            return Err(format!("condition {condition:?} for {:?}", request.query));
        }
        let one_by_one: Vec<_> = request
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| NewEvent::from_wire(i, &e.event_id, &e.event_type, &e.data, &e.metadata))
            .collect();
        match convert::events_to_save(request.events.clone()) {
            Ok(events) => {
                let expected: Vec<NewEvent> = one_by_one.into_iter().flatten().collect();
                if events != expected {
                    return Err("the batch differs from its events decoded alone".into());
                }
            }
            Err(s) if request.events.is_empty() => {
                invalid_argument(&s, "Invalid request: no events provided")?
            }
            Err(s) => {
                let first = one_by_one
                    .into_iter()
                    .find_map(Result::err)
                    .ok_or("a batch of valid events was refused")?;
                invalid_argument(&s, &first.to_string())?;
            }
        }
        Ok(())
    });
}

/// `GetEventsRequest`s, structured and from bytes: count, direction, query and bound follow the
/// rules, with Go Orisun's wording for a zero count.
#[test]
fn read_requests() {
    let count = prop_oneof![
        Just(0u32),
        1u32..20,
        Just(10_000),
        Just(10_001),
        any::<u32>()
    ];
    let direction = prop_oneof![4 => 0i32..3, 1 => any::<i32>()];
    let structured = (
        count,
        direction,
        prop::option::of(query()),
        prop::option::of(position()),
    )
        .prop_map(|(count, direction, query, from)| pb::GetEventsRequest {
            query,
            from_position: from,
            count,
            direction,
            boundary: "orders".into(),
        });
    let valid = pb::GetEventsRequest {
        query: Some(pb::Query::default()),
        from_position: Some(pb::Position::default()),
        count: 10,
        direction: 1,
        boundary: "b".into(),
    }
    .encode_to_vec();
    let from_bytes = bytes_near(valid).prop_filter_map("decodable", |b| {
        pb::GetEventsRequest::decode(b.as_slice()).ok()
    });
    let requests = prop_oneof![3 => structured, 1 => from_bytes];
    fuzz("read_requests", requests, |r| {
        let result = convert::read_request(r);
        let empty_key = r.query.as_ref().and_then(|q| {
            q.criteria.iter().enumerate().find_map(|(i, c)| {
                c.tags
                    .iter()
                    .position(|t| t.key.is_empty())
                    .map(|j| format!("query.criteria[{i}].tags[{j}].key: must not be empty"))
            })
        });
        match result {
            Err(s) if r.count == 0 => invalid_argument(&s, "Count cannot be 0"),
            Err(s) if !(0..=1).contains(&r.direction) => {
                invalid_argument(&s, &format!("direction: unknown value {}", r.direction))
            }
            Err(s) if r.count > 10_000 => invalid_argument(&s, "count: must be between 1 and"),
            Err(s) => invalid_argument(&s, empty_key.as_deref().unwrap_or("(no error expected)")),
            Ok(_) if r.count == 0 || r.count > 10_000 || !(0..=1).contains(&r.direction) => {
                Err("a bad count or direction was accepted".into())
            }
            Ok(_) if empty_key.is_some() => Err("an empty tag key was accepted".into()),
            Ok(read) => {
                let direction = if r.direction == 0 {
                    Direction::Asc
                } else {
                    Direction::Desc
                };
                let from = r.from_position.map(Position::from);
                let query = Query::from(r.query.clone().unwrap_or_default());
                if read.limit != r.count
                    || read.direction != direction
                    || read.from != from
                    || read.query != query
                {
                    return Err(format!("decoded {read:?}"));
                }
                // A client encodes it back to the same request.
                let back = client::get_events_request(
                    &BoundaryName::new("orders").map_err(|e| e.to_string())?,
                    &read,
                );
                let again = convert::read_request(&back).map_err(|s| s.to_string())?;
                if again != read {
                    return Err(format!("client round trip changed it: {again:?}"));
                }
                Ok(())
            }
        }
    });
}

/// Criteria and queries: conversion both ways is lossless, matching follows the documented
/// rule, and the tag index finds exactly the matching events (a criterion's tag hashes are a
/// subset of an event's exactly when it matches), which is what every backend relies on.
#[test]
fn criteria_match_and_index() {
    let input = (query(), wire_event(), position(), any::<bool>());
    fuzz(
        "criteria_match_and_index",
        input,
        |(q, e, after, with_after)| {
            let query = Query::from(q.clone());
            if pb::Query::from(query.clone()) != *q {
                return Err("query round trip lost something".into());
            }
            let Ok(event) = NewEvent::from_wire(0, &e.id, &e.event_type, &e.data, &e.metadata)
            else {
                return Ok(());
            };
            let hashes = event.tag_hashes();
            let mut any = q.criteria.is_empty();
            for (c, criterion) in q.criteria.iter().zip(&query.criteria) {
                let expected = c.tags.iter().all(|t| tag_matches(&event.data, t));
                if criterion.matches(&event.data) != expected {
                    return Err(format!("{criterion:?} on {:?}", event.data));
                }
                let indexed = criterion
                    .tag_hashes()
                    .iter()
                    .all(|h| hashes.binary_search(h).is_ok());
                if indexed != expected {
                    return Err(format!("index says {indexed} for {criterion:?}"));
                }
                any |= expected;
            }
            if query.matches(&event.data) != any {
                return Err("OR across criteria broken".into());
            }
            // The condition of a save: `subsetQuery` decides whether there is one at all.
            let save = pb::SaveQuery {
                expected_position: with_after.then_some(*after),
                subset_query: Some(q.clone()),
            };
            let condition = convert::append_condition(Some(save)).ok_or("condition lost")?;
            let want = if *with_after {
                Position::from(*after)
            } else {
                Position::BEFORE_FIRST
            };
            if condition.after != want || condition.query != query {
                return Err(format!("condition {condition:?}"));
            }
            Ok(())
        },
    );
}

/// Boundary names (and index names, which share the rule): accepted exactly when they are
/// identifiers of at most 63 bytes, kept as written, refused naming the field.
#[test]
fn boundary_names() {
    let names = prop_oneof![
        3 => "[A-Za-z_][A-Za-z0-9_]{0,70}",
        3 => "[A-Za-z_][A-Za-z0-9_]{0,62}".prop_flat_map(mutated),
        1 => odd_text(10),
        1 => any::<String>(),
    ];
    fuzz("boundary_names", names, |name| {
        match (convert::boundary(name), is_identifier(name)) {
            (Ok(b), true) if b.as_str() == name => Ok(()),
            (Ok(b), true) => Err(format!("{name:?} became {b:?}")),
            (Ok(_), false) => Err(format!("{name:?} accepted")),
            (Err(s), false) => invalid_argument(&s, "boundary: "),
            (Err(s), true) => Err(format!("{name:?} refused: {s:?}")),
        }
    });
}

/// What a client decodes from a server: events (every field, malformed ones named), positions,
/// counts, and statuses (the inverse of the server's mapping for every storage error, and no
/// panic on any code and message).
#[test]
fn client_decoding() {
    let timestamp = (any::<i64>(), prop_oneof![0i32..1_000_000_000, any::<i32>()])
        .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos });
    let event = (
        prop_oneof![
            any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
            odd_text(40)
        ],
        odd_text(8),
        prop::option::of(position()),
        prop::option::of(timestamp),
    )
        .prop_map(|(event_id, event_type, position, date_created)| pb::Event {
            event_id,
            event_type,
            data: "{}".into(),
            metadata: "{}".into(),
            position,
            date_created,
        });
    // Fields are request paths (`events[2].data`): they never hold spaces.
    let field = "[a-z_]{1,8}(\\[[0-9]\\])?(\\.[a-z_]{1,8})?";
    let error = (
        0u8..9,
        odd_text(20),
        position(),
        position(),
        any::<u128>(),
        field,
    )
        .prop_map(|(kind, text, a, b, id, field)| match kind {
            0 => StoreError::Invalid(orisun_core::Invalid::new(field, text)),
            1 => StoreError::UnknownBoundary { name: text },
            2 => StoreError::ConditionFailed {
                expected: a.into(),
                actual: b.into(),
            },
            3 => StoreError::DuplicateEvents {
                event_ids: vec![Uuid::from_u128(id), Uuid::from_u128(id ^ 1)],
            },
            4 => StoreError::LeaseLost { name: text },
            5 => StoreError::Unavailable { reason: text },
            6 => StoreError::Unauthenticated { reason: text },
            7 => StoreError::PermissionDenied { reason: text },
            _ => StoreError::Internal { reason: text },
        });
    let raw_status = (0i32..20, odd_text(40));
    fuzz(
        "client_decoding",
        (event, error, raw_status, any::<i64>()),
        |(e, error, (code, message), count)| {
            match client::stored_event(e.clone()) {
                Ok(stored) => {
                    let back = pb::Event::from(stored.clone());
                    let again = client::stored_event(back).map_err(|x| x.to_string())?;
                    if again != stored || stored.event_id.to_string() != e.event_id.to_lowercase() {
                        return Err(format!("event round trip: {stored:?} -> {again:?}"));
                    }
                }
                Err(err) => {
                    let named = ["event_id", "position", "date_created"];
                    if !named.contains(&err.field.as_str()) {
                        return Err(format!("unnamed field: {err}"));
                    }
                }
            }
            let sent = status::status(clone_error(error));
            let decoded = status::store_error(&sent);
            if decoded.to_string() != error.to_string()
                || status::code(&decoded) != status::code(error)
            {
                return Err(format!(
                    "status round trip: {error:?} -> {sent:?} -> {decoded:?}"
                ));
            }
            let _ = status::store_error(&tonic::Status::new(Code::from(*code), message.clone()));
            match client::event_count(pb::GetEventCountResponse { count: *count }) {
                Ok(n) if i64::try_from(n) == Ok(*count) => {}
                Err(_) if *count < 0 => {}
                other => return Err(format!("count {count} read as {other:?}")),
            }
            Ok(())
        },
    );
}

fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Invalid(i) => StoreError::Invalid(i.clone()),
        StoreError::UnknownBoundary { name } => StoreError::UnknownBoundary { name: name.clone() },
        StoreError::ConditionFailed { expected, actual } => StoreError::ConditionFailed {
            expected: *expected,
            actual: *actual,
        },
        StoreError::DuplicateEvents { event_ids } => StoreError::DuplicateEvents {
            event_ids: event_ids.clone(),
        },
        StoreError::LeaseLost { name } => StoreError::LeaseLost { name: name.clone() },
        StoreError::Unavailable { reason } => StoreError::Unavailable {
            reason: reason.clone(),
        },
        StoreError::Unauthenticated { reason } => StoreError::Unauthenticated {
            reason: reason.clone(),
        },
        StoreError::PermissionDenied { reason } => StoreError::PermissionDenied {
            reason: reason.clone(),
        },
        StoreError::Internal { reason } => StoreError::Internal {
            reason: reason.clone(),
        },
    }
}

/// The 2025 API: stream names map to aggregates and back, expected versions follow the
/// numbering, and DCB tags become data fields (or a precise error when the data disagrees).
#[test]
fn legacy_2025_streams_and_tags() {
    let part = prop_oneof![
        3 => "[A-Za-z0-9_-]{1,12}",
        1 => "[A-Za-z0-9/._-]{1,12}",
        1 => odd_text(8),
    ];
    let tags = prop::collection::vec(
        (tag(), any::<bool>()).prop_map(|(t, _)| old::Tag {
            key: t.key,
            value: t.value,
        }),
        0..4,
    );
    let input = (part.clone(), part, any::<i64>(), wire_event(), tags);
    fuzz(
        "legacy_2025_streams_and_tags",
        input,
        |(kind, id, version, e, tags)| {
            if let Ok(aggregate) = orisun_aggregates::AggregateId::new(kind.clone(), id.clone()) {
                let name = v2025::stream_name(kind, id);
                let back = v2025::stream_aggregate("stream", &name)
                    .map_err(|x| format!("{name:?} refused: {x}"))?;
                if back != aggregate {
                    return Err(format!("{aggregate:?} -> {name:?} -> {back:?}"));
                }
            }
            match (v2025::expected_version("v", *version), *version) {
                (Ok(_), v) if v >= -1 => {}
                (Err(x), v) if v < -1 && x.field == "v" => {}
                (other, v) => return Err(format!("expected version {v}: {other:?}")),
            }
            let request = vec![old::EventToSave {
                event_id: e.id.clone(),
                event_type: e.event_type.clone(),
                data: e.data.clone(),
                metadata: e.metadata.clone(),
                tags: tags.clone(),
            }];
            let Ok(base) = NewEvent::from_wire(0, &e.id, &e.event_type, &e.data, &e.metadata)
            else {
                return Ok(());
            };
            match v2025::events_to_save(request) {
                Ok(events) => {
                    let data = &events.first().ok_or("no event")?.data;
                    for t in tags {
                        let held = data.get(&t.key).and_then(orisun_core::tag_text);
                        if t.key.is_empty() || held.as_deref() != Some(t.value.as_str()) {
                            return Err(format!("tag {t:?} not in the data {data:?}"));
                        }
                    }
                    for (k, v) in &base.data {
                        if data.get(k) != Some(v) {
                            return Err(format!("data field {k:?} changed"));
                        }
                    }
                }
                Err(s) => invalid_argument(&s, "events[0].tags[")?,
            }
            Ok(())
        },
    );
}

/// Stored events as a server reads them back keep every field through the wire.
#[test]
fn stored_events_cross_the_wire() {
    let input = (
        wire_event(),
        position(),
        -10_000_000_000i64..10_000_000_000,
        0u32..1_000_000_000,
    );
    fuzz(
        "stored_events_cross_the_wire",
        input,
        |(e, p, secs, nanos)| {
            let Ok(event) = NewEvent::from_wire(0, &e.id, &e.event_type, &e.data, &e.metadata)
            else {
                return Ok(());
            };
            let date_created =
                chrono::DateTime::from_timestamp(*secs, *nanos).ok_or("timestamp in range")?;
            let stored = StoredEvent {
                event_id: event.event_id,
                event_type: event.event_type.clone(),
                data: event.data_json(),
                metadata: event.metadata_json(),
                position: (*p).into(),
                date_created,
            };
            let bytes = pb::Event::from(stored.clone()).encode_to_vec();
            let wire = pb::Event::decode(bytes.as_slice()).map_err(|x| x.to_string())?;
            let back = client::stored_event(wire).map_err(|x| x.to_string())?;
            if back != stored {
                return Err(format!("{stored:?} came back as {back:?}"));
            }
            let criterion = Criterion::default();
            if !criterion.matches(&event.data) {
                return Err("an empty criterion must match every event".into());
            }
            Ok(())
        },
    );
}
