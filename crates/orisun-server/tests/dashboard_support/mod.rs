//! Test support for the dashboard: a small HTTP client (hyper) that keeps the session cookie
//! and sends the CSRF token, as the dashboard's pages do.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;

/// An answer: status, headers and the body as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The `Set-Cookie` header, if any.
    pub fn set_cookie(&self) -> Option<String> {
        self.headers
            .get("set-cookie")
            .map(|v| v.to_str().expect("ascii").to_owned())
    }
}

/// A dashboard client: a base address, an optional session cookie and CSRF token.
#[derive(Clone)]
pub struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Where the admin HTTP server listens.
    pub addr: SocketAddr,
    /// The session cookie's value.
    pub session: Option<String>,
    /// The CSRF token from the login answer.
    pub csrf: Option<String>,
    /// The `Origin` sent with requests (`None`: none sent).
    pub origin: Option<String>,
}

impl Browser {
    /// A client without a session, sending our own origin like the pages do.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            addr,
            session: None,
            csrf: None,
            origin: Some(format!("http://{addr}")),
        }
    }

    /// Sends a request with the cookie, the CSRF token and the origin this client holds.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(session) = &self.session {
            request = request.header("cookie", format!("orisun_session={session}"));
        }
        if let Some(csrf) = &self.csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(origin) = &self.origin {
            request = request.header("origin", origin);
        }
        let body = match body {
            Some(v) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self
            .client
            .request(request.body(body).expect("request"))
            .await
            .expect("HTTP answer");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// `GET path` of a server-sent-event stream: the status and the body, to read as it comes.
    pub async fn open_stream(&self, path: &str) -> (StatusCode, axum::body::Body) {
        let mut request = Request::get(format!("http://{}{path}", self.addr));
        if let Some(session) = &self.session {
            request = request.header("cookie", format!("orisun_session={session}"));
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::new())).expect("request"))
            .await
            .expect("HTTP answer");
        (
            response.status(),
            axum::body::Body::new(response.into_body()),
        )
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// Logs in and keeps the session cookie and CSRF token; panics unless it succeeds.
    pub async fn login(addr: SocketAddr, username: &str, password: &str) -> Self {
        let mut browser = Self::new(addr);
        let answer = browser
            .post(
                "/api/login",
                serde_json::json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "login: {}", answer.text);
        let cookie = answer.set_cookie().expect("a session cookie");
        let value = cookie
            .split(';')
            .next()
            .and_then(|kv| kv.strip_prefix("orisun_session="))
            .expect("orisun_session=...")
            .to_owned();
        browser.session = Some(value);
        browser.csrf = Some(
            answer.json()["csrf"]
                .as_str()
                .expect("csrf in the login answer")
                .to_owned(),
        );
        browser
    }
}
