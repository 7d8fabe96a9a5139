//! TLS to PostgreSQL: a server of the test's own (initdb in a temporary directory, `ssl=on`,
//! a CA and certificates generated here, plain connections refused by `pg_hba.conf`) reached
//! with every `sslmode` that encrypts, a client certificate, and the refusals: a wrong CA, a host
//! name the certificate does not carry, a missing root certificate, plain TCP.

use orisun_core::{BoundaryName, NewEvent, ReadRequest};
use orisun_postgres::testsuite::cluster::Cluster;
use orisun_postgres::{PgTls, PostgresConfig, PostgresStore, SslMode};
use orisun_store::EventStore;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A CA: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A certificate for `names` (DNS names) with common name `cn`, signed by `ca`: (cert, key).
fn leaf(ca: &Ca, cn: &str, names: &[&str]) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("signed");
    (cert.pem(), key.serialize_pem())
}

/// A PostgreSQL server that accepts only TLS connections, stopped when dropped.
struct TlsServer {
    cluster: Cluster,
    ca: Ca,
}

impl TlsServer {
    fn start() -> Self {
        let cluster = Cluster::init();
        let ca = ca("orisun test CA");
        let (server_cert, server_key) = leaf(&ca, "localhost", &["localhost"]);
        cluster.write_file("server.crt", &server_cert);
        let key = cluster.write_file("server.key", &server_key);
        cluster.write_file("ca.crt", &ca.pem);
        cluster.append_conf(
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             ssl_ca_file = 'ca.crt'\n",
        );
        // Plain TCP is refused; `certuser` must present a certificate whose CN is its name.
        cluster.write_hba(
            "local all all trust\n\
             hostnossl all all 127.0.0.1/32 reject\n\
             hostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 trust\n",
        );
        let ok = Command::new("chmod")
            .arg("600")
            .arg(&key)
            .status()
            .expect("chmod");
        assert!(ok.success());
        cluster.start();
        cluster.psql(&[
            "CREATE ROLE certuser LOGIN SUPERUSER",
            "CREATE DATABASE orisun",
        ]);
        Self { cluster, ca }
    }

    /// Writes `text` to a file beside the server's data and returns its path.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        self.cluster.side_file(name, text)
    }

    fn config(&self, host: &str, tls: PgTls) -> PostgresConfig {
        PostgresConfig {
            host: host.to_owned(),
            port: self.cluster.port(),
            dbname: "orisun".to_owned(),
            pool_size: 4,
            connect_timeout: Duration::from_secs(10),
            tls,
            ..PostgresConfig::default()
        }
    }
}

/// Connects, appends and reads back through the store; returns the connection error if any.
async fn round_trip(config: PostgresConfig) -> Result<(), String> {
    let store = PostgresStore::connect(config)
        .await
        .map_err(|e| e.to_string())?;
    let boundary = BoundaryName::new("secure").expect("name");
    store
        .create_boundary(&boundary)
        .await
        .map_err(|e| e.to_string())?;
    let serde_json::Value::Object(data) = json!({"over": "tls"}) else {
        unreachable!("an object literal")
    };
    let event =
        NewEvent::new(uuid::Uuid::new_v4(), "Sealed", data, Default::default()).expect("event");
    store
        .append(&boundary, vec![event], None)
        .await
        .map_err(|e| e.to_string())?;
    let read = store
        .read(&boundary, &ReadRequest::forward(None, 10))
        .await
        .map_err(|e| e.to_string())?;
    assert!(!read.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_encrypting_mode_connects_and_refusals_are_clear() {
    let server = TlsServer::start();
    let root = server.file("root.crt", &server.ca.pem);
    let tls = |mode, root_cert: Option<&PathBuf>| PgTls {
        mode,
        root_cert: root_cert.cloned(),
        ..PgTls::default()
    };

    // Plain TCP is refused by the server, so each success below went over TLS.
    let plain = round_trip(server.config("127.0.0.1", PgTls::default())).await;
    assert!(plain.is_err(), "plain TCP must be refused by pg_hba");

    for (host, mode, root_cert) in [
        ("127.0.0.1", SslMode::Prefer, None),
        ("127.0.0.1", SslMode::Require, None),
        ("127.0.0.1", SslMode::Require, Some(&root)),
        ("127.0.0.1", SslMode::VerifyCa, Some(&root)),
        ("localhost", SslMode::VerifyFull, Some(&root)),
    ] {
        round_trip(server.config(host, tls(mode, root_cert)))
            .await
            .unwrap_or_else(|e| panic!("{host} {mode:?}: {e}"));
    }

    // verify-full checks the name: the certificate names localhost, not 127.0.0.1.
    let wrong_name = round_trip(server.config("127.0.0.1", tls(SslMode::VerifyFull, Some(&root))))
        .await
        .expect_err("a certificate for another name is refused");
    assert!(
        wrong_name.contains("TLS handshake") && wrong_name.contains("not valid for name"),
        "{wrong_name}"
    );

    // A CA that did not sign the server's certificate is refused by every checking mode.
    let other = server.file("other.crt", &ca("another CA").pem);
    for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
        let err = round_trip(server.config("localhost", tls(mode, Some(&other))))
            .await
            .expect_err("a wrong CA is refused");
        assert!(
            err.contains("TLS handshake") && err.contains("invalid peer certificate"),
            "{mode:?}: {err}"
        );
    }

    // The checking modes need the root certificate, and say so before connecting.
    let err = round_trip(server.config("localhost", tls(SslMode::VerifyFull, None)))
        .await
        .expect_err("no root certificate");
    assert!(err.contains("ORISUN_PG_SSLROOTCERT"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_authenticates_its_user() {
    let server = TlsServer::start();
    let root = server.file("root.crt", &server.ca.pem);
    let (cert, key) = leaf(&server.ca, "certuser", &["certuser"]);
    let cert = server.file("client.crt", &cert);
    let key = server.file("client.key", &key);
    let certuser = |client: Option<(&PathBuf, &PathBuf)>| PostgresConfig {
        user: "certuser".to_owned(),
        ..server.config(
            "localhost",
            PgTls {
                mode: SslMode::VerifyFull,
                root_cert: Some(root.clone()),
                client_cert: client.map(|(c, _)| c.clone()),
                client_key: client.map(|(_, k)| k.clone()),
            },
        )
    };

    // Without a certificate, pg_hba's `cert` method refuses certuser.
    let refused = PostgresStore::connect(certuser(None)).await;
    assert!(refused.is_err(), "certuser needs a certificate");

    // With one, the store connects as certuser and works.
    round_trip(certuser(Some((&cert, &key))))
        .await
        .expect("certuser authenticated by its certificate");
}
