//! Owns the subscription flag: the lease that makes a named subscriber exclusive across the
//! cluster (`ORISUN_SUBSCRIBER_LEASE_TTL`).

use super::{parse_duration, ConfigError};
use clap::Args;
use std::time::Duration;

/// The subscriptions section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct SubscriptionsSection {
    /// Lifetime of the lease that makes a named subscriber exclusive across the cluster; it is
    /// renewed every third of it, and a dead node's names are free again at most this long
    /// after it died (at least 1s).
    #[arg(long, env = "ORISUN_SUBSCRIBER_LEASE_TTL", value_name = "ORISUN_SUBSCRIBER_LEASE_TTL", default_value = "10s", value_parser = parse_duration, help_heading = "Delivery and logs")]
    pub subscriber_lease_ttl: Duration,
}

impl SubscriptionsSection {
    /// Checks the rule of this section that clap cannot: a lease of at least one second.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.subscriber_lease_ttl < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "ORISUN_SUBSCRIBER_LEASE_TTL",
                "must be at least 1s",
            ));
        }
        Ok(())
    }
}
