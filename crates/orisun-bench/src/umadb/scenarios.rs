//! The UmaDB side of `--baseline umadb`: the counterparts of our scenarios, driven over
//! UmaDB's gRPC API the way ours are driven over ours (each client on its own connection, in a
//! closed loop for the same duration), with the same events ([`super::event`]) and, for
//! conditional saves, a condition on the same criterion (each client's own `client:<name>`
//! tag, after the position of its own previous write). Their figures are `BaselineResult`s
//! named `umadb_<our id>` (`umadb_read_all` for the whole-log read).

use super::proto::dcb_client::DcbClient;
use super::proto::{AppendCondition, AppendRequest, HeadRequest, Query, QueryItem, ReadRequest};
use super::{event, events::tag};
use crate::options::Plan;
use crate::progress::Progress;
use crate::report::BaselineResult;
use crate::stats::{rate, Latencies};
use anyhow::Context;
use futures::future::try_join_all;
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;
use tonic::transport::{Channel, Endpoint};

/// Largest message a client sends or accepts, as ours.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Most events per preload request: UmaDB's server keeps tonic's default 4 MiB limit on the
/// messages it receives, and 10,000 of the bench's events with their tags exceed it.
const MAX_PRELOAD_BATCH: usize = 2_000;

/// A client of UmaDB's DCB service on its own connection.
pub type Dcb = DcbClient<Channel>;

/// Opens a connection to `endpoint`.
pub async fn connect(endpoint: &str) -> anyhow::Result<Dcb> {
    let channel = Endpoint::from_shared(endpoint.to_owned())
        .with_context(|| format!("invalid UmaDB address {endpoint:?}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connecting to UmaDB at {endpoint}"))?;
    Ok(DcbClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

/// Returns UmaDB's head (the position of its last event; 0 when it is empty), on a connection
/// of its own.
pub async fn head(endpoint: &str) -> anyhow::Result<u64> {
    let mut client = connect(endpoint).await?;
    let response = client.head(HeadRequest {}).await?.into_inner();
    Ok(response.position.unwrap_or(0))
}

/// A query for the events tagged `tag`.
fn tagged(tag: String) -> Query {
    Query {
        items: vec![QueryItem {
            types: Vec::new(),
            tags: vec![tag],
        }],
    }
}

/// A connected bench against UmaDB, beside the bench of one of our backends.
pub struct UmaBench {
    endpoint: String,
    /// Shown in progress lines (`embedded/umadb`).
    label: String,
    plan: Plan,
    pool: Vec<Dcb>,
    /// Distinguishes this run's contexts from earlier ones.
    run_id: String,
    /// Events UmaDB acknowledged over the whole run (every round's, kept or not).
    acknowledged: Arc<AtomicU64>,
    /// UmaDB's position before the first preloaded event (its whole-log read starts after it).
    preload_after: Option<u64>,
}

/// What one UmaDB client counted.
#[derive(Default)]
struct Count {
    events: u64,
    latencies: Latencies,
    elapsed: Duration,
}

impl Count {
    /// The clients' counts together: their events and latencies, and the longest elapsed time.
    fn sum(counts: impl IntoIterator<Item = Count>) -> Count {
        let mut total = Count::default();
        for c in counts {
            total.events += c.events;
            total.latencies.add(&c.latencies);
            total.elapsed = total.elapsed.max(c.elapsed);
        }
        total
    }
}

/// What one client of a closed-loop scenario works with.
struct Worker {
    /// Its number, from 0.
    index: usize,
    /// Its own connection.
    client: Dcb,
    /// Released once every client is ready, so that they start together.
    barrier: Arc<Barrier>,
    /// The scenario's progress counter.
    counter: Arc<AtomicU64>,
    /// Every event UmaDB acknowledged in this run.
    acknowledged: Arc<AtomicU64>,
}

impl UmaBench {
    /// Connects one client to UmaDB at `endpoint`.
    pub async fn connect(endpoint: &str, label: String, plan: Plan) -> anyhow::Result<Self> {
        let first = connect(endpoint).await?;
        Ok(Self {
            endpoint: endpoint.to_owned(),
            label,
            plan,
            pool: vec![first],
            run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            acknowledged: Arc::new(AtomicU64::new(0)),
            preload_after: None,
        })
    }

    /// Returns how many events UmaDB acknowledged during the run.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Returns UmaDB's head now.
    pub async fn head(&self) -> anyhow::Result<u64> {
        head(&self.endpoint).await
    }

    async fn ensure_pool(&mut self, n: usize) -> anyhow::Result<()> {
        while self.pool.len() < n {
            self.pool.push(connect(&self.endpoint).await?);
        }
        Ok(())
    }

    /// The first `clients` connections of the pool (see [`UmaBench::ensure_pool`]), each with
    /// a shared start barrier and the scenario's counters.
    fn workers(&self, clients: usize, progress: &Progress) -> Vec<Worker> {
        let barrier = Arc::new(Barrier::new(clients));
        self.pool[..clients]
            .iter()
            .cloned()
            .enumerate()
            .map(|(index, client)| Worker {
                index,
                client,
                barrier: barrier.clone(),
                counter: progress.counter(),
                acknowledged: self.acknowledged.clone(),
            })
            .collect()
    }

    fn result(id: String, description: String, connections: usize, count: Count) -> BaselineResult {
        BaselineResult {
            id,
            description,
            connections,
            rows: count.events,
            elapsed_s: count.elapsed.as_secs_f64(),
            events_per_s: rate(count.events, count.elapsed),
            latency: count.latencies.summary(),
        }
    }

    /// The counterpart of `single_{uncond,cond}_c<clients>`: single-event appends by
    /// `clients` concurrent clients in a closed loop for `duration`; when `conditional`, each
    /// fails if an event tagged with the client's own `client:<name>` exists after its own
    /// previous write (the first one: after the last such event, read backwards, limit 1).
    pub async fn single_saves(
        &mut self,
        clients: usize,
        conditional: bool,
        duration: Duration,
    ) -> anyhow::Result<BaselineResult> {
        self.ensure_pool(clients).await?;
        let kind = if conditional { "cond" } else { "uncond" };
        let id = format!("umadb_single_{kind}_c{clients}");
        let progress = Progress::start(&self.label, &id);
        let workers = self.workers(clients, &progress).into_iter().map(|worker| {
            let Worker {
                index: i,
                mut client,
                barrier,
                counter,
                acknowledged,
            } = worker;
            let context = format!("{}-{kind}-c{clients}-{i}", self.run_id);
            async move {
                let mine = tagged(tag("client", &context));
                let mut after = if conditional {
                    let mut stream = client
                        .read(ReadRequest {
                            query: Some(mine.clone()),
                            backwards: Some(true),
                            limit: Some(1),
                            ..Default::default()
                        })
                        .await
                        .context("reading the context's last event")?
                        .into_inner();
                    let mut last = None;
                    while let Some(batch) = stream.next().await {
                        last = batch?.events.last().map(|e| e.position).or(last);
                    }
                    last
                } else {
                    None
                };
                barrier.wait().await;
                let mut count = Count::default();
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < duration {
                    let request = AppendRequest {
                        events: vec![event(&context, &context, n)],
                        condition: conditional.then(|| AppendCondition {
                            fail_if_events_match: Some(mine.clone()),
                            after,
                        }),
                    };
                    n += 1;
                    let t = Instant::now();
                    let response = client
                        .append(request)
                        .await
                        .with_context(|| format!("UmaDB append by client {i}"))?
                        .into_inner();
                    count.latencies.record(t.elapsed());
                    count.events += 1;
                    counter.fetch_add(1, Ordering::Relaxed);
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                    after = Some(response.position);
                }
                count.elapsed = start.elapsed();
                anyhow::Ok(count)
            }
        });
        let counts = try_join_all(workers).await;
        progress.finish();
        let total = Count::sum(counts.with_context(|| format!("scenario {id}"))?);
        let what = if conditional {
            "conditional (own client:<name> tag, after own last write)"
        } else {
            "unconditional"
        };
        Ok(Self::result(
            id,
            format!("UmaDB: single-event appends, {clients} concurrent client(s), {what}"),
            clients,
            total,
        ))
    }

    /// The counterpart of `batch_c<clients>_<size>`: unconditional appends of `size` events by
    /// `clients` concurrent clients for `duration` (and at least the plan's minimum number of
    /// batches each); throughput is over the requests' time, as ours.
    pub async fn batches(
        &mut self,
        clients: usize,
        size: usize,
        duration: Duration,
    ) -> anyhow::Result<BaselineResult> {
        self.ensure_pool(clients).await?;
        let id = format!("umadb_batch_c{clients}_{size}");
        let min_batches = self.plan.min_batches;
        let progress = Progress::start(&self.label, &id);
        let workers = self.workers(clients, &progress).into_iter().map(|worker| {
            let Worker {
                index: i,
                mut client,
                barrier,
                counter,
                acknowledged,
            } = worker;
            let context = format!("{}-batch-c{clients}-{i}", self.run_id);
            async move {
                barrier.wait().await;
                let mut count = Count::default();
                let start = Instant::now();
                let (mut n, mut batches) = (0u64, 0u64);
                while start.elapsed() < duration || batches < min_batches {
                    let events = (0..size as u64)
                        .map(|k| event(&context, &crate::payload::entity_of(n + k), n + k))
                        .collect();
                    n += size as u64;
                    batches += 1;
                    let t = Instant::now();
                    client
                        .append(AppendRequest {
                            events,
                            condition: None,
                        })
                        .await
                        .with_context(|| format!("UmaDB batch append by client {i}"))?;
                    let took = t.elapsed();
                    count.elapsed += took;
                    count.latencies.record(took);
                    count.events += size as u64;
                    counter.fetch_add(size as u64, Ordering::Relaxed);
                    acknowledged.fetch_add(size as u64, Ordering::Relaxed);
                }
                anyhow::Ok(count)
            }
        });
        let counts = try_join_all(workers).await;
        progress.finish();
        let total = Count::sum(counts.with_context(|| format!("scenario {id}"))?);
        Ok(Self::result(
            id,
            format!("UmaDB: batches of {size} events, {clients} concurrent clients, unconditional"),
            clients,
            total,
        ))
    }

    /// Appends the plan's preload size of events over two clients (for the whole-log read),
    /// in batches of the preload's size or [`MAX_PRELOAD_BATCH`], whichever is smaller.
    pub async fn preload(&mut self) -> anyhow::Result<BaselineResult> {
        self.ensure_pool(2).await?;
        let before = self.head().await?;
        self.preload_after = Some(before);
        let wanted = self.plan.preload;
        let batch = self.plan.preload_batch.min(MAX_PRELOAD_BATCH) as u64;
        let progress = Progress::start(&self.label, "umadb_preload");
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let workers = self.pool[..2].iter().cloned().map(|mut client| {
            let (next, counter, acknowledged) =
                (next.clone(), progress.counter(), self.acknowledged.clone());
            async move {
                let mut count = Count::default();
                loop {
                    let first = next.fetch_add(batch, Ordering::Relaxed);
                    if first >= wanted {
                        break;
                    }
                    let n = (wanted - first).min(batch);
                    let events = (first..first + n)
                        .map(|k| event("preload", &crate::payload::entity_of(k), k))
                        .collect();
                    let t = Instant::now();
                    client
                        .append(AppendRequest {
                            events,
                            condition: None,
                        })
                        .await
                        .context("UmaDB preload batch")?;
                    count.latencies.record(t.elapsed());
                    count.events += n;
                    counter.fetch_add(n, Ordering::Relaxed);
                    acknowledged.fetch_add(n, Ordering::Relaxed);
                }
                anyhow::Ok(count)
            }
        });
        let counts = try_join_all(workers).await;
        progress.finish();
        let mut total = Count::sum(counts.context("scenario umadb_preload")?);
        // The clients share the work, so the run takes from the first start to the last end.
        total.elapsed = start.elapsed();
        Ok(Self::result(
            "umadb_preload".to_owned(),
            format!("UmaDB: appends {wanted} events in batches of {batch}, 2 clients"),
            2,
            total,
        ))
    }

    /// The counterpart of `catch_up` and `get_events`: one `Read` stream from the first
    /// preloaded event until it has received the preload's size of events (UmaDB's default
    /// batch size), checking that positions strictly increase.
    pub async fn read_all(&mut self) -> anyhow::Result<BaselineResult> {
        let after = self
            .preload_after
            .context("the whole-log read needs UmaDB's preload first")?;
        let wanted = self.plan.preload;
        let mut client = self.pool[0].clone();
        let progress = Progress::start(&self.label, "umadb_read_all");
        let counter = progress.counter();
        let read = async {
            let start = Instant::now();
            let mut stream = client
                .read(ReadRequest {
                    start: Some(after + 1),
                    limit: u32::try_from(wanted).ok(),
                    ..Default::default()
                })
                .await
                .context("UmaDB Read")?
                .into_inner();
            let mut count = Count::default();
            let mut last = after;
            while count.events < wanted {
                let batch = tokio::time::timeout(Duration::from_secs(30), stream.next())
                    .await
                    .with_context(|| {
                        format!("UmaDB sent nothing for 30s after {} events", count.events)
                    })?
                    .with_context(|| format!("UmaDB ended the read after {} events", count.events))?
                    .context("UmaDB Read")?;
                for e in &batch.events {
                    anyhow::ensure!(
                        e.position > last,
                        "UmaDB read position {} after {last}",
                        e.position
                    );
                    last = e.position;
                }
                let n = batch.events.len() as u64;
                count.events += n;
                counter.fetch_add(n, Ordering::Relaxed);
            }
            count.elapsed = start.elapsed();
            anyhow::Ok(count)
        };
        let count = read.await;
        progress.finish();
        let count = count.context("scenario umadb_read_all")?;
        // No latency: as for our catch-up, the unit of work is the whole read.
        Ok(Self::result(
            "umadb_read_all".to_owned(),
            format!("UmaDB: one Read stream over the {wanted} preloaded events"),
            1,
            count,
        ))
    }
}
