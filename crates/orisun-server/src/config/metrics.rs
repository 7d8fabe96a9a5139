//! Owns the metrics flags: whether metrics are recorded and served (`ORISUN_METRICS_ENABLED`)
//! and whether `GET /metrics` needs credentials (`ORISUN_METRICS_PUBLIC`).

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

/// The metrics section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct MetricsSection {
    /// Record Prometheus metrics and serve them at `/metrics` on the admin port.
    #[arg(long, env = "ORISUN_METRICS_ENABLED", value_name = "ORISUN_METRICS_ENABLED", default_value_t = true, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "Observability")]
    pub metrics_enabled: bool,

    /// Serve `/metrics` on the admin port without credentials (for scrapers on a trusted network).
    #[arg(long, env = "ORISUN_METRICS_PUBLIC", value_name = "ORISUN_METRICS_PUBLIC", default_value_t = false, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "Observability")]
    pub metrics_public: bool,
}
