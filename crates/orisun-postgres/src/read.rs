//! Reads: pages of the log (whole or by criteria), the latest event per criterion, the head.
//!
//! Each read is one statement, so it sees one snapshot; since writers assign positions under a
//! lock held through commit, every snapshot holds a gap-free prefix of the log.

use crate::append::position_of;
use crate::db::{Exec, Param};
use crate::sql::BoundarySql;
use orisun_core::{Criterion, Direction, Position, ReadRequest, StoredEvent};
use orisun_store::LatestByCriteria;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Error, Row};
use uuid::Uuid;

/// Decodes the columns of [`crate::sql::EVENT_COLUMNS`], starting at column `at`.
fn event_from_row(row: &Row, at: usize) -> Result<StoredEvent, Error> {
    let CompactJson(data) = row.try_get(at + 4)?;
    let CompactJson(metadata) = row.try_get(at + 5)?;
    Ok(StoredEvent {
        position: position_of(row, at, at + 1)?,
        event_id: row.try_get(at + 2)?,
        event_type: row.try_get(at + 3)?,
        data,
        metadata,
        date_created: row.try_get(at + 6)?,
    })
}

/// A `jsonb` column as compact JSON text. PostgreSQL sends `jsonb` as its text form (after a
/// version byte), which is valid JSON with a space after every `:` and `,`; dropping the
/// whitespace outside strings is a fraction of the cost of parsing it into a tree and printing
/// it again, and keeps numbers exactly as stored.
struct CompactJson(String);

impl<'a> FromSql<'a> for CompactJson {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, text)) => text,
                _ => return Err("unsupported jsonb binary format version".into()),
            }
        } else {
            raw
        };
        Ok(Self(String::from_utf8(compact_json(text))?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// Removes the insignificant whitespace of well-formed JSON text. Works on bytes: the bytes of
/// a multi-byte UTF-8 character are never ASCII, so they are copied as they are.
fn compact_json(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            continue;
        }
        out.push(b);
    }
    out
}

/// Splits criteria into the shape of their SQL (hashes per criterion) and the hashes.
fn shape_and_hashes<'c>(criteria: impl Iterator<Item = &'c Criterion>) -> (Vec<usize>, Vec<Uuid>) {
    let mut shape = Vec::new();
    let mut hashes = Vec::new();
    for criterion in criteria {
        let h = criterion.tag_hashes();
        shape.push(h.len());
        hashes.extend(h.into_iter().map(Uuid::from_bytes));
    }
    (shape, hashes)
}

/// Reads one page. The request must have been validated.
pub(crate) async fn read(
    exec: Exec<'_>,
    sql: &BoundarySql,
    request: &ReadRequest,
) -> Result<Vec<StoredEvent>, Error> {
    let ascending = request.direction == Direction::Asc;
    let from = request.from.unwrap_or(if ascending {
        Position::new(i64::MIN, i64::MIN)
    } else {
        Position::new(i64::MAX, i64::MAX)
    });
    let limit = i64::from(request.limit);
    let mut params: Vec<Param<'_>> = vec![
        (&from.commit, Type::INT8),
        (&from.prepare, Type::INT8),
        (&limit, Type::INT8),
    ];
    let rows = if request.query.matches_all() {
        let text = if ascending {
            &sql.read_all_asc
        } else {
            &sql.read_all_desc
        };
        exec.query(text, &params).await?
    } else {
        let (shape, hashes) = shape_and_hashes(request.query.criteria.iter());
        params.extend(hashes.iter().map(|h| (h as _, Type::UUID)));
        exec.query(&sql.read_by_criteria(&shape, ascending), &params)
            .await?
    };
    rows.iter().map(|r| event_from_row(r, 0)).collect()
}

/// Reads the latest event of each criterion in one statement. The criteria must have been
/// validated (`rules::validate_criteria`: each has at least one tag).
pub(crate) async fn latest_by_criteria(
    exec: Exec<'_>,
    sql: &BoundarySql,
    criteria: &[Criterion],
) -> Result<LatestByCriteria, Error> {
    let (shape, hashes) = shape_and_hashes(criteria.iter());
    let params: Vec<Param<'_>> = hashes.iter().map(|h| (h as _, Type::UUID)).collect();
    let rows = exec.query(&sql.latest_by_criteria(&shape), &params).await?;
    let mut events: Vec<Option<StoredEvent>> = vec![None; criteria.len()];
    for row in &rows {
        let index: i32 = row.try_get(0)?;
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| events.get_mut(i)) {
            *slot = Some(event_from_row(row, 1)?);
        }
    }
    Ok(LatestByCriteria::new(events))
}

/// Reads the head of the log.
pub(crate) async fn head(exec: Exec<'_>, sql: &BoundarySql) -> Result<Option<Position>, Error> {
    let rows = exec.query(&sql.read_head, &[]).await?;
    rows.first().map(|r| position_of(r, 0, 1)).transpose()
}

#[cfg(test)]
mod tests {
    use super::compact_json;

    fn compact(text: &str) -> String {
        String::from_utf8(compact_json(text.as_bytes())).expect("utf-8")
    }

    #[test]
    fn drops_whitespace_outside_strings_only() {
        assert_eq!(
            compact(r#"{"a": 1, "b c": " x , y ", "d": [1, 2, {"e": null}]}"#),
            r#"{"a":1,"b c":" x , y ","d":[1,2,{"e":null}]}"#
        );
        assert_eq!(
            compact(r#"{"q": "say \"hi\", then \\", "n": "\n\t", "u": "é ü"}"#),
            r#"{"q":"say \"hi\", then \\","n":"\n\t","u":"é ü"}"#
        );
        assert_eq!(compact("{}"), "{}");
        assert_eq!(
            compact(r#"{"big": 123456789012345678901234567890}"#),
            r#"{"big":123456789012345678901234567890}"#
        );
    }

    #[test]
    fn agrees_with_a_json_parser() {
        let text = r#"{"eventType": "E", "s": "a \" b", "nested": {"k": [true, false, 1.5e3]}}"#;
        let parsed: serde_json::Value = serde_json::from_str(text).expect("json");
        let compacted: serde_json::Value = serde_json::from_str(&compact(text)).expect("json");
        assert_eq!(parsed, compacted);
    }
}
