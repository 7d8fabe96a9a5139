//! The `orisun` binary: `serve` configuration errors and help, a refusal of data written by a
//! newer build, `call` against a running server for unary and streaming RPCs and errors, and a
//! clean exit on SIGTERM.

mod support;

use support::*;

#[test]
fn serve_help_lists_every_variable() {
    let output = orisun().args(["serve", "--help"]).output().expect("help");
    assert!(output.status.success());
    let help = stdout(&output);
    for variable in [
        "ORISUN_BACKEND",
        "ORISUN_DATA_DIR",
        "ORISUN_SQLITE_SYNCHRONOUS",
        "ORISUN_PG_HOST",
        "ORISUN_PG_PORT",
        "ORISUN_PG_USER",
        "ORISUN_PG_PASSWORD",
        "ORISUN_PG_NAME",
        "ORISUN_PG_SSLMODE",
        "ORISUN_PG_SSLROOTCERT",
        "ORISUN_PG_SSLCERT",
        "ORISUN_PG_SSLKEY",
        "ORISUN_PG_SCHEMAS",
        "ORISUN_PG_LISTEN_ENABLED",
        "ORISUN_PG_WRITE_MAX_OPEN_CONNS",
        "ORISUN_PG_READ_MAX_OPEN_CONNS",
        "ORISUN_BOUNDARIES",
        "ORISUN_ADMIN_BOUNDARY",
        "ORISUN_ADMIN_USERNAME",
        "ORISUN_ADMIN_PASSWORD",
        "ORISUN_AUTH_TOKEN_TTL",
        "ORISUN_HOST",
        "ORISUN_GRPC_PORT",
        "ORISUN_ADMIN_PORT",
        "ORISUN_GRPC_ENABLE_REFLECTION",
        "ORISUN_GRPC_MAX_RECEIVE_MESSAGE_SIZE",
        "ORISUN_GRPC_MAX_SEND_MESSAGE_SIZE",
        "ORISUN_GRPC_MAX_CONCURRENT_STREAMS",
        "ORISUN_GRPC_KEEP_ALIVE_TIME",
        "ORISUN_GRPC_KEEP_ALIVE_TIMEOUT",
        "ORISUN_GRPC_INITIAL_WINDOW_SIZE",
        "ORISUN_GRPC_INITIAL_CONN_WINDOW_SIZE",
        "ORISUN_SHUTDOWN_TIMEOUT",
        "ORISUN_GRPC_TLS_ENABLED",
        "ORISUN_GRPC_TLS_CERT_FILE",
        "ORISUN_GRPC_TLS_KEY_FILE",
        "ORISUN_GRPC_TLS_CA_FILE",
        "ORISUN_GRPC_TLS_CLIENT_AUTH_REQUIRED",
        "ORISUN_NATS_URL",
        "ORISUN_LOGGING_LEVEL",
        "ORISUN_LOGGING_FORMAT",
    ] {
        assert!(
            help.contains(variable),
            "{variable} missing from serve --help"
        );
    }
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_variable() {
    for (variable, value) in [
        ("ORISUN_GRPC_PORT", "not-a-port"),
        ("ORISUN_BOUNDARIES", r#"[{"name":"bad-name"}]"#),
        ("ORISUN_PG_SCHEMAS", "orders"),
        ("ORISUN_GRPC_ENABLE_REFLECTION", "perhaps"),
        ("ORISUN_LOGGING_LEVEL", "chatty"),
        ("ORISUN_GRPC_KEEP_ALIVE_TIME", "soon"),
    ] {
        let output = orisun()
            .arg("serve")
            .env(variable, value)
            .output()
            .expect("run");
        assert!(!output.status.success(), "{variable}={value} accepted");
        let err = stderr(&output);
        assert!(err.contains(variable), "{variable}: {err}");
    }
    // A rule across variables is reported the same way.
    let output = orisun()
        .arg("serve")
        .env("ORISUN_BACKEND", "postgres")
        .env_remove("ORISUN_PG_HOST")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("ORISUN_PG_HOST"),
        "{}",
        stderr(&output)
    );
}

/// An older binary started on data a newer one migrated stops at once, says why in one line,
/// and leaves the data as it was.
#[test]
fn serve_refuses_data_written_by_a_newer_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = || {
        orisun()
            .arg("serve")
            .env("ORISUN_HOST", "127.0.0.1")
            .env("ORISUN_GRPC_PORT", "0")
            .env("ORISUN_ADMIN_PORT", "0")
            .env("ORISUN_DATA_DIR", dir.path())
            .env("ORISUN_BOUNDARIES", r#"[{"name":"orders"}]"#)
            .env_remove("ORISUN_PG_HOST")
            .env_remove("ORISUN_BACKEND")
            .output()
            .expect("run")
    };
    // A first start creates the files (the server is killed when dropped).
    drop(Server::start_in(dir.path(), &[]));
    let file = dir.path().join("orders.db");
    let conn = rusqlite::Connection::open(&file).expect("open the boundary file");
    conn.pragma_update(None, "user_version", 9999)
        .expect("pretend a newer build migrated it");
    drop(conn);

    let output = serve();
    assert!(!output.status.success(), "started on a newer file");
    let err = stderr(&output);
    let expected = "schema version 9999 is newer than this build knows";
    assert_eq!(err.matches(expected).count(), 1, "said once: {err}");
    assert!(err.contains("orders.db"), "{err}");
    let conn = rusqlite::Connection::open(&file).expect("reopen");
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 9999, "left as it was");
}

#[test]
fn call_every_kind_of_rpc_then_sigterm() {
    let server = Server::start(&[]);

    let list = orisun().args(["call", "--list"]).output().expect("list");
    assert!(stdout(&list).contains("orisun.EventStore/CatchUpSubscribeToEvents (stream)"));
    assert!(stdout(&list).contains("orisun.Admin/CreateUser"));
    assert!(stdout(&list).contains("orisun.Admin/CreateIndex"));
    assert!(stdout(&list).contains("eventstore.EventStore/CatchUpSubscribeToStream (stream)"));

    let ping = server.call(&["orisun.EventStore/Ping"]);
    assert!(ping.status.success(), "{}", stderr(&ping));
    assert_eq!(stdout(&ping).trim(), "{}");

    let save = server.call(&[
        "--compact",
        "orisun.EventStore/SaveEvents",
        r#"{"boundary":"orders","events":[{"event_id":"0191b5e0-0000-7000-8000-000000000001","event_type":"OrderPlaced","data":"{\"orderId\":\"o1\"}"}]}"#,
    ]);
    assert!(save.status.success(), "{}", stderr(&save));
    assert_eq!(
        stdout(&save).trim(),
        r#"{"logPosition":{"commitPosition":1,"preparePosition":0}}"#
    );

    let read = server.call(&["GetEvents", r#"{"boundary":"orders","count":10}"#]);
    assert!(read.status.success(), "{}", stderr(&read));
    let events: serde_json::Value = serde_json::from_str(&stdout(&read)).expect("JSON");
    assert_eq!(events["events"][0]["eventType"], "OrderPlaced");
    assert_eq!(
        events["events"][0]["eventId"],
        "0191b5e0-0000-7000-8000-000000000001"
    );

    let sub = server.call(&[
        "--limit",
        "1",
        "CatchUpSubscribeToEvents",
        r#"{"boundary":"orders","subscriberName":"cli","afterPosition":{"commitPosition":-1,"preparePosition":-1}}"#,
    ]);
    assert!(sub.status.success(), "{}", stderr(&sub));
    let line = stdout(&sub);
    assert_eq!(line.lines().count(), 1, "one JSON object per line");
    assert!(
        line.contains(r#""position":{"commitPosition":1,"preparePosition":0}"#),
        "{line}"
    );

    let bad = server.call(&["GetEvents", r#"{"boundary":"orders","count":0}"#]);
    assert!(!bad.status.success());
    assert_eq!(
        stderr(&bad).trim(),
        "error: INVALID_ARGUMENT: Count cannot be 0"
    );

    let unauthenticated = server.call(&["--password", "wrong", "Ping"]);
    assert!(!unauthenticated.status.success());
    assert!(
        stderr(&unauthenticated).starts_with("error: UNAUTHENTICATED: "),
        "{}",
        stderr(&unauthenticated)
    );

    let users = server.call(&["orisun.Admin/ListUsers"]);
    assert!(users.status.success(), "{}", stderr(&users));
    assert!(
        stdout(&users).contains(r#""username": "admin""#),
        "{}",
        stdout(&users)
    );

    let typo = server.call(&["GetEvents", r#"{"boundry":"orders"}"#]);
    assert!(!typo.status.success());
    assert!(stderr(&typo).contains("boundry"), "{}", stderr(&typo));

    assert!(server.terminate(), "exit status 0 after SIGTERM");
}

#[test]
fn migrations_print_writes_the_schema_of_the_configured_boundaries() {
    let output = orisun()
        .args(["migrations", "print"])
        .env("ORISUN_BOUNDARIES", r#"[{"name":"orders"}]"#)
        .env("ORISUN_PG_SCHEMAS", "orders:sales")
        .output()
        .expect("migrations print");
    assert!(output.status.success(), "{}", stderr(&output));
    let sql = stdout(&output);
    assert!(sql.starts_with("-- Orisun PostgreSQL schema"));
    assert!(sql.contains("pg_advisory_xact_lock("));
    assert!(sql.contains("-- catalog 0002 coordination"));
    assert!(sql.contains("-- boundary orisun_admin in schema public"));
    assert!(sql.contains("-- boundary orders in schema sales"));
    assert!(sql.contains("CREATE SCHEMA IF NOT EXISTS \"sales\""));
    assert!(sql.trim_end().ends_with("COMMIT;"));

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("orisun.sql");
    let written = orisun()
        .args(["migrations", "print", "--output"])
        .arg(&file)
        .output()
        .expect("migrations print --output");
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(std::fs::read_to_string(&file)
        .expect("written")
        .contains("-- boundary orisun_admin in schema public"));

    let bad = orisun()
        .args(["migrations", "print"])
        .env("ORISUN_PG_SCHEMAS", "orders:no-such")
        .output()
        .expect("migrations print with a bad schema");
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("ORISUN_PG_SCHEMAS"),
        "{}",
        stderr(&bad)
    );
}
