//! The lease keeper: renews a held lease every third of its TTL until it is lost, the one loop
//! behind every singleton (a boundary's NATS publisher, an exclusive named subscriber, a
//! projection partition).

use crate::{Coordination, Lease};
use parking_lot::Mutex;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Until when a kept lease is known to be held: moved forward by [`keep_lease_with_validity`]
/// at each renewal, and checked by the fenced work before each effect it cannot take back
/// (delivering an event to a client, say).
///
/// A process paused past its lease (SIGSTOP, a long GC-like stall, a VM migration) wakes with
/// both its keeper and its work runnable; whichever runs first must not act on a lease that
/// may already be another's. The monotonic clock keeps running while a process is stopped, so
/// the check fails on waking even before the keeper has asked the store.
#[derive(Debug, Clone)]
pub struct LeaseValidity(Arc<Mutex<Instant>>);

impl LeaseValidity {
    /// A lease valid until `until`.
    pub fn new(until: Instant) -> Self {
        Self(Arc::new(Mutex::new(until)))
    }

    /// Whether the lease is still known to be held now.
    pub fn is_valid(&self) -> bool {
        Instant::now() < *self.0.lock()
    }

    fn extend(&self, until: Instant) {
        *self.0.lock() = until;
    }
}

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
    let validity = LeaseValidity::new(requested_at + ttl);
    keep_lease_with_validity(coordination, lease, ttl, requested_at, &validity).await
}

/// [`keep_lease`], also moving `validity` forward at each renewal, so that fenced work can
/// check the lease before each effect instead of waiting for this future to complete.
pub async fn keep_lease_with_validity(
    coordination: &dyn Coordination,
    lease: &Lease,
    ttl: Duration,
    requested_at: Instant,
    validity: &LeaseValidity,
) -> LeaseLoss {
    let period = ttl / 3;
    let retry = (period / 4).clamp(Duration::from_millis(10), Duration::from_millis(500));
    let mut valid_until = requested_at + ttl;
    validity.extend(valid_until);
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
                validity.extend(valid_until);
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
