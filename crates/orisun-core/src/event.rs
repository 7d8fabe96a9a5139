//! Events as they are saved and as they are read back, and the tags an event carries.

use crate::{Invalid, Position};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::borrow::Cow;
use uuid::Uuid;

/// A JSON object, in the key order it was written.
pub type JsonObject = serde_json::Map<String, Value>;

/// The key under which an event's type is written into its data, as Go Orisun does, so that
/// criteria and indexes can select by type like any other field.
pub const EVENT_TYPE_KEY: &str = "eventType";

/// An event ready to be appended: validated, with `eventType` written into its data.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Client-chosen identity; unique per boundary, which makes retried saves idempotent.
    pub event_id: Uuid,
    /// Non-empty type name; also present in `data` under `eventType`.
    pub event_type: String,
    /// The payload, always an object that contains `eventType`.
    pub data: JsonObject,
    /// Free-form metadata; `{}` when the client sent none.
    pub metadata: JsonObject,
}

impl NewEvent {
    /// Validates an event and writes `event_type` into `data["eventType"]` (replacing any value
    /// the client put there).
    pub fn new(
        event_id: Uuid,
        event_type: impl Into<String>,
        mut data: JsonObject,
        metadata: JsonObject,
    ) -> Result<Self, Invalid> {
        let event_type = event_type.into();
        if event_type.is_empty() {
            return Err(Invalid::new("event_type", "must not be empty"));
        }
        if event_type.contains('\0') {
            return Err(Invalid::new("event_type", NUL_REASON));
        }
        if object_has_nul(&data) {
            return Err(Invalid::new("data", NUL_REASON));
        }
        if object_has_nul(&metadata) {
            return Err(Invalid::new("metadata", NUL_REASON));
        }
        data.insert(EVENT_TYPE_KEY.to_owned(), Value::String(event_type.clone()));
        Ok(Self {
            event_id,
            event_type,
            data,
            metadata,
        })
    }

    /// Parses an event as the wire API carries it: the id as text, data and metadata as JSON
    /// text. Empty data means `{}`; empty or `null` metadata means `{}`. Errors name the field as
    /// `events[index].<field>`.
    pub fn from_wire(
        index: usize,
        event_id: &str,
        event_type: &str,
        data: &str,
        metadata: &str,
    ) -> Result<Self, Invalid> {
        let field = |name: &str| format!("events[{index}].{name}");
        let event_id = Uuid::parse_str(event_id)
            .map_err(|_| Invalid::new(field("event_id"), format!("{event_id:?} is not a UUID")))?;
        if event_type.is_empty() {
            return Err(Invalid::new(field("event_type"), "must not be empty"));
        }
        let data = parse_object(data, false).map_err(|r| Invalid::new(field("data"), r))?;
        let metadata =
            parse_object(metadata, true).map_err(|r| Invalid::new(field("metadata"), r))?;
        Self::new(event_id, event_type, data, metadata)
            .map_err(|e| Invalid::new(field(&e.field), e.reason))
    }

    /// Returns the data as JSON text.
    pub fn data_json(&self) -> String {
        object_json(&self.data)
    }

    /// Returns the metadata as JSON text.
    pub fn metadata_json(&self) -> String {
        object_json(&self.metadata)
    }

    /// Returns the hashes of the tags this event can be found by (see [`event_tags`]).
    pub fn tag_hashes(&self) -> Vec<TagHash> {
        let mut hashes: Vec<TagHash> = event_tags(&self.data)
            .map(|(k, v)| tag_hash(k, &v))
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        hashes
    }
}

/// Returns `object` as compact JSON text, without copying it into a `Value` first.
fn object_json(object: &JsonObject) -> String {
    serde_json::to_string(object).expect("a JSON object with string keys always serializes")
}

/// Why text with NUL characters is refused: PostgreSQL cannot store them in text or `jsonb`, and
/// every backend must accept the same events.
const NUL_REASON: &str = "must not contain the NUL character (\\u0000)";

fn object_has_nul(object: &JsonObject) -> bool {
    object
        .iter()
        .any(|(k, v)| k.contains('\0') || value_has_nul(v))
}

fn value_has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(value_has_nul),
        Value::Object(object) => object_has_nul(object),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn parse_object(text: &str, null_is_empty: bool) -> Result<JsonObject, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || (null_is_empty && trimmed == "null") {
        return Ok(JsonObject::new());
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!("must be a JSON object, got {}", json_kind(&other))),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An event read back from a boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The id the client gave the event.
    pub event_id: Uuid,
    /// The event's type (equal to `data["eventType"]`).
    pub event_type: String,
    /// The payload as JSON object text.
    pub data: String,
    /// The metadata as JSON object text.
    pub metadata: String,
    /// Where the event sits in its boundary's log.
    pub position: Position,
    /// When the event was appended, in UTC.
    pub date_created: DateTime<Utc>,
}

/// Returns the `(key, text)` tags of an event's data: every top-level field whose value is a
/// string (its text as-is), a number (its JSON text) or a boolean (`true`/`false`). Null,
/// array and object values are not matchable by criteria.
pub fn event_tags(data: &JsonObject) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
    data.iter()
        .filter_map(|(k, v)| tag_text(v).map(|t| (k.as_str(), t)))
}

/// Returns the text a tag compares a JSON value against, or `None` when the value cannot match.
pub fn tag_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A 128-bit hash of one `key = value` tag, the unit of the backends' tag index.
///
/// 128 bits make a collision between two distinct tags of one boundary negligible (the
/// birthday bound for 10^9 distinct tags is about 10^-21), so the index is exact in practice
/// while its entries stay small and fixed-size whatever the length of the value.
pub type TagHash = [u8; 16];

/// Hashes a tag with XXH3-128. The key and value are separated by a 0xFF byte, which never
/// occurs in UTF-8, so no two distinct `(key, value)` pairs hash the same input.
pub fn tag_hash(key: &str, value: &str) -> TagHash {
    let mut input = Vec::with_capacity(key.len() + value.len() + 1);
    input.extend_from_slice(key.as_bytes());
    input.push(0xFF);
    input.extend_from_slice(value.as_bytes());
    xxhash_rust::xxh3::xxh3_128(&input).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> JsonObject {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn writes_event_type_into_data() {
        let e = NewEvent::from_wire(
            0,
            "0191b5e0-0000-7000-8000-000000000001",
            "Deposited",
            r#"{"eventType":"spoofed","account":"a1"}"#,
            "",
        )
        .expect("valid");
        assert_eq!(e.data["eventType"], json!("Deposited"));
        assert_eq!(e.data_json(), r#"{"eventType":"Deposited","account":"a1"}"#);
        assert_eq!(e.metadata_json(), "{}");
    }

    #[test]
    fn reports_each_bad_field() {
        let id = "0191b5e0-0000-7000-8000-000000000001";
        let cases = [
            ("nope", "T", "{}", "", "events[3].event_id"),
            (id, "", "{}", "", "events[3].event_type"),
            (id, "T", "[1]", "", "events[3].data"),
            (id, "T", "{", "", "events[3].data"),
            (id, "T", "null", "", "events[3].data"),
            (id, "T", "{}", "5", "events[3].metadata"),
            (id, "T", "{}", "{x", "events[3].metadata"),
            (id, "T\u{0}", "{}", "", "events[3].event_type"),
            (id, "T", r#"{"a":["\u0000"]}"#, "", "events[3].data"),
            (id, "T", "{}", r#"{"k\u0000":1}"#, "events[3].metadata"),
        ];
        for (id, ty, data, meta, field) in cases {
            let err = NewEvent::from_wire(3, id, ty, data, meta).expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
        assert!(NewEvent::from_wire(0, id, "T", "", "null").is_ok());
    }

    #[test]
    fn numbers_keep_their_exact_value() {
        // Found by the event JSON fuzz target: without exact float parsing this number came
        // back one unit in the last place off (...163e-199), so the stored event differed.
        let e = NewEvent::from_wire(
            0,
            "0191b5e0-0000-7000-8000-000000000001",
            "T",
            r#"{"a":-1.8210771867041622e-199,"b":1.985162898780373e-211}"#,
            "",
        )
        .expect("valid");
        assert_eq!(
            e.data_json(),
            r#"{"a":-1.8210771867041622e-199,"b":1.985162898780373e-211,"eventType":"T"}"#
        );
    }

    #[test]
    fn tags_cover_scalars_only() {
        let data = obj(json!({"s":"x","n":12,"f":1.5,"b":true,"z":null,"a":[1],"o":{}}));
        let tags: Vec<(String, String)> = event_tags(&data)
            .map(|(k, v)| (k.to_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            tags,
            vec![
                ("s".into(), "x".into()),
                ("n".into(), "12".into()),
                ("f".into(), "1.5".into()),
                ("b".into(), "true".into())
            ]
        );
    }

    #[test]
    fn tag_hash_separates_key_and_value() {
        assert_ne!(tag_hash("ab", "c"), tag_hash("a", "bc"));
        assert_eq!(tag_hash("k", "v"), tag_hash("k", "v"));
    }
}
