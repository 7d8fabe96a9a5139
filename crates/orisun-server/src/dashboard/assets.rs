//! The dashboard's pages, styles and scripts, embedded in the binary (no CDN, no network
//! fetch), served with a strict Content-Security-Policy: only this origin's scripts, styles and
//! connections.

use super::session::{authenticate, cookie, COOKIE_NAME};
use super::DashboardSlot;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_FRAME_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const LOGIN_HTML: &str = include_str!("../../assets/dashboard/login.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const LOGIN_JS: &str = include_str!("../../assets/dashboard/login.js");
const APP_CSS: &str = include_str!("../../assets/dashboard/app.css");
const ICON_SVG: &str = include_str!("../../assets/dashboard/icon.svg");

/// The Content-Security-Policy of every page.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /`: the dashboard for a logged-in user, else a redirect to the login page.
pub async fn index(State(slot): State<DashboardSlot>, headers: HeaderMap) -> Response {
    let logged_in = match (slot.get(), cookie(&headers, COOKIE_NAME)) {
        (Ok(dash), Some(token)) => authenticate(&dash, &token).await.is_ok(),
        _ => false,
    };
    if logged_in {
        asset("text/html; charset=utf-8", INDEX_HTML)
    } else {
        Redirect::to("/login").into_response()
    }
}

/// `GET /login`: the login page.
pub async fn login_page() -> Response {
    asset("text/html; charset=utf-8", LOGIN_HTML)
}

/// `GET /favicon.ico`: the icon (browsers ask for it).
pub async fn favicon() -> Response {
    asset("image/svg+xml", ICON_SVG)
}

/// `GET /assets/{file}`: a script, style sheet or icon.
pub async fn file(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => asset("text/javascript; charset=utf-8", APP_JS),
        "login.js" => asset("text/javascript; charset=utf-8", LOGIN_JS),
        "app.css" => asset("text/css; charset=utf-8", APP_CSS),
        "icon.svg" => asset("image/svg+xml", ICON_SVG),
        _ => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
