//! The preloaded boundary of library mode: aggregate streams of [`STREAM_LEN`] events each,
//! interleaved round-robin over the whole log, written by plain batch appends through the
//! store; and where each event of the log is, so a plain read can start at any of them.
//!
//! The preload writes the three aggregate fields (`aggregateType`, `aggregateId`,
//! `aggregateVersion`) itself, as `Aggregates::append` would, so that 1,000,000 events do not
//! take 1,000,000 conditional appends. Versions must follow log order, so each of the two
//! writers owns its own streams (even and odd), and writes them batch after batch.

use super::{Library, Tally};
use crate::options::Plan;
use crate::payload;
use crate::report::ScenarioResult;
use anyhow::Context;
use futures::future::try_join_all;
use orisun_aggregates::{AggregateId, AGGREGATE_ID_KEY, AGGREGATE_TYPE_KEY, AGGREGATE_VERSION_KEY};
use orisun_core::{JsonObject, NewEvent, Position};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Events per aggregate stream.
pub const STREAM_LEN: u64 = 1_000;

/// The aggregate type of the preloaded streams.
pub const AGGREGATE_TYPE: &str = "BenchAccount";

/// Concurrent writers of the preload.
const WRITERS: u64 = 2;

/// The preloaded boundary: how many streams it holds and where its events are.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The aggregate streams, `acc-0` to `acc-<streams - 1>`.
    pub streams: u64,
    /// The preload's batches, by first sequence number.
    batches: Vec<StoredBatch>,
}

/// Where one preload batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoredBatch {
    /// The sequence number (`prepare`) of its first event.
    first: i64,
    /// How many events it holds.
    len: i64,
    /// The `commit` part of its events' positions.
    commit: i64,
}

impl Layout {
    /// Returns how many streams a preload of about `events` events holds: whole streams, at
    /// least one.
    pub fn streams_for(events: u64) -> u64 {
        (events / STREAM_LEN).max(1)
    }

    /// Returns the number of preloaded events.
    pub fn events(&self) -> u64 {
        self.streams * STREAM_LEN
    }

    /// Returns the position of the preloaded event with sequence number `seq`.
    pub fn position_of(&self, seq: u64) -> Option<Position> {
        let seq = i64::try_from(seq).ok()?;
        let i = self.batches.partition_point(|b| b.first + b.len <= seq);
        let b = self.batches.get(i).filter(|b| b.first <= seq)?;
        Some(Position::new(b.commit, seq))
    }
}

/// Returns the aggregate of stream `n`.
pub fn aggregate(n: u64) -> AggregateId {
    AggregateId::new(AGGREGATE_TYPE, format!("acc-{n}"))
        .expect("a constant type and a formatted number are valid ids")
}

/// Returns a bench event about `entity` with these extra data fields.
pub fn event(
    client: &str,
    entity: &str,
    n: u64,
    extra: impl IntoIterator<Item = (&'static str, Value)>,
) -> anyhow::Result<NewEvent> {
    let mut data = payload::fields(client, entity, n);
    for (key, value) in extra {
        data.insert(key.to_owned(), value);
    }
    let mut metadata = JsonObject::new();
    metadata.insert("source".to_owned(), Value::from("orisun-bench"));
    NewEvent::new(uuid::Uuid::now_v7(), payload::EVENT_TYPE, data, metadata)
        .context("building a bench event")
}

/// Returns event `version` of stream `n`, with the fields `Aggregates` writes.
fn stream_event(n: u64, version: u64) -> anyhow::Result<NewEvent> {
    let id = aggregate(n);
    event(
        "preload",
        id.id(),
        version,
        [
            (AGGREGATE_TYPE_KEY, Value::from(AGGREGATE_TYPE)),
            (AGGREGATE_ID_KEY, Value::from(id.id())),
            (AGGREGATE_VERSION_KEY, Value::from(version)),
        ],
    )
}

impl Library {
    /// Fills the boundary with the plan's preload, rounded to whole streams, in batches of
    /// the plan's preload batch size over [`WRITERS`] concurrent writers.
    pub(super) async fn preload(&self, plan: &Plan) -> anyhow::Result<(Layout, ScenarioResult)> {
        let streams = Layout::streams_for(plan.preload);
        let batch = plan.preload_batch.max(1) as u64;
        let (store, boundary) = (self.store.clone(), self.boundary.clone());
        self.measured("lib_preload", |counter| async move {
            let start = Instant::now();
            let writers = (0..WRITERS).map(|w| {
                let (store, boundary, counter) = (store.clone(), boundary.clone(), counter.clone());
                async move {
                    let owned: Vec<u64> = (w..streams).step_by(WRITERS as usize).collect();
                    let total = owned.len() as u64 * STREAM_LEN;
                    let mut tally = Tally::default();
                    let mut stored = Vec::new();
                    let mut next = 0u64;
                    while next < total {
                        let n = (total - next).min(batch);
                        // Round-robin over the writer's streams: every stream's versions grow
                        // in log order.
                        let events = (next..next + n)
                            .map(|j| {
                                let stream = owned[(j % owned.len() as u64) as usize];
                                stream_event(stream, j / owned.len() as u64 + 1)
                            })
                            .collect::<anyhow::Result<Vec<_>>>()?;
                        let t = Instant::now();
                        let outcome = store
                            .append(&boundary, events, None)
                            .await
                            .context("preload batch")?;
                        tally.ok(t.elapsed(), n);
                        counter.fetch_add(n, Ordering::Relaxed);
                        let len = n as i64;
                        stored.push(StoredBatch {
                            first: outcome.position.prepare - len + 1,
                            len,
                            commit: outcome.position.commit,
                        });
                        next += n;
                    }
                    anyhow::Ok((tally, stored))
                }
            });
            let mut total = Tally::default();
            let mut batches = Vec::new();
            for (tally, stored) in try_join_all(writers).await? {
                total.events += tally.events;
                total.requests += tally.requests;
                total.latencies.add(&tally.latencies);
                batches.extend(stored);
            }
            total.elapsed = start.elapsed();
            batches.sort_by_key(|b| b.first);
            let layout = Layout { streams, batches };
            let result = total.scenario(
                "lib_preload",
                format!(
                    "{} aggregate streams of {STREAM_LEN} events, interleaved, in plain batch \
                     appends of {batch} over {WRITERS} tasks",
                    streams
                ),
            );
            Ok((layout, result))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_position_of_any_preloaded_event() {
        let layout = Layout {
            streams: 1,
            batches: vec![
                StoredBatch {
                    first: 0,
                    len: 3,
                    commit: 3,
                },
                StoredBatch {
                    first: 3,
                    len: 2,
                    commit: 5,
                },
            ],
        };
        assert_eq!(layout.position_of(0), Some(Position::new(3, 0)));
        assert_eq!(layout.position_of(2), Some(Position::new(3, 2)));
        assert_eq!(layout.position_of(3), Some(Position::new(5, 3)));
        assert_eq!(layout.position_of(4), Some(Position::new(5, 4)));
        assert_eq!(layout.position_of(5), None);
        assert_eq!(Layout::streams_for(3_000), 3);
        assert_eq!(Layout::streams_for(500), 1);
    }

    #[test]
    fn stream_events_carry_the_aggregate_fields() {
        let e = stream_event(7, 3).expect("valid");
        assert_eq!(e.data[AGGREGATE_TYPE_KEY], AGGREGATE_TYPE);
        assert_eq!(e.data[AGGREGATE_ID_KEY], "acc-7");
        assert_eq!(e.data[AGGREGATE_VERSION_KEY], 3);
        assert_eq!(e.data["eventType"], payload::EVENT_TYPE);
    }
}
