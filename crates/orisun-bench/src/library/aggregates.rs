//! The aggregate scenarios of library mode and their baselines: reading a whole 1,000-event
//! stream against a plain read of 1,000 consecutive events of the log, and single-event
//! `Any` appends to random streams against unconditional single-event appends.

use super::layout::{aggregate, event, Layout, AGGREGATE_TYPE, STREAM_LEN};
use super::{Library, Tally};
use crate::report::{BaselineResult, ScenarioResult};
use anyhow::Context;
use orisun_aggregates::{Aggregates, ExpectedVersion};
use orisun_core::ReadRequest;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Library {
    fn aggregates(&self) -> Aggregates {
        Aggregates::new(self.store.clone(), self.boundary.clone())
    }

    /// Reads whole random streams (`Aggregates::read(&id, ..)`) in a closed loop for
    /// `duration`; each must hold exactly its preloaded events.
    pub(super) async fn aggregate_reads(
        &self,
        layout: &Layout,
        duration: Duration,
    ) -> anyhow::Result<ScenarioResult> {
        let aggregates = self.aggregates();
        self.measured("lib_aggregate_read", |counter| async move {
            let mut rng = SmallRng::from_rng(&mut rand::rng());
            let mut tally = Tally::default();
            let start = Instant::now();
            while start.elapsed() < duration {
                let id = aggregate(rng.random_range(0..layout.streams));
                let t = Instant::now();
                let stream = aggregates.read(&id, ..).await?;
                let took = t.elapsed();
                anyhow::ensure!(
                    stream.events.len() as u64 == STREAM_LEN
                        && stream.current_version == STREAM_LEN,
                    "{id} read {} events at version {}, expected {STREAM_LEN}",
                    stream.events.len(),
                    stream.current_version
                );
                tally.ok(took, STREAM_LEN);
                counter.fetch_add(STREAM_LEN, Ordering::Relaxed);
            }
            tally.elapsed = start.elapsed();
            Ok(tally.scenario(
                "lib_aggregate_read",
                format!(
                    "Aggregates::read(&id, ..) of a random stream of {STREAM_LEN} events (one \
                     of {}, spread over the whole log), one task",
                    layout.streams
                ),
            ))
        })
        .await
    }

    /// Reads 1,000 consecutive events of the log from a random preloaded event
    /// (`ReadRequest::forward`, limit 1,000) in a closed loop for `duration`.
    pub(super) async fn store_reads(
        &self,
        layout: &Layout,
        duration: Duration,
    ) -> anyhow::Result<BaselineResult> {
        let (store, boundary) = (self.store.clone(), self.boundary.clone());
        let last_start = layout.events().saturating_sub(STREAM_LEN);
        self.measured("lib_store_read_1000", |counter| async move {
            let mut rng = SmallRng::from_rng(&mut rand::rng());
            let mut tally = Tally::default();
            let start = Instant::now();
            while start.elapsed() < duration {
                let seq = rng.random_range(0..=last_start);
                let from = layout
                    .position_of(seq)
                    .with_context(|| format!("event {seq} was not preloaded"))?;
                let request = ReadRequest::forward(Some(from), STREAM_LEN as u32);
                let t = Instant::now();
                let page = store.read(&boundary, &request).await?;
                let took = t.elapsed();
                anyhow::ensure!(
                    page.len() as u64 == STREAM_LEN,
                    "read {} events from {from}, expected {STREAM_LEN}",
                    page.len()
                );
                tally.ok(took, STREAM_LEN);
                counter.fetch_add(STREAM_LEN, Ordering::Relaxed);
            }
            tally.elapsed = start.elapsed();
            Ok(tally.baseline(
                "lib_store_read_1000",
                format!(
                    "EventStore::read of {STREAM_LEN} consecutive events from a random one \
                     (ReadRequest::forward)"
                ),
            ))
        })
        .await
    }

    /// Appends one event to a random stream with `ExpectedVersion::Any` in a closed loop for
    /// `duration`.
    pub(super) async fn aggregate_appends(
        &self,
        layout: &Layout,
        duration: Duration,
    ) -> anyhow::Result<ScenarioResult> {
        let aggregates = self.aggregates();
        self.measured("lib_aggregate_append", |counter| async move {
            let mut rng = SmallRng::from_rng(&mut rand::rng());
            let mut tally = Tally::default();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < duration {
                let id = aggregate(rng.random_range(0..layout.streams));
                // Plain bench data: `Aggregates` adds the three aggregate fields.
                let e = event("append", id.id(), n, [])?;
                n += 1;
                let t = Instant::now();
                aggregates
                    .append(&id, ExpectedVersion::Any, vec![e])
                    .await?;
                tally.ok(t.elapsed(), 1);
                counter.fetch_add(1, Ordering::Relaxed);
            }
            tally.elapsed = start.elapsed();
            Ok(tally.scenario(
                "lib_aggregate_append",
                format!(
                    "Aggregates::append(ExpectedVersion::Any) of one event to a random one of {} \
                     streams on the {}-event boundary, one task",
                    layout.streams,
                    layout.events()
                ),
            ))
        })
        .await
    }

    /// Appends one event with no condition in a closed loop for `duration`. The event carries
    /// three fields shaped like the aggregate fields, under other names, so it has the size
    /// and the tags of an aggregate event without belonging to a stream.
    pub(super) async fn store_appends(
        &self,
        layout: &Layout,
        duration: Duration,
    ) -> anyhow::Result<BaselineResult> {
        let (store, boundary) = (self.store.clone(), self.boundary.clone());
        self.measured("lib_store_append", |counter| async move {
            let mut rng = SmallRng::from_rng(&mut rand::rng());
            let mut tally = Tally::default();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < duration {
                let id = aggregate(rng.random_range(0..layout.streams));
                let e = event(
                    "append",
                    id.id(),
                    n,
                    [
                        ("streamType", Value::from(AGGREGATE_TYPE)),
                        ("streamId", Value::from(id.id())),
                        ("streamVersion", Value::from(STREAM_LEN + n)),
                    ],
                )?;
                n += 1;
                let t = Instant::now();
                store.append(&boundary, vec![e], None).await?;
                tally.ok(t.elapsed(), 1);
                counter.fetch_add(1, Ordering::Relaxed);
            }
            tally.elapsed = start.elapsed();
            Ok(tally.baseline(
                "lib_store_append",
                "EventStore::append of one event, no condition, one task".to_owned(),
            ))
        })
        .await
    }
}
