//! Owns the NATS publishing flags (`ORISUN_NATS_*`) and their conversion into
//! [`orisun_nats::NatsConfig`].

use super::{parse_duration, ConfigError};
use clap::Args;
use orisun_core::BoundaryName;
use orisun_nats::NatsConfig;
use std::time::Duration;

/// The NATS section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct NatsSection {
    /// NATS server to publish every boundary's events to (JetStream); empty: no publishing.
    #[arg(
        long,
        env = "ORISUN_NATS_URL",
        value_name = "ORISUN_NATS_URL",
        help_heading = "Delivery and logs"
    )]
    pub nats_url: Option<String>,

    /// Size cap of each boundary's JetStream stream in bytes (-1: none); the oldest messages
    /// are discarded past it.
    #[arg(
        long,
        env = "ORISUN_NATS_EVENT_STREAM_MAX_BYTES",
        value_name = "ORISUN_NATS_EVENT_STREAM_MAX_BYTES",
        default_value_t = 536_870_912,
        allow_negative_numbers = true,
        help_heading = "Delivery and logs"
    )]
    pub nats_event_stream_max_bytes: i64,

    /// Message cap of each boundary's JetStream stream (-1: none); the oldest are discarded
    /// past it.
    #[arg(long, env = "ORISUN_NATS_EVENT_STREAM_MAX_MSGS", value_name = "ORISUN_NATS_EVENT_STREAM_MAX_MSGS", default_value_t = -1, allow_negative_numbers = true, help_heading = "Delivery and logs")]
    pub nats_event_stream_max_msgs: i64,

    /// Messages older than this are discarded from each boundary's JetStream stream (0: kept).
    #[arg(long, env = "ORISUN_NATS_EVENT_STREAM_MAX_AGE", value_name = "ORISUN_NATS_EVENT_STREAM_MAX_AGE", default_value = "5m", value_parser = parse_duration, help_heading = "Delivery and logs")]
    pub nats_event_stream_max_age: Duration,

    /// Lifetime of each boundary's publisher lease, renewed every third of it: when the
    /// publishing node dies, another takes over about this long after its last renewal
    /// (at least 1s).
    #[arg(long, env = "ORISUN_NATS_PUBLISHER_LEASE_TTL", value_name = "ORISUN_NATS_PUBLISHER_LEASE_TTL", default_value = "10s", value_parser = parse_duration, help_heading = "Delivery and logs")]
    pub nats_publisher_lease_ttl: Duration,
}

impl NatsSection {
    /// Returns the NATS settings when `ORISUN_NATS_URL` is set (and not empty): the stream
    /// limits from `ORISUN_NATS_EVENT_STREAM_*`, `admin_boundary` excluded from publishing (it
    /// holds the user records).
    pub fn nats_config(&self, admin_boundary: &BoundaryName) -> Option<NatsConfig> {
        let url = self
            .nats_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())?;
        let mut nats = NatsConfig::new(url);
        nats.publisher.limits.max_bytes = self.nats_event_stream_max_bytes;
        nats.publisher.limits.max_msgs = self.nats_event_stream_max_msgs;
        nats.publisher.limits.max_age = self.nats_event_stream_max_age;
        nats.publisher.lease_ttl = self.nats_publisher_lease_ttl;
        nats.excluded_boundaries = vec![admin_boundary.clone()];
        Some(nats)
    }

    /// Checks the rules of this section that clap cannot: stream caps of -1 or more than zero,
    /// a publisher lease of at least one second, a URL without whitespace.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (variable, value) in [
            (
                "ORISUN_NATS_EVENT_STREAM_MAX_BYTES",
                self.nats_event_stream_max_bytes,
            ),
            (
                "ORISUN_NATS_EVENT_STREAM_MAX_MSGS",
                self.nats_event_stream_max_msgs,
            ),
        ] {
            if value == 0 || value < -1 {
                return Err(ConfigError::new(
                    variable,
                    "must be -1 (no limit) or positive",
                ));
            }
        }
        if self.nats_publisher_lease_ttl < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "ORISUN_NATS_PUBLISHER_LEASE_TTL",
                "must be at least 1s",
            ));
        }
        if let Some(url) = &self.nats_url {
            if !url.is_empty() && !url.contains("://") && url.contains(char::is_whitespace) {
                return Err(ConfigError::new("ORISUN_NATS_URL", "is not a URL"));
            }
        }
        Ok(())
    }
}
