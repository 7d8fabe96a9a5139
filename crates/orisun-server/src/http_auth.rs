//! Who is calling the admin HTTP port: the check of HTTP Basic credentials (or an `x-auth-token`)
//! against the server's users, as an axum extractor.
//!
//! The admin HTTP endpoint starts before authentication does (so `/ready` can say "starting"),
//! hence [`HttpAuth`] is a slot that start-up fills once [`Auth`] runs; until then protected
//! routes answer 503. Other ways to authenticate a browser (session cookies) belong beside
//! [`authenticate`], which is the one place a request's credentials are checked.

use crate::auth::{authenticate_headers, Auth, AuthError, Caller, Role};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, OnceLock};

/// The authority protected admin HTTP routes check credentials with, once start-up has set it.
#[derive(Clone, Default)]
pub struct HttpAuth(Arc<OnceLock<Arc<Auth>>>);

impl HttpAuth {
    /// Sets the authority; later calls are ignored (there is one per server).
    pub fn set(&self, auth: Arc<Auth>) {
        let _ = self.0.set(auth);
    }

    /// Returns the authority, `None` during start-up.
    pub fn get(&self) -> Option<&Arc<Auth>> {
        self.0.get()
    }
}

/// Why an admin HTTP request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpAuthError {
    /// Authentication has not started yet.
    #[error("the server is starting: authentication is not available yet")]
    Starting,
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthenticated(AuthError),
    /// Valid credentials, but the user lacks the role the route needs.
    #[error("permission denied: user {username:?} needs role {role}")]
    Forbidden {
        /// Who called.
        username: String,
        /// The role the route needs.
        role: Role,
    },
}

impl IntoResponse for HttpAuthError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            HttpAuthError::Starting => (StatusCode::SERVICE_UNAVAILABLE, message).into_response(),
            HttpAuthError::Unauthenticated(AuthError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
            }
            HttpAuthError::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="orisun", charset="UTF-8""#),
                )],
                message,
            )
                .into_response(),
            HttpAuthError::Forbidden { .. } => (StatusCode::FORBIDDEN, message).into_response(),
        }
    }
}

/// Checks the credentials of a request: a valid `x-auth-token`, else HTTP Basic, of any user.
pub async fn authenticate(auth: &HttpAuth, headers: &HeaderMap) -> Result<Caller, HttpAuthError> {
    let auth = auth.get().ok_or(HttpAuthError::Starting)?;
    authenticate_headers(auth, headers)
        .await
        .map(|(caller, _token)| caller)
        .map_err(HttpAuthError::Unauthenticated)
}

/// An authenticated caller of an admin HTTP route (any role).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl<S> FromRequestParts<S> for Authenticated
where
    HttpAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = HttpAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = HttpAuth::from_ref(state);
        authenticate(&auth, &parts.headers).await.map(Authenticated)
    }
}

/// An authenticated caller holding the ADMIN role.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Caller);

impl<S> FromRequestParts<S> for AdminCaller
where
    HttpAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = HttpAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        if caller.has(Role::Admin) {
            Ok(AdminCaller(caller))
        } else {
            Err(HttpAuthError::Forbidden {
                username: caller.username,
                role: Role::Admin,
            })
        }
    }
}
