//! The append rules every backend applies the same way, kept here so that they are written once.

use crate::StoreError;
use orisun_core::{AppendCondition, NewEvent, Position};
use std::collections::HashSet;
use uuid::Uuid;

/// Checks what can be checked without reading the log: a non-empty batch, no event id twice,
/// valid criteria.
pub fn validate_batch(
    events: &[NewEvent],
    condition: Option<&AppendCondition>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::invalid("events", "no events provided"));
    }
    let mut seen = HashSet::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        if !seen.insert(event.event_id) {
            return Err(StoreError::invalid(
                format!("events[{i}].event_id"),
                format!("{} appears more than once in the batch", event.event_id),
            ));
        }
    }
    if let Some(condition) = condition {
        condition.query.validate("query.subsetQuery")?;
    }
    Ok(())
}

/// Rejects an expected position later than the boundary's head: a command cannot have read
/// events that do not exist, so such a position is a client bug, not a conflict.
pub fn validate_expected(expected: Position, head: Position) -> Result<(), StoreError> {
    if expected.is_beginning() || expected <= head {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "query.expected_position",
            format!("{expected} is after the boundary's head {head}"),
        ))
    }
}

/// Returns the positions of a batch of `len` events whose first sequence number is `first`:
/// prepare = sequence, commit = the batch's last sequence + 1.
pub fn batch_positions(first: i64, len: usize) -> impl Iterator<Item = Position> {
    let len = i64::try_from(len).expect("batch length fits i64");
    let commit = first + len;
    (first..first + len).map(move |seq| Position::new(commit, seq))
}

/// Decides what to do when some event ids of a batch are already stored.
///
/// `stored` holds the position of each batch event that is already stored, in batch order
/// (`None` where it is not). Returns `Ok(None)` when none is stored (append normally),
/// `Ok(Some(position))` when the whole batch was stored by one earlier save in the same order
/// (an idempotent retry: report the original position), and an error for a partial overlap.
pub fn classify_retry(
    events: &[NewEvent],
    stored: &[Option<Position>],
) -> Result<Option<Position>, StoreError> {
    debug_assert_eq!(events.len(), stored.len());
    if stored.iter().all(Option::is_none) {
        return Ok(None);
    }
    let found: Vec<Position> = stored.iter().flatten().copied().collect();
    let whole = found.len() == events.len()
        && found.iter().all(|p| p.commit == found[0].commit)
        && found.windows(2).all(|w| w[1].prepare == w[0].prepare + 1);
    if whole {
        return Ok(found.last().copied());
    }
    let event_ids: Vec<Uuid> = events
        .iter()
        .zip(stored)
        .filter(|(_, s)| s.is_some())
        .map(|(e, _)| e.event_id)
        .collect();
    Err(StoreError::DuplicateEvents { event_ids })
}

/// Checks the criteria of a latest-by-criteria request: at least one criterion, each with at
/// least one tag, every tag with a key.
pub fn validate_criteria(criteria: &[orisun_core::Criterion]) -> Result<(), StoreError> {
    if criteria.is_empty() {
        return Err(StoreError::invalid(
            "criteria",
            "at least one criterion is required",
        ));
    }
    for (i, criterion) in criteria.iter().enumerate() {
        if criterion.tags.is_empty() {
            return Err(StoreError::invalid(
                format!("criteria[{i}].tags"),
                "at least one tag is required",
            ));
        }
    }
    orisun_core::Query::new(criteria.iter().cloned())
        .validate("")
        .map_err(|e| StoreError::invalid(e.field.trim_start_matches('.'), e.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_positions_follow_orisun_rule() {
        let p: Vec<Position> = batch_positions(0, 1).collect();
        assert_eq!(p, vec![Position::new(1, 0)]);
        let p: Vec<Position> = batch_positions(1, 3).collect();
        assert_eq!(
            p,
            vec![
                Position::new(4, 1),
                Position::new(4, 2),
                Position::new(4, 3)
            ]
        );
    }

    #[test]
    fn expected_after_head_is_invalid() {
        let head = Position::new(4, 3);
        assert!(validate_expected(Position::BEFORE_FIRST, head).is_ok());
        assert!(validate_expected(Position::new(0, 0), Position::BEFORE_FIRST).is_ok());
        assert!(validate_expected(head, head).is_ok());
        assert!(validate_expected(Position::new(4, 4), head).is_err());
    }
}
