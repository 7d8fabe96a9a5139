//! The lease keeper: renews a held lease every third of its TTL until it is lost, the one loop
//! behind every singleton (a boundary's NATS publisher, an exclusive named subscriber, a
//! projection partition).

use crate::{Coordination, Lease};
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// Why [`keep_lease`] stopped keeping a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseLoss {
    /// Another holder has the lease.
    TakenOver,
    /// The lease expired before a renewal reached the store and the renewal took it again under
    /// a new epoch. Someone may have held it in between, so the keeper gave it up again.
    Expired,
    /// Renewals kept failing (or got no answer) until the lease would have expired.
    Unrenewable {
        /// The last failure.
        reason: String,
    },
}

impl fmt::Display for LeaseLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TakenOver => f.write_str("another holder took the lease"),
            Self::Expired => f.write_str("the lease expired before it could be renewed"),
            Self::Unrenewable { reason } => write!(f, "the lease could not be renewed: {reason}"),
        }
    }
}

/// Keeps `lease` (taken for `ttl` by a request sent at `requested_at`) by renewing it every
/// third of `ttl`, and returns only when it is lost. A renewal that fails for a transient reason
/// is retried until the lease would expire; the returned [`LeaseLoss`] says why it ended.
///
/// Validity is counted from when each renewal was *sent*, so the keeper never believes it holds
/// the lease longer than the store does. A caller races its fenced work against this future and
/// stops that work when it completes.
pub async fn keep_lease(
    coordination: &dyn Coordination,
    lease: &Lease,
    ttl: Duration,
    requested_at: Instant,
) -> LeaseLoss {
    let period = ttl / 3;
    let retry = (period / 4).clamp(Duration::from_millis(10), Duration::from_millis(500));
    let mut valid_until = requested_at + ttl;
    let mut next = requested_at + period;
    loop {
        tokio::time::sleep_until(next).await;
        let asked = Instant::now();
        let attempt = tokio::time::timeout_at(
            valid_until,
            coordination.acquire(&lease.name, &lease.holder, ttl),
        )
        .await;
        match attempt {
            Ok(Ok(Some(renewed))) if renewed.epoch == lease.epoch => {
                valid_until = asked + ttl;
                next = asked + period;
            }
            Ok(Ok(Some(retaken))) => {
                if let Err(e) = coordination.release(&retaken).await {
                    tracing::warn!(lease = %lease.name, error = %e, "could not give back a re-taken lease; it will expire");
                }
                return LeaseLoss::Expired;
            }
            Ok(Ok(None)) => return LeaseLoss::TakenOver,
            Ok(Err(e)) if Instant::now() + retry < valid_until => {
                tracing::warn!(lease = %lease.name, error = %e, "lease renewal failed; retrying");
                next = Instant::now() + retry;
            }
            Ok(Err(e)) => {
                return LeaseLoss::Unrenewable {
                    reason: e.to_string(),
                }
            }
            Err(_) => {
                return LeaseLoss::Unrenewable {
                    reason: "no answer before it expired".to_owned(),
                }
            }
        }
    }
}
