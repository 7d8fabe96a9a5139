//! The client's `subscribe`: a `CatchUpSubscribeToEvents` stream that survives broken
//! connections without a gap or a duplicate.
//!
//! The subscription keeps a cursor, the position of the last event it handed to its consumer.
//! When the stream breaks in the transport (`UNAVAILABLE`, a reset connection, a server that
//! shuts down and says so), it waits a backoff and subscribes again strictly after the cursor.
//! Events that had arrived but not been handed out are dropped with the broken stream and come
//! again from the new one; events already handed out are at or before the cursor and cannot
//! come again. The server reads every event from storage in position order, so the new stream
//! continues exactly where the consumer stopped.
//!
//! A status the server decided on (an unknown boundary, a bad query, a lost subscriber lease)
//! is yielded as the stream's error, after which it ends, as the trait requires; so is the
//! last failure once the retry policy gives up. Failures count while they follow each other: a
//! delivered event, or a stream that stayed open longer than the policy's longest backoff,
//! starts the count again, so that a long-lived subscription survives any number of
//! unrelated cuts.

use crate::client::OrisunClient;
use crate::retry;
use crate::store::malformed;
use futures::stream;
use orisun_core::{BoundaryName, Position, Query, StoredEvent};
use orisun_proto::{self as pb, client, status};
use orisun_store::{EventStream, StoreError};
use tokio::time::Instant;
use tonic::Status;

struct State {
    client: OrisunClient,
    boundary: BoundaryName,
    query: Query,
    /// The position of the last event handed to the consumer (or the starting position).
    cursor: Position,
    stream: Option<tonic::Streaming<pb::Event>>,
    /// When the current stream opened.
    opened_at: Option<Instant>,
    /// Consecutive failures to open or keep a stream.
    failures: u32,
    done: bool,
}

/// Subscribes to `boundary` after `after` through `client` (see the module docs).
pub(crate) fn subscribe(
    client: OrisunClient,
    boundary: BoundaryName,
    after: Position,
    query: Query,
) -> EventStream {
    // Checked here as the server would, so a bad query fails without a call.
    if let Err(invalid) = query.validate("query") {
        let error: Item = Err(invalid.into());
        return Box::pin(stream::once(async move { error }));
    }
    let state = State {
        client,
        boundary,
        query,
        cursor: after,
        stream: None,
        opened_at: None,
        failures: 0,
        done: false,
    };
    Box::pin(stream::unfold(state, next))
}

type Item = Result<StoredEvent, StoreError>;

async fn next(mut st: State) -> Option<(Item, State)> {
    if st.done {
        return None;
    }
    loop {
        if st.stream.is_none() {
            if st.failures > 0 {
                tokio::time::sleep(st.client.retry_policy().backoff(st.failures)).await;
            }
            let request = client::subscribe_request(&st.boundary, st.cursor, &st.query, "");
            match st.client.open_subscription(&request).await {
                Ok(stream) => {
                    st.stream = Some(stream);
                    st.opened_at = Some(Instant::now());
                }
                Err(status) => match st.failed(status) {
                    Some(error) => return Some((Err(error), st)),
                    None => continue,
                },
            }
        }
        let Some(stream) = st.stream.as_mut() else {
            continue;
        };
        let status = match stream.message().await {
            Ok(Some(event)) => {
                return match client::stored_event(event) {
                    Ok(event) => {
                        st.cursor = event.position;
                        st.failures = 0;
                        Some((Ok(event), st))
                    }
                    Err(invalid) => {
                        st.done = true;
                        Some((Err(malformed(invalid)), st))
                    }
                };
            }
            // A subscription never ends by itself: an end without a status is a broken stream.
            Ok(None) => Status::unavailable("the server ended the subscription"),
            Err(status) => status,
        };
        st.stream = None;
        if let Some(error) = st.failed(status) {
            return Some((Err(error), st));
        }
    }
}

impl State {
    /// Counts a failure; returns the error to yield when it is final, `None` to subscribe again.
    fn failed(&mut self, status: Status) -> Option<StoreError> {
        let policy = self.client.retry_policy();
        if self
            .opened_at
            .take()
            .is_some_and(|t| t.elapsed() >= policy.max_backoff)
        {
            self.failures = 0;
        }
        self.failures += 1;
        if retry::is_transient(&status) && policy.allows_retry(self.failures) {
            tracing::debug!(boundary = %self.boundary, cursor = %self.cursor,
                failures = self.failures, code = ?status.code(), message = status.message(),
                "subscription broken, resubscribing");
            return None;
        }
        self.done = true;
        Some(status::store_error(&status))
    }
}
