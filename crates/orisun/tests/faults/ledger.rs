//! The crash tests' judge: reads the log back through a restarted server and checks it against
//! every batch the clients sent: acknowledged batches stored whole at the acknowledged
//! positions, refused ones absent, unanswered ones whole or absent, nothing else stored,
//! positions gap-free, and each acknowledged condition held in the final log.

use super::workload::{orders, tag_query, Batch, Outcome};
use orisun_client::OrisunClient;
use orisun_store::core::{Position, ReadRequest, StoredEvent};
use orisun_store::EventStore;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What the checks counted, over every round so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Acknowledged batches, all found whole at their positions.
    pub acked_batches: u64,
    /// Events of acknowledged batches.
    pub acked_events: u64,
    /// Acknowledged conditional batches whose condition was checked against the final log.
    pub conditions_checked: u64,
    /// Batches refused for their condition (none stored).
    pub rejected: u64,
    /// Batches without an answer (the kill): stored whole, or not at all.
    pub uncertain: u64,
    /// Of those, the ones found stored.
    pub uncertain_stored: u64,
    /// Events in the log.
    pub stored_events: u64,
    /// Acknowledged events missing (must stay 0).
    pub lost: u64,
    /// Batches found partly stored (must stay 0).
    pub partial: u64,
}

/// The log as read so far, and the checks' running totals.
#[derive(Default)]
pub struct Ledger {
    /// Every stored event id and its position.
    stored: HashMap<Uuid, Position>,
    /// The last event read.
    last: Option<Position>,
    /// Positions of the events carrying each `group` and `client` tag, ascending.
    tags: HashMap<(String, String), Vec<Position>>,
    /// Ids read but not yet matched with a batch.
    unmatched: Vec<Uuid>,
    /// Every id a client ever sent.
    sent: HashSet<Uuid>,
    /// The totals.
    pub counts: Counts,
}

/// Reads every event of `orders` after `after` (exclusive), oldest first.
pub async fn read_after(
    client: &OrisunClient,
    after: Option<Position>,
    query: Option<orisun_store::core::Query>,
) -> Vec<StoredEvent> {
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut from = after;
    loop {
        let mut request = ReadRequest::forward(from, 10_000);
        if let Some(q) = &query {
            request = request.with_query(q.clone());
        }
        let page = client
            .read(&orders(), &request)
            .await
            .expect("read the log back");
        let before = events.len();
        events.extend(
            page.into_iter()
                .filter(|e| from.is_none_or(|f| e.position > f)),
        );
        if events.len() == before {
            return events;
        }
        from = events.last().map(|e| e.position);
    }
}

impl Ledger {
    /// Reads what was stored since the last call and checks its positions: consecutive
    /// sequence numbers from 0, no event id twice.
    pub async fn absorb(&mut self, client: &OrisunClient) {
        let events = read_after(client, self.last, None).await;
        for event in events {
            let expected_prepare = self.last.map_or(0, |p| p.prepare + 1);
            assert_eq!(
                event.position.prepare, expected_prepare,
                "positions are gap-free: {:?} follows {:?}",
                event.position, self.last
            );
            assert!(
                self.last.is_none_or(|l| event.position > l),
                "positions ascend"
            );
            let data: serde_json::Value =
                serde_json::from_str(&event.data).expect("event data is JSON");
            for key in ["group", "client"] {
                let value = data[key].as_str().unwrap_or_default().to_owned();
                let tag = (key.to_owned(), value);
                self.tags.entry(tag).or_default().push(event.position);
            }
            let previous = self.stored.insert(event.event_id, event.position);
            assert!(previous.is_none(), "event {} stored twice", event.event_id);
            self.unmatched.push(event.event_id);
            self.last = Some(event.position);
            self.counts.stored_events += 1;
        }
    }

    /// Checks the batches of a finished round against the log read so far (call
    /// [`Ledger::absorb`] first, on the restarted server).
    pub fn check(&mut self, batches: &[Batch]) {
        for batch in batches {
            self.sent.extend(batch.ids.iter().copied());
            let found: Vec<Position> = batch
                .ids
                .iter()
                .filter_map(|id| self.stored.get(id).copied())
                .collect();
            let whole = found.len() == batch.ids.len();
            if !found.is_empty() && !whole {
                self.counts.partial += 1;
            }
            assert!(
                found.is_empty() || whole,
                "a batch of {} events is partly stored ({} found): {:?}",
                batch.ids.len(),
                found.len(),
                batch.outcome
            );
            if whole {
                // Stored together: consecutive sequence numbers in the batch's order, one
                // commit position for the batch (its last sequence number + 1).
                let last = *found.last().expect("non-empty batch");
                for (k, p) in found.iter().enumerate() {
                    assert_eq!(
                        p.prepare,
                        found[0].prepare + k as i64,
                        "batch is contiguous"
                    );
                    assert_eq!(p.commit, last.prepare + 1, "batch shares its commit");
                }
            }
            match batch.outcome {
                Outcome::Acked(at) => {
                    if !whole {
                        self.counts.lost += (batch.ids.len() - found.len()) as u64;
                    }
                    assert!(whole, "an acknowledged batch is stored");
                    assert_eq!(found.last().copied(), Some(at), "stored where acknowledged");
                    self.counts.acked_batches += 1;
                    self.counts.acked_events += batch.ids.len() as u64;
                    if let Some(expected) = batch.expected {
                        self.check_condition(batch, expected, found[0]);
                    }
                }
                Outcome::Rejected => {
                    assert!(found.is_empty(), "a refused batch is not stored");
                    self.counts.rejected += 1;
                }
                Outcome::Uncertain => {
                    self.counts.uncertain += 1;
                    self.counts.uncertain_stored += u64::from(whole);
                }
            }
        }
        for id in self.unmatched.drain(..) {
            assert!(
                self.sent.contains(&id),
                "event {id} was stored but never sent"
            );
        }
    }

    /// A condition that was acknowledged held: no event carrying its tag lies after the
    /// expected position and before the batch.
    fn check_condition(&mut self, batch: &Batch, expected: Position, first: Position) {
        let positions = &self.tags[&batch.scope];
        let after_expected = positions.partition_point(|p| *p <= expected);
        let before_batch = positions.partition_point(|p| *p < first);
        assert_eq!(
            after_expected, before_batch,
            "a conditional save expecting {expected:?} was accepted at {first:?} although \
             {:?} had events in between",
            batch.scope
        );
        self.counts.conditions_checked += 1;
    }

    /// Checks the tag index: a query for each tag returns exactly the events carrying it.
    pub async fn check_queries(&self, client: &OrisunClient) {
        for ((key, value), positions) in &self.tags {
            let read: Vec<Position> = read_after(client, None, Some(tag_query(key, value)))
                .await
                .into_iter()
                .map(|e| e.position)
                .collect();
            assert_eq!(
                &read, positions,
                "the tag index returns the events of {key} {value}"
            );
        }
    }
}
