//! [`AuthLayer`]: the tower layer that authenticates every gRPC call.

use super::credentials::AuthError;
use super::{Auth, Caller, TOKEN_HEADER};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::http::{header::AUTHORIZATION, HeaderMap, HeaderValue, Request, Response};
use tonic::Status;
use tower::{Layer, Service};
use tracing::Instrument;

/// Path prefix of the calls that need no credentials (the standard health service).
pub const EXEMPT_PREFIX: &str = "/grpc.health.v1.Health/";

/// Authenticates every call before it reaches the wrapped service (see the [module
/// docs](super)). Use it on the tonic server: `Server::builder().layer(AuthLayer::new(auth))`.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Auth>,
}

impl AuthLayer {
    /// Creates the layer.
    pub fn new(auth: Arc<Auth>) -> Self {
        Self { auth }
    }

    /// The authority behind the layer.
    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around a gRPC router.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Auth>,
}

impl<S> Service<Request<Body>> for AuthService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone is not necessarily ready; keep the one that is (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            if request.uri().path().starts_with(EXEMPT_PREFIX) {
                return inner.call(request).await;
            }
            let checked = authenticate_headers(&auth, request.headers())
                .instrument(tracing::info_span!("auth"))
                .await;
            match checked {
                Ok((caller, token)) => {
                    tracing::trace!(user = %caller.username, path = request.uri().path(),
                        "authenticated");
                    request.extensions_mut().insert(caller);
                    let mut response = inner.call(request).await?;
                    if let Ok(value) = HeaderValue::from_str(&token) {
                        response.headers_mut().insert(TOKEN_HEADER, value);
                    }
                    Ok(response)
                }
                Err(error) => {
                    tracing::debug!(
                        path = request.uri().path(),
                        ?error,
                        "call not authenticated"
                    );
                    Ok(Status::from(error).into_http())
                }
            }
        })
    }
}

/// Authenticates a call from its headers: a valid token first, else Basic credentials (which
/// also win over an expired or revoked token). Returns the caller and the token to send back.
pub async fn authenticate_headers(
    auth: &Auth,
    headers: &HeaderMap,
) -> Result<(Caller, String), AuthError> {
    let token = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    // A token header that is not visible ASCII cannot hold one of our tokens: the caller sent
    // a bad credential, not none (the fuzz target of the auth headers found "missing" here).
    let unreadable_token = headers
        .get(TOKEN_HEADER)
        .is_some_and(|v| v.to_str().is_err());
    let basic = headers.get(AUTHORIZATION);
    let token_error = match token {
        Some(token) => match auth.authenticate_token(token).await {
            Ok(caller) => return Ok((caller, token.to_owned())),
            Err(e @ AuthError::Unavailable(_)) => return Err(e),
            Err(e) => Some(e),
        },
        None if unreadable_token => Some(AuthError::InvalidCredentials),
        None => None,
    };
    match (basic, token_error) {
        (Some(value), _) => {
            let (username, password) = parse_basic(value).ok_or(AuthError::BadFormat)?;
            auth.authenticate_basic(&username, &password).await
        }
        (None, Some(error)) => Err(error),
        (None, None) => Err(AuthError::Missing),
    }
}

/// Parses `Basic base64(username:password)` (scheme case-insensitive).
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).expect("header")
    }

    #[test]
    fn parses_basic_credentials() {
        let enc = STANDARD.encode("admin:pa:ss");
        assert_eq!(
            parse_basic(&header(&format!("Basic {enc}"))),
            Some(("admin".into(), "pa:ss".into()))
        );
        assert_eq!(
            parse_basic(&header(&format!("basic {enc}"))),
            Some(("admin".into(), "pa:ss".into()))
        );
        assert_eq!(parse_basic(&header(&format!("Bearer {enc}"))), None);
        assert_eq!(parse_basic(&header("Basic !!!")), None);
        assert_eq!(
            parse_basic(&header(&format!("Basic {}", STANDARD.encode("nocolon")))),
            None
        );
        assert_eq!(parse_basic(&header("Basic")), None);
    }
}
