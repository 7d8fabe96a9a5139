//! How the admin HTTP port (and the profiler's) is served: plain HTTP, or HTTPS when gRPC TLS
//! is enabled (`ORISUN_GRPC_TLS_ENABLED`), with the same certificate and key
//! (`ORISUN_GRPC_TLS_CERT_FILE`, `ORISUN_GRPC_TLS_KEY_FILE`).
//!
//! Client certificates are never required here, even when gRPC requires them: load balancers
//! probe `/health` and `/ready` without one, and the other routes authenticate their callers.

use crate::config::TlsSection;
use crate::error::ServerError;
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long in-flight admin requests may finish after the stop signal, over TLS.
const GRACE: Duration = Duration::from_secs(5);

/// Loads the admin port's TLS configuration: `None` when gRPC TLS is disabled. A file that
/// cannot be read or parsed fails naming its variable.
pub async fn tls_config(
    section: &TlsSection,
) -> Result<Option<Arc<rustls::ServerConfig>>, ServerError> {
    if !section.grpc_tls_enabled {
        return Ok(None);
    }
    let read = |path: std::path::PathBuf, variable: &'static str| async move {
        tokio::fs::read(&path)
            .await
            .map_err(|e| ServerError::Tls(format!("{variable}={}: {e}", path.display())))
    };
    let cert_pem = read(
        section.grpc_tls_cert_file.clone(),
        "ORISUN_GRPC_TLS_CERT_FILE",
    )
    .await?;
    let key_pem = read(
        section.grpc_tls_key_file.clone(),
        "ORISUN_GRPC_TLS_KEY_FILE",
    )
    .await?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("ORISUN_GRPC_TLS_CERT_FILE: {e}")))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(
            "ORISUN_GRPC_TLS_CERT_FILE: no certificate in the file".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| ServerError::Tls(format!("ORISUN_GRPC_TLS_KEY_FILE: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(format!("admin HTTP certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await;
    };
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        stop.await;
        stopper.graceful_shutdown(Some(GRACE));
    });
    let listener = listener.into_std()?;
    axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )?
    .handle(handle)
    .serve(app.into_make_service())
    .await
}
