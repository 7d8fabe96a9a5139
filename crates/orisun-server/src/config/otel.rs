//! Owns the OpenTelemetry flags: whether traces are exported (`ORISUN_OTEL_ENABLED`), where to
//! (`ORISUN_OTEL_ENDPOINT`, OTLP over gRPC) and the service name they carry.

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

/// The OpenTelemetry section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct OtelSection {
    /// Export a trace per gRPC call over OTLP/gRPC (see ORISUN_OTEL_ENDPOINT).
    #[arg(long, env = "ORISUN_OTEL_ENABLED", value_name = "ORISUN_OTEL_ENABLED", default_value_t = true, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "Observability")]
    pub otel_enabled: bool,

    /// OTLP gRPC endpoint of the collector (`host:port` or a URL; `http://` is assumed).
    #[arg(
        long,
        env = "ORISUN_OTEL_ENDPOINT",
        value_name = "ORISUN_OTEL_ENDPOINT",
        default_value = "localhost:4317",
        help_heading = "Observability"
    )]
    pub otel_endpoint: String,

    /// The `service.name` resource attribute of the exported spans.
    #[arg(
        long,
        env = "ORISUN_OTEL_SERVICE_NAME",
        value_name = "ORISUN_OTEL_SERVICE_NAME",
        default_value = "orisun",
        help_heading = "Observability"
    )]
    pub otel_service_name: String,
}

impl OtelSection {
    /// Returns the endpoint as a URL: `http://` is prepended when no scheme is given.
    pub fn endpoint_url(&self) -> String {
        let endpoint = self.otel_endpoint.trim();
        if endpoint.contains("://") {
            endpoint.to_owned()
        } else {
            format!("http://{endpoint}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_gets_a_scheme() {
        let mut section = OtelSection {
            otel_enabled: true,
            otel_endpoint: "localhost:4317".into(),
            otel_service_name: "orisun".into(),
        };
        assert_eq!(section.endpoint_url(), "http://localhost:4317");
        section.otel_endpoint = "https://collector:4317".into();
        assert_eq!(section.endpoint_url(), "https://collector:4317");
    }
}
