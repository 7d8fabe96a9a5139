//! Boundary names: the identifiers of independent event logs.

use crate::Invalid;
use std::fmt;

/// A validated boundary name: 1 to 63 characters, `[A-Za-z_][A-Za-z0-9_]*`.
///
/// The rule is PostgreSQL's identifier rule, enforced for every backend so that a boundary can
/// move between backends and so that a name can safely prefix SQL object names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BoundaryName(String);

impl BoundaryName {
    /// Longest name PostgreSQL keeps without truncation.
    pub const MAX_LEN: usize = 63;

    /// Validates `name` as a boundary name.
    pub fn new(name: impl Into<String>) -> Result<Self, Invalid> {
        let name = name.into();
        validate_identifier("boundary", &name)?;
        Ok(Self(name))
    }

    /// Returns the name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks the identifier rule shared by boundary, index and schema names.
pub(crate) fn validate_identifier(field: &str, name: &str) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if name.len() > BoundaryName::MAX_LEN {
        return Err(Invalid::new(
            field,
            format!(
                "{name:?} is longer than {} characters",
                BoundaryName::MAX_LEN
            ),
        ));
    }
    let mut chars = name.chars();
    let first = chars.next().expect("name is not empty");
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(Invalid::new(
            field,
            format!("{name:?} must start with a letter or underscore"),
        ));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Invalid::new(
            field,
            format!("{name:?} may contain only letters, digits and underscores"),
        ));
    }
    Ok(())
}

impl fmt::Display for BoundaryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for BoundaryName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_identifiers() {
        for ok in ["a", "_", "orisun_admin", "A1_b2", &"x".repeat(63)] {
            assert!(BoundaryName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_non_identifiers() {
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a.b",
            "é",
            "a;drop",
            &"x".repeat(64),
        ] {
            let err = BoundaryName::new(bad).expect_err(bad);
            assert_eq!(err.field, "boundary");
        }
    }
}
