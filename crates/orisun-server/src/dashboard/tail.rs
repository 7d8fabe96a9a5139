//! The live tail of a boundary as server-sent events.
//!
//! The tail subscribes from the boundary's head and sends what arrived every [`TICK`] as one
//! `events` message holding at most [`WINDOW`] events, the newest, and how many it skipped, so
//! a browser gets at most ten small messages a second however fast the boundary grows. The
//! subscription is pull-based: a slow page only makes the tail read later, never the store
//! buffer more.

use super::events::{boundary, event_json, parse_filter};
use super::session::Session;
use super::DashboardError;
use crate::admin_boundary::redact;
use axum::extract::{Path, Query as QueryParams};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;

/// How often a batch is sent.
pub const TICK: Duration = Duration::from_millis(100);

/// The most events one batch carries; older ones of the batch are counted as skipped.
pub const WINDOW: usize = 100;

/// The most events read into one batch before it is sent.
const BATCH: usize = 10_000;

/// What to tail.
#[derive(Debug, Deserialize, Default)]
pub struct TailParams {
    /// Criteria (see [`super::events::parse_filter`]).
    #[serde(default)]
    pub criteria: Option<String>,
    /// Event type.
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
}

/// `GET /api/tail/{boundary}`: `events` messages `{"events": [...], "skipped": n}` (oldest
/// first), then `failure` and the end if the subscription fails.
pub async fn stream(
    session: Session,
    Path(name): Path<String>,
    QueryParams(params): QueryParams<TailParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, DashboardError> {
    let boundary = boundary(&name)?;
    let query = parse_filter(
        params.criteria.as_deref().unwrap_or_default(),
        params.event_type.as_deref().unwrap_or_default(),
    )?;
    let dash = session.dash;
    let head = dash.store.head(&boundary).await?;
    let admin = dash.auth.admin_boundary().clone();
    let events = dash.store.subscribe(&boundary, head, query);
    let batches = tokio_stream::StreamExt::chunks_timeout(events, BATCH, TICK);
    let messages = batches
        .map(move |batch| {
            let total = batch.len();
            let mut failure = None;
            let mut shown = Vec::with_capacity(total.min(WINDOW));
            let ok: Vec<_> = batch
                .into_iter()
                .filter_map(|item| match item {
                    Ok(event) => Some(event),
                    Err(e) => {
                        failure = Some(e);
                        None
                    }
                })
                .collect();
            let skipped = ok.len().saturating_sub(WINDOW);
            for event in ok.into_iter().skip(skipped) {
                shown.push(event_json(&redact(&boundary, &admin, event)));
            }
            let mut out = vec![Ok(Event::default()
                .event("events")
                .data(json!({"events": shown, "skipped": skipped}).to_string()))];
            if let Some(e) = failure {
                out.push(Ok(Event::default()
                    .event("failure")
                    .data(json!({"error": e.to_string()}).to_string())));
            }
            futures::stream::iter(out)
        })
        .flatten();
    Ok(Sse::new(dash.until_shutdown(messages)).keep_alive(KeepAlive::default()))
}
