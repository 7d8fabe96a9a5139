//! The shutdown signal shared by every part of a running server.
//!
//! When the server is told to stop, long-lived calls (subscriptions) must end on their own so
//! that the graceful shutdown of the transport, which waits for in-flight calls, can complete.

use tokio::sync::watch;

/// Tells whether the server is shutting down; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Starts the shutdown; held by the server's composition root.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// Creates a linked trigger and signal.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    /// Signals every holder of a [`Shutdown`].
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Returns a signal linked to this trigger.
    pub fn signal(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// Returns true once the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes when the shutdown starts (at once if it already has). A dropped trigger also
    /// counts as a shutdown.
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which only happens when the server is exiting.
        let _ = self.rx.wait_for(|stopping| *stopping).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_every_holder() {
        let (trigger, mut a) = channel();
        let mut b = trigger.signal();
        assert!(!a.is_triggered());
        trigger.trigger();
        a.wait().await;
        b.wait().await;
        assert!(b.is_triggered());
    }
}
