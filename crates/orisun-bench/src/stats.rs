//! Latency recording (hdrhistogram, microseconds) and the summary figures derived from it.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// The highest latency a histogram tracks (longer ones are clamped): one hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// Records latencies of one client or one scenario; merge the clients' with [`Latencies::add`].
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// Creates an empty recorder (1 µs to 1 h, 3 significant digits).
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, MAX_MICROS, 3)
            .expect("the bounds are constants within hdrhistogram's limits");
        Self { histogram }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
        self.histogram
            .saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Adds every latency recorded by `other`.
    pub fn add(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail; keep going if it ever did.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Returns how many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Returns the summary, or `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(LatencySummary {
            count: self.histogram.len(),
            p50_ms: ms(self.histogram.value_at_quantile(0.50)),
            p99_ms: ms(self.histogram.value_at_quantile(0.99)),
            max_ms: ms(self.histogram.max()),
            mean_ms: self.histogram.mean() / 1000.0,
        })
    }
}

/// Latency percentiles of one scenario, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// How many requests (or events, for delivery latency) were measured.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

/// Returns events per second, 0 when no time passed.
pub fn rate(events: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0.0
    } else {
        events as f64 / secs
    }
}

/// Returns `ours / baseline`, or `None` when the baseline is zero or missing.
pub fn ratio(ours: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0 && baseline.is_finite() && ours.is_finite()).then(|| ours / baseline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latencies::new();
        for ms in 1..=100u64 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary().expect("recorded");
        assert_eq!(s.count, 100);
        // hdrhistogram keeps 3 significant digits: allow 0.1% error.
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
        assert!((s.mean_ms - 50.5).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn merging_and_empty() {
        assert!(Latencies::new().summary().is_none());
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record(Duration::from_micros(100));
        b.record(Duration::from_millis(20));
        b.record(Duration::ZERO); // clamped to 1 µs, still counted
        a.add(&b);
        assert_eq!(a.count(), 3);
        let s = a.summary().expect("recorded");
        assert!((s.max_ms - 20.0).abs() < 0.05);
        // Beyond the upper bound: clamped, not lost.
        a.record(Duration::from_secs(7200));
        assert_eq!(a.count(), 4);
    }

    #[test]
    fn rates_and_ratios() {
        assert_eq!(rate(1000, Duration::from_millis(500)), 2000.0);
        assert_eq!(rate(5, Duration::ZERO), 0.0);
        assert_eq!(ratio(150.0, 100.0), Some(1.5));
        assert_eq!(ratio(1.0, 0.0), None);
    }
}
