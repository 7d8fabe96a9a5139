//! The server's memory, read from `/proc/<pid>/status` (Linux): resident set now (`VmRSS`)
//! and its peak (`VmHWM`), sampled while a scenario runs to get that scenario's peak.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a running scenario samples the server's RSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Memory figures of one process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss: u64,
    /// Peak resident set size since start or the last reset (`VmHWM`).
    pub peak: u64,
}

/// Parses the `VmRSS` and `VmHWM` lines (in kB) of a `/proc/<pid>/status` text.
pub fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    let rss = field("VmRSS:")?;
    let peak = field("VmHWM:").unwrap_or(rss);
    Some(Memory { rss, peak })
}

/// Reads the memory of process `pid`, or `None` if it cannot be read (gone, not Linux).
pub fn read(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&text)
}

/// Resets `VmHWM` of process `pid` to its current RSS (Linux `clear_refs` value 5), so the
/// next scenario's peak is its own; returns whether the kernel accepted it.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Samples a process's RSS in the background and keeps the highest value seen.
#[derive(Debug)]
pub struct Sampler {
    pid: u32,
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    peak_was_reset: bool,
}

impl Sampler {
    /// Starts sampling process `pid` (resetting its peak first when the kernel allows).
    pub fn start(pid: u32) -> Self {
        let peak_was_reset = reset_peak(pid);
        let max = Arc::new(AtomicU64::new(read(pid).map_or(0, |m| m.rss)));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (max, stop) = (max.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(m) = read(pid) {
                        max.fetch_max(m.rss, Ordering::Relaxed);
                    }
                    tokio::time::sleep(SAMPLE_EVERY).await;
                }
            }
        });
        Self {
            pid,
            max,
            stop,
            task,
            peak_was_reset,
        }
    }

    /// Stops sampling and returns the peak RSS in bytes during the sampled period (the
    /// kernel's `VmHWM` when it could be reset, else the highest sample).
    pub async fn finish(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let sampled = self.max.load(Ordering::Relaxed);
        let now = read(self.pid);
        let kernel_peak = if self.peak_was_reset {
            now.map(|m| m.peak)
        } else {
            None
        };
        let best = sampled
            .max(kernel_peak.unwrap_or(0))
            .max(now.map_or(0, |m| m.rss));
        (best > 0).then_some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\torisun\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t5\n";

    #[test]
    fn parses_rss_and_peak() {
        assert_eq!(
            parse_status(STATUS),
            Some(Memory {
                rss: 10 * 1024 * 1024,
                peak: 20 * 1024 * 1024
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
        let no_hwm = "VmRSS:\t 4 kB\n";
        assert_eq!(
            parse_status(no_hwm),
            Some(Memory {
                rss: 4096,
                peak: 4096
            })
        );
    }

    #[tokio::test]
    async fn samples_this_process() {
        let pid = std::process::id();
        assert!(read(pid).is_some_and(|m| m.rss > 0));
        let sampler = Sampler::start(pid);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(sampler.finish().await.is_some_and(|peak| peak > 0));
    }
}
