//! gRPC over TLS (`ORISUN_GRPC_TLS_*`): a server certificate signed by a test CA, and mutual
//! TLS where a client without a certificate from the CA is refused.

mod common;

use common::*;
use orisun_proto as pb;
use orisun_proto::event_store_client::EventStoreClient;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use std::path::Path;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl Pki {
    fn new() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca");

        let server_key = KeyPair::generate().expect("server key");
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .expect("server cert");

        let client_key = KeyPair::generate().expect("client key");
        let mut client_params =
            CertificateParams::new(vec!["client".to_owned()]).expect("client params");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params
            .signed_by(&client_key, &ca)
            .expect("client cert");

        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write pem");
        };
        write("server.crt", &server_cert.pem());
        write("server.key", &server_key.serialize_pem());
        write("ca.crt", &ca.pem());
        Self {
            ca_pem: ca.pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        Path::new(self.dir.path()).join(name).display().to_string()
    }

    fn server_args(&self, mutual: bool) -> Vec<String> {
        vec![
            "--grpc-tls-enabled".into(),
            "true".into(),
            "--grpc-tls-cert-file".into(),
            self.path("server.crt"),
            "--grpc-tls-key-file".into(),
            self.path("server.key"),
            "--grpc-tls-ca-file".into(),
            self.path("ca.crt"),
            "--grpc-tls-client-auth-required".into(),
            mutual.to_string(),
        ]
    }

    async fn client(&self, server: &TestServer, with_identity: bool) -> Result<Client, String> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name("localhost");
        if with_identity {
            tls = tls.identity(Identity::from_pem(
                &self.client_cert_pem,
                &self.client_key_pem,
            ));
        }
        let channel = Channel::from_shared(format!("https://{}", server.grpc))
            .map_err(|e| e.to_string())?
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok(EventStoreClient::with_interceptor(
            channel,
            Credentials::basic(ADMIN.0, ADMIN.1),
        ))
    }
}

async fn start(pki: &Pki, mutual: bool) -> TestServer {
    let args = pki.server_args(mutual);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start_with(Backend::Memory, &args).await
}

#[tokio::test]
async fn tls_serves_the_api() {
    let pki = Pki::new();
    let server = start(&pki, false).await;
    let mut client = pki.client(&server, false).await.expect("TLS connection");
    client
        .ping(pb::PingRequest {})
        .await
        .expect("ping over TLS");
    // A plaintext client cannot talk to the TLS port.
    let mut plain = server.anonymous().await;
    assert!(plain.ping(pb::PingRequest {}).await.is_err());
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate() {
    let pki = Pki::new();
    let server = start(&pki, true).await;
    let mut client = pki.client(&server, true).await.expect("mTLS connection");
    client
        .ping(pb::PingRequest {})
        .await
        .expect("ping with a client certificate");
    let refused = match pki.client(&server, false).await {
        Err(_) => true,
        Ok(mut c) => c.ping(pb::PingRequest {}).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn missing_certificate_file_stops_start_up() {
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let config = <orisun_server::Config as clap::Parser>::try_parse_from([
        "orisun serve",
        "--backend",
        "memory",
        "--grpc-tls-enabled",
        "true",
        "--grpc-tls-cert-file",
        "/nonexistent/server.crt",
    ])
    .expect("parses");
    let err = orisun_server::serve(config, grpc, http, std::future::pending())
        .await
        .expect_err("no certificate");
    assert!(
        err.to_string().contains("ORISUN_GRPC_TLS_CERT_FILE"),
        "{err}"
    );
}

#[tokio::test]
async fn admin_http_serves_tls_with_the_grpc_certificate() {
    let pki = Pki::new();
    // Mutual TLS on gRPC does not extend to the probes: they need no client certificate.
    let server = start(&pki, true).await;
    let (status, body) = https_get(server.http, "/health", pki.ca_pem.as_bytes())
        .await
        .expect("HTTPS with the test CA");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, _) = https_get(server.http, "/ready", pki.ca_pem.as_bytes())
        .await
        .expect("HTTPS");
    assert_eq!(status, 200);
    // /metrics still needs credentials over TLS.
    let (status, _) = https_get(server.http, "/metrics", pki.ca_pem.as_bytes())
        .await
        .expect("HTTPS");
    assert_eq!(status, 401);
    // Plain HTTP is not served on the admin port any more.
    let plain = http_get(server.http, "/health").await;
    assert!(
        !matches!(plain, Ok((200, _))),
        "plain HTTP answered: {plain:?}"
    );
    server.stop().await.expect("clean stop");
}
