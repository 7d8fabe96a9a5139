//! The projection suite (feature `testsuite`, for dev-dependencies only): generic tests that
//! every store runs through [`crate::projection_suite!`], with the at-least-once processor.

use crate::{
    Batch, Handler, HandlerError, Mode, Partition, Processor, ProjectionConfig, ProjectionError,
    RetryPolicy, Runner, RunnerError, Scope, State,
};
use async_trait::async_trait;
use orisun_aggregates::{AggregateId, Aggregates, ExpectedVersion};
use orisun_core::{BoundaryName, JsonObject, NewEvent, Position, ReadRequest, StoredEvent};
use orisun_store::{Coordination, EventStore};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A store and the coordination its projections keep checkpoints and leases in.
pub type Fixture = (Arc<dyn EventStore>, Arc<dyn Coordination>);

/// Runs every test of the suite against fixtures made by `$fresh` (an async fn returning a
/// [`Fixture`]).
#[macro_export]
macro_rules! projection_suite {
    ($fresh:path) => {
        $crate::projection_suite!(@tests $fresh;
            one_off_builds_the_read_model_and_stops_at_the_head,
            continuous_follows_new_events,
            a_failing_batch_is_retried_and_never_skipped,
            a_handler_that_keeps_failing_stops_the_projection,
            four_partitions_build_the_same_read_model_as_one,
            scopes_filter_in_the_store,
            a_held_partition_waits_for_its_lease,
            the_runner_stops_everything_and_names_the_failure,
        );
    };
    (@tests $fresh:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::testsuite::$name($fresh().await).await;
            }
        )*
    };
}

/// A read model kept in memory: balances per account, applied idempotently by event id, and
/// how many times each event was handed over.
#[derive(Default)]
pub struct Ledger {
    state: Mutex<LedgerState>,
    /// Fail every batch holding this amount, this many more times (`u32::MAX`: always).
    fail_on: Mutex<Option<(i64, u32)>>,
    calls: AtomicU32,
}

#[derive(Default, Clone, PartialEq, Eq, Debug)]
struct LedgerState {
    balances: BTreeMap<String, i64>,
    deliveries: HashMap<uuid::Uuid, u32>,
    partitions: HashMap<uuid::Uuid, u32>,
}

impl Ledger {
    fn balances(&self) -> BTreeMap<String, i64> {
        self.state.lock().balances.clone()
    }

    fn delivered(&self) -> HashMap<uuid::Uuid, u32> {
        self.state.lock().deliveries.clone()
    }
}

#[async_trait]
impl Handler for Arc<Ledger> {
    async fn handle(&self, batch: &Batch) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let fail_on = *self.fail_on.lock();
        if let Some((amount, left)) = fail_on {
            if left > 0 && batch.events.iter().any(|e| amount_of(e) == Some(amount)) {
                *self.fail_on.lock() = Some((amount, left.saturating_sub(1)));
                return Err(format!("refusing amount {amount}").into());
            }
        }
        let mut state = self.state.lock();
        for event in &batch.events {
            *state.deliveries.entry(event.event_id).or_default() += 1;
            state.partitions.insert(event.event_id, batch.partition);
            if state.deliveries[&event.event_id] > 1 {
                continue;
            }
            if let (Some(account), Some(amount)) = (account_of(event), amount_of(event)) {
                *state.balances.entry(account).or_default() += amount;
            }
        }
        Ok(())
    }
}

fn data(event: &StoredEvent) -> serde_json::Value {
    serde_json::from_str(&event.data).expect("event data is JSON")
}

fn account_of(event: &StoredEvent) -> Option<String> {
    let data = data(event);
    (data["aggregateType"] == "Account").then(|| data["aggregateId"].as_str().map(str::to_owned))?
}

fn amount_of(event: &StoredEvent) -> Option<i64> {
    data(event)["amount"].as_i64()
}

/// A fresh boundary with `accounts` accounts of `per_account` deposits (amounts 1, 2, ...),
/// interleaved with unrelated events.
pub async fn seeded(
    store: &Arc<dyn EventStore>,
    accounts: usize,
    per_account: usize,
) -> BoundaryName {
    let boundary =
        BoundaryName::new(format!("proj_{}", uuid::Uuid::new_v4().simple())).expect("valid");
    store.create_boundary(&boundary).await.expect("boundary");
    append_deposits(store, &boundary, accounts, per_account, 0).await;
    boundary
}

async fn append_deposits(
    store: &Arc<dyn EventStore>,
    boundary: &BoundaryName,
    accounts: usize,
    per_account: usize,
    offset: i64,
) {
    let aggregates = Aggregates::new(store.clone(), boundary.clone());
    for round in 0..per_account {
        for account in 0..accounts {
            let id = AggregateId::new("Account", format!("acc-{account}")).expect("valid");
            let amount = offset + (round * accounts + account) as i64 + 1;
            aggregates
                .append(
                    &id,
                    ExpectedVersion::Any,
                    vec![event("Deposited", json!({"amount": amount}))],
                )
                .await
                .expect("deposit");
        }
        store
            .append(
                boundary,
                vec![event("Noise", json!({"round": round}))],
                None,
            )
            .await
            .expect("noise");
    }
}

fn event(kind: &str, data: serde_json::Value) -> NewEvent {
    let data: JsonObject = data.as_object().cloned().expect("object");
    NewEvent::new(uuid::Uuid::new_v4(), kind, data, JsonObject::new()).expect("valid")
}

/// The read model, computed by folding the whole log.
pub async fn fold(store: &Arc<dyn EventStore>, boundary: &BoundaryName) -> BTreeMap<String, i64> {
    let mut balances = BTreeMap::new();
    let mut from = None;
    loop {
        let page = store
            .read(boundary, &ReadRequest::forward(from, 1000))
            .await
            .expect("read");
        let last = page.last().map(|e| e.position);
        for e in page.iter().filter(|e| Some(e.position) != from) {
            if let (Some(a), Some(n)) = (account_of(e), amount_of(e)) {
                *balances.entry(a).or_default() += n;
            }
        }
        if page.len() < 1000 {
            return balances;
        }
        from = last;
    }
}

fn config(boundary: &BoundaryName, name: &str) -> ProjectionConfig {
    ProjectionConfig::new(name, boundary.clone())
        .expect("valid")
        .batch_size(7)
        .expect("valid")
        .retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        })
        .lease_ttl(Duration::from_secs(5))
}

async fn run_once(
    fixture: &Fixture,
    config: ProjectionConfig,
    ledger: &Arc<Ledger>,
) -> Result<(), ProjectionError> {
    let (store, coordination) = fixture;
    let processor = Processor::new(
        store.clone(),
        coordination.clone(),
        config.mode(Mode::OneOff),
        ledger.clone(),
    );
    tokio::time::timeout(
        Duration::from_secs(60),
        processor.run(CancellationToken::new()),
    )
    .await
    .expect("one-off run ends")
}

/// One-off mode catches up to the head, saves it as the checkpoint, and a second run handles
/// nothing new.
pub async fn one_off_builds_the_read_model_and_stops_at_the_head(fixture: Fixture) {
    let boundary = seeded(&fixture.0, 5, 6).await;
    let ledger = Arc::new(Ledger::default());
    run_once(&fixture, config(&boundary, "ledger"), &ledger)
        .await
        .expect("run");
    assert_eq!(ledger.balances(), fold(&fixture.0, &boundary).await);
    assert!(
        ledger.delivered().values().all(|n| *n == 1),
        "every event handled once"
    );
    let head = fixture.0.head(&boundary).await.expect("head");
    let checkpoint = fixture
        .1
        .load_checkpoint(&config(&boundary, "ledger").checkpoint_name())
        .await
        .expect("load")
        .expect("saved");
    assert_eq!(checkpoint, head);
    let again = Arc::new(Ledger::default());
    run_once(&fixture, config(&boundary, "ledger"), &again)
        .await
        .expect("second run");
    assert!(
        again.delivered().is_empty(),
        "a caught-up projection handles nothing"
    );
}

/// Continuous mode handles what was there and what comes later, and stops on its token.
pub async fn continuous_follows_new_events(fixture: Fixture) {
    let (store, coordination) = fixture.clone();
    let boundary = seeded(&store, 3, 2).await;
    let ledger = Arc::new(Ledger::default());
    let processor = Processor::new(
        store.clone(),
        coordination,
        config(&boundary, "live"),
        ledger.clone(),
    );
    let mut progress = processor.progress();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(processor.run(cancel.clone()));
    append_deposits(&store, &boundary, 3, 4, 1000).await;
    let head = store.head(&boundary).await.expect("head");
    tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|p| p.checkpoint >= head),
    )
    .await
    .expect("caught up in time")
    .expect("progress");
    assert_eq!(progress.borrow().lag(), 0);
    cancel.cancel();
    running.await.expect("task").expect("clean stop");
    assert_eq!(progress.borrow().state, State::Stopped);
    assert_eq!(ledger.balances(), fold(&store, &boundary).await);
}

/// A batch that fails is retried; the events after it are not handled before it succeeds.
pub async fn a_failing_batch_is_retried_and_never_skipped(fixture: Fixture) {
    let boundary = seeded(&fixture.0, 4, 5).await;
    let ledger = Arc::new(Ledger::default());
    *ledger.fail_on.lock() = Some((13, 2));
    run_once(&fixture, config(&boundary, "retry"), &ledger)
        .await
        .expect("succeeds on the third attempt");
    assert_eq!(ledger.balances(), fold(&fixture.0, &boundary).await);
}

/// A handler that keeps failing stops the projection with the batch's position, the checkpoint
/// stays before the failed event, and a fixed handler resumes from there.
pub async fn a_handler_that_keeps_failing_stops_the_projection(fixture: Fixture) {
    let boundary = seeded(&fixture.0, 4, 5).await;
    let ledger = Arc::new(Ledger::default());
    *ledger.fail_on.lock() = Some((13, u32::MAX));
    let error = run_once(&fixture, config(&boundary, "stuck"), &ledger)
        .await
        .expect_err("stops");
    let failed_at = match error {
        ProjectionError::Handler {
            attempts: 3,
            position,
            ref projection,
            ..
        } => {
            assert_eq!(projection, "stuck");
            position
        }
        other => panic!("expected a handler error after 3 attempts, got {other}"),
    };
    let checkpoint = fixture
        .1
        .load_checkpoint(&config(&boundary, "stuck").checkpoint_name())
        .await
        .expect("load")
        .unwrap_or(Position::BEFORE_FIRST);
    assert!(
        checkpoint < failed_at,
        "checkpoint {checkpoint} moved past the failed batch at {failed_at}"
    );
    assert!(
        !ledger.balances().values().any(|b| *b >= 13 * 100),
        "sanity"
    );
    *ledger.fail_on.lock() = None;
    run_once(&fixture, config(&boundary, "stuck"), &ledger)
        .await
        .expect("resumes");
    assert_eq!(ledger.balances(), fold(&fixture.0, &boundary).await);
    assert!(ledger.delivered().values().all(|n| *n >= 1));
}

/// Four partitions, each in its own task, build the same read model as one processor, and
/// every event goes to exactly one partition.
pub async fn four_partitions_build_the_same_read_model_as_one(fixture: Fixture) {
    let boundary = seeded(&fixture.0, 10, 4).await;
    let whole = Arc::new(Ledger::default());
    run_once(&fixture, config(&boundary, "whole"), &whole)
        .await
        .expect("whole");
    let shared = Arc::new(Ledger::default());
    let runs: Vec<_> = (0..4)
        .map(|p| {
            let fixture = fixture.clone();
            let shared = shared.clone();
            let config = config(&boundary, "split").partition(Partition::new(p, 4).expect("valid"));
            tokio::spawn(async move { run_once(&fixture, config, &shared).await })
        })
        .collect();
    for run in runs {
        run.await.expect("task").expect("partition run");
    }
    assert_eq!(shared.balances(), whole.balances());
    assert_eq!(shared.balances(), fold(&fixture.0, &boundary).await);
    // A partition reads N times its batch size, so its batches fill up: four partitions make
    // about as many handler calls in all as one, not four times as many.
    let (split_calls, whole_calls) = (
        shared.calls.load(Ordering::SeqCst),
        whole.calls.load(Ordering::SeqCst),
    );
    assert!(
        split_calls < 2 * whole_calls,
        "{split_calls} calls in 4 partitions, {whole_calls} in one"
    );
    let state = shared.state.lock().clone();
    assert!(
        state.deliveries.values().all(|n| *n == 1),
        "an event reached two partitions"
    );
    let used: std::collections::BTreeSet<u32> = state.partitions.values().copied().collect();
    assert_eq!(used.len(), 4, "every partition got work");
    for (id, partition) in &state.partitions {
        let _ = id;
        assert!(*partition < 4);
    }
}

/// A scope keeps other events away from the handler.
pub async fn scopes_filter_in_the_store(fixture: Fixture) {
    let boundary = seeded(&fixture.0, 2, 3).await;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    struct Types(Arc<Mutex<Vec<String>>>);
    #[async_trait]
    impl Handler for Types {
        async fn handle(&self, batch: &Batch) -> Result<(), HandlerError> {
            self.0
                .lock()
                .extend(batch.events.iter().map(|e| e.event_type.clone()));
            Ok(())
        }
    }
    let (store, coordination) = fixture;
    let processor = Processor::new(
        store.clone(),
        coordination,
        config(&boundary, "scoped")
            .scope(Scope::all().aggregate_types(["Account"]))
            .mode(Mode::OneOff),
        Types(seen.clone()),
    );
    processor.run(CancellationToken::new()).await.expect("run");
    let types = seen.lock().clone();
    assert_eq!(types.len(), 6);
    assert!(types.iter().all(|t| t == "Deposited"));
}

/// A second processor for a partition that is held waits, and takes over once it is free.
pub async fn a_held_partition_waits_for_its_lease(fixture: Fixture) {
    let (store, coordination) = fixture;
    let boundary = seeded(&store, 2, 2).await;
    let first = Processor::new(
        store.clone(),
        coordination.clone(),
        config(&boundary, "single").worker("first"),
        Arc::new(Ledger::default()),
    );
    let mut first_progress = first.progress();
    let stop_first = CancellationToken::new();
    let first_run = tokio::spawn(first.run(stop_first.clone()));
    tokio::time::timeout(
        Duration::from_secs(30),
        first_progress.wait_for(|p| p.state == State::Idle),
    )
    .await
    .expect("first caught up")
    .expect("progress");
    let ledger = Arc::new(Ledger::default());
    let second = Processor::new(
        store.clone(),
        coordination,
        config(&boundary, "single")
            .worker("second")
            .lease_ttl(Duration::from_millis(300))
            .mode(Mode::OneOff),
        ledger.clone(),
    );
    let mut second_progress = second.progress();
    let second_run = tokio::spawn(second.run(CancellationToken::new()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(second_progress.borrow_and_update().state, State::Waiting);
    assert!(ledger.delivered().is_empty());
    stop_first.cancel();
    first_run.await.expect("task").expect("first stops cleanly");
    tokio::time::timeout(Duration::from_secs(30), second_run)
        .await
        .expect("second finishes")
        .expect("task")
        .expect("second run");
    // The first one handled everything; the second resumed from its checkpoint.
    assert!(
        ledger.delivered().is_empty(),
        "the second worker re-handled events"
    );
}

/// The runner stops every processor when one fails and names the one that failed.
pub async fn the_runner_stops_everything_and_names_the_failure(fixture: Fixture) {
    let (store, coordination) = fixture;
    let boundary = seeded(&store, 2, 3).await;
    let failing = Arc::new(Ledger::default());
    *failing.fail_on.lock() = Some((1, u32::MAX));
    let healthy = Arc::new(Ledger::default());
    let runner = Runner::new()
        .with(Processor::new(
            store.clone(),
            coordination.clone(),
            config(&boundary, "healthy"),
            healthy.clone(),
        ))
        .with(Processor::new(
            store.clone(),
            coordination.clone(),
            config(&boundary, "broken"),
            failing,
        ));
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        runner.run(CancellationToken::new()),
    )
    .await
    .expect("the runner ends when one projection fails");
    match result {
        Err(RunnerError::Failed(failures)) => {
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].processor, "broken[0/1]");
            assert!(matches!(failures[0].error, ProjectionError::Handler { .. }));
            assert!(failures[0]
                .to_string()
                .starts_with("broken[0/1] failed: projection \"broken\""));
        }
        other => panic!("expected the broken projection's failure, got {other:?}"),
    }
    let cancel = CancellationToken::new();
    cancel.cancel();
    let empty = Runner::new().run(cancel).await;
    assert!(matches!(empty, Err(RunnerError::NoProjections)));
}
