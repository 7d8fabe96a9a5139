//! Names of the SQL objects of a boundary: validated, always quoted, never longer than
//! PostgreSQL keeps.

use orisun_core::{BoundaryName, Invalid};
use std::fmt::Write as _;

/// PostgreSQL truncates identifiers to this many bytes (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;

/// The suffixes of every per-boundary object; the longest decides how long a prefix may be.
const SUFFIXES: [&str; 9] = [
    "_orisun_es_event",
    "_orisun_es_event_pkey",
    "_orisun_es_event_id_key",
    "_orisun_es_event_pos_idx",
    "_orisun_tags",
    "_orisun_tags_pkey",
    "_orisun_head",
    "_orisun_head_pkey",
    "_orisun_head_one_row",
];

/// The longest prefix that leaves room for every suffix.
fn max_prefix() -> usize {
    MAX_IDENTIFIER - SUFFIXES.iter().map(|s| s.len()).max().unwrap_or(0)
}

/// Returns the prefix of a boundary's object names: the boundary name itself when it fits, else
/// its start plus a hash of the whole name, so that two long names never share objects (PostgreSQL
/// would silently truncate them to the same identifier).
pub(crate) fn prefix_for(boundary: &BoundaryName) -> String {
    let name = boundary.as_str();
    let max = max_prefix();
    if name.len() <= max {
        return name.to_owned();
    }
    let hash = xxhash_rust::xxh3::xxh3_64(name.as_bytes());
    // Names are ASCII (validated), so byte slicing is safe.
    format!("{}_{hash:016x}", &name[..max - 17])
}

/// Validates a schema name: the identifier rule of boundary names, minus the names PostgreSQL
/// reserves.
pub(crate) fn validate_schema(schema: &str) -> Result<(), Invalid> {
    BoundaryName::new(schema).map_err(|e| Invalid::new("schema", e.reason))?;
    let lower = schema.to_ascii_lowercase();
    if lower.starts_with("pg_") || lower == "information_schema" {
        return Err(Invalid::new(
            "schema",
            format!("{schema:?} is reserved by PostgreSQL"),
        ));
    }
    Ok(())
}

/// Quotes an identifier. Only called with validated names (letters, digits, underscores), so
/// there is nothing to escape; the quotes keep the case as written.
pub(crate) fn quote(identifier: &str) -> String {
    format!("\"{identifier}\"")
}

/// Returns the NOTIFY channel of a boundary: a fixed-length hash, because a channel name is an
/// identifier (at most 63 bytes) and `schema.boundary` can be longer.
pub(crate) fn channel_for(schema: &str, boundary: &BoundaryName) -> String {
    let key = format!("{schema}.{}", boundary.as_str());
    let hash = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
    let mut channel = String::with_capacity(39);
    channel.push_str("orisun_");
    let _ = write!(channel, "{hash:032x}");
    channel
}

/// The quoted, schema-qualified names of one boundary's objects.
#[derive(Debug, Clone)]
pub(crate) struct ObjectNames {
    /// `"schema"`.
    pub schema: String,
    /// `"schema"."<prefix>_orisun_es_event"`.
    pub events: String,
    /// `"schema"."<prefix>_orisun_tags"`.
    pub tags: String,
    /// `"schema"."<prefix>_orisun_head"`.
    pub head: String,
    /// The template placeholders and their quoted replacements, for the DDL files.
    pub placeholders: Vec<(&'static str, String)>,
}

impl ObjectNames {
    /// Builds the names for a validated schema and a prefix from [`prefix_for`].
    pub(crate) fn new(schema: &str, prefix: &str) -> Self {
        let q = |suffix: &str| quote(&format!("{prefix}{suffix}"));
        let schema_q = quote(schema);
        let placeholders = vec![
            ("{schema}", schema_q.clone()),
            ("{events}", q("_orisun_es_event")),
            ("{events_pkey}", q("_orisun_es_event_pkey")),
            ("{events_id_key}", q("_orisun_es_event_id_key")),
            ("{events_pos_idx}", q("_orisun_es_event_pos_idx")),
            ("{tags}", q("_orisun_tags")),
            ("{tags_pkey}", q("_orisun_tags_pkey")),
            ("{head}", q("_orisun_head")),
            ("{head_pkey}", q("_orisun_head_pkey")),
            ("{head_one_row}", q("_orisun_head_one_row")),
        ];
        Self {
            events: format!("{schema_q}.{}", q("_orisun_es_event")),
            tags: format!("{schema_q}.{}", q("_orisun_tags")),
            head: format!("{schema_q}.{}", q("_orisun_head")),
            schema: schema_q,
            placeholders,
        }
    }

    /// Substitutes the placeholders of a DDL template.
    pub(crate) fn render(&self, template: &str) -> String {
        let mut sql = template.to_owned();
        // Longest placeholders first, so `{events}` never eats into `{events_pkey}`.
        let mut placeholders = self.placeholders.clone();
        placeholders.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        for (placeholder, value) in &placeholders {
            sql = sql.replace(placeholder, value);
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> BoundaryName {
        BoundaryName::new(s).expect("valid")
    }

    #[test]
    fn short_names_are_their_own_prefix() {
        assert_eq!(prefix_for(&name("orders")), "orders");
        let at_limit = "x".repeat(max_prefix());
        assert_eq!(prefix_for(&name(&at_limit)), at_limit);
    }

    #[test]
    fn long_names_get_distinct_hashed_prefixes() {
        let a = format!("{}a", "x".repeat(60));
        let b = format!("{}b", "x".repeat(60));
        let (pa, pb) = (prefix_for(&name(&a)), prefix_for(&name(&b)));
        assert_ne!(pa, pb);
        for p in [&pa, &pb] {
            assert_eq!(p.len(), max_prefix());
            for suffix in SUFFIXES {
                assert!(p.len() + suffix.len() <= MAX_IDENTIFIER);
            }
        }
    }

    #[test]
    fn every_placeholder_is_substituted() {
        let names = ObjectNames::new("s", "b");
        let sql = names.render(include_str!("../migrations/boundary/0001_tables.sql"));
        assert!(!sql.contains('{'), "{sql}");
        assert!(sql.contains(r#""s"."b_orisun_es_event""#));
        // Every object name in the template comes from SUFFIXES, so the length rule covers it.
        for (_, quoted) in names.placeholders.iter().skip(1) {
            let bare = quoted.trim_matches('"').trim_start_matches('b');
            assert!(SUFFIXES.contains(&bare), "{bare}");
        }
    }

    #[test]
    fn schema_names_are_validated() {
        assert!(validate_schema("public").is_ok());
        for bad in ["", "a;b", "pg_catalog", "information_schema", "x\"y"] {
            assert_eq!(validate_schema(bad).expect_err(bad).field, "schema");
        }
    }

    #[test]
    fn channels_are_short_and_distinct() {
        let a = channel_for("public", &name("a"));
        assert_eq!(a.len(), 39);
        assert_ne!(a, channel_for("other", &name("a")));
    }
}
