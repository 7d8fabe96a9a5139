//! Dashboard sessions: login and logout, the session cookie and the [`Session`] extractor.
//!
//! The cookie holds a token issued by [`crate::auth::Auth`] (the same kind gRPC clients get in
//! `x-auth-token`), so a session expires like a token (`ORISUN_AUTH_TOKEN_TTL`) and ends on
//! every node as soon as its user's password changes or the user is deleted (the token's
//! password epoch). The cookie is `HttpOnly` (scripts never see it) and `SameSite=Strict`.
//! Logout clears the cookie and remembers the token on this node until it would have expired,
//! so a copy of the cookie is refused here too.

use super::csrf;
use super::{Dashboard, DashboardError, DashboardSlot};
use crate::api_error::ApiError;
use crate::auth::{AuthError, Caller};
use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The name of the session cookie.
pub const COOKIE_NAME: &str = "orisun_session";

/// An authenticated dashboard request: the caller and the token of their session.
pub struct Session {
    /// The running dashboard.
    pub dash: Arc<Dashboard>,
    /// Who is logged in.
    pub caller: Caller,
    /// The session token (the cookie's value).
    pub token: String,
}

impl Session {
    /// Succeeds when the caller holds role ADMIN, else 403 naming the role.
    pub fn require_admin(&self) -> Result<(), DashboardError> {
        self.caller
            .require_any(&[crate::auth::Role::Admin])
            .map_err(DashboardError::from)
    }
}

impl FromRequestParts<DashboardSlot> for Session {
    type Rejection = DashboardError;

    async fn from_request_parts(
        parts: &mut Parts,
        slot: &DashboardSlot,
    ) -> Result<Self, Self::Rejection> {
        let dash = slot.get()?;
        let token = cookie(&parts.headers, COOKIE_NAME).ok_or(AuthError::Missing)?;
        let caller = authenticate(&dash, &token).await?;
        Ok(Session {
            dash,
            caller,
            token,
        })
    }
}

/// Checks a session token: valid, unexpired, not revoked, not logged out here.
pub(super) async fn authenticate(dash: &Dashboard, token: &str) -> Result<Caller, DashboardError> {
    if dash.logged_out.contains(token) {
        return Err(AuthError::Revoked.into());
    }
    Ok(dash.auth.authenticate_token(token).await?)
}

/// Returns the value of cookie `name` from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// Tokens ended by logout on this node, each kept until it would have expired anyway.
#[derive(Default)]
pub struct LoggedOut {
    tokens: Mutex<HashMap<[u8; 32], Instant>>,
}

impl LoggedOut {
    /// Remembers `token` as logged out for `ttl` (the longest it could still be valid).
    pub fn insert(&self, token: &str, ttl: Duration) {
        let now = Instant::now();
        let mut tokens = self.tokens.lock();
        tokens.retain(|_, until| *until > now);
        tokens.insert(digest(token), now + ttl);
    }

    /// Returns true when `token` was logged out and has not expired since.
    pub fn contains(&self, token: &str) -> bool {
        self.tokens
            .lock()
            .get(&digest(token))
            .is_some_and(|until| *until > Instant::now())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Login form.
#[derive(Debug, Deserialize)]
pub struct Login {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// `POST /api/login`: checks the credentials and sets the session cookie. Answers the user and
/// the CSRF token the pages send with every state change.
pub async fn login(
    State(slot): State<DashboardSlot>,
    headers: HeaderMap,
    Json(form): Json<Login>,
) -> Result<Response, DashboardError> {
    // A login is a state change too (login CSRF): only from our own pages.
    csrf::check_origin(&headers)?;
    let dash = slot.get()?;
    let (caller, token) = dash
        .auth
        .authenticate_basic(&form.username, &form.password)
        .await?;
    tracing::info!(username = %caller.username, "dashboard login");
    let ttl = dash.auth.config().token_ttl.as_secs();
    let cookie = format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={ttl}");
    let body = me_body(&caller, &token);
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| ApiError::Denied("bad token".into()))?,
    );
    Ok(response)
}

/// `POST /api/logout`: ends the session (CSRF-checked) and clears the cookie.
pub async fn logout(change: csrf::Change) -> Result<Response, DashboardError> {
    let session = change.0;
    session
        .dash
        .logged_out
        .insert(&session.token, session.dash.auth.config().token_ttl);
    tracing::info!(username = %session.caller.username, "dashboard logout");
    let mut response = Json(json!({"ok": true})).into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("orisun_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(response)
}

/// `GET /api/me`: the logged-in user and the session's CSRF token.
pub async fn me(session: Session) -> Json<Value> {
    Json(me_body(&session.caller, &session.token))
}

fn me_body(caller: &Caller, token: &str) -> Value {
    json!({
        "user_id": caller.user_id,
        "username": caller.username,
        "roles": caller.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "admin": caller.has(crate::auth::Role::Admin),
        "csrf": csrf::token_for(token),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; orisun_session=v1.x.y"),
        );
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, COOKIE_NAME).as_deref(), Some("v1.x.y"));
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
        let mut empty = HeaderMap::new();
        empty.append(COOKIE, HeaderValue::from_static("orisun_session="));
        assert_eq!(cookie(&empty, COOKIE_NAME), None);
    }

    #[tokio::test(start_paused = true)]
    async fn logged_out_tokens_are_forgotten_after_their_lifetime() {
        let out = LoggedOut::default();
        out.insert("t1", Duration::from_secs(10));
        assert!(out.contains("t1"));
        assert!(!out.contains("t2"));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!out.contains("t1"));
        out.insert("t2", Duration::from_secs(10));
        assert_eq!(out.tokens.lock().len(), 1, "expired entries are pruned");
    }
}
