//! The event browser's API: a page of a boundary's events by position, forwards or backwards,
//! filtered by criteria and event type, and one event with its data and metadata. Admin
//! boundary secrets are redacted ([`crate::admin_boundary::redact`]) as on the wire.

use super::session::Session;
use super::DashboardError;
use crate::admin_boundary::redact;
use axum::extract::{Path, Query as QueryParams};
use axum::Json;
use orisun_core::{
    BoundaryName, Criterion, Direction, Invalid, Position, Query, ReadRequest, StoredEvent, Tag,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// The tag that holds an event's type (as on the wire).
pub const EVENT_TYPE_TAG: &str = "eventType";

/// The page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;

/// Parses criteria as typed in the filter box: criteria separated by `;` (any may match),
/// each a `,`-separated list of `key=value` tags (all must match), e.g.
/// `customer=7,kind=gold; order=42`. Adds `eventType=<event_type>` to every criterion when an
/// event type is given. Empty input matches every event.
pub fn parse_filter(criteria: &str, event_type: &str) -> Result<Query, Invalid> {
    let mut parsed = Vec::new();
    for (i, text) in criteria.split(';').enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let mut tags = Vec::new();
        for tag in text.split(',') {
            let tag = tag.trim();
            let (key, value) = tag.split_once('=').ok_or_else(|| {
                Invalid::new(
                    format!("criteria[{i}]"),
                    format!("{tag:?} is not key=value"),
                )
            })?;
            let key = key.trim();
            if key.is_empty() {
                return Err(Invalid::new(
                    format!("criteria[{i}]"),
                    format!("{tag:?} has an empty key"),
                ));
            }
            tags.push(Tag::new(key, value.trim()));
        }
        parsed.push(Criterion::new(tags));
    }
    let event_type = event_type.trim();
    if !event_type.is_empty() {
        let type_tag = Tag::new(EVENT_TYPE_TAG, event_type);
        if parsed.is_empty() {
            parsed.push(Criterion::new([type_tag]));
        } else {
            for criterion in &mut parsed {
                criterion.tags.push(type_tag.clone());
            }
        }
    }
    Ok(Query::new(parsed))
}

/// Parses a position written `commit:prepare`.
pub fn parse_position(field: &str, text: &str) -> Result<Position, Invalid> {
    let bad = || Invalid::new(field, format!("{text:?} is not commit:prepare"));
    let (commit, prepare) = text.split_once(':').ok_or_else(bad)?;
    let commit = commit.trim().parse::<i64>().map_err(|_| bad())?;
    let prepare = prepare.trim().parse::<i64>().map_err(|_| bad())?;
    Ok(Position::new(commit, prepare))
}

/// The position right after `p` (a forward page that must not repeat `p`).
fn after(p: Position) -> Position {
    Position::new(p.commit, p.prepare.saturating_add(1))
}

/// The position right before `p` (a backward page that must not repeat `p`).
fn before(p: Position) -> Position {
    if p.prepare > 0 {
        Position::new(p.commit, p.prepare - 1)
    } else {
        Position::new(p.commit - 1, i64::MAX)
    }
}

/// Parses a boundary name from the path.
pub fn boundary(name: &str) -> Result<BoundaryName, Invalid> {
    BoundaryName::new(name).map_err(|e| Invalid::new("boundary", e.reason))
}

/// An event as the pages show it: data and metadata as JSON values.
pub fn event_json(event: &StoredEvent) -> Value {
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(json!(text));
    json!({
        "position": {"commit": event.position.commit, "prepare": event.position.prepare},
        "event_id": event.event_id.to_string(),
        "event_type": event.event_type,
        "date_created": event.date_created.to_rfc3339(),
        "data": parse(&event.data),
        "metadata": parse(&event.metadata),
    })
}

/// What a page asks for.
#[derive(Debug, Deserialize, Default)]
pub struct PageParams {
    /// `newer` (ascending from `from`, exclusive) or `older` (descending, exclusive); without
    /// `from`, `older` starts at the newest event and `newer` at the oldest.
    #[serde(default)]
    pub dir: Option<String>,
    /// `commit:prepare` to page from (exclusive).
    #[serde(default)]
    pub from: Option<String>,
    /// Page size (1 to 1,000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Criteria, see [`parse_filter`].
    #[serde(default)]
    pub criteria: Option<String>,
    /// Event type.
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
}

/// `GET /api/events/{boundary}`: one page, always shown newest first.
pub async fn page(
    session: Session,
    Path(name): Path<String>,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Json<Value>, DashboardError> {
    let boundary = boundary(&name)?;
    let query = parse_filter(
        params.criteria.as_deref().unwrap_or_default(),
        params.event_type.as_deref().unwrap_or_default(),
    )?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=1_000).contains(&limit) {
        return Err(Invalid::new("limit", "must be between 1 and 1000").into());
    }
    let from = params
        .from
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| parse_position("from", s))
        .transpose()?;
    let newer = match params.dir.as_deref().unwrap_or("older") {
        "older" => false,
        "newer" => true,
        other => {
            return Err(Invalid::new("dir", format!("{other:?} is not older or newer")).into())
        }
    };
    let request = ReadRequest {
        query,
        from: from.map(|p| if newer { after(p) } else { before(p) }),
        direction: if newer {
            Direction::Asc
        } else {
            Direction::Desc
        },
        limit,
    };
    let dash = &session.dash;
    let mut events = dash.store.read(&boundary, &request).await?;
    if newer {
        events.reverse();
    }
    let admin = dash.auth.admin_boundary();
    let events: Vec<Value> = events
        .into_iter()
        .map(|e| event_json(&redact(&boundary, admin, e)))
        .collect();
    Ok(Json(
        json!({"boundary": boundary.as_str(), "events": events}),
    ))
}

/// `GET /api/events/{boundary}/{commit}/{prepare}`: one event.
pub async fn one(
    session: Session,
    Path((name, commit, prepare)): Path<(String, i64, i64)>,
) -> Result<Json<Value>, DashboardError> {
    let boundary = boundary(&name)?;
    let position = Position::new(commit, prepare);
    let dash = &session.dash;
    let found = dash
        .store
        .read(&boundary, &ReadRequest::forward(Some(position), 1))
        .await?
        .into_iter()
        .next()
        .filter(|e| e.position == position)
        .ok_or_else(|| {
            tonic::Status::not_found(format!("no event at {commit}:{prepare} in {name}"))
        })?;
    let event = redact(&boundary, dash.auth.admin_boundary(), found);
    Ok(Json(event_json(&event)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_like_wire_criteria() {
        assert_eq!(parse_filter("", ""), Ok(Query::all()));
        let q = parse_filter("customer=7, kind = gold; order=42", "OrderPlaced").expect("valid");
        assert_eq!(
            q,
            Query::new([
                Criterion::new([
                    Tag::new("customer", "7"),
                    Tag::new("kind", "gold"),
                    Tag::new("eventType", "OrderPlaced"),
                ]),
                Criterion::new([
                    Tag::new("order", "42"),
                    Tag::new("eventType", "OrderPlaced")
                ]),
            ])
        );
        assert_eq!(
            parse_filter("", "X"),
            Ok(Query::new([Criterion::new([Tag::new("eventType", "X")])]))
        );
        let e = parse_filter("a=1; nonsense", "").expect_err("not a tag");
        assert_eq!(e.field, "criteria[1]");
        assert_eq!(
            parse_filter("=1", "").expect_err("empty key").field,
            "criteria[0]"
        );
    }

    #[test]
    fn positions_parse_and_step() {
        assert_eq!(parse_position("from", "3:4"), Ok(Position::new(3, 4)));
        assert!(parse_position("from", "3").is_err());
        assert!(parse_position("from", "a:1").is_err());
        assert_eq!(after(Position::new(3, 4)), Position::new(3, 5));
        assert_eq!(before(Position::new(3, 4)), Position::new(3, 3));
        assert_eq!(before(Position::new(3, 0)), Position::new(2, i64::MAX));
        assert!(before(Position::new(3, 0)) < Position::new(3, 0));
    }
}
