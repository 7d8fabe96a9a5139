//! TLS to PostgreSQL: the `sslmode` semantics of libpq (`disable` through `verify-full`) on
//! rustls, with an optional client certificate. Every connection the store opens (the pool and
//! the LISTEN connection) goes through the connector built here.

use orisun_store::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a connection uses TLS, with libpq's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP only.
    #[default]
    Disable,
    /// Treated as `prefer`: the driver cannot start plain and switch to TLS on demand.
    Allow,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked.
    Prefer,
    /// TLS or no connection. The certificate is checked against the root certificate when one
    /// is configured (as libpq does), otherwise not at all.
    Require,
    /// TLS, with a certificate that chains to the root certificate (any host name).
    VerifyCa,
    /// TLS, with a certificate that chains to the root certificate and names the host.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling (`disable`, `allow`, `prefer`, `require`, `verify-ca`,
    /// `verify-full`), ignoring case.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's spelling of the mode.
    pub fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// The driver's setting: whether TLS is tried, and whether it is required.
    pub(crate) fn driver(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            Self::Disable => Driver::Disable,
            Self::Allow | Self::Prefer => Driver::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Driver::Require,
        }
    }
}

/// TLS settings of a [`crate::PostgresConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PgTls {
    /// The `sslmode`.
    pub mode: SslMode,
    /// CA certificates (PEM) the server's certificate must chain to; required by `verify-ca`
    /// and `verify-full`, and used by `require` when given.
    pub root_cert: Option<PathBuf>,
    /// Client certificate chain (PEM), for servers that authenticate clients by certificate.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

/// What the store connects with: plain TCP, or rustls.
#[derive(Clone)]
pub(crate) enum Connector {
    Plain,
    Rustls(MakeRustlsConnect),
}

/// Builds the connector for `tls`, reading the certificate files now so that a missing or
/// unreadable file stops start-up with its name instead of failing every connection.
pub(crate) fn connector(tls: &PgTls) -> Result<Connector, StoreError> {
    if tls.mode == SslMode::Disable {
        return Ok(Connector::Plain);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &tls.root_cert {
        Some(path) => Some(Arc::new(root_store(path)?)),
        None => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (tls.mode, roots) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(StoreError::invalid(
                "sslrootcert",
                format!(
                    "sslmode {} checks the server's certificate and needs the CA certificate \
                     file (ORISUN_PG_SSLROOTCERT)",
                    tls.mode.name()
                ),
            ))
        }
        (SslMode::VerifyFull, Some(roots)) => web_pki(roots, &provider)?,
        (SslMode::VerifyCa | SslMode::Require, Some(roots)) => Arc::new(AnyHostName {
            inner: web_pki(roots, &provider)?,
        }),
        (_, _) => Arc::new(Unchecked {
            provider: provider.clone(),
        }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::internal(format!("TLS to PostgreSQL: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.client_cert, &tls.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certificates(cert, "sslcert")?, private_key(key)?)
            .map_err(|e| {
                StoreError::invalid(
                    "sslkey",
                    format!(
                        "{} does not match the client certificate: {e}",
                        key.display()
                    ),
                )
            })?,
        (Some(_), None) => {
            return Err(StoreError::invalid(
                "sslkey",
                "a client certificate (ORISUN_PG_SSLCERT) needs its key (ORISUN_PG_SSLKEY)",
            ))
        }
        (None, Some(_)) => {
            return Err(StoreError::invalid(
                "sslcert",
                "a client key (ORISUN_PG_SSLKEY) needs its certificate (ORISUN_PG_SSLCERT)",
            ))
        }
    };
    Ok(Connector::Rustls(MakeRustlsConnect::new(config)))
}

fn web_pki(
    roots: Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, StoreError> {
    WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| StoreError::invalid("sslrootcert", format!("unusable CA certificates: {e}")))
}

fn certificates(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let unreadable =
        |e: &dyn std::fmt::Display| StoreError::invalid(field, format!("{}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no PEM certificate in the file"));
    }
    Ok(certs)
}

fn root_store(path: &Path) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path, "sslrootcert")? {
        store
            .add(cert)
            .map_err(|e| StoreError::invalid("sslrootcert", format!("{}: {e}", path.display())))?;
    }
    Ok(store)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, StoreError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| StoreError::invalid("sslkey", format!("{}: {e}", path.display())))
}

/// `verify-ca`: the chain must reach a trusted root; the name in the certificate may be any.
#[derive(Debug)]
struct AnyHostName {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // The chain was checked before the name: only the name did not match.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root certificate: the connection is encrypted, but whom it
/// reaches is not checked (libpq's meaning of those modes). The handshake's signatures are still
/// verified, so the session key belongs to whoever holds the certificate's key.
#[derive(Debug)]
struct Unchecked {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libpq_modes() {
        assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::parse("REQUIRE"), Some(SslMode::Require));
        assert_eq!(SslMode::parse("verify_ca"), None);
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let err = connector(&PgTls {
                mode,
                ..PgTls::default()
            })
            .err()
            .expect("refused");
            assert!(err.to_string().contains("ORISUN_PG_SSLROOTCERT"), "{err}");
        }
        assert!(matches!(connector(&PgTls::default()), Ok(Connector::Plain)));
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let err = connector(&PgTls {
            mode: SslMode::Require,
            client_cert: Some("/nonexistent/client.crt".into()),
            ..PgTls::default()
        })
        .err()
        .expect("refused");
        assert!(err.to_string().contains("ORISUN_PG_SSLKEY"), "{err}");
    }

    #[test]
    fn a_missing_root_certificate_file_is_named() {
        let err = connector(&PgTls {
            mode: SslMode::VerifyFull,
            root_cert: Some("/nonexistent/root.crt".into()),
            ..PgTls::default()
        })
        .err()
        .expect("refused");
        assert!(err.to_string().contains("/nonexistent/root.crt"), "{err}");
    }
}
