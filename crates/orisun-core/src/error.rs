//! The validation error every layer reports for bad input.

use std::fmt;

/// Describes one invalid input: which field was wrong and why.
///
/// `field` is a path into the request as the caller wrote it (`events[2].event_id`,
/// `query.criteria[0].tags[1].key`), so a client can point at the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Path of the offending field in the request.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Invalid {
    /// Creates an error for `field` with the given reason.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for Invalid {}
