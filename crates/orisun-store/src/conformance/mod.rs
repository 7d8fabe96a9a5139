//! The conformance suite: generic async tests that every [`EventStore`] implementation runs.
//!
//! A backend wires the whole suite into its own tests with one macro call:
//!
//! ```ignore
//! async fn fresh() -> std::sync::Arc<dyn orisun_store::EventStore> { /* a new, empty store */ }
//! orisun_store::conformance_suite!(fresh);
//! ```
//!
//! Each test creates its own boundary, so a factory may hand out the same store repeatedly.
//! The scenarios (bank transfers, paging under concurrent writers, random operations compared
//! with [`MemoryStore`]) are part of the suite too.

mod appends;
mod model;
mod reads;
mod scenarios;
mod subscriptions;

pub use appends::*;
pub use model::*;
pub use reads::*;
pub use scenarios::*;
pub use subscriptions::*;

use crate::rules::batch_positions;
use crate::{EventStore, HeadWatch, MemoryStore, StoreError};
use futures::StreamExt;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, Direction, NewEvent, Position, Query, ReadRequest,
    StoredEvent, Tag,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Generates one `#[tokio::test]` per conformance test, each calling `$factory().await` for a
/// store (`Arc<dyn EventStore>`).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!(@each $factory;
            positions_follow_orisun_rules,
            data_carries_event_type_and_metadata_defaults,
            reads_match_brute_force_for_every_bound,
            criteria_combine_or_across_and_within,
            latest_by_criteria_reports_each_criterion,
            condition_fails_only_for_a_later_match,
            rejected_appends_change_nothing,
            rejects_bad_input_with_precise_errors,
            unknown_boundary_is_reported,
            retrying_a_stored_batch_returns_the_original_result,
            megabyte_event_round_trips,
            ten_thousand_event_batch,
            subscription_replays_then_follows_live,
            subscribing_to_an_unknown_boundary_fails,
            boundaries_are_isolated,
            concurrent_appends_get_gap_free_positions,
            bank_transfers_keep_balances_consistent,
            paging_reader_sees_every_event_once_under_concurrent_writers,
            matches_the_model_on_random_operations,
        );
    };
    (@each $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let store: ::std::sync::Arc<dyn $crate::EventStore> = $factory().await;
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

/// A shared store handle, as the suite receives it.
pub type Store = Arc<dyn EventStore>;

/// Creates a boundary with a unique name.
pub async fn fresh_boundary(store: &Store) -> BoundaryName {
    let name = format!("t_{}", Uuid::new_v4().simple());
    let boundary = BoundaryName::new(name).expect("generated name is valid");
    store
        .create_boundary(&boundary)
        .await
        .expect("create boundary");
    boundary
}

/// Builds an event with a random id.
pub fn event(event_type: &str, data: Value) -> NewEvent {
    let Value::Object(data) = data else {
        panic!("test data must be an object")
    };
    NewEvent::new(Uuid::new_v4(), event_type, data, Default::default()).expect("valid event")
}

fn tag(key: &str, value: &str) -> Criterion {
    Criterion::new([Tag::new(key, value)])
}

fn condition(criteria: Vec<Criterion>, after: Position) -> Option<AppendCondition> {
    Some(AppendCondition::new(Query::new(criteria), after))
}

/// Reads every event of a boundary, oldest first.
pub async fn read_all(store: &Store, boundary: &BoundaryName) -> Vec<StoredEvent> {
    read_all_matching(store, boundary, Query::all()).await
}

async fn read_all_matching(
    store: &Store,
    boundary: &BoundaryName,
    query: Query,
) -> Vec<StoredEvent> {
    let mut out: Vec<StoredEvent> = Vec::new();
    loop {
        let from = out
            .last()
            .map(|e| Position::new(e.position.commit, e.position.prepare + 1));
        let page = store
            .read(
                boundary,
                &ReadRequest::forward(from, 1_000).with_query(query.clone()),
            )
            .await
            .expect("read");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn data_of(e: &StoredEvent) -> Value {
    serde_json::from_str(&e.data).expect("stored data is JSON")
}

fn ids(events: &[StoredEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

async fn append(store: &Store, b: &BoundaryName, events: Vec<NewEvent>) -> Position {
    store
        .append(b, events, None)
        .await
        .expect("append")
        .position
}
