//! Owns the gRPC TLS flags (`ORISUN_GRPC_TLS_*`) and the loading of the certificates they name
//! into a tonic [`ServerTlsConfig`].

use crate::error::ServerError;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use std::path::PathBuf;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// The TLS section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct TlsSection {
    /// Serve gRPC over TLS (TLS 1.2+).
    #[arg(long, env = "ORISUN_GRPC_TLS_ENABLED", value_name = "ORISUN_GRPC_TLS_ENABLED", default_value_t = false, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "TLS")]
    pub grpc_tls_enabled: bool,

    /// Server certificate chain (PEM).
    #[arg(
        long,
        env = "ORISUN_GRPC_TLS_CERT_FILE",
        value_name = "ORISUN_GRPC_TLS_CERT_FILE",
        default_value = "/etc/orisun/tls/server.crt",
        help_heading = "TLS"
    )]
    pub grpc_tls_cert_file: PathBuf,

    /// Server private key (PEM).
    #[arg(
        long,
        env = "ORISUN_GRPC_TLS_KEY_FILE",
        value_name = "ORISUN_GRPC_TLS_KEY_FILE",
        default_value = "/etc/orisun/tls/server.key",
        help_heading = "TLS"
    )]
    pub grpc_tls_key_file: PathBuf,

    /// CA certificate(s) (PEM) that client certificates must chain to (mutual TLS).
    #[arg(
        long,
        env = "ORISUN_GRPC_TLS_CA_FILE",
        value_name = "ORISUN_GRPC_TLS_CA_FILE",
        default_value = "/etc/orisun/tls/ca.crt",
        help_heading = "TLS"
    )]
    pub grpc_tls_ca_file: PathBuf,

    /// Require a client certificate signed by ORISUN_GRPC_TLS_CA_FILE (mutual TLS).
    #[arg(long, env = "ORISUN_GRPC_TLS_CLIENT_AUTH_REQUIRED", value_name = "ORISUN_GRPC_TLS_CLIENT_AUTH_REQUIRED", default_value_t = false, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "TLS")]
    pub grpc_tls_client_auth_required: bool,
}

impl TlsSection {
    /// Loads the TLS identity (and, for mutual TLS, the client CA) named by this section; `None`
    /// when TLS is disabled. A file that cannot be read fails naming its variable and path.
    pub async fn server_tls_config(&self) -> Result<Option<ServerTlsConfig>, ServerError> {
        if !self.grpc_tls_enabled {
            return Ok(None);
        }
        let read = |path: PathBuf, variable: &'static str| async move {
            tokio::fs::read(&path)
                .await
                .map_err(|e| ServerError::Tls(format!("{variable}={}: {e}", path.display())))
        };
        let cert = read(self.grpc_tls_cert_file.clone(), "ORISUN_GRPC_TLS_CERT_FILE").await?;
        let key = read(self.grpc_tls_key_file.clone(), "ORISUN_GRPC_TLS_KEY_FILE").await?;
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if self.grpc_tls_client_auth_required {
            let ca = read(self.grpc_tls_ca_file.clone(), "ORISUN_GRPC_TLS_CA_FILE").await?;
            tls = tls
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(false);
        }
        Ok(Some(tls))
    }
}
