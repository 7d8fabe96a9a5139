//! Tests of the whole configuration: defaults, flag and variable names, cross-section checks.

use super::*;
use orisun_core::BoundaryName;
use std::time::Duration;

fn parse(args: &[&str]) -> Result<Config, clap::Error> {
    Config::try_parse_from(std::iter::once("orisun serve").chain(args.iter().copied()))
}

#[test]
fn defaults_match_the_documented_ones() {
    let c = parse(&[]).expect("defaults parse");
    assert_eq!(c.grpc.grpc_port, 5005);
    assert_eq!(c.admin_http.admin_port, 8991);
    assert_eq!(c.auth.admin_boundary.as_str(), "orisun_admin");
    assert_eq!(c.backend_kind(), BackendKind::Sqlite);
    assert_eq!(c.grpc.grpc_max_receive_message_size, 64 * 1024 * 1024);
    assert_eq!(c.grpc.grpc_keep_alive_time, Duration::from_secs(30));
    assert_eq!(c.grpc.grpc_handshake_timeout, Duration::from_secs(10));
    assert!(c.grpc.grpc_enable_reflection);
    assert_eq!(c.logging.logging_level.directive(), "info");
    assert_eq!(
        c.subscriptions.subscriber_lease_ttl,
        Duration::from_secs(10)
    );
    assert!(c.validate().is_ok());
}

#[test]
fn nats_settings_follow_the_environment_names() {
    let c = parse(&[]).expect("defaults parse");
    assert!(c.nats_config().is_none(), "no ORISUN_NATS_URL, no NATS");
    assert_eq!(c.nats.nats_event_stream_max_bytes, 536_870_912);
    assert_eq!(c.nats.nats_event_stream_max_msgs, -1);
    assert_eq!(c.nats.nats_event_stream_max_age, Duration::from_secs(300));
    assert_eq!(c.nats.nats_publisher_lease_ttl, Duration::from_secs(10));
    let c = parse(&[
        "--nats-url",
        "nats://127.0.0.1:4222",
        "--nats-event-stream-max-bytes",
        "-1",
        "--nats-event-stream-max-msgs",
        "1000",
        "--nats-event-stream-max-age",
        "1h",
        "--nats-publisher-lease-ttl",
        "2s",
    ])
    .expect("parses");
    let nats = c.nats_config().expect("configured");
    assert_eq!(nats.url, "nats://127.0.0.1:4222");
    assert_eq!(nats.publisher.limits.max_bytes, -1);
    assert_eq!(nats.publisher.limits.max_msgs, 1000);
    assert_eq!(nats.publisher.limits.max_age, Duration::from_secs(3600));
    assert_eq!(nats.publisher.lease_ttl, Duration::from_secs(2));
    assert_eq!(
        nats.excluded_boundaries,
        vec![c.auth.admin_boundary.clone()]
    );
    let c = parse(&["--nats-event-stream-max-msgs", "0"]).expect("parses");
    assert_eq!(
        c.validate().expect_err("zero").variable,
        "ORISUN_NATS_EVENT_STREAM_MAX_MSGS"
    );
    let c = parse(&["--nats-publisher-lease-ttl", "500ms"]).expect("parses");
    assert_eq!(
        c.validate().expect_err("too short").variable,
        "ORISUN_NATS_PUBLISHER_LEASE_TTL"
    );
}

#[test]
fn pg_host_selects_postgres_and_schemas_are_boundaries() {
    let c = parse(&[
        "--pg-host",
        "db",
        "--pg-schemas",
        "orders:public,orisun_admin:admin",
        "--boundaries",
        r#"[{"name":"orders","description":"o"},{"name":"payments"}]"#,
    ])
    .expect("parses");
    assert_eq!(c.backend_kind(), BackendKind::Postgres);
    let names: Vec<_> = c
        .startup_boundaries()
        .iter()
        .map(|b| b.to_string())
        .collect();
    assert_eq!(names, ["orisun_admin", "orders", "payments"]);
    let admin = BoundaryName::new("orisun_admin").expect("valid");
    assert_eq!(c.postgres.schema_of(&admin), Some("admin"));
}

#[test]
fn invalid_values_name_the_variable() {
    for (args, variable) in [
        (vec!["--grpc-port", "x"], "ORISUN_GRPC_PORT"),
        (
            vec!["--boundaries", "[{\"name\":\"a-b\"}]"],
            "ORISUN_BOUNDARIES",
        ),
        (vec!["--boundaries", "{"], "ORISUN_BOUNDARIES"),
        (vec!["--pg-schemas", "orders"], "ORISUN_PG_SCHEMAS"),
        (vec!["--pg-schemas", "orders:pub lic"], "ORISUN_PG_SCHEMAS"),
        (vec!["--admin-boundary", "1x"], "ORISUN_ADMIN_BOUNDARY"),
        (
            vec!["--grpc-keep-alive-time", "5y"],
            "ORISUN_GRPC_KEEP_ALIVE_TIME",
        ),
        (vec!["--logging-level", "loud"], "ORISUN_LOGGING_LEVEL"),
        (vec!["--pg-sslmode", "verify_ca"], "ORISUN_PG_SSLMODE"),
        (
            vec!["--grpc-enable-reflection", "maybe"],
            "ORISUN_GRPC_ENABLE_REFLECTION",
        ),
        (
            vec!["--grpc-max-receive-message-size", "10"],
            "ORISUN_GRPC_MAX_RECEIVE_MESSAGE_SIZE",
        ),
    ] {
        let err = parse(&args).expect_err(variable).to_string();
        assert!(err.contains(variable), "{variable}: {err}");
    }
}

#[test]
fn postgres_tls_settings_reach_the_store_config() {
    let c = parse(&[
        "--pg-host",
        "db",
        "--pg-sslmode",
        "VERIFY-FULL",
        "--pg-sslrootcert",
        "/etc/orisun/pg/ca.crt",
        "--pg-sslcert",
        "/etc/orisun/pg/client.crt",
        "--pg-sslkey",
        "/etc/orisun/pg/client.key",
    ])
    .expect("parses");
    let pg = orisun_postgres::PostgresConfig::try_from(&c.postgres).expect("converts");
    assert_eq!(pg.tls.mode, orisun_postgres::SslMode::VerifyFull);
    assert_eq!(
        pg.tls.root_cert.as_deref(),
        Some(std::path::Path::new("/etc/orisun/pg/ca.crt"))
    );
    assert_eq!(
        pg.tls.client_key.as_deref(),
        Some(std::path::Path::new("/etc/orisun/pg/client.key"))
    );
    let plain = parse(&["--pg-host", "db"]).expect("parses");
    let pg = orisun_postgres::PostgresConfig::try_from(&plain.postgres).expect("converts");
    assert_eq!(pg.tls, orisun_postgres::PgTls::default());
}

#[test]
fn pooler_settings_reach_the_store_config() {
    let c = parse(&[
        "--pg-host",
        "pgbouncer",
        "--pg-port",
        "6432",
        "--pg-listen-host",
        "db",
        "--pg-listen-port",
        "5432",
        "--pg-statement-cache",
        "false",
    ])
    .expect("parses");
    let pg = orisun_postgres::PostgresConfig::try_from(&c.postgres).expect("converts");
    assert_eq!((pg.host.as_str(), pg.port), ("pgbouncer", 6432));
    assert_eq!(
        (pg.listen_host.as_deref(), pg.listen_port),
        (Some("db"), Some(5432))
    );
    assert!(!pg.statement_cache);
    let direct = parse(&["--pg-host", "db"]).expect("parses");
    let pg = orisun_postgres::PostgresConfig::try_from(&direct.postgres).expect("converts");
    assert_eq!((pg.listen_host, pg.listen_port), (None, None));
    assert!(pg.statement_cache, "statements are cached by default");
    let err = parse(&["--pg-statement-cache", "sometimes"])
        .expect_err("not a boolean")
        .to_string();
    assert!(err.contains("ORISUN_PG_STATEMENT_CACHE"), "{err}");
}

#[test]
fn cross_checks_name_the_variable() {
    let c = parse(&["--backend", "postgres"]).expect("parses");
    assert_eq!(
        c.validate().expect_err("no host").variable,
        "ORISUN_PG_HOST"
    );
    let c = parse(&["--pg-schemas", "a:x,a:y"]).expect("parses");
    assert_eq!(
        c.validate().expect_err("twice").variable,
        "ORISUN_PG_SCHEMAS"
    );
}
