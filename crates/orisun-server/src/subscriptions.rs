//! Exclusive subscriber names: at most one live `CatchUpSubscribeToEvents` stream per
//! `(boundary, subscriber_name)`.
//!
//! Go Orisun takes a cluster-wide lock named `<boundary>__<subscriber_name>` and gives up after
//! about a second. This registry keeps the same contract inside one process (a later issue makes
//! it cluster-wide): a second stream with a name in use waits up to [`ACQUIRE_WAIT`] for the first
//! to end (so a client that reconnects right after a drop is not refused), then fails.
//! Anonymous subscribers (empty name) are not exclusive, unlike Go Orisun where all anonymous
//! subscribers of a boundary exclude each other.

use orisun_core::BoundaryName;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tonic::Status;

/// How long a subscription waits for its name to be released (Go: 3 tries of 500 ms).
pub const ACQUIRE_WAIT: Duration = Duration::from_secs(1);

/// The longest subscriber name accepted.
pub const MAX_NAME_LEN: usize = 255;

type Key = (BoundaryName, String);

/// The names of the subscriptions running in this process.
#[derive(Clone, Default)]
pub struct SubscriberRegistry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    active: Mutex<HashSet<Key>>,
    released: Notify,
}

/// Holds a subscriber name until dropped (when the stream ends or the client goes away).
pub struct Lease {
    key: Option<Key>,
    inner: Arc<Inner>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.inner.active.lock().remove(&key);
            self.inner.released.notify_waiters();
        }
    }
}

impl SubscriberRegistry {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the name `subscriber` for `boundary`, waiting up to `wait` for a current holder to
    /// let go; `ALREADY_EXISTS` if it does not. An empty name is never exclusive.
    pub async fn acquire(
        &self,
        boundary: &BoundaryName,
        subscriber: &str,
        wait: Duration,
    ) -> Result<Lease, Status> {
        if subscriber.is_empty() {
            return Ok(Lease {
                key: None,
                inner: self.inner.clone(),
            });
        }
        let key = (boundary.clone(), subscriber.to_owned());
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.inner.released.notified();
            tokio::pin!(notified);
            // Register for the wake-up before looking, so a release in between is not missed.
            notified.as_mut().enable();
            if self.inner.active.lock().insert(key.clone()) {
                return Ok(Lease {
                    key: Some(key),
                    inner: self.inner.clone(),
                });
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Status::already_exists(format!(
                    "failed to acquire lock: subscriber {subscriber:?} is already subscribed to boundary {:?}",
                    boundary.as_str()
                )));
            }
        }
    }

    /// Returns the number of named subscriptions running.
    pub fn active(&self) -> usize {
        self.inner.active.lock().len()
    }
}

/// Checks a subscriber name: at most [`MAX_NAME_LEN`] bytes, no whitespace or control
/// characters (names become lock and consumer names).
pub fn validate_name(name: &str) -> Result<(), Status> {
    if name.len() > MAX_NAME_LEN {
        return Err(Status::invalid_argument(format!(
            "subscriber_name: longer than {MAX_NAME_LEN} bytes"
        )));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Status::invalid_argument(format!(
            "subscriber_name: {name:?} must not contain whitespace or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn b(name: &str) -> BoundaryName {
        BoundaryName::new(name).expect("valid")
    }

    #[tokio::test(start_paused = true)]
    async fn one_holder_per_name_and_boundary() {
        let reg = SubscriberRegistry::new();
        let first = reg.acquire(&b("a"), "s", ACQUIRE_WAIT).await.expect("free");
        let err = reg
            .acquire(&b("a"), "s", ACQUIRE_WAIT)
            .await
            .err()
            .expect("taken");
        assert_eq!(err.code(), Code::AlreadyExists);
        assert!(err.message().starts_with("failed to acquire lock: "));
        let _other_boundary = reg.acquire(&b("b"), "s", ACQUIRE_WAIT).await.expect("free");
        let _anon1 = reg.acquire(&b("a"), "", ACQUIRE_WAIT).await.expect("anon");
        let _anon2 = reg.acquire(&b("a"), "", ACQUIRE_WAIT).await.expect("anon");
        assert_eq!(reg.active(), 2);
        drop(first);
        assert_eq!(reg.active(), 1);
        let _again = reg
            .acquire(&b("a"), "s", ACQUIRE_WAIT)
            .await
            .expect("released");
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_a_release() {
        let reg = SubscriberRegistry::new();
        let first = reg.acquire(&b("a"), "s", ACQUIRE_WAIT).await.expect("free");
        let waiter = {
            let reg = reg.clone();
            tokio::spawn(async move { reg.acquire(&b("a"), "s", ACQUIRE_WAIT).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(first);
        assert!(waiter.await.expect("joined"));
    }

    #[test]
    fn names() {
        assert!(validate_name("").is_ok());
        assert!(validate_name("orders-projection.v2").is_ok());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"x".repeat(256)).is_err());
    }
}
