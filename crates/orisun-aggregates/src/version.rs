//! [`ExpectedVersion`]: what an append expects of its aggregate's current version, and the one
//! function that decides whether the expectation holds.

use crate::error::AggregateError;
use crate::id::AggregateId;
use std::fmt;

/// What an append expects of the aggregate's current version (the version of its last event;
/// 0 when it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No expectation: the events go after whatever the aggregate holds when they are appended.
    /// Concurrent `Any` appends to one aggregate all succeed, with distinct versions.
    Any,
    /// The aggregate must have no events yet.
    NoStream,
    /// The aggregate's current version must be exactly this. `Exact(0)` means the same as
    /// [`ExpectedVersion::NoStream`], so `Exact(stream.version())` works for a new aggregate.
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream | Self::Exact(0) => f.write_str("no stream"),
            Self::Exact(n) => write!(f, "version {n}"),
        }
    }
}

impl ExpectedVersion {
    /// Checks the expectation against the aggregate's `actual` current version.
    ///
    /// An `Exact(n)` beyond the current version is an error of the caller, not a race: versions
    /// only grow, so no concurrent append can make it true later.
    pub(crate) fn check(self, aggregate: &AggregateId, actual: u64) -> Result<(), AggregateError> {
        let expected = match self {
            Self::Any => return Ok(()),
            Self::NoStream => 0,
            Self::Exact(n) => n,
        };
        if expected > actual {
            return Err(AggregateError::VersionBeyondHead {
                aggregate: aggregate.clone(),
                expected,
                actual,
            });
        }
        if expected < actual {
            return Err(AggregateError::WrongVersion {
                aggregate: aggregate.clone(),
                expected: self,
                actual,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> AggregateId {
        AggregateId::new("Account", "a").expect("valid")
    }

    #[test]
    fn any_always_holds() {
        assert!(ExpectedVersion::Any.check(&id(), 0).is_ok());
        assert!(ExpectedVersion::Any.check(&id(), 9).is_ok());
    }

    #[test]
    fn no_stream_and_exact_zero_need_an_empty_aggregate() {
        for expected in [ExpectedVersion::NoStream, ExpectedVersion::Exact(0)] {
            assert!(expected.check(&id(), 0).is_ok());
            match expected.check(&id(), 2) {
                Err(AggregateError::WrongVersion { actual: 2, .. }) => {}
                other => panic!("expected a wrong-version error, got {other:?}"),
            }
        }
    }

    #[test]
    fn exact_must_match_and_may_not_be_beyond_the_head() {
        assert!(ExpectedVersion::Exact(3).check(&id(), 3).is_ok());
        match ExpectedVersion::Exact(2).check(&id(), 3) {
            Err(AggregateError::WrongVersion {
                expected: ExpectedVersion::Exact(2),
                actual: 3,
                ..
            }) => {}
            other => panic!("expected a wrong-version error, got {other:?}"),
        }
        match ExpectedVersion::Exact(5).check(&id(), 3) {
            Err(AggregateError::VersionBeyondHead {
                expected: 5,
                actual: 3,
                ..
            }) => {}
            other => panic!("expected a beyond-head error, got {other:?}"),
        }
    }

    #[test]
    fn messages_name_expected_and_actual() {
        let e = ExpectedVersion::Exact(2)
            .check(&id(), 3)
            .expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "aggregate Account/a is at version 3, the append expected version 2"
        );
        let e = ExpectedVersion::Exact(5)
            .check(&id(), 3)
            .expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "invalid argument: expected_version: 5 is beyond the current version 3 of aggregate Account/a"
        );
    }
}
