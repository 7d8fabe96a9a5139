//! CSRF protection of every dashboard state change.
//!
//! Two checks, both required: the request's `Origin` (or, without one, `Sec-Fetch-Site`) must
//! be this server itself, and header [`HEADER`] must carry the session's CSRF token. The token
//! is a digest of the session token, which scripts of other sites can neither read (the cookie
//! is HttpOnly) nor guess; our pages get it from `/api/me`. Deriving it keeps it valid on every
//! node of the cluster without shared state.

use super::session::Session;
use super::{DashboardError, DashboardSlot};
use axum::extract::FromRequestParts;
use axum::http::header::{HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The request header that carries the CSRF token.
pub const HEADER: &str = "x-csrf-token";

/// Returns the CSRF token of the session whose token is `session_token`.
pub fn token_for(session_token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"orisun-dashboard-csrf\0");
    hasher.update(session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// Refuses a request sent by a page of another origin: its `Origin` must name the `Host` it
/// was sent to; without `Origin`, a browser's `Sec-Fetch-Site` must say `same-origin` (or
/// `none`, typed by the user). Clients that send neither (scripts, curl) pass this check and
/// still need the CSRF token.
pub fn check_origin(headers: &HeaderMap) -> Result<(), DashboardError> {
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        return match (authority, host) {
            (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => Ok(()),
            _ => Err(DashboardError::Csrf("request from another origin")),
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None | Some("same-origin") | Some("none") => Ok(()),
        Some(_) => Err(DashboardError::Csrf("request from another site")),
    }
}

/// Checks the CSRF token of `headers` against `session`.
pub fn check_token(headers: &HeaderMap, session: &Session) -> Result<(), DashboardError> {
    let sent = headers
        .get(HEADER)
        .map(|v| v.as_bytes())
        .ok_or(DashboardError::Csrf("missing x-csrf-token header"))?;
    let expected = token_for(&session.token);
    if bool::from(sent.ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(DashboardError::Csrf("wrong x-csrf-token"))
    }
}

/// A session whose request passed both CSRF checks: what every state-changing route takes.
pub struct Change(pub Session);

impl FromRequestParts<DashboardSlot> for Change {
    type Rejection = DashboardError;

    async fn from_request_parts(
        parts: &mut Parts,
        slot: &DashboardSlot,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, slot).await?;
        check_origin(&parts.headers)?;
        check_token(&parts.headers, &session)?;
        Ok(Change(session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_be_this_host() {
        let same = headers(&[
            ("host", "127.0.0.1:8991"),
            ("origin", "http://127.0.0.1:8991"),
        ]);
        assert!(check_origin(&same).is_ok());
        for forged in [
            headers(&[
                ("host", "127.0.0.1:8991"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[("host", "127.0.0.1:8991"), ("origin", "null")]),
            headers(&[
                ("host", "127.0.0.1:8991"),
                ("origin", "http://127.0.0.1:8992"),
            ]),
            headers(&[("host", "127.0.0.1:8991"), ("sec-fetch-site", "cross-site")]),
            headers(&[("origin", "http://127.0.0.1:8991")]),
        ] {
            assert!(check_origin(&forged).is_err(), "{forged:?}");
        }
        assert!(check_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(check_origin(&headers(&[])).is_ok(), "non-browser clients");
    }

    #[test]
    fn tokens_differ_per_session() {
        assert_eq!(token_for("a"), token_for("a"));
        assert_ne!(token_for("a"), token_for("b"));
        assert_eq!(token_for("a").len(), 43, "a SHA-256 digest in base64url");
    }
}
