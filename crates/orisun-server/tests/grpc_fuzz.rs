//! The gRPC-level fuzzer: random valid and invalid requests against a live server (SQLite and
//! PostgreSQL, each in its own test so they run concurrently), compared request by request with
//! a `MemoryStore` that receives exactly the saves the server accepted.
//!
//! Checked for every request: no `INTERNAL` status; a save, read, latest-by-criteria or count
//! gets the answer the model gives (same position, same events, same error code); a rejected
//! request leaves the head of its boundary where it was; admin and auth calls get a definite
//! answer. At the end, every event of every boundary (id, type, data, metadata, position) equals
//! the model's. Requests are sent one at a time from a seeded generator, so a failure replays:
//! its message names `ORISUN_FUZZ_SEED`.
//!
//! Budget: `ORISUN_GRPC_FUZZ_SECONDS` per backend (default 45). Soak:
//! `ORISUN_GRPC_FUZZ_SECONDS=600 cargo test -p orisun-server --test grpc_fuzz -- --nocapture`.

mod common;

use common::{Backend, Credentials, TestServer};
use futures::StreamExt;
use orisun_core::{BoundaryName, Position, Query};
use orisun_proto as pb;
use orisun_proto::{convert, status};
use orisun_store::testsuite::fuzz::{seed, SEED_ENV};
use orisun_store::{EventStore, MemoryStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tonic::Code;
use uuid::Uuid;

const SECONDS_ENV: &str = "ORISUN_GRPC_FUZZ_SECONDS";
const DEFAULT_SECONDS: f64 = 45.0;

/// The boundaries the model mirrors: the test server declares them.
const BOUNDARIES: [&str; 2] = ["orders", "payments"];
const ADMIN_BOUNDARY: &str = "orisun_admin";

// Small vocabularies, so criteria often match and conditions often conflict.
const KEYS: [&str; 4] = ["id", "kind", "n", "flag"];
const VALUES: [&str; 6] = ["1", "2", "a", "true", "x y", "é"];
const TYPES: [&str; 4] = ["Created", "Moved", "Closed", "Über"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    run(Backend::Postgres).await;
}

/// What the run counts, printed at the end (and in a failure).
#[derive(Default, Debug)]
struct Counts {
    requests: u64,
    accepted: u64,
    rejected: BTreeMap<String, u64>,
    saves_accepted: u64,
    events_accepted: u64,
    internal: u64,
}

impl Counts {
    fn record<T>(&mut self, result: &Result<T, tonic::Status>) {
        self.requests += 1;
        match result {
            Ok(_) => self.accepted += 1,
            Err(s) => {
                *self.rejected.entry(format!("{:?}", s.code())).or_default() += 1;
                if s.code() == Code::Internal {
                    self.internal += 1;
                }
            }
        }
    }
}

struct Fuzzer {
    backend: Backend,
    seed: u64,
    rng: StdRng,
    server: TestServer,
    client: common::Client,
    admin: pb::admin_client::AdminClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credentials>,
    >,
    model: MemoryStore,
    /// Every boundary the model mirrors (the declared ones, and those the fuzzer created).
    boundaries: Vec<String>,
    /// Event ids sent so far, to resend (retries, duplicates).
    ids: Vec<String>,
    /// Accepted batches, to resend whole (idempotent retries).
    batches: Vec<(String, Vec<pb::EventToSave>)>,
    /// Users the fuzzer created: (id, username, password).
    users: Vec<(String, String, String)>,
    counts: Counts,
    /// Whether the generators may produce invalid values right now: a save is either valid
    /// throughout, or has bad values in some of its fields (most saves must be valid, or few
    /// would reach the store).
    wild: bool,
    /// The last requests, for the failure message.
    trail: Vec<String>,
}

async fn run(backend: Backend) {
    let budget = std::env::var(SECONDS_ENV)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(DEFAULT_SECONDS);
    let seed = seed();
    let server = TestServer::start(backend).await;
    let model = MemoryStore::new();
    for b in BOUNDARIES {
        model
            .create_boundary(&BoundaryName::new(b).expect("name"))
            .await
            .expect("model boundary");
    }
    let mut f = Fuzzer {
        backend,
        seed,
        rng: StdRng::seed_from_u64(seed),
        client: server.client().await,
        admin: server.admin().await,
        server,
        model,
        boundaries: BOUNDARIES.iter().map(|s| s.to_string()).collect(),
        ids: Vec::new(),
        batches: Vec::new(),
        users: Vec::new(),
        counts: Counts::default(),
        wild: true,
        trail: Vec::new(),
    };
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < budget {
        f.step().await;
    }
    f.compare_logs().await;
    let c = &f.counts;
    eprintln!(
        "grpc fuzz {backend:?}: {} requests in {:.0} s (seed {seed}): {} accepted ({} saves, {} events), rejected {:?}, INTERNAL {}; log equal to the model",
        c.requests,
        started.elapsed().as_secs_f64(),
        c.accepted,
        c.saves_accepted,
        c.events_accepted,
        c.rejected,
        c.internal
    );
}

impl Fuzzer {
    /// Fails the test with everything needed to replay it.
    fn fail(&self, what: String) -> ! {
        let mut trail = String::new();
        for line in self.trail.iter().rev().take(5).rev() {
            let _ = writeln!(trail, "  {line}");
        }
        panic!(
            "grpc fuzz on {:?} failed after {} requests (replay: {SEED_ENV}={}): {what}\nlast requests:\n{trail}",
            self.backend, self.counts.requests, self.seed
        );
    }

    fn note(&mut self, text: String) {
        let mut text = text;
        if text.len() > 600 {
            let mut cut = 600;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        self.trail.push(text);
        if self.trail.len() > 20 {
            self.trail.remove(0);
        }
    }

    fn check_not_internal<T>(&mut self, result: &Result<T, tonic::Status>) {
        self.counts.record(result);
        if let Err(s) = result {
            if s.code() == Code::Internal || s.code() == Code::Unknown {
                self.fail(format!("server answered {:?}: {}", s.code(), s.message()));
            }
        }
    }

    async fn step(&mut self) {
        match self.rng.random_range(0..100) {
            0..=44 => self.save().await,
            45..=64 => self.get_events().await,
            65..=74 => self.latest().await,
            75..=79 => self.subscribe().await,
            80..=89 => self.admin_call().await,
            90..=95 => self.unauthorised().await,
            _ => {
                let r = self.client.ping(pb::PingRequest {}).await;
                self.check_not_internal(&r);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Generators

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    fn boundary(&mut self) -> String {
        match self.rng.random_range(0..20) {
            0 => String::new(),
            1 => "1bad".into(),
            2 => "no_such_boundary".into(),
            3 => "a-b".into(),
            4 => "x".repeat(64),
            5 => ADMIN_BOUNDARY.into(),
            _ => {
                let i = self.rng.random_range(0..self.boundaries.len());
                self.boundaries[i].clone()
            }
        }
    }

    fn odd_string(&mut self) -> String {
        let pieces = [
            "",
            " ",
            "\"",
            "\\",
            "\\u0000",
            "\u{0}",
            "é",
            "😀",
            "\u{feff}",
            "\u{10ffff}",
            "'; drop",
            "{",
            "}",
            "\n",
            "a",
            "$",
        ];
        (0..self.rng.random_range(0..5))
            .map(|_| *self.pick(&pieces))
            .collect()
    }

    fn scalar(&mut self) -> Value {
        match self.rng.random_range(0..10) {
            0 => Value::Null,
            1 => json!(self.rng.random_bool(0.5)),
            2 => json!(self.rng.random_range(-3i64..3)),
            3 => json!(1.5),
            4 => json!(u64::MAX),
            5 => json!(self.odd_string()),
            6 => json!([1, "a", null]),
            7 => json!({"nested": {"k": "v"}}),
            _ => json!(*self.pick(&VALUES)),
        }
    }

    fn data(&mut self) -> String {
        let bad = if self.wild { 0 } else { 9 };
        match self.rng.random_range(bad..30) {
            0 => String::new(),
            1 => "not json".into(),
            2 => "[1,2]".into(),
            3 => r#"{"a":1"#.into(),
            4 => "null".into(),
            5 => r#"{"s":"\u0000"}"#.into(),
            6 => json!({"big": "x".repeat(self.rng.random_range(10_000..200_000))}).to_string(),
            7 => r#"{"n":1e400}"#.into(),
            8 => r#"{"dup":1,"dup":2}"#.into(),
            _ => {
                let mut m = Map::new();
                for _ in 0..self.rng.random_range(0..5) {
                    let key = if self.rng.random_bool(0.9) {
                        self.pick(&KEYS).to_string()
                    } else {
                        self.odd_string()
                    };
                    let value = if self.rng.random_bool(0.7) {
                        json!(*self.pick(&VALUES))
                    } else {
                        self.scalar()
                    };
                    m.insert(key, value);
                }
                Value::Object(m).to_string()
            }
        }
    }

    fn event_id(&mut self) -> String {
        let bad = if self.wild { 0 } else { 2 };
        match self.rng.random_range(bad..30) {
            0 => String::new(),
            1 => "not-a-uuid".into(),
            2..=3 if !self.ids.is_empty() => {
                let i = self.rng.random_range(0..self.ids.len());
                self.ids[i].clone()
            }
            _ => {
                let id = Uuid::from_u128(self.rng.random()).to_string();
                self.ids.push(id.clone());
                id
            }
        }
    }

    fn event(&mut self) -> pb::EventToSave {
        let bad = if self.wild { 0 } else { 4 };
        let event_type = match self.rng.random_range(bad..20) {
            0 => String::new(),
            1 => "T\u{0}".into(),
            2 => "$UserCreated".into(),
            3 => self.odd_string(),
            _ => self.pick(&TYPES).to_string(),
        };
        let metadata = match self.rng.random_range(0..6) {
            0 => String::new(),
            1 => "null".into(),
            2 => self.data(),
            _ => json!({"by": *self.pick(&VALUES)}).to_string(),
        };
        pb::EventToSave {
            event_id: self.event_id(),
            event_type,
            data: self.data(),
            metadata,
        }
    }

    fn query(&mut self) -> pb::Query {
        let criteria = (0..self.rng.random_range(0..3))
            .map(|_| pb::Criterion {
                tags: (0..self.rng.random_range(0..3))
                    .map(|_| pb::Tag {
                        key: if self.rng.random_bool(0.95) {
                            self.pick(&KEYS).to_string()
                        } else {
                            String::new()
                        },
                        value: if self.rng.random_bool(0.9) {
                            self.pick(&VALUES).to_string()
                        } else {
                            self.odd_string()
                        },
                    })
                    .collect(),
            })
            .collect();
        pb::Query { criteria }
    }

    async fn model_head(&self, boundary: &str) -> Position {
        match BoundaryName::new(boundary) {
            Ok(b) => self.model.head(&b).await.unwrap_or(Position::BEFORE_FIRST),
            Err(_) => Position::BEFORE_FIRST,
        }
    }

    async fn position(&mut self, boundary: &str) -> pb::Position {
        let head = self.model_head(boundary).await;
        let p = match self.rng.random_range(0..12) {
            0 => Position::BEFORE_FIRST,
            1 => Position::new(0, 0),
            2 => Position::new(head.commit + 1, head.prepare + 1),
            3 => Position::new(i64::MAX, i64::MAX),
            4 => Position::new(i64::MIN, -7),
            5 => Position::new(head.commit, head.prepare + 5),
            6..=8 if head.prepare >= 0 => {
                let seq = self.rng.random_range(0..=head.prepare);
                // Positions of stored events: read the one at `seq` from the model.
                self.model_position_of(boundary, seq).await.unwrap_or(head)
            }
            _ => head,
        };
        p.into()
    }

    async fn model_position_of(&self, boundary: &str, seq: i64) -> Option<Position> {
        let b = BoundaryName::new(boundary).ok()?;
        let read = orisun_core::ReadRequest::forward(Some(Position::new(seq, seq)), 1);
        // (seq, seq) sorts before every event of a later batch and after those of earlier ones.
        let events = self.model.read(&b, &read).await.ok()?;
        events.first().map(|e| e.position)
    }

    // -----------------------------------------------------------------------------------------
    // Requests

    async fn save(&mut self) {
        let (boundary, events) = if !self.batches.is_empty() && self.rng.random_range(0..15) == 0 {
            // Resend an accepted batch whole: an idempotent retry.
            let i = self.rng.random_range(0..self.batches.len());
            self.batches[i].clone()
        } else {
            self.wild = self.rng.random_range(0..4) == 0;
            let boundary = if self.wild {
                self.boundary()
            } else {
                self.boundaries[self.rng.random_range(0..self.boundaries.len())].clone()
            };
            let n = match self.rng.random_range(0..20) {
                0 if self.wild => 0,
                1 => self.rng.random_range(20..120),
                _ => self.rng.random_range(1..5),
            };
            let mut events: Vec<pb::EventToSave> = (0..n).map(|_| self.event()).collect();
            self.wild = true;
            if boundary == ADMIN_BOUNDARY && n > 0 {
                // Only reserved types go there: the model does not mirror the admin boundary.
                events[0].event_type = "$UserCreated".into();
            }
            if n > 1 && self.rng.random_range(0..10) == 0 {
                let id = events[0].event_id.clone();
                events[n - 1].event_id = id;
            }
            (boundary, events)
        };
        let query = match self.rng.random_range(0..10) {
            0..=3 => None,
            4 => Some(pb::SaveQuery {
                expected_position: Some(self.position(&boundary).await),
                subset_query: None,
            }),
            _ => Some(pb::SaveQuery {
                expected_position: if self.rng.random_bool(0.9) {
                    Some(self.position(&boundary).await)
                } else {
                    None
                },
                subset_query: Some(self.query()),
            }),
        };
        let request = pb::SaveEventsRequest {
            boundary: boundary.clone(),
            query,
            events,
        };
        self.note(format!("SaveEvents {request:?}"));
        let expected = self.model_save(&request).await;
        let head_before = self.model_head(&boundary).await;
        let admin_before = if boundary == ADMIN_BOUNDARY {
            Some(self.server_head(ADMIN_BOUNDARY).await)
        } else {
            None
        };
        let result = self.client.save_events(request.clone()).await;
        self.check_not_internal(&result);
        match (&result, &expected) {
            (Ok(response), Ok(outcome)) => {
                let already = response
                    .metadata()
                    .get(pb::ALREADY_STORED_HEADER)
                    .is_some_and(|v| v == "true");
                let position = response.get_ref().log_position.map(Position::from);
                if position != Some(outcome.position) || already != outcome.already_stored {
                    self.fail(format!(
                        "save answered {position:?} (already stored: {already}), the model {outcome:?}"
                    ));
                }
                self.counts.saves_accepted += 1;
                if !outcome.already_stored {
                    self.counts.events_accepted += request.events.len() as u64;
                    self.batches.push((boundary, request.events));
                }
            }
            (Err(s), Err(code)) if s.code() == *code => {
                self.check_head(&boundary, head_before).await;
                if let Some(before) = admin_before {
                    let after = self.server_head(ADMIN_BOUNDARY).await;
                    if after != before {
                        self.fail(format!("a refused save moved the admin head to {after}"));
                    }
                }
            }
            (result, expected) => {
                let result = result.as_ref().map(|r| *r.get_ref());
                self.fail(format!("save answered {result:?}, the model {expected:?}"))
            }
        }
    }

    /// What the server must answer, decided by the model (which applies the save when it
    /// succeeds): the same conversions and checks as the service, then `MemoryStore::append`.
    async fn model_save(
        &self,
        request: &pb::SaveEventsRequest,
    ) -> Result<orisun_store::AppendOutcome, Code> {
        let boundary = convert::boundary(&request.boundary).map_err(|s| s.code())?;
        let events = convert::events_to_save(request.events.clone()).map_err(|s| s.code())?;
        if boundary.as_str() == ADMIN_BOUNDARY
            && events.iter().any(|e| e.event_type.starts_with('$'))
        {
            return Err(Code::PermissionDenied);
        }
        let condition = convert::append_condition(request.query.clone());
        if let Some(c) = &condition {
            c.query
                .validate("query.subsetQuery")
                .map_err(|_| Code::InvalidArgument)?;
        }
        if boundary.as_str() == ADMIN_BOUNDARY {
            // Not mirrored; the fuzzer only sends reserved types there (refused above).
            return Err(Code::PermissionDenied);
        }
        self.model
            .append(&boundary, events, condition)
            .await
            .map_err(|e| status::code(&e))
    }

    /// A rejected request left the boundary's head where it was.
    async fn check_head(&mut self, boundary: &str, before: Position) {
        if !self.boundaries.iter().any(|b| b == boundary) {
            return;
        }
        let head = self.server_head(boundary).await;
        if head != before {
            self.fail(format!(
                "a rejected request moved the head of {boundary} from {before} to {head}"
            ));
        }
    }

    async fn server_head(&mut self, boundary: &str) -> Position {
        let r = self
            .client
            .get_events(pb::GetEventsRequest {
                boundary: boundary.to_owned(),
                count: 1,
                direction: pb::Direction::Desc as i32,
                ..Default::default()
            })
            .await;
        match r {
            Ok(r) => r
                .into_inner()
                .events
                .first()
                .and_then(|e| e.position)
                .map_or(Position::BEFORE_FIRST, Position::from),
            Err(s) => self.fail(format!("reading the head of {boundary}: {s:?}")),
        }
    }

    async fn get_events(&mut self) {
        let boundary = self.boundary();
        let count = match self.rng.random_range(0..10) {
            0 => 0,
            1 => 10_001,
            2 => u32::MAX,
            _ => self.rng.random_range(1..60),
        };
        let direction = match self.rng.random_range(0..10) {
            0 => 7,
            1..=4 => 1,
            _ => 0,
        };
        let from_position = if self.rng.random_bool(0.7) {
            Some(self.position(&boundary).await)
        } else {
            None
        };
        let query = if self.rng.random_bool(0.6) {
            Some(self.query())
        } else {
            None
        };
        let request = pb::GetEventsRequest {
            query,
            from_position,
            count,
            direction,
            boundary: boundary.clone(),
        };
        self.note(format!("GetEvents {request:?}"));
        let expected: Result<Vec<orisun_core::StoredEvent>, Code> = async {
            let b = convert::boundary(&request.boundary).map_err(|s| s.code())?;
            let read = convert::read_request(&request).map_err(|s| s.code())?;
            if b.as_str() == ADMIN_BOUNDARY {
                return Err(Code::Ok);
            }
            self.model
                .read(&b, &read)
                .await
                .map_err(|e| status::code(&e))
        }
        .await;
        let result = self.client.get_events(request).await;
        self.check_not_internal(&result);
        match (result, expected) {
            (Ok(_), Err(Code::Ok)) => {} // the admin boundary: not mirrored
            (Ok(r), Ok(events)) => {
                let got = r.into_inner().events;
                self.same_events(&boundary, &got, &events);
            }
            (Err(s), Err(code)) if s.code() == code => {}
            (result, expected) => self.fail(format!(
                "GetEvents answered {:?}, the model {:?}",
                result.map(|r| r.into_inner().events.len()),
                expected.map(|e| e.len())
            )),
        }
    }

    async fn latest(&mut self) {
        let boundary = self.boundary();
        let criteria = self.query().criteria;
        let request = pb::GetLatestByCriteriaRequest {
            boundary: boundary.clone(),
            criteria,
        };
        self.note(format!("GetLatestByCriteria {request:?}"));
        let expected = async {
            let b = convert::boundary(&boundary).map_err(|s| s.code())?;
            let query = Query::from(pb::Query {
                criteria: request.criteria.clone(),
            });
            orisun_store::rules::validate_criteria(&query.criteria)
                .map_err(|e| status::code(&e))?;
            if b.as_str() == ADMIN_BOUNDARY {
                return Err(Code::Ok);
            }
            self.model
                .latest_by_criteria(&b, &query.criteria)
                .await
                .map_err(|e| status::code(&e))
        }
        .await;
        let result = self.client.get_latest_by_criteria(request).await;
        self.check_not_internal(&result);
        match (result, expected) {
            (Ok(_), Err(Code::Ok)) => {}
            (Ok(r), Ok(latest)) => {
                let r = r.into_inner();
                let context = r.context_position.map(Position::from);
                if context != Some(latest.context_position)
                    || r.results.len() != latest.events.len()
                {
                    self.fail(format!("latest answered {r:?}, the model {latest:?}"));
                }
                for (got, want) in r.results.iter().zip(&latest.events) {
                    let got: Vec<pb::Event> = got.event.iter().cloned().collect();
                    let want: Vec<_> = want.iter().cloned().collect();
                    self.same_events(&boundary, &got, &want);
                }
            }
            (Err(s), Err(code)) if s.code() == code => {}
            (result, expected) => self.fail(format!(
                "GetLatestByCriteria answered {:?}, the model {:?}",
                result.map(|r| r.into_inner()),
                expected
            )),
        }
    }

    async fn subscribe(&mut self) {
        let boundary = self.boundary();
        let after = if self.rng.random_bool(0.8) {
            Some(self.position(&boundary).await)
        } else {
            None
        };
        let query = if self.rng.random_bool(0.5) {
            Some(self.query())
        } else {
            None
        };
        let subscriber_name = match self.rng.random_range(0..8) {
            0 => "has space".into(),
            1 => "x".repeat(300),
            2 => "tab\there".into(),
            3..=4 => String::new(),
            _ => format!("fz-{}", self.rng.random::<u32>()),
        };
        let request = pb::CatchUpSubscribeToEventStoreRequest {
            after_position: after,
            query: query.clone(),
            subscriber_name,
            boundary: boundary.clone(),
        };
        self.note(format!("CatchUpSubscribeToEvents {request:?}"));
        // What the stream must deliver first: the model's matching events after `after`.
        let expected: Result<Vec<orisun_core::StoredEvent>, Code> = async {
            let b = convert::boundary(&boundary).map_err(|s| s.code())?;
            orisun_server::subscriptions::validate_name(&request.subscriber_name)
                .map_err(|s| s.code())?;
            let q = query.clone().map(Query::from).unwrap_or_default();
            q.validate("query").map_err(|_| Code::InvalidArgument)?;
            if !self.boundaries.iter().any(|x| x == b.as_str()) {
                return Err(Code::Ok);
            }
            let from = after.map_or(Position::BEFORE_FIRST, Position::from);
            let read = orisun_core::ReadRequest::forward(None, 10_000).with_query(q);
            let all = self
                .model
                .read(&b, &read)
                .await
                .map_err(|e| status::code(&e))?;
            Ok(all
                .into_iter()
                .filter(|e| e.position > from)
                .take(50)
                .collect())
        }
        .await;
        let call = tokio::time::timeout(
            Duration::from_secs(20),
            self.client.catch_up_subscribe_to_events(request),
        )
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in 20 s")));
        let result = match call {
            Ok(response) => {
                let mut stream = response.into_inner();
                // A refusal comes before any event; an unmirrored boundary's events are not
                // predicted, so that stream is only opened.
                let want = expected.as_ref().map_or(0, Vec::len);
                let mut got = Vec::new();
                let mut error = None;
                while got.len() < want {
                    match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
                        Ok(Some(Ok(e))) => got.push(e),
                        Ok(Some(Err(s))) => {
                            error = Some(s);
                            break;
                        }
                        Ok(None) => break,
                        Err(_) => self.fail(format!(
                            "subscription delivered {} of {want} events, then nothing for 20 s",
                            got.len()
                        )),
                    }
                }
                match error {
                    Some(s) => Err(s),
                    None => Ok(got),
                }
            }
            Err(s) => Err(s),
        };
        self.check_not_internal(&result);
        match (result, expected) {
            (Ok(got), Ok(want)) => self.same_events(&boundary, &got, &want),
            (Err(s), Err(code)) if s.code() == code => {}
            // An unknown or unmirrored boundary: a definite refusal.
            (Err(s), Err(Code::Ok))
                if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) => {}
            (Ok(_), Err(Code::Ok)) if boundary == ADMIN_BOUNDARY => {}
            (result, expected) => self.fail(format!(
                "subscription answered {:?}, the model {:?}",
                result.map(|e| e.len()),
                expected.map(|e| e.len())
            )),
        }
    }

    async fn admin_call(&mut self) {
        let admin_head = self.server_head(ADMIN_BOUNDARY).await;
        let (name, result): (&str, Result<(), tonic::Status>) = match self.rng.random_range(0..12) {
            0 => {
                // Creating users costs an argon2 hash: valid ones are rare.
                let username = match self.rng.random_range(0..4) {
                    0 => format!("user{}", self.rng.random::<u16>()),
                    1 => String::new(),
                    2 => "admin".into(),
                    _ => self.odd_string(),
                };
                let roles = match self.rng.random_range(0..4) {
                    0 => vec![],
                    1 => vec!["NOPE".into()],
                    2 => vec!["ADMIN".into(), "OPERATIONS".into()],
                    _ => vec!["OPERATIONS".into()],
                };
                let password = if self.rng.random_bool(0.8) {
                    "pw-1".into()
                } else {
                    String::new()
                };
                let r = self
                    .admin
                    .create_user(pb::CreateUserRequest {
                        name: username.clone(),
                        username: username.clone(),
                        password: password.clone(),
                        roles,
                    })
                    .await;
                if let Ok(r) = &r {
                    if let Some(u) = &r.get_ref().user {
                        self.users.push((u.user_id.clone(), username, password));
                    }
                }
                ("CreateUser", r.map(|_| ()))
            }
            1 => {
                let user_id = match (self.users.is_empty(), self.rng.random_range(0..3)) {
                    (false, 0) => {
                        let i = self.rng.random_range(0..self.users.len());
                        self.users.remove(i).0
                    }
                    (_, 1) => Uuid::from_u128(self.rng.random()).to_string(),
                    _ => self.odd_string(),
                };
                let r = self
                    .admin
                    .delete_user(pb::DeleteUserRequest { user_id })
                    .await;
                ("DeleteUser", r.map(|_| ()))
            }
            2 => {
                let r = self.admin.list_users(pb::ListUsersRequest {}).await;
                ("ListUsers", r.map(|_| ()))
            }
            3 => {
                let r = self.admin.get_user_count(pb::GetUserCountRequest {}).await;
                ("GetUserCount", r.map(|_| ()))
            }
            4 | 5 => {
                let boundary = self.boundary();
                let expected = match BoundaryName::new(boundary.as_str()) {
                    Ok(b) if self.boundaries.contains(&boundary) => {
                        Some(self.model.count(&b).await.expect("model count"))
                    }
                    _ => None,
                };
                let r = self
                    .admin
                    .get_event_count(pb::GetEventCountRequest {
                        boundary: boundary.clone(),
                    })
                    .await;
                if let (Ok(r), Some(n)) = (&r, expected) {
                    if u64::try_from(r.get_ref().count).ok() != Some(n) {
                        self.fail(format!(
                            "GetEventCount({boundary}) = {}, the model has {n}",
                            r.get_ref().count
                        ));
                    }
                }
                if expected.is_some() && r.is_err() {
                    self.fail(format!("GetEventCount({boundary}) refused: {r:?}"));
                }
                ("GetEventCount", r.map(|_| ()))
            }
            6 => {
                let r = self
                    .admin
                    .list_boundaries(pb::ListBoundariesRequest {})
                    .await;
                ("ListBoundaries", r.map(|_| ()))
            }
            7 => {
                let name = self.boundary();
                let r = self
                    .admin
                    .get_boundary(pb::GetBoundaryRequest { name })
                    .await;
                ("GetBoundary", r.map(|_| ()))
            }
            8 => {
                // A new boundary (mirrored in the model when created), or a bad request.
                let fresh = format!("fz_{}", self.boundaries.len());
                let name = match self.rng.random_range(0..4) {
                    0 => self.boundary(),
                    _ => fresh.clone(),
                };
                let backend = match (self.backend, self.rng.random_range(0..6)) {
                    (_, 0) => "cassandra".to_owned(),
                    (Backend::Postgres, _) => "postgres".to_owned(),
                    _ => "sqlite".to_owned(),
                };
                let namespace = if self.rng.random_range(0..6) == 0 {
                    "bad ns".to_owned()
                } else {
                    name.clone()
                };
                let description = self.odd_string();
                let r = self
                    .admin
                    .create_boundary(pb::CreateBoundaryRequest {
                        name: name.clone(),
                        description,
                        placement: Some(pb::BoundaryPlacementInput { backend, namespace }),
                        existed_before_catalog: false,
                    })
                    .await;
                if r.is_ok() && !self.boundaries.contains(&name) {
                    let b = BoundaryName::new(name.as_str()).expect("created, so valid");
                    self.model
                        .create_boundary(&b)
                        .await
                        .expect("model boundary");
                    self.boundaries.push(name);
                }
                ("CreateBoundary", r.map(|_| ()))
            }
            9 | 10 => {
                let name = match self.rng.random_range(0..4) {
                    0 => self.odd_string(),
                    _ => format!("ix_{}", self.rng.random_range(0..4)),
                };
                let boundary = self.boundary();
                let r = if self.rng.random_bool(0.6) {
                    let fields = (0..self.rng.random_range(0..3))
                        .map(|_| pb::IndexField {
                            json_key: self.pick(&KEYS).to_string(),
                            value_type: self.rng.random_range(-1..5),
                        })
                        .collect();
                    let conditions = (0..self.rng.random_range(0..2))
                        .map(|_| pb::IndexCondition {
                            key: self.pick(&KEYS).to_string(),
                            operator: self.pick(&["=", ">", "<=", "LIKE", ""]).to_string(),
                            value: self.pick(&VALUES).to_string(),
                        })
                        .collect();
                    let condition_combinator = self.rng.random_range(-1..3);
                    self.client
                        .create_index(pb::CreateIndexRequest {
                            boundary,
                            name,
                            fields,
                            conditions,
                            condition_combinator,
                        })
                        .await
                        .map(|_| ())
                } else {
                    self.client
                        .drop_index(pb::DropIndexRequest { boundary, name })
                        .await
                        .map(|_| ())
                };
                ("CreateIndex/DropIndex", r)
            }
            _ => {
                let (username, password) = match self.rng.random_range(0..3) {
                    0 => ("admin".to_owned(), "changeit".to_owned()),
                    1 => ("admin".to_owned(), "wrong".to_owned()),
                    _ => (self.odd_string(), self.odd_string()),
                };
                let r = self
                    .admin
                    .validate_credentials(pb::ValidateCredentialsRequest { username, password })
                    .await;
                ("ValidateCredentials", r.map(|_| ()))
            }
        };
        self.note(format!("Admin {name}: {result:?}"));
        self.check_not_internal(&result);
        if result.is_err() {
            let after = self.server_head(ADMIN_BOUNDARY).await;
            if after != admin_head {
                self.fail(format!(
                    "a refused {name} moved the admin boundary's head from {admin_head} to {after}"
                ));
            }
        }
    }

    /// Calls with no, bad or insufficient credentials: refused, and nothing changes.
    async fn unauthorised(&mut self) {
        let boundary = self.pick(&BOUNDARIES).to_string();
        let before = self.model_head(&boundary).await;
        let credentials = match self.rng.random_range(0..5) {
            0 => Credentials::None,
            1 => Credentials::basic("admin", "wrong"),
            2 => Credentials::token("v1.e30.AAAA"),
            3 => Credentials::token(&"x".repeat(self.rng.random_range(1..200))),
            _ => Credentials::basic(&self.odd_string().replace(['\0', '\n'], ""), "pw"),
        };
        let channel = self.server.channel().await;
        let mut client = pb::event_store_client::EventStoreClient::with_interceptor(
            channel.clone(),
            credentials.clone(),
        );
        let mut events = vec![self.event()];
        events[0].event_id = Uuid::from_u128(self.rng.random()).to_string();
        let request = pb::SaveEventsRequest {
            boundary: boundary.clone(),
            query: None,
            events,
        };
        self.note(format!("unauthenticated SaveEvents {request:?}"));
        let r = client.save_events(request).await;
        self.check_not_internal(&r);
        match &r {
            Err(s) if s.code() == Code::Unauthenticated => {}
            other => self.fail(format!("bad credentials answered {other:?}")),
        }
        let mut admin = pb::admin_client::AdminClient::with_interceptor(channel, credentials);
        let r = admin.list_users(pb::ListUsersRequest {}).await;
        self.check_not_internal(&r);
        if !matches!(&r, Err(s) if s.code() == Code::Unauthenticated) {
            self.fail(format!("bad credentials listed users: {r:?}"));
        }
        self.check_head(&boundary, before).await;
    }

    // -----------------------------------------------------------------------------------------
    // Comparisons

    fn same_events(&self, boundary: &str, got: &[pb::Event], want: &[orisun_core::StoredEvent]) {
        if got.len() != want.len() {
            self.fail(format!(
                "{boundary}: the server returned {} events, the model {}",
                got.len(),
                want.len()
            ));
        }
        for (g, w) in got.iter().zip(want) {
            let same = g.event_id == w.event_id.to_string()
                && g.event_type == w.event_type
                && g.position.map(Position::from) == Some(w.position)
                && json_eq(&g.data, &w.data)
                && json_eq(&g.metadata, &w.metadata);
            if !same {
                self.fail(format!("{boundary}: the server has {g:?}, the model {w:?}"));
            }
        }
    }

    /// At the end: every event of every mirrored boundary equals the model's.
    async fn compare_logs(&mut self) {
        for boundary in self.boundaries.clone() {
            let b = BoundaryName::new(boundary.as_str()).expect("mirrored name");
            let mut from = None;
            let mut compared = 0usize;
            loop {
                let read = orisun_core::ReadRequest::forward(from, 10_000);
                let want = self.model.read(&b, &read).await.expect("model read");
                let got = self
                    .client
                    .get_events(orisun_proto::client::get_events_request(&b, &read))
                    .await
                    .unwrap_or_else(|s| self.fail(format!("final read of {boundary}: {s:?}")))
                    .into_inner()
                    .events;
                self.same_events(&boundary, &got, &want);
                compared += want.len();
                match want.last() {
                    Some(last) if want.len() == 10_000 => {
                        from = Some(Position::new(
                            last.position.commit,
                            last.position.prepare + 1,
                        ))
                    }
                    _ => break,
                }
            }
            let count = self.model.count(&b).await.expect("model count");
            assert_eq!(compared as u64, count, "compared every event of {boundary}");
        }
    }
}

/// JSON texts with the same content (PostgreSQL's jsonb may reorder keys and respell numbers).
fn json_eq(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(x), Ok(y)) => value_eq(&x, &y),
        _ => a == b,
    }
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| value_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| value_eq(v, w)))
        }
        _ => a == b,
    }
}
