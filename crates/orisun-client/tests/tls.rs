//! TLS: a server whose certificate is signed by a test CA, and a client that trusts that CA
//! (and one that does not).

mod support;

use orisun_client::{OrisunClient, RetryPolicy};
use orisun_store::core::{Position, Query, ReadRequest};
use orisun_store::{EventStore, StoreError};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use support::{Backend, TestServer, ADMIN};

/// A CA and a server certificate for `localhost` and `127.0.0.1`, written to a directory.
struct Certificates {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Certificates {
    fn new() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA");
        let key = KeyPair::generate().expect("server key");
        let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&key, &ca)
            .expect("server certificate");
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("server.crt"), cert.pem()).expect("write certificate");
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("write key");
        Self {
            dir,
            ca_pem: ca.pem(),
        }
    }

    fn server_flags(&self) -> Vec<String> {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        vec![
            "--grpc-tls-enabled".into(),
            "true".into(),
            "--grpc-tls-cert-file".into(),
            path("server.crt"),
            "--grpc-tls-key-file".into(),
            path("server.key"),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_ca_is_served_over_tls() {
    let certificates = Certificates::new();
    let flags = certificates.server_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = TestServer::start(Backend::Sqlite, &flags).await;
    let https = format!("https://localhost:{}", server.grpc.port());

    let client = OrisunClient::builder(&https)
        .credentials(ADMIN.0, ADMIN.1)
        .ca_certificate(certificates.ca_pem.clone())
        .connect()
        .await
        .expect("TLS connection");
    let boundary = support::unique_boundary();
    client.create_boundary(&boundary).await.expect("create");
    let stored = client
        .append(&boundary, vec![support::numbered("E", 1)], None)
        .await
        .expect("append over TLS");
    assert_eq!(stored.position, Position::new(1, 0));
    let events = client
        .read(&boundary, &ReadRequest::forward(None, 10))
        .await
        .expect("read over TLS");
    assert_eq!(events.len(), 1);
    let mut live = client.subscribe(&boundary, Position::BEFORE_FIRST, Query::all());
    let first = futures::StreamExt::next(&mut live).await;
    assert!(matches!(first, Some(Ok(ref e)) if e.position == stored.position));

    // An IP address endpoint with the certificate's name given explicitly.
    let by_ip = OrisunClient::builder(format!("https://127.0.0.1:{}", server.grpc.port()))
        .credentials(ADMIN.0, ADMIN.1)
        .ca_certificate(certificates.ca_pem.clone())
        .tls_domain("localhost")
        .connect()
        .await
        .expect("TLS connection by address");
    by_ip.ping().await.expect("ping");

    // Without the CA the server's certificate is not trusted: the connection never opens.
    let untrusting = OrisunClient::builder(&https)
        .credentials(ADMIN.0, ADMIN.1)
        .retry_policy(RetryPolicy::NEVER)
        .build()
        .expect("configuration");
    let refused = untrusting.ping().await.expect_err("untrusted certificate");
    assert!(
        matches!(refused, StoreError::Unavailable { .. }),
        "{refused:?}"
    );

    // Plain HTTP/2 to the TLS port gets no answer either.
    let plain = OrisunClient::builder(format!("http://127.0.0.1:{}", server.grpc.port()))
        .credentials(ADMIN.0, ADMIN.1)
        .retry_policy(RetryPolicy::NEVER)
        .build()
        .expect("configuration");
    assert!(plain.ping().await.is_err());
}
