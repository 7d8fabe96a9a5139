//! [`Runner`]: runs several projection processors together, stops them all cleanly on
//! shutdown (a token, or SIGINT/SIGTERM), and stops the rest when one fails, reporting which
//! one failed and why.

use crate::error::ProjectionError;
use crate::processor::Processor;
use std::fmt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Several processors run as one unit.
#[derive(Default)]
pub struct Runner {
    processors: Vec<Processor>,
}

/// Why a [`Runner`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The runner was given no processor.
    #[error("the runner has no projections to run")]
    NoProjections,
    /// One or more processors failed; the others were stopped.
    #[error("{}", describe(.0))]
    Failed(Vec<Failure>),
}

/// One processor that failed.
#[derive(Debug)]
pub struct Failure {
    /// `name[index/count]`.
    pub processor: String,
    /// Why it stopped.
    pub error: ProjectionError,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.processor, self.error)
    }
}

fn describe(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(Failure::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Runner {
    /// An empty runner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a processor.
    pub fn with(mut self, processor: Processor) -> Self {
        self.processors.push(processor);
        self
    }

    /// Adds a processor.
    pub fn add(&mut self, processor: Processor) {
        self.processors.push(processor);
    }

    /// Runs every processor until `cancel` fires, every one-off processor has finished, or one
    /// fails. On a failure the others are cancelled (each finishes the batch in hand), and all
    /// are awaited before this returns: no processor outlives the runner.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), RunnerError> {
        if self.processors.is_empty() {
            return Err(RunnerError::NoProjections);
        }
        let stop = cancel.child_token();
        let mut tasks = JoinSet::new();
        for processor in self.processors {
            let label = processor.label();
            let stop = stop.clone();
            tasks.spawn(async move { (label, processor.run(stop).await) });
        }
        let mut failures = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let failure = match joined {
                Ok((_, Ok(()))) => continue,
                Ok((processor, Err(error))) => Failure { processor, error },
                Err(e) => Failure {
                    processor: "a processor task".to_owned(),
                    error: ProjectionError::Store {
                        projection: "?".to_owned(),
                        partition: 0,
                        source: orisun_store::StoreError::internal(format!("panicked: {e}")),
                    },
                },
            };
            tracing::error!(processor = %failure.processor, error = %failure.error, "projection failed; stopping the others");
            failures.push(failure);
            stop.cancel();
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(RunnerError::Failed(failures))
        }
    }

    /// Runs like [`Runner::run`] until the process receives SIGINT or SIGTERM. The handlers
    /// are installed before any processor starts, so a signal is never missed.
    pub async fn run_until_signal(self) -> Result<(), RunnerError> {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let signal = shutdown_signal();
        let signals = tokio::spawn(async move {
            signal.await;
            tracing::info!("shutdown signal received; stopping projections");
            trigger.cancel();
        });
        let result = self.run(cancel).await;
        signals.abort();
        result
    }
}

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that completes on the
/// first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let interrupt = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the runner");
            }
        }
        let _ = interrupt.await;
    }
}
