//! OpenTelemetry traces: the OTLP/gRPC exporter behind a `tracing` layer
//! (`ORISUN_OTEL_ENABLED`, `ORISUN_OTEL_ENDPOINT`), and the span of each gRPC call, which
//! continues the caller's trace when the call carries a W3C `traceparent`.
//!
//! Spans are exported by a batch processor on its own thread, from a bounded queue: when the
//! collector is slow or down, spans wait in the queue, then new ones are dropped; a request never
//! waits for the collector. Inside a call's span the server opens `auth` (the credentials
//! check), `save`/`read` (the store call) and, in the backend's writer, `group_commit`, whose
//! `conditional` parent field says whether a condition was checked in it.

use crate::config::OtelSection;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tonic::codegen::http::{HeaderMap, Request};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Spans waiting for export at most; more are dropped.
pub const MAX_QUEUED_SPANS: usize = 4096;

/// How long one export may take before it is abandoned.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (a malformed endpoint, say).
    #[error("ORISUN_OTEL_ENDPOINT={endpoint}: cannot build the OTLP exporter: {reason}")]
    Exporter {
        /// The endpoint as configured.
        endpoint: String,
        /// What the exporter said.
        reason: String,
    },
}

/// Flushes and stops the exporter when dropped (at the end of `orisun serve`).
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "OpenTelemetry shutdown");
        }
    }
}

/// Builds the `tracing` layer that exports spans over OTLP/gRPC, or `None` when
/// `ORISUN_OTEL_ENABLED` is false. Must be called inside a Tokio runtime (the gRPC channel runs
/// on it). The collector is not contacted here: it may come up later.
pub fn layer<S>(
    section: &OtelSection,
) -> Result<Option<(impl Layer<S>, TelemetryGuard)>, TelemetryError>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    if !section.otel_enabled {
        return Ok(None);
    }
    let endpoint = section.endpoint_url();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: section.otel_endpoint.clone(),
            reason: e.to_string(),
        })?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(MAX_QUEUED_SPANS)
        .with_max_export_batch_size(512)
        .with_scheduled_delay(Duration::from_millis(500))
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder()
                .with_service_name(section.otel_service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("orisun");
    tracing::info!(%endpoint, "exporting traces over OTLP/gRPC");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok(Some((layer, TelemetryGuard { provider })))
}

/// Returns the span of a gRPC call: named after its method, and a child of the caller's span
/// when the request carries a valid `traceparent` (W3C Trace Context).
pub fn rpc_span<B>(request: &Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let span = tracing::info_span!(
        "rpc",
        otel.name = path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = path,
    );
    if request.headers().contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
        // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
        let _ = span.set_parent(parent);
    }
    span
}

/// Reads propagation fields from HTTP/2 headers (gRPC metadata).
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn extracts_the_w3c_parent() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("header"),
        );
        let cx = TraceContextPropagator::new().extract(&Headers(&headers));
        let span = cx.span();
        let remote = span.span_context();
        assert!(remote.is_remote());
        assert_eq!(
            remote.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
