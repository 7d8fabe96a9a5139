//! `orisun serve`: logging set-up, listeners on the configured ports, and shutdown on SIGINT or
//! SIGTERM.

use anyhow::Context;
use orisun_server::config::LogFormat;
use orisun_server::telemetry::{self, TelemetryGuard};
use orisun_server::Config;
use std::io::IsTerminal;
use tokio::net::TcpListener;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Kept until the end: dropping it flushes the spans still queued for export.
    let _telemetry = init_logging(&config)?;
    config.validate()?;
    let grpc = TcpListener::bind(config.grpc_addr())
        .await
        .with_context(|| {
            format!(
                "binding the gRPC port {} (ORISUN_GRPC_PORT)",
                config.grpc_addr()
            )
        })?;
    let http = TcpListener::bind(config.admin_addr())
        .await
        .with_context(|| {
            format!(
                "binding the admin port {} (ORISUN_ADMIN_PORT)",
                config.admin_addr()
            )
        })?;
    orisun_server::serve(config, grpc, http, shutdown_signal()).await?;
    Ok(())
}

fn init_logging(config: &Config) -> anyhow::Result<Option<TelemetryGuard>> {
    let filter = EnvFilter::try_new(config.logging.logging_level.directive())
        .context("ORISUN_LOGGING_LEVEL is not a valid filter")?;
    let fmt = tracing_subscriber::fmt::layer();
    let fmt = match config.logging.logging_format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Text => fmt
            .with_ansi(std::io::stdout().is_terminal())
            .with_filter(filter)
            .boxed(),
    };
    // Spans go to the collector at INFO whatever the log level, so traces stay whole.
    let (otel, guard) = match telemetry::layer(&config.otel)? {
        Some((layer, guard)) => (Some(layer.with_filter(LevelFilter::INFO)), Some(guard)),
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    Ok(guard)
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
