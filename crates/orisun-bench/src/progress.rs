//! Progress lines on stderr while a scenario runs: its name, the time elapsed and the events
//! so far, once a second, so a long run never looks stuck.

use crate::report::thousands;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a progress line is printed.
const EVERY: Duration = Duration::from_secs(1);

/// A running scenario's progress: workers add their events to [`Progress::counter`].
#[derive(Debug)]
pub struct Progress {
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    started: Instant,
    label: String,
}

impl Progress {
    /// Prints the scenario's start and then a line a second until [`Progress::finish`].
    pub fn start(backend: &str, scenario: &str) -> Self {
        let label = format!("[{backend}] {scenario}");
        eprintln!("{label}: starting");
        let counter = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let task = tokio::spawn({
            let (counter, stop, label) = (counter.clone(), stop.clone(), label.clone());
            async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
                loop {
                    tick.tick().await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    eprintln!(
                        "{}",
                        line(&label, started.elapsed(), counter.load(Ordering::Relaxed))
                    );
                }
            }
        });
        Self {
            counter,
            stop,
            task,
            started,
            label,
        }
    }

    /// Returns the shared event counter workers add to.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.counter.clone()
    }

    /// Stops the progress lines and prints the final one.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
        eprintln!(
            "{} (done)",
            line(
                &self.label,
                self.started.elapsed(),
                self.counter.load(Ordering::Relaxed)
            )
        );
    }
}

/// Formats one progress line.
pub fn line(label: &str, elapsed: Duration, events: u64) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        events as f64 / secs
    } else {
        0.0
    };
    format!(
        "{label}: {secs:.1}s, {} events ({} ev/s)",
        thousands(events as f64),
        thousands(rate)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_line() {
        assert_eq!(
            line("[postgres] batch_1000", Duration::from_secs(2), 30_000),
            "[postgres] batch_1000: 2.0s, 30,000 events (15,000 ev/s)"
        );
    }
}
