//! Criteria over event data, the append condition, and read requests.

use crate::event::{tag_hash, tag_text, JsonObject, TagHash};
use crate::{Invalid, Position};

/// A `key = value` test on one top-level field of an event's data.
///
/// It matches when the field is a string equal to `value`, or a number or boolean whose JSON
/// text equals `value` (see [`crate::event_tags`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag {
    /// Top-level key of the event data (`a.b` is a literal key, not a path).
    pub key: String,
    /// The text the field must have.
    pub value: String,
}

impl Tag {
    /// Creates a tag.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }

    /// Returns the tag's index hash.
    pub fn hash(&self) -> TagHash {
        tag_hash(&self.key, &self.value)
    }

    fn matches(&self, data: &JsonObject) -> bool {
        data.get(&self.key)
            .and_then(tag_text)
            .is_some_and(|text| text == self.value)
    }
}

/// A conjunction of tags: an event matches when it matches every tag. A criterion without tags
/// matches every event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Criterion {
    /// The tags that must all match.
    pub tags: Vec<Tag>,
}

impl Criterion {
    /// Creates a criterion from tags.
    pub fn new(tags: impl IntoIterator<Item = Tag>) -> Self {
        Self {
            tags: tags.into_iter().collect(),
        }
    }

    /// Returns true when `data` matches every tag.
    pub fn matches(&self, data: &JsonObject) -> bool {
        self.tags.iter().all(|t| t.matches(data))
    }

    /// Returns the distinct hashes of the criterion's tags.
    pub fn tag_hashes(&self) -> Vec<TagHash> {
        let mut hashes: Vec<TagHash> = self.tags.iter().map(Tag::hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        hashes
    }
}

/// A disjunction of criteria: an event matches when it matches any criterion. A query without
/// criteria matches every event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Query {
    /// The alternatives.
    pub criteria: Vec<Criterion>,
}

impl Query {
    /// The query that matches every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Creates a query from criteria.
    pub fn new(criteria: impl IntoIterator<Item = Criterion>) -> Self {
        Self {
            criteria: criteria.into_iter().collect(),
        }
    }

    /// Returns true when the query matches every event (no criteria, or a criterion without
    /// tags), so backends can skip the tag index.
    pub fn matches_all(&self) -> bool {
        self.criteria.is_empty() || self.criteria.iter().any(|c| c.tags.is_empty())
    }

    /// Returns true when `data` matches the query.
    pub fn matches(&self, data: &JsonObject) -> bool {
        self.matches_all() || self.criteria.iter().any(|c| c.matches(data))
    }

    /// Checks that every tag has a non-empty key. `field` names the query in the request.
    pub fn validate(&self, field: &str) -> Result<(), Invalid> {
        for (i, criterion) in self.criteria.iter().enumerate() {
            for (j, tag) in criterion.tags.iter().enumerate() {
                if tag.key.is_empty() {
                    return Err(Invalid::new(
                        format!("{field}.criteria[{i}].tags[{j}].key"),
                        "must not be empty",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The consistency check of an append (Dynamic Consistency Boundary semantics).
///
/// The append fails when some event matching `query` has a position after `after`. A command
/// reads its context (the events matching `query`), remembers the position it read up to, and
/// appends with that position: if nothing relevant was appended since, the append succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppendCondition {
    /// The command's consistency context. Without criteria it covers the whole boundary.
    pub query: Query,
    /// The position the command read its context up to; `{-1,-1}` for an empty context. It must
    /// not be later than the boundary's head.
    pub after: Position,
}

impl AppendCondition {
    /// Creates a condition.
    pub fn new(query: Query, after: Position) -> Self {
        Self { query, after }
    }
}

/// Direction of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// The largest page a read may ask for.
pub const MAX_READ_LIMIT: u32 = 10_000;

/// A page request over a boundary's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Which events to return.
    pub query: Query,
    /// Inclusive bound: ASC returns positions `>= from`, DESC returns positions `<= from`.
    /// `None` starts at the oldest (ASC) or newest (DESC) event.
    pub from: Option<Position>,
    /// Order of the page.
    pub direction: Direction,
    /// Page size, 1 to [`MAX_READ_LIMIT`].
    pub limit: u32,
}

impl ReadRequest {
    /// Reads up to `limit` events of the whole log, oldest first.
    pub fn forward(from: Option<Position>, limit: u32) -> Self {
        Self {
            query: Query::all(),
            from,
            direction: Direction::Asc,
            limit,
        }
    }

    /// Returns a copy with the given query.
    pub fn with_query(mut self, query: Query) -> Self {
        self.query = query;
        self
    }

    /// Returns a copy with the given direction.
    pub fn with_direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// Checks the limit and the query.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.limit == 0 || self.limit > MAX_READ_LIMIT {
            return Err(Invalid::new(
                "count",
                format!("must be between 1 and {MAX_READ_LIMIT}, got {}", self.limit),
            ));
        }
        self.query.validate("query")
    }

    /// Returns true when `position` lies on the requested side of `from`.
    pub fn admits(&self, position: Position) -> bool {
        match (self.from, self.direction) {
            (None, _) => true,
            (Some(from), Direction::Asc) => position >= from,
            (Some(from), Direction::Desc) => position <= from,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: serde_json::Value) -> JsonObject {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn or_across_criteria_and_across_tags() {
        let q = Query::new([
            Criterion::new([Tag::new("a", "1"), Tag::new("b", "x")]),
            Criterion::new([Tag::new("c", "true")]),
        ]);
        assert!(q.matches(&data(json!({"a": 1, "b": "x"}))));
        assert!(!q.matches(&data(json!({"a": 1, "b": "y"}))));
        assert!(q.matches(&data(json!({"c": true}))));
        assert!(!q.matches(&data(json!({"c": "True"}))));
        assert!(!q.matches(&data(json!({"a": [1], "b": "x"}))));
    }

    #[test]
    fn empty_query_or_tagless_criterion_matches_everything() {
        assert!(Query::all().matches(&data(json!({}))));
        let q = Query::new([Criterion::new([Tag::new("a", "1")]), Criterion::default()]);
        assert!(q.matches_all());
        assert!(q.matches(&data(json!({"z": 0}))));
    }

    #[test]
    fn validates_limit_and_keys() {
        let mut r = ReadRequest::forward(None, 0);
        assert_eq!(r.validate().expect_err("0").field, "count");
        r.limit = MAX_READ_LIMIT + 1;
        assert_eq!(r.validate().expect_err("big").field, "count");
        r.limit = MAX_READ_LIMIT;
        assert!(r.validate().is_ok());
        let r = r.with_query(Query::new([Criterion::new([Tag::new("", "v")])]));
        assert_eq!(
            r.validate().expect_err("key").field,
            "query.criteria[0].tags[0].key"
        );
    }
}
