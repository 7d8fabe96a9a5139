//! The one mapping between storage errors and gRPC statuses, in both directions: a server turns
//! a [`StoreError`] into a [`Status`] with [`status`]; a client turns the status it received
//! back into the same [`StoreError`] with [`store_error`].
//!
//! The wire carries only a code and a message, so decoding reads the variant from the code and
//! its fields from the message text, which [`status`] writes in a fixed shape (Go Orisun's
//! conflict wording included). A status no server of ours would send for a storage error
//! decodes to [`StoreError::Internal`] naming its code, so nothing is silently reinterpreted.

use orisun_core::{Invalid, Position};
use orisun_store::StoreError;
use tonic::{Code, Status};
use uuid::Uuid;

/// Maps a validation error to `INVALID_ARGUMENT`, naming the field (`field: reason`).
pub fn invalid(e: Invalid) -> Status {
    Status::invalid_argument(e.to_string())
}

/// The gRPC code of a storage error.
pub fn code(e: &StoreError) -> Code {
    match e {
        StoreError::Invalid(_) => Code::InvalidArgument,
        StoreError::UnknownBoundary { .. } => Code::FailedPrecondition,
        StoreError::ConditionFailed { .. } => Code::AlreadyExists,
        StoreError::DuplicateEvents { .. } => Code::FailedPrecondition,
        StoreError::LeaseLost { .. } => Code::Aborted,
        StoreError::Unavailable { .. } => Code::Unavailable,
        StoreError::Unauthenticated { .. } => Code::Unauthenticated,
        StoreError::PermissionDenied { .. } => Code::PermissionDenied,
        StoreError::Internal { .. } => Code::Internal,
    }
}

/// Maps a storage error to its gRPC status: [`code`], and the error's text (a validation error
/// without the `invalid argument: ` prefix, as [`invalid`] writes it).
pub fn status(e: StoreError) -> Status {
    match e {
        StoreError::Invalid(invalid) => self::invalid(invalid),
        other => Status::new(code(&other), other.to_string()),
    }
}

/// Decodes a status received from an Orisun server into the storage error it stands for: the
/// inverse of [`status`] for every status that function produces.
///
/// Transport-level failures (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `CANCELLED`,
/// `RESOURCE_EXHAUSTED`) are [`StoreError::Unavailable`]: the call may be retried.
/// `UNAUTHENTICATED` and `PERMISSION_DENIED` (the auth layer's answers) are
/// [`StoreError::Unauthenticated`] and [`StoreError::PermissionDenied`]. Anything else a storage
/// call cannot produce is [`StoreError::Internal`] with the code and message, so the caller
/// sees what the server said.
pub fn store_error(status: &Status) -> StoreError {
    let message = status.message();
    let decoded = match status.code() {
        Code::InvalidArgument => Some(decode_invalid(message)),
        Code::AlreadyExists => decode_conflict(message),
        Code::FailedPrecondition => decode_unknown_boundary(message)
            .or_else(|| decode_duplicates(message))
            .or_else(|| Some(StoreError::Invalid(Invalid::new("request", message)))),
        Code::Aborted => decode_lease_lost(message),
        Code::Unavailable => Some(StoreError::Unavailable {
            reason: strip(message, "storage unavailable: ").to_owned(),
        }),
        Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted => Some(
            StoreError::unavailable(format!("{:?}: {message}", status.code())),
        ),
        Code::Unauthenticated => Some(StoreError::Unauthenticated {
            reason: strip(message, "unauthenticated: ").to_owned(),
        }),
        Code::PermissionDenied => Some(StoreError::PermissionDenied {
            reason: strip(message, "permission denied: ").to_owned(),
        }),
        Code::Internal => Some(StoreError::Internal {
            reason: strip(message, "internal storage error: ").to_owned(),
        }),
        _ => None,
    };
    decoded.unwrap_or_else(|| StoreError::internal(format!("{:?}: {message}", status.code())))
}

fn strip<'a>(message: &'a str, prefix: &str) -> &'a str {
    message.strip_prefix(prefix).unwrap_or(message)
}

/// `field: reason`, as [`Invalid`] displays itself; a message without a field (Go Orisun's
/// "Count cannot be 0") is reported against the request as a whole.
fn decode_invalid(message: &str) -> StoreError {
    let message = strip(message, "invalid argument: ");
    let invalid = match message.split_once(": ") {
        Some((field, reason)) if !field.is_empty() && !field.contains(' ') => {
            Invalid::new(field, reason)
        }
        _ => Invalid::new("request", message),
    };
    StoreError::Invalid(invalid)
}

/// `...StreamVersionConflict: Expected (c, p), Actual (c, p)`.
fn decode_conflict(message: &str) -> Option<StoreError> {
    let rest = message.split_once("Expected ")?.1;
    let (expected, actual) = rest.split_once(", Actual ")?;
    Some(StoreError::ConditionFailed {
        expected: parse_position(expected)?,
        actual: parse_position(actual)?,
    })
}

fn parse_position(text: &str) -> Option<Position> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (commit, prepare) = inner.split_once(", ")?;
    Some(Position::new(commit.parse().ok()?, prepare.parse().ok()?))
}

/// `boundary "name" does not exist`.
fn decode_unknown_boundary(message: &str) -> Option<StoreError> {
    let quoted = message
        .strip_prefix("boundary ")?
        .strip_suffix(" does not exist")?;
    Some(StoreError::UnknownBoundary {
        name: unquote(quoted)?,
    })
}

/// `events already stored in this boundary: id, id`.
fn decode_duplicates(message: &str) -> Option<StoreError> {
    let ids = message.strip_prefix("events already stored in this boundary: ")?;
    let event_ids = ids
        .split(", ")
        .map(Uuid::parse_str)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some(StoreError::DuplicateEvents { event_ids })
}

/// `lease "name" is no longer held by this node`.
fn decode_lease_lost(message: &str) -> Option<StoreError> {
    let quoted = message
        .strip_prefix("lease ")?
        .strip_suffix(" is no longer held by this node")?;
    Some(StoreError::LeaseLost {
        name: unquote(quoted)?,
    })
}

/// Reverses Rust's `{:?}` quoting of a string: `\"`, `\\`, `\'`, `\n`, `\r`, `\t`, `\0` and
/// `\u{..}` (names here are mostly plain identifiers, but a lease name carries a subscriber name,
/// which may hold quotes, backslashes or characters that `{:?}` escapes).
fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '0' => '\0',
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            other => other,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(e: StoreError) -> StoreError {
        store_error(&status(e))
    }

    #[test]
    fn conflict_maps_to_already_exists_with_go_text() {
        let s = status(StoreError::ConditionFailed {
            expected: Position::new(1, 0),
            actual: Position::new(3, 2),
        });
        assert_eq!(s.code(), Code::AlreadyExists);
        assert_eq!(
            s.message(),
            "OptimisticConcurrencyException:StreamVersionConflict: Expected (1, 0), Actual (3, 2)"
        );
    }

    #[test]
    fn every_store_error_survives_the_wire() {
        let ids = vec![Uuid::now_v7(), Uuid::now_v7()];
        let cases = [
            StoreError::invalid("events[2].event_id", "must be a UUID"),
            StoreError::UnknownBoundary {
                name: "orders".into(),
            },
            StoreError::ConditionFailed {
                expected: Position::BEFORE_FIRST,
                actual: Position::new(12, 11),
            },
            StoreError::DuplicateEvents { event_ids: ids },
            StoreError::LeaseLost {
                name: "publisher:orders".into(),
            },
            // Found by the fuzz target of the client's decoding: escapes of `{:?}` came back
            // with their backslash dropped (`\n` as `n`).
            StoreError::LeaseLost {
                name: "subscriber:orders:a\"b\\c\n\t\r\0\u{feff}\u{7f}'".into(),
            },
            StoreError::unavailable("connection refused"),
            StoreError::Unauthenticated {
                reason: "invalid credentials".into(),
            },
            StoreError::PermissionDenied {
                reason: "requires role ADMIN".into(),
            },
            StoreError::internal("index out of step"),
        ];
        for case in cases {
            let text = case.to_string();
            let back = round_trip(case);
            assert_eq!(back.to_string(), text, "{back:?}");
        }
    }

    #[test]
    fn decodes_fields_not_only_text() {
        match round_trip(StoreError::ConditionFailed {
            expected: Position::new(1, 0),
            actual: Position::new(3, 2),
        }) {
            StoreError::ConditionFailed { expected, actual } => {
                assert_eq!(expected, Position::new(1, 0));
                assert_eq!(actual, Position::new(3, 2));
            }
            other => panic!("decoded as {other:?}"),
        }
        match round_trip(StoreError::invalid("query.criteria[0]", "needs a tag")) {
            StoreError::Invalid(i) => {
                assert_eq!(i.field, "query.criteria[0]");
                assert_eq!(i.reason, "needs a tag");
            }
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn statuses_storage_never_sends_are_not_reinterpreted() {
        let e = store_error(&Status::unauthenticated("invalid credentials"));
        assert!(
            matches!(&e, StoreError::Unauthenticated { reason } if reason == "invalid credentials"),
            "{e:?}"
        );
        let e = store_error(&Status::permission_denied("requires role ADMIN"));
        assert!(
            matches!(&e, StoreError::PermissionDenied { reason } if reason == "requires role ADMIN"),
            "{e:?}"
        );
        let e = store_error(&Status::not_found("no such thing"));
        assert!(
            matches!(&e, StoreError::Internal { reason } if reason.contains("NotFound")),
            "{e:?}"
        );
        let e = store_error(&Status::invalid_argument("Count cannot be 0"));
        assert!(
            matches!(&e, StoreError::Invalid(i) if i.field == "request"),
            "{e:?}"
        );
        let e = store_error(&Status::deadline_exceeded("timeout"));
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
        // A conflict text that cannot be parsed is not guessed at.
        let e = store_error(&Status::already_exists("user \"bob\" already exists"));
        assert!(matches!(e, StoreError::Internal { .. }), "{e:?}");
    }
}
