//! Pub/sub messaging, the 2024 Orisun feature: messages published on a subject are delivered
//! live to subscriber groups. Subscribers that share a consumer name form a group whose members
//! compete for messages (each message goes to one member); every group gets every message.
//!
//! Two implementations share these semantics: [`NatsPubSub`] (core NATS queue groups, shared by
//! every node connected to the same NATS) and [`LocalPubSub`] (in-process, for a single node
//! without NATS).
//!
//! Delivery is **live and at most once**, as in Go Orisun (whose consumers were `DeliverNew`
//! and `AckNone`): a message published while a group has no member is not kept for it, and a
//! member that falls too far behind loses messages rather than slowing the publisher down. Use
//! the event store itself (catch-up subscriptions, or the JetStream event streams) when every
//! message must be delivered.

mod local;
mod nats;

pub use local::{LocalPubSub, DEFAULT_MEMBER_BUFFER};
pub use nats::{NatsPubSub, SUBJECT_PREFIX};

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use std::pin::Pin;

/// Longest subject accepted, in bytes.
pub const MAX_SUBJECT_LEN: usize = 1_024;
/// Longest consumer name accepted, in bytes.
pub const MAX_CONSUMER_NAME_LEN: usize = 256;
/// Longest message id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Largest message body accepted by [`LocalPubSub`] (the NATS server enforces its own
/// `max_payload`, 1 MiB by default).
pub const DEFAULT_MAX_PAYLOAD: usize = 1_048_576;

/// A message as subscribers receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The id the publisher gave it (or the one generated when it gave none).
    pub id: String,
    /// The subject it was published on (useful with wildcard subscriptions).
    pub subject: String,
    /// The body, opaque bytes.
    pub data: Bytes,
}

/// What went wrong in a pub/sub call.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// An argument broke a rule; nothing was published or subscribed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field (`subject`, `consumer_name`, `id`).
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The message body is larger than the transport accepts.
    #[error("message of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The largest accepted.
        max: usize,
    },
    /// The transport cannot be reached or refused the call for a transient reason.
    #[error("pub/sub unavailable: {reason}")]
    Unavailable {
        /// What the transport reported.
        reason: String,
    },
}

impl PubSubError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn unavailable(reason: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            reason: reason.to_string(),
        }
    }
}

/// The messages of one subscription; it ends when the transport gives up (after yielding an
/// error) and stops the subscription when dropped.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<Message, PubSubError>> + Send>>;

/// Publishes messages to subjects and delivers them to subscriber groups.
#[async_trait]
pub trait PubSub: Send + Sync + 'static {
    /// Publishes `data` on `subject` (no wildcards) with message id `id` (generated when
    /// empty). Returns once the transport has accepted it; delivery is at most once.
    async fn publish(&self, subject: &str, id: &str, data: Bytes) -> Result<(), PubSubError>;

    /// Joins the group `consumer_name` of `subject` (which may use the NATS wildcards `*`, one
    /// token, and `>`, the rest) and returns the messages given to this member.
    async fn subscribe(
        &self,
        subject: &str,
        consumer_name: &str,
    ) -> Result<MessageStream, PubSubError>;
}

/// Validates a subject: non-empty, at most [`MAX_SUBJECT_LEN`] bytes, `.`-separated non-empty
/// tokens without whitespace or control characters. Wildcards (`*` as a whole token, `>` as the
/// whole last token) are accepted only when `wildcards` is true, and never inside a token.
pub fn validate_subject(subject: &str, wildcards: bool) -> Result<(), PubSubError> {
    if subject.is_empty() {
        return Err(PubSubError::invalid("subject", "must not be empty"));
    }
    if subject.len() > MAX_SUBJECT_LEN {
        return Err(PubSubError::invalid(
            "subject",
            format!("is longer than {MAX_SUBJECT_LEN} bytes"),
        ));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(PubSubError::invalid(
                "subject",
                format!("{subject:?} has an empty token (tokens are separated by '.')"),
            ));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(PubSubError::invalid(
                "subject",
                format!("{subject:?} contains whitespace or a control character"),
            ));
        }
        let is_last = i + 1 == tokens.len();
        match *token {
            "*" | ">" if !wildcards => {
                return Err(PubSubError::invalid(
                    "subject",
                    format!("{subject:?} contains a wildcard; publish to a concrete subject"),
                ))
            }
            ">" if !is_last => {
                return Err(PubSubError::invalid(
                    "subject",
                    format!("{subject:?}: '>' may only be the last token"),
                ))
            }
            "*" | ">" => {}
            t if t.contains(['*', '>']) => {
                return Err(PubSubError::invalid(
                    "subject",
                    format!("{subject:?}: '*' and '>' must be whole tokens"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Validates a consumer name: non-empty, at most [`MAX_CONSUMER_NAME_LEN`] bytes, no
/// whitespace, control characters, `.`, `*` or `>` (it must be a single NATS token).
pub fn validate_consumer_name(name: &str) -> Result<(), PubSubError> {
    if name.is_empty() {
        return Err(PubSubError::invalid("consumer_name", "must not be empty"));
    }
    if name.len() > MAX_CONSUMER_NAME_LEN {
        return Err(PubSubError::invalid(
            "consumer_name",
            format!("is longer than {MAX_CONSUMER_NAME_LEN} bytes"),
        ));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>'))
    {
        return Err(PubSubError::invalid(
            "consumer_name",
            format!("{name:?} may not contain whitespace, control characters, '.', '*' or '>'"),
        ));
    }
    Ok(())
}

/// Validates a message id (at most [`MAX_ID_LEN`] bytes, no control characters) and returns
/// it, or a new UUID (v7) when it is empty.
pub fn message_id_or_new(id: &str) -> Result<String, PubSubError> {
    if id.is_empty() {
        return Ok(uuid::Uuid::now_v7().to_string());
    }
    if id.len() > MAX_ID_LEN {
        return Err(PubSubError::invalid(
            "id",
            format!("is longer than {MAX_ID_LEN} bytes"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(PubSubError::invalid("id", "contains a control character"));
    }
    Ok(id.to_owned())
}

/// Returns true when `subject` (concrete) matches `pattern` (possibly with wildcards).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        for ok in ["a", "orders.created", "a-b_c.1", "x.y.z"] {
            validate_subject(ok, false).expect(ok);
        }
        for bad in [
            "", ".a", "a.", "a..b", "a b", "a.*", "a.>", ">", "a\tb", "a\nb",
        ] {
            assert!(validate_subject(bad, false).is_err(), "{bad:?}");
        }
        for ok in ["a.*", "a.>", ">", "*.b", "*.*"] {
            validate_subject(ok, true).expect(ok);
        }
        for bad in ["a.>.b", "a*", "a.b>", "a.*x"] {
            assert!(validate_subject(bad, true).is_err(), "{bad:?}");
        }
        assert!(validate_subject(&"a".repeat(MAX_SUBJECT_LEN + 1), false).is_err());
    }

    #[test]
    fn consumer_names() {
        validate_consumer_name("workers-1_A").expect("valid");
        for bad in ["", "a b", "a.b", "a*", "a>", "a\u{0}"] {
            assert!(validate_consumer_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(message_id_or_new("m1").expect("valid"), "m1");
        assert_eq!(message_id_or_new("").expect("generated").len(), 36);
        assert!(message_id_or_new("a\r\nb").is_err());
        assert!(message_id_or_new(&"x".repeat(MAX_ID_LEN + 1)).is_err());
    }

    #[test]
    fn matching() {
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(!subject_matches("a.b.c", "a.b"));
        assert!(subject_matches("a.*", "a.b"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(subject_matches(">", "a"));
        assert!(subject_matches("*.b", "a.b"));
    }
}
