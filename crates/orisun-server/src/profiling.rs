//! The CPU profiler (`ORISUN_PPROF_ENABLED`, `ORISUN_PPROF_PORT`): an HTTP endpoint, for ADMIN
//! users only, that samples the process's stacks for N seconds and answers a pprof protobuf
//! (`GET /debug/pprof/profile?seconds=N`, for `go tool pprof`) or a flamegraph SVG
//! (`GET /debug/pprof/flamegraph?seconds=N`).
//!
//! One profile runs at a time (the sampler is process-wide); a second request meanwhile gets
//! 409. Sampling and encoding run on a blocking thread.

use crate::http_auth::{AdminCaller, HttpAuth};
use axum::extract::{FromRef, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The profile length when `seconds` is not given.
pub const DEFAULT_SECONDS: u64 = 30;

/// The longest profile one request may ask for.
pub const MAX_SECONDS: u64 = 120;

/// Samples per second.
const FREQUENCY: i32 = 99;

/// The flamegraph of a profile without samples.
const NO_SAMPLES_SVG: &str = r#"<?xml version="1.0" standalone="no"?><svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="25">No samples: the process was idle.</text></svg>"#;

/// Set while a profile runs anywhere in the process.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// What the profiler routes need.
#[derive(Clone)]
pub struct ProfilingState {
    /// Checks that the caller is an ADMIN user.
    pub auth: HttpAuth,
}

impl FromRef<ProfilingState> for HttpAuth {
    fn from_ref(state: &ProfilingState) -> HttpAuth {
        state.auth.clone()
    }
}

/// Why a profile was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// A `seconds` parameter that is not a whole number in range.
    #[error("seconds must be a whole number from 1 to {max}, got {given:?}")]
    BadSeconds {
        /// What was sent.
        given: String,
        /// [`MAX_SECONDS`].
        max: u64,
    },
    /// Another profile is running.
    #[error("a CPU profile is already running; try again when it ends")]
    Busy,
    /// The sampler or the encoder failed.
    #[error("profiling failed: {0}")]
    Failed(String),
}

impl IntoResponse for ProfileError {
    fn into_response(self) -> Response {
        let status = match self {
            ProfileError::BadSeconds { .. } => StatusCode::BAD_REQUEST,
            ProfileError::Busy => StatusCode::CONFLICT,
            ProfileError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}

/// The profile's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// gzip-free pprof protobuf (`profile.proto`).
    Pprof,
    /// A flamegraph in SVG.
    Flamegraph,
}

/// Builds the profiler's routes.
pub fn router(state: ProfilingState) -> Router {
    Router::new()
        .route("/debug/pprof/profile", get(profile))
        .route("/debug/pprof/flamegraph", get(flamegraph))
        .with_state(state)
}

/// Parses the `seconds` parameter: absent means [`DEFAULT_SECONDS`]; otherwise 1 to
/// [`MAX_SECONDS`].
pub fn parse_seconds(given: Option<&str>) -> Result<Duration, ProfileError> {
    let Some(text) = given else {
        return Ok(Duration::from_secs(DEFAULT_SECONDS));
    };
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_SECONDS).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(ProfileError::BadSeconds {
            given: text.to_owned(),
            max: MAX_SECONDS,
        }),
    }
}

async fn profile(
    AdminCaller(caller): AdminCaller,
    State(_): State<ProfilingState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ProfileError> {
    let seconds = parse_seconds(params.get("seconds").map(String::as_str))?;
    tracing::info!(user = %caller.username, ?seconds, "CPU profile (pprof)");
    let body = take(seconds, Format::Pprof).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"profile.pb\"",
            ),
        ],
        body,
    )
        .into_response())
}

async fn flamegraph(
    AdminCaller(caller): AdminCaller,
    State(_): State<ProfilingState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ProfileError> {
    let seconds = parse_seconds(params.get("seconds").map(String::as_str))?;
    tracing::info!(user = %caller.username, ?seconds, "CPU profile (flamegraph)");
    let body = take(seconds, Format::Flamegraph).await?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], body).into_response())
}

/// Samples the process for `length` and encodes the profile as `format`.
pub async fn take(length: Duration, format: Format) -> Result<Vec<u8>, ProfileError> {
    if RUNNING.swap(true, Ordering::SeqCst) {
        return Err(ProfileError::Busy);
    }
    let result = tokio::task::spawn_blocking(move || sample(length, format))
        .await
        .map_err(|e| ProfileError::Failed(e.to_string()));
    RUNNING.store(false, Ordering::SeqCst);
    result?
}

fn sample(length: Duration, format: Format) -> Result<Vec<u8>, ProfileError> {
    let failed = |e: pprof::Error| ProfileError::Failed(e.to_string());
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(failed)?;
    std::thread::sleep(length);
    let report = guard.report().build().map_err(failed)?;
    drop(guard);
    let mut body = Vec::new();
    match format {
        Format::Pprof => {
            use pprof::protos::Message;
            let profile = report.pprof().map_err(failed)?;
            profile
                .write_to_vec(&mut body)
                .map_err(|e| ProfileError::Failed(e.to_string()))?;
        }
        Format::Flamegraph => {
            report.flamegraph(&mut body).map_err(failed)?;
            if body.is_empty() {
                // An idle process gives no stacks, and the renderer then writes nothing.
                body = NO_SAMPLES_SVG.as_bytes().to_vec();
            }
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(
            parse_seconds(None),
            Ok(Duration::from_secs(DEFAULT_SECONDS))
        );
        assert_eq!(parse_seconds(Some("2")), Ok(Duration::from_secs(2)));
        for bad in ["0", "121", "-1", "1.5", "abc", ""] {
            let err = parse_seconds(Some(bad)).expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!("seconds must be a whole number from 1 to 120, got {bad:?}")
            );
        }
    }
}
