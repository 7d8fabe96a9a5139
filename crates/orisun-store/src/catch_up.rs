//! The catch-up subscription every in-process store shares: replay from storage, then follow
//! wake-ups of the store's [`HeadWatch`].
//!
//! Storage is the truth. The subscription keeps a cursor (the position of the last event it
//! delivered) and reads the next page after it; when a read comes back empty it waits for the
//! boundary's head watch to change and reads again. Wake-ups carry no events, so a slow consumer
//! never loses one: whatever it missed is simply the next page it reads. Because every backend
//! makes only a prefix of the log visible, paging by position can neither skip nor repeat.

use crate::{EventStore, StoreError};
use async_trait::async_trait;
use futures::stream::{self, Stream};
use orisun_core::{BoundaryName, Position, Query, ReadRequest, StoredEvent};
use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch;

/// A stream of events in position order; it ends only after yielding an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StoredEvent, StoreError>> + Send>>;

/// How often backends shared by several processes poll the head when no notification arrives.
pub const POLL_FALLBACK: Duration = Duration::from_millis(500);

/// Page size of the catch-up reads: large enough to amortise a round trip, small enough to
/// bound the memory a slow subscriber holds.
const PAGE: u32 = 1_000;

/// The in-process capability behind [`catch_up`]: a wake-up whenever a boundary's head may
/// have moved. Stores that live in this process (or share its database) have it; a remote
/// client subscribes with its own streaming call instead.
#[async_trait]
pub trait HeadWatch: EventStore {
    /// Returns a receiver whose value changes whenever the boundary's head may have moved.
    ///
    /// It is only a wake-up: the value carries no event and may skip heads; subscribers read the
    /// events from storage. Backends shared by several processes also signal appends made
    /// elsewhere (and poll as a fallback).
    async fn watch_head(
        &self,
        boundary: &BoundaryName,
    ) -> Result<watch::Receiver<Position>, StoreError>;
}

struct State<S> {
    store: S,
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

/// Implements [`EventStore::subscribe`] for an in-process store: pages forward from `after`
/// through [`EventStore::read`], and waits on [`HeadWatch::watch_head`] when a page comes back
/// empty.
pub fn catch_up<S: HeadWatch>(
    store: S,
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

async fn next<S: HeadWatch>(
    mut st: State<S>,
) -> Option<(Result<StoredEvent, StoreError>, State<S>)> {
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

fn fail<S>(mut st: State<S>, error: StoreError) -> (Result<StoredEvent, StoreError>, State<S>) {
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
