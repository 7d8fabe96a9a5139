//! Log positions and their order.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The place of an event in its boundary's log.
///
/// `prepare` is the per-boundary event sequence number (0 for the first event); `commit`
/// identifies the saved batch: the batch's highest sequence number + 1. Positions order
/// lexicographically (`commit`, then `prepare`), which is also commit order and sequence order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    /// Identifies the batch the event was saved in.
    pub commit: i64,
    /// The event's sequence number in its boundary.
    pub prepare: i64,
}

impl Position {
    /// Before the first event: the expected position of an empty context, and a cursor that
    /// reads from the beginning.
    pub const BEFORE_FIRST: Position = Position {
        commit: -1,
        prepare: -1,
    };

    /// Creates a position.
    pub const fn new(commit: i64, prepare: i64) -> Self {
        Self { commit, prepare }
    }

    /// Returns true for `{-1,-1}`, `{0,0}` and anything before them: positions that no event
    /// can have and that mean "the beginning of the log".
    pub fn is_beginning(&self) -> bool {
        *self <= Position::new(0, 0)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.commit, self.prepare)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_lexicographically() {
        assert!(Position::new(1, 0) > Position::BEFORE_FIRST);
        assert!(Position::new(3, 2) > Position::new(3, 1));
        assert!(Position::new(4, 0) > Position::new(3, 2));
        assert!(Position::new(0, 0).is_beginning());
        assert!(Position::BEFORE_FIRST.is_beginning());
        assert!(!Position::new(1, 0).is_beginning());
    }
}
