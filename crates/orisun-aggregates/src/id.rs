//! [`AggregateId`]: which aggregate a stream belongs to, and how that identity is written into
//! the data of its events so that the store's tag index finds them.

use orisun_core::{Criterion, Invalid, Tag};
use std::fmt;

/// The data field holding an aggregate event's aggregate type.
pub const AGGREGATE_TYPE_KEY: &str = "aggregateType";
/// The data field holding an aggregate event's aggregate id.
pub const AGGREGATE_ID_KEY: &str = "aggregateId";
/// The data field holding an aggregate event's version (a JSON number, from 1).
pub const AGGREGATE_VERSION_KEY: &str = "aggregateVersion";

/// The longest aggregate type or id accepted, in bytes. Ids are tag values, which have no
/// length limit in the index (they are hashed); this bound only keeps events readable.
pub const MAX_ID_LEN: usize = 1_024;

/// An aggregate: its type (`"Account"`) and its id within that type (`"acc-42"`, a UUID, an
/// e-mail address). Both are non-empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateId {
    kind: String,
    id: String,
}

impl AggregateId {
    /// Validates an aggregate identity: type and id must be non-empty, at most
    /// [`MAX_ID_LEN`] bytes, and free of NUL characters (which PostgreSQL cannot store); the
    /// type must not contain `/`, because the 2025 wire API names a stream `Type/id` and splits
    /// that name at its first `/` (a type `a/b` with id `c` would read back as type `a`, id
    /// `b/c`: another aggregate).
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Result<Self, Invalid> {
        let (kind, id) = (kind.into(), id.into());
        check("aggregate_type", &kind)?;
        if kind.contains('/') {
            return Err(Invalid::new("aggregate_type", "must not contain '/'"));
        }
        check("aggregate_id", &id)?;
        Ok(Self { kind, id })
    }

    /// The aggregate type.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The aggregate id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The criterion that matches exactly this aggregate's events: the condition of every
    /// append to it, and the filter of every read of its stream.
    pub fn criterion(&self) -> Criterion {
        Criterion::new([
            Tag::new(AGGREGATE_TYPE_KEY, self.kind.clone()),
            Tag::new(AGGREGATE_ID_KEY, self.id.clone()),
        ])
    }

    /// The criterion that matches only the event at `version` of this aggregate.
    pub(crate) fn version_criterion(&self, version: u64) -> Criterion {
        let mut criterion = self.criterion();
        criterion
            .tags
            .push(Tag::new(AGGREGATE_VERSION_KEY, version.to_string()));
        criterion
    }
}

impl fmt::Display for AggregateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

fn check(field: &str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(Invalid::new(
            field,
            format!("must be at most {MAX_ID_LEN} bytes, got {}", value.len()),
        ));
    }
    if value.contains('\0') {
        return Err(Invalid::new(field, "must not contain NUL characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_empty_long_and_nul_parts() {
        assert_eq!(
            AggregateId::new("Account", "").expect_err("must fail"),
            Invalid::new("aggregate_id", "must not be empty")
        );
        assert_eq!(
            AggregateId::new("", "a").expect_err("must fail").field,
            "aggregate_type"
        );
        assert!(AggregateId::new("A", "x".repeat(MAX_ID_LEN)).is_ok());
        assert!(AggregateId::new("A", "x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(AggregateId::new("A", "a\0b").is_err());
        // Found by the 2025 API's fuzz target: a type with `/` has no stream name of its own.
        assert_eq!(
            AggregateId::new("a/b", "c").expect_err("must fail"),
            Invalid::new("aggregate_type", "must not contain '/'")
        );
        assert!(AggregateId::new("Account", "a/b").is_ok());
    }

    #[test]
    fn criterion_matches_only_the_aggregate() {
        let id = AggregateId::new("Account", "acc-1").expect("valid");
        let data = |kind: &str, id: &str| {
            json!({AGGREGATE_TYPE_KEY: kind, AGGREGATE_ID_KEY: id, AGGREGATE_VERSION_KEY: 3})
                .as_object()
                .cloned()
                .expect("object")
        };
        assert!(id.criterion().matches(&data("Account", "acc-1")));
        assert!(!id.criterion().matches(&data("Account", "acc-2")));
        assert!(!id.criterion().matches(&data("Order", "acc-1")));
        assert!(id.version_criterion(3).matches(&data("Account", "acc-1")));
        assert!(!id.version_criterion(4).matches(&data("Account", "acc-1")));
    }
}
