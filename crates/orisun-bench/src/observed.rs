//! The cost of observability: `observed_single_uncond_c16` is `single_uncond_c16` on a second
//! server with Prometheus metrics and OpenTelemetry tracing on, compared with the same scenario
//! on the bench's main server (both off) in alternating rounds of the same run; its baseline is
//! `plain_single_uncond_c16`, so the table shows on/off as a ratio.
//!
//! The traced server exports to `--otel-endpoint`, by default a closed loopback port: spans are
//! then made, batched and dropped by the exporter, as they would be with a collector down.

use crate::options::{Backend, Plan};
use crate::report::{BaselineResult, ScenarioResult};
use crate::rounds::{first_ratio, median_round};
use crate::scenarios::{Bench, Boundaries};
use crate::server::{free_port, ServerProcess, Storage};
use std::path::Path;
use std::time::Duration;

/// Clients of the compared scenario.
pub const CLIENTS: usize = 16;

/// The scenario's id.
pub const ID: &str = "observed_single_uncond_c16";

/// The environment that turns metrics and tracing off (the bench's main server).
pub fn off() -> Vec<(String, String)> {
    vec![
        ("ORISUN_METRICS_ENABLED".to_owned(), "false".to_owned()),
        ("ORISUN_OTEL_ENABLED".to_owned(), "false".to_owned()),
    ]
}

/// The environment that turns both on, exporting spans to `endpoint`.
pub fn on(endpoint: &str) -> Vec<(String, String)> {
    vec![
        ("ORISUN_METRICS_ENABLED".to_owned(), "true".to_owned()),
        ("ORISUN_OTEL_ENABLED".to_owned(), "true".to_owned()),
        ("ORISUN_OTEL_ENDPOINT".to_owned(), endpoint.to_owned()),
    ]
}

/// What starting the observed server needs.
pub struct Observed<'a> {
    /// The `orisun` executable.
    pub bin: &'a Path,
    /// Its storage (a fresh directory, or the main server's database).
    pub storage: &'a Storage,
    /// Where spans go; `None`: a closed port.
    pub otel_endpoint: Option<&'a str>,
}

/// Runs the comparison: `rounds` alternating runs of `slice` on `plain` (the main server) and
/// on a server started with metrics and tracing on; keeps the median round.
#[allow(clippy::too_many_arguments)]
pub async fn compare(
    plain: &mut Bench,
    observed: Observed<'_>,
    backend: Backend,
    user: &str,
    password: &str,
    plan: &Plan,
    boundaries: &Boundaries,
    rounds: u32,
    slice: Duration,
) -> anyhow::Result<(ScenarioResult, BaselineResult)> {
    let endpoint = match observed.otel_endpoint {
        Some(e) => e.to_owned(),
        None => format!("127.0.0.1:{}", free_port()?),
    };
    eprintln!(
        "[{}] starting {} serve with metrics and tracing on (OTLP to {endpoint})",
        backend.name(),
        observed.bin.display()
    );
    let server = ServerProcess::start_with(
        observed.bin,
        observed.storage,
        &boundaries.all(),
        &on(&endpoint),
    )
    .await?;
    let result = async {
        let mut bench = Bench::connect(
            backend,
            server.endpoint(),
            user.to_owned(),
            password.to_owned(),
            Some(server.pid()),
            plan.clone(),
            boundaries.clone(),
        )
        .await?;
        let mut runs: Vec<[Option<ScenarioResult>; 1]> = Vec::new();
        let mut baselines: Vec<Option<BaselineResult>> = Vec::new();
        for _ in 0..rounds.max(1) {
            let off = plain.single_saves(CLIENTS, false, slice).await?;
            baselines.push(Some(BaselineResult {
                id: format!("plain_single_uncond_c{CLIENTS}"),
                description: format!(
                    "single_uncond_c{CLIENTS} on the main server, metrics and tracing off"
                ),
                connections: CLIENTS,
                rows: off.events,
                elapsed_s: off.elapsed_s,
                events_per_s: off.events_per_s,
                latency: off.latency,
            }));
            let mut on = bench.single_saves(CLIENTS, false, slice).await?;
            on.id = ID.to_owned();
            on.description = format!(
                "single_uncond_c{CLIENTS} on a server with Prometheus metrics and OpenTelemetry \
                 tracing on (OTLP to {endpoint})"
            );
            runs.push([Some(on)]);
        }
        let ([kept], baseline) = median_round(runs, baselines, first_ratio);
        match (kept, baseline) {
            (Some(kept), Some(baseline)) => Ok((kept, baseline)),
            _ => anyhow::bail!("the observed comparison ran no round"),
        }
    }
    .await;
    server.stop().await;
    result
}
