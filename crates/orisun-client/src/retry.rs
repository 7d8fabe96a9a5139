//! The retry policy: which failures are worth another attempt, and how long to wait before it.
//!
//! Only failures of the connection are retried: `UNAVAILABLE`, an attempt that ran out of time,
//! and a call that broke in the transport (tonic builds such a status itself, from the I/O or
//! HTTP/2 error that ended the call, and keeps that error as its source; a status the server
//! sent has no source). A status the server decided on (`ALREADY_EXISTS` for a failed
//! condition, `INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `PERMISSION_DENIED`, ...) is final.

use rand::Rng;
use std::time::Duration;
use tonic::{Code, Status};

/// How often and how patiently a call is retried after a transient failure.
///
/// Attempt `n + 1` follows failure `n` after a backoff of `initial_backoff * 2^(n-1)`, capped at
/// `max_backoff`, of which a random part (up to half) is taken off so that many clients cut off
/// at once do not come back in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means never retry.
    pub max_attempts: u32,
    /// The wait before the first retry.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, waiting 100 ms, 200 ms, 400 ms and 800 ms (less jitter), at most 5 s.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// A policy that makes one attempt and never retries.
    pub const NEVER: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };

    /// Returns true when another attempt may follow the `failures`-th consecutive failure.
    pub fn allows_retry(&self, failures: u32) -> bool {
        failures < self.max_attempts
    }

    /// The wait after the `failures`-th consecutive failure (1 for the first), jittered.
    pub fn backoff(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        if millis < 2 {
            return ceiling;
        }
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    /// The wait after the `failures`-th failure before jitter.
    fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// Returns true when `status` reports a failure of the connection, not a decision of the server.
pub(crate) fn is_transient(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded => true,
        Code::Unknown | Code::Internal | Code::Cancelled => broke_in_transport(status),
        _ => false,
    }
}

/// True when tonic built the status from an error of its own (a reset or closed connection, an
/// HTTP/2 error): such a status carries that error as its source.
fn broke_in_transport(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1_000),
        };
        let ceilings: Vec<u128> = (1..=6).map(|n| policy.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000]);
        for failures in 1..=6 {
            let ceiling = policy.ceiling(failures);
            for _ in 0..50 {
                let wait = policy.backoff(failures);
                assert!(
                    wait <= ceiling && wait >= ceiling / 2,
                    "{wait:?} vs {ceiling:?}"
                );
            }
        }
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_millis(1_000));
    }

    #[test]
    fn attempts_are_counted_with_the_first() {
        assert!(!RetryPolicy::NEVER.allows_retry(1));
        let policy = RetryPolicy::default();
        assert!(policy.allows_retry(4));
        assert!(!policy.allows_retry(5));
    }

    #[test]
    fn only_connection_failures_are_transient() {
        assert!(is_transient(&Status::unavailable("connection refused")));
        assert!(is_transient(&Status::deadline_exceeded("slow")));
        for final_status in [
            Status::already_exists("conflict"),
            Status::invalid_argument("count: must be between 1 and 10000"),
            Status::failed_precondition("boundary \"x\" does not exist"),
            Status::unauthenticated("invalid credentials"),
            Status::permission_denied("needs ADMIN"),
            // Sent by the server: it decided, nothing broke on the way.
            Status::internal("internal storage error: bug"),
            Status::unknown("odd"),
        ] {
            assert!(!is_transient(&final_status), "{final_status:?}");
        }
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let broken = Status::from_error(Box::new(reset));
        assert_eq!(broken.code(), Code::Unknown);
        assert!(is_transient(&broken));
    }
}
