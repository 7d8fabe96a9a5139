//! [`Progress`]: what a running projection partition reports, for logs, metrics and operators.

use orisun_core::Position;

/// What a projection partition is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for its lease (another worker holds the partition).
    Waiting,
    /// Handling events.
    Running,
    /// Caught up with the head; waiting for new events (continuous mode).
    Idle,
    /// A batch failed and is being retried.
    Retrying,
    /// Stopped: shut down, finished (one-off), or failed.
    Stopped,
}

/// A snapshot of a projection partition's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// What it is doing.
    pub state: State,
    /// The last saved checkpoint.
    pub checkpoint: Position,
    /// The boundary's head as last seen.
    pub head: Position,
    /// Events handed to the handler since start.
    pub handled: u64,
    /// Batches committed since start.
    pub batches: u64,
    /// Failed attempts since start.
    pub retries: u64,
}

impl Progress {
    pub(crate) fn starting() -> Self {
        Self {
            state: State::Waiting,
            checkpoint: Position::BEFORE_FIRST,
            head: Position::BEFORE_FIRST,
            handled: 0,
            batches: 0,
            retries: 0,
        }
    }

    /// How many events of the boundary lie between the checkpoint and the head (every event,
    /// not only those in the projection's scope). The built-in stores number every event with
    /// its position's `prepare` part, which makes this exact.
    pub fn lag(&self) -> u64 {
        let head = self.head.prepare.max(-1);
        let done = self.checkpoint.prepare.max(-1);
        u64::try_from(head - done).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_events_between_checkpoint_and_head() {
        let mut p = Progress::starting();
        assert_eq!(p.lag(), 0);
        p.head = Position::new(10, 9);
        assert_eq!(p.lag(), 10);
        p.checkpoint = Position::new(5, 4);
        assert_eq!(p.lag(), 5);
        p.checkpoint = Position::new(10, 9);
        assert_eq!(p.lag(), 0);
    }
}
