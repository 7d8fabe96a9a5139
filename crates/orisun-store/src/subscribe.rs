//! The catch-up subscription every backend shares: replay from storage, then follow wake-ups.
//!
//! Storage is the truth. The subscription keeps a cursor (the position of the last event it
//! delivered) and reads the next page after it; when a read comes back empty it waits for the
//! boundary's head watch to change and reads again. Wake-ups carry no events, so a slow consumer
//! never loses one: whatever it missed is simply the next page it reads. Because every backend
//! makes only a prefix of the log visible, paging by position can neither skip nor repeat.

use crate::{EventStore, StoreError};
use futures::stream::{self, Stream};
use orisun_core::{BoundaryName, Position, Query, ReadRequest, StoredEvent};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A stream of events in position order; it ends only after yielding an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StoredEvent, StoreError>> + Send>>;

/// How often backends shared by several processes poll the head when no notification arrives.
pub const POLL_FALLBACK: Duration = Duration::from_millis(500);

/// Page size of the catch-up reads: large enough to amortise a round trip, small enough to
/// bound the memory a slow subscriber holds.
const PAGE: u32 = 1_000;

struct State {
    store: Arc<dyn EventStore>,
    boundary: BoundaryName,
    query: Query,
    cursor: Position,
    buffer: VecDeque<StoredEvent>,
    head: Option<watch::Receiver<Position>>,
    failed: bool,
}

/// Returns the first position strictly after `position` in lexicographic order.
fn successor(position: Position) -> Position {
    Position::new(position.commit, position.prepare.saturating_add(1))
}

/// Subscribes to the events of `boundary` matching `query` with a position strictly after
/// `after`: first those already stored, then new ones as they are appended, in position order,
/// each exactly once. `{-1,-1}` and `{0,0}` start at the beginning of the log.
///
/// The stream is pull-based: a consumer that reads slowly simply reads later pages.
pub fn subscribe(
    store: Arc<dyn EventStore>,
    boundary: BoundaryName,
    after: Position,
    query: Query,
) -> EventStream {
    let state = State {
        store,
        boundary,
        query,
        cursor: after,
        buffer: VecDeque::new(),
        head: None,
        failed: false,
    };
    Box::pin(stream::unfold(state, next))
}

async fn next(mut st: State) -> Option<(Result<StoredEvent, StoreError>, State)> {
    loop {
        if let Some(event) = st.buffer.pop_front() {
            st.cursor = event.position;
            return Some((Ok(event), st));
        }
        if st.failed {
            return None;
        }
        if st.head.is_none() {
            match st.store.watch_head(&st.boundary).await {
                Ok(rx) => st.head = Some(rx),
                Err(e) => return Some(fail(st, e)),
            }
        }
        // Mark the current head as seen *before* reading, so an append that lands after the
        // read started still wakes us up.
        if let Some(rx) = st.head.as_mut() {
            rx.borrow_and_update();
        }
        let request =
            ReadRequest::forward(Some(successor(st.cursor)), PAGE).with_query(st.query.clone());
        match st.store.read(&st.boundary, &request).await {
            Ok(page) if !page.is_empty() => st.buffer.extend(page),
            Ok(_) => {
                let rx = st.head.as_mut().expect("watch was set above");
                if rx.changed().await.is_err() {
                    return Some(fail(
                        st,
                        StoreError::unavailable("the store stopped notifying this boundary"),
                    ));
                }
            }
            Err(e) => return Some(fail(st, e)),
        }
    }
}

fn fail(mut st: State, error: StoreError) -> (Result<StoredEvent, StoreError>, State) {
    st.failed = true;
    (Err(error), st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_is_exclusive_bound() {
        assert_eq!(successor(Position::new(3, 2)), Position::new(3, 3));
        assert!(Position::new(4, 3) >= successor(Position::new(3, 2)));
        assert!(Position::new(3, 2) < successor(Position::new(3, 2)));
    }
}
