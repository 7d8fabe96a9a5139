//! Configuration of the NATS integration: the connection, the limits of the per-boundary event
//! streams (`ORISUN_NATS_EVENT_STREAM_*`) and the publishers' lease and pipeline settings.

use orisun_core::BoundaryName;
use std::time::Duration;

/// Where a JetStream stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamStorage {
    /// On disk: the stream survives a NATS restart. Our default, because a sink that loses
    /// its content when NATS restarts forces every consumer to re-read from Orisun.
    #[default]
    File,
    /// In memory, as Go Orisun creates its streams: faster, lost when NATS restarts.
    Memory,
}

impl StreamStorage {
    pub(crate) fn to_nats(self) -> async_nats::jetstream::stream::StorageType {
        match self {
            Self::File => async_nats::jetstream::stream::StorageType::File,
            Self::Memory => async_nats::jetstream::stream::StorageType::Memory,
        }
    }
}

/// Limits and settings applied to every `ORISUN_EVENTS___<boundary>` stream each time its
/// publisher starts (an existing stream is updated to match; its storage type, which JetStream
/// cannot change, is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLimits {
    /// `ORISUN_NATS_EVENT_STREAM_MAX_BYTES`: size cap; the oldest messages are discarded past it.
    /// `-1` means unlimited.
    pub max_bytes: i64,
    /// `ORISUN_NATS_EVENT_STREAM_MAX_MSGS`: message-count cap (oldest discarded); `-1` means
    /// unlimited.
    pub max_msgs: i64,
    /// `ORISUN_NATS_EVENT_STREAM_MAX_AGE`: messages older than this are discarded; zero means
    /// forever.
    pub max_age: Duration,
    /// Where the stream keeps its messages.
    pub storage: StreamStorage,
    /// How long JetStream remembers message ids to drop re-publications. Clamped to `max_age`
    /// when that is shorter (JetStream refuses a larger window).
    pub duplicate_window: Duration,
    /// Number of replicas in a clustered NATS (1 on a single server).
    pub replicas: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_bytes: 536_870_912,
            max_msgs: -1,
            max_age: Duration::from_secs(5 * 60),
            storage: StreamStorage::File,
            duplicate_window: Duration::from_secs(2 * 60),
            replicas: 1,
        }
    }
}

impl StreamLimits {
    /// Returns the duplicate window JetStream will accept with these limits.
    pub fn effective_duplicate_window(&self) -> Duration {
        if self.max_age.is_zero() {
            self.duplicate_window
        } else {
            self.duplicate_window.min(self.max_age)
        }
    }
}

/// Settings of one boundary's publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// The limits of the boundary's stream.
    pub limits: StreamLimits,
    /// Lifetime of the publisher lease. The holder renews it every third of this; when a node
    /// dies, another takes over at most about `4/3 × lease_ttl` later.
    pub lease_ttl: Duration,
    /// Most publications awaiting their acknowledgement at once (the pipeline depth).
    pub max_in_flight: usize,
    /// The checkpoint is saved at the latest after this many acknowledged events (and 100 ms
    /// after an acknowledgement it does not cover).
    pub checkpoint_every: usize,
    /// How long a publication may wait for its acknowledgement before the publisher gives up
    /// and resumes from its checkpoint.
    pub ack_timeout: Duration,
    /// First delay before retrying after an error; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            limits: StreamLimits::default(),
            lease_ttl: Duration::from_secs(10),
            max_in_flight: 1_024,
            checkpoint_every: 1_000,
            ack_timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// Everything [`crate::start`] needs: the NATS URL (`ORISUN_NATS_URL`) and the publisher
/// settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `ORISUN_NATS_URL`: one or more comma-separated server URLs (`nats://host:4222`).
    pub url: String,
    /// Settings shared by every boundary's publisher.
    pub publisher: PublisherConfig,
    /// How often the set of boundaries is re-listed from the store, so that a boundary created
    /// on any node gets a publisher without a restart.
    pub discovery_interval: Duration,
    /// Name the connection shows in NATS monitoring.
    pub connection_name: String,
    /// Boundaries never published: the server puts its admin boundary here, whose user records
    /// must not leave the store.
    pub excluded_boundaries: Vec<BoundaryName>,
}

impl NatsConfig {
    /// Creates a configuration for `url` with the defaults of every other setting.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            publisher: PublisherConfig::default(),
            discovery_interval: Duration::from_secs(5),
            connection_name: "orisun".to_owned(),
            excluded_boundaries: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_go_orisun_limits() {
        let l = StreamLimits::default();
        assert_eq!(l.max_bytes, 536_870_912);
        assert_eq!(l.max_msgs, -1);
        assert_eq!(l.max_age, Duration::from_secs(300));
        assert_eq!(l.effective_duplicate_window(), Duration::from_secs(120));
    }

    #[test]
    fn duplicate_window_never_exceeds_max_age() {
        let l = StreamLimits {
            max_age: Duration::from_secs(30),
            ..StreamLimits::default()
        };
        assert_eq!(l.effective_duplicate_window(), Duration::from_secs(30));
        let forever = StreamLimits {
            max_age: Duration::ZERO,
            ..StreamLimits::default()
        };
        assert_eq!(
            forever.effective_duplicate_window(),
            Duration::from_secs(120)
        );
    }
}
