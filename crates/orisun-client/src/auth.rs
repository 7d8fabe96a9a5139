//! The session of a client: which credentials a call carries, and the token it keeps.
//!
//! A call carries exactly one of two headers. Without a token (the first call), it sends
//! `authorization: Basic ...`; the server then answers with a fresh token in the response header
//! `x-auth-token`, which every later call sends instead, so the server checks an HMAC rather
//! than a password (argon2) per call. When the server rejects the token with `UNAUTHENTICATED`
//! (expired, or revoked by a password change), the client forgets it and repeats the call once
//! with Basic, which brings a new token. The server echoes the token on every answer; whatever
//! it returns last is kept.
//!
//! This is a small wrapper around each call rather than a tonic interceptor: an interceptor sees
//! only requests, and the token arrives in responses.

use crate::BuildError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use parking_lot::Mutex;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

/// The header of a session token, in requests and responses (the server's `auth::TOKEN_HEADER`).
pub(crate) const TOKEN_HEADER: &str = "x-auth-token";

/// The header of Basic credentials.
const AUTHORIZATION: &str = "authorization";

/// What a call carried, to decide what a rejection means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Basic credentials: a rejection is final (wrong username or password).
    Basic,
    /// This token: a rejection may only mean that it expired.
    Token(AsciiMetadataValue),
    /// Nothing (no credentials and no token yet).
    Nothing,
}

/// Credentials and the current token of one client (shared by its clones).
pub(crate) struct Session {
    /// `Basic base64(username:password)`, when the client has credentials.
    basic: Option<AsciiMetadataValue>,
    /// The token the server returned last.
    token: Mutex<Option<AsciiMetadataValue>>,
}

impl Session {
    /// A session with optional credentials and an optional token obtained earlier.
    pub(crate) fn new(
        credentials: Option<(&str, &str)>,
        token: Option<&str>,
    ) -> Result<Self, BuildError> {
        let basic = credentials
            .map(|(username, password)| {
                if username.is_empty() || username.contains(':') {
                    return Err(BuildError::Credentials(
                        "the username must be non-empty and cannot contain ':'".into(),
                    ));
                }
                let encoded = STANDARD.encode(format!("{username}:{password}"));
                format!("Basic {encoded}")
                    .parse::<AsciiMetadataValue>()
                    .map_err(|_| BuildError::Credentials("not a header value".into()))
            })
            .transpose()?;
        let token = token
            .map(|t| {
                t.parse::<AsciiMetadataValue>().map_err(|_| {
                    BuildError::Credentials("the session token is not a header value".into())
                })
            })
            .transpose()?;
        if basic.is_none() && token.is_none() {
            return Err(BuildError::Credentials(
                "a username and password, or a session token, is required".into(),
            ));
        }
        Ok(Self {
            basic,
            token: Mutex::new(token),
        })
    }

    /// Adds the credentials of a call to `metadata`: the token if there is one and
    /// `force_basic` is false, else Basic.
    pub(crate) fn authorize(&self, metadata: &mut MetadataMap, force_basic: bool) -> Sent {
        if !force_basic {
            if let Some(token) = self.token.lock().clone() {
                metadata.insert(TOKEN_HEADER, token.clone());
                return Sent::Token(token);
            }
        }
        match &self.basic {
            Some(basic) => {
                metadata.insert(AUTHORIZATION, basic.clone());
                Sent::Basic
            }
            None => Sent::Nothing,
        }
    }

    /// Keeps the token a response carries.
    pub(crate) fn observe(&self, metadata: &MetadataMap) {
        if let Some(token) = metadata.get(TOKEN_HEADER) {
            let mut current = self.token.lock();
            if current.as_ref() != Some(token) {
                *current = Some(token.clone());
            }
        }
    }

    /// Handles an `UNAUTHENTICATED` answer to a call that carried `sent`: forgets a rejected
    /// token (unless another call has replaced it meanwhile) and returns true when the call
    /// should be repeated once with Basic.
    pub(crate) fn rejected(&self, sent: &Sent) -> bool {
        let Sent::Token(rejected) = sent else {
            return false;
        };
        let mut current = self.token.lock();
        if current.as_ref() == Some(rejected) {
            *current = None;
        }
        self.basic.is_some()
    }

    /// The current token, if any.
    pub(crate) fn token(&self) -> Option<String> {
        self.token
            .lock()
            .as_ref()
            .and_then(|t| t.to_str().ok())
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(session: &Session, force_basic: bool) -> (Sent, MetadataMap) {
        let mut metadata = MetadataMap::new();
        let sent = session.authorize(&mut metadata, force_basic);
        (sent, metadata)
    }

    fn answer(token: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert(TOKEN_HEADER, token.parse().expect("ascii"));
        metadata
    }

    #[test]
    fn basic_first_then_the_returned_token() {
        let session = Session::new(Some(("admin", "pa:ss")), None).expect("valid");
        let (first, metadata) = sent(&session, false);
        assert_eq!(first, Sent::Basic);
        let basic = metadata
            .get(AUTHORIZATION)
            .expect("basic")
            .to_str()
            .expect("ascii");
        assert_eq!(basic, format!("Basic {}", STANDARD.encode("admin:pa:ss")));
        assert!(metadata.get(TOKEN_HEADER).is_none());

        session.observe(&answer("t1"));
        let (second, metadata) = sent(&session, false);
        assert_eq!(second, Sent::Token("t1".parse().expect("ascii")));
        assert!(metadata.get(AUTHORIZATION).is_none());
        assert_eq!(session.token().as_deref(), Some("t1"));
    }

    #[test]
    fn a_rejected_token_falls_back_to_basic_once() {
        let session = Session::new(Some(("admin", "pw")), Some("old")).expect("valid");
        let (first, _) = sent(&session, false);
        assert!(matches!(first, Sent::Token(_)));
        assert!(session.rejected(&first));
        assert_eq!(session.token(), None);
        let (again, _) = sent(&session, true);
        assert_eq!(again, Sent::Basic);
        // A rejection of Basic is final.
        assert!(!session.rejected(&again));
    }

    #[test]
    fn a_stale_rejection_keeps_a_newer_token() {
        let session = Session::new(Some(("admin", "pw")), Some("old")).expect("valid");
        let (first, _) = sent(&session, false);
        session.observe(&answer("new"));
        assert!(session.rejected(&first));
        assert_eq!(session.token().as_deref(), Some("new"));
    }

    #[test]
    fn a_token_alone_has_no_fallback() {
        let session = Session::new(None, Some("t")).expect("valid");
        let (first, _) = sent(&session, false);
        assert!(!session.rejected(&first));
        let (after, metadata) = sent(&session, false);
        assert_eq!(after, Sent::Nothing);
        assert!(metadata.is_empty());
    }

    #[test]
    fn credentials_are_checked() {
        assert!(Session::new(None, None).is_err());
        assert!(Session::new(Some(("a:b", "pw")), None).is_err());
        assert!(Session::new(Some(("", "pw")), None).is_err());
        assert!(Session::new(None, Some("bad\nvalue")).is_err());
    }
}
