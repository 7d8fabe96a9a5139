//! The server under test as a child process: `<bin> serve` on free loopback ports, with a
//! fresh data directory (embedded) or database (PostgreSQL), awaited through its readiness
//! probe, and killed at the end. Its output goes to a log file whose tail explains failures.

use crate::child::LoggedChild;
use anyhow::{bail, Context};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// How long start-up may take (PostgreSQL migrations, bootstrap admin).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How the server under test stores events.
#[derive(Debug, Clone)]
pub enum Storage {
    /// The embedded backend in a fresh directory.
    Embedded,
    /// PostgreSQL: a database the bench created.
    Postgres {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// User.
        user: String,
        /// Password, if any.
        password: Option<String>,
        /// The database.
        dbname: String,
    },
}

/// A running server child process.
#[derive(Debug)]
pub struct ServerProcess {
    process: LoggedChild,
    grpc: SocketAddr,
}

/// Returns a port that is free on 127.0.0.1 right now (bound to port 0, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Returns the environment of the child: ports, storage and the boundaries to create.
pub fn environment(
    grpc_port: u16,
    admin_port: u16,
    data_dir: &Path,
    storage: &Storage,
    boundaries: &[String],
) -> Vec<(String, String)> {
    let list: Vec<serde_json::Value> = boundaries
        .iter()
        .map(|b| serde_json::json!({"name": b, "description": "orisun bench"}))
        .collect();
    let mut env = vec![
        ("ORISUN_HOST", "127.0.0.1".to_owned()),
        ("ORISUN_GRPC_PORT", grpc_port.to_string()),
        ("ORISUN_ADMIN_PORT", admin_port.to_string()),
        (
            "ORISUN_BOUNDARIES",
            serde_json::Value::Array(list).to_string(),
        ),
        ("ORISUN_LOGGING_LEVEL", "WARN".to_owned()),
    ];
    match storage {
        Storage::Embedded => {
            env.push(("ORISUN_BACKEND", "sqlite".to_owned()));
            env.push(("ORISUN_DATA_DIR", data_dir.display().to_string()));
        }
        Storage::Postgres {
            host,
            port,
            user,
            password,
            dbname,
        } => {
            env.push(("ORISUN_BACKEND", "postgres".to_owned()));
            env.push(("ORISUN_PG_HOST", host.clone()));
            env.push(("ORISUN_PG_PORT", port.to_string()));
            env.push(("ORISUN_PG_USER", user.clone()));
            env.push(("ORISUN_PG_NAME", dbname.clone()));
            // 16 connections at most (the default is 75): one writer per boundary and a few
            // readers are all the scenarios use, and PostgreSQL's default max_connections of
            // 100 must leave 64 for the raw baseline's 64 one-row connections.
            env.push(("ORISUN_PG_WRITE_MAX_OPEN_CONNS", "4".to_owned()));
            env.push(("ORISUN_PG_READ_MAX_OPEN_CONNS", "12".to_owned()));
            if let Some(p) = password {
                env.push(("ORISUN_PG_PASSWORD", p.clone()));
            }
        }
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl ServerProcess {
    /// Starts `<bin> serve` and waits until its `/ready` probe answers 200; metrics and
    /// tracing are off (see [`crate::observed`]).
    pub async fn start(
        bin: &Path,
        storage: &Storage,
        boundaries: &[String],
    ) -> anyhow::Result<Self> {
        Self::start_with(bin, storage, boundaries, &crate::observed::off()).await
    }

    /// Starts `<bin> serve` with `extra` environment variables (they win over the bench's).
    pub async fn start_with(
        bin: &Path,
        storage: &Storage,
        boundaries: &[String],
        extra: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let grpc_port = free_port()?;
        let admin_port = free_port()?;
        let process = LoggedChild::spawn("the server", "orisun-bench-", "server.log", |dir| {
            let mut command = Command::new(bin);
            command
                .arg("serve")
                .envs(environment(
                    grpc_port,
                    admin_port,
                    &dir.join("data"),
                    storage,
                    boundaries,
                ))
                // Our own configuration must not leak in from the bench's environment.
                .env_remove("ORISUN_NATS_URL")
                .env_remove("ORISUN_PG_SCHEMAS")
                .envs(extra.iter().cloned());
            command
        })
        .with_context(|| format!("{} serve", bin.display()))?;
        let mut server = Self {
            process,
            grpc: SocketAddr::from(([127, 0, 0, 1], grpc_port)),
        };
        server.wait_ready(admin_port).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, admin_port: u16) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            self.process.check_running("exited during start-up")?;
            if http_status(admin_port, "/ready").await == Some(200) {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "the server was not ready after {}s; its log ends with:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Returns the gRPC endpoint (`http://127.0.0.1:<port>`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Returns the child's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Returns the last lines of the server's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Checks the server is still running; explains with its log if it is not.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.process.check_running("died")
    }

    /// Kills the server and waits for it to exit.
    pub async fn stop(self) {
        self.process.stop().await;
    }
}

/// Sends `GET path` over HTTP/1.0 to the admin port and returns the status code.
pub async fn http_status(port: u16, path: &str) -> Option<u16> {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).await.ok()?;
        parse_status_line(std::str::from_utf8(head.get(..n)?).ok()?)
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .ok()
        .flatten()
}

/// Returns the status code of an HTTP response's first line (`HTTP/1.1 200 OK`).
pub fn parse_status_line(text: &str) -> Option<u16> {
    let mut parts = text.lines().next()?.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status_line("HTTP/1.1 200 OK\r\ncontent-type: x"),
            Some(200)
        );
        assert_eq!(
            parse_status_line("HTTP/1.0 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(parse_status_line("SSH-2.0"), None);
        assert_eq!(parse_status_line(""), None);
    }

    #[test]
    fn child_environment() {
        let storage = Storage::Postgres {
            host: "127.0.0.1".to_owned(),
            port: 5432,
            user: "postgres".to_owned(),
            password: None,
            dbname: "orisun_bench_x".to_owned(),
        };
        let env = environment(1, 2, Path::new("/d"), &storage, &["bench_a".to_owned()]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("ORISUN_GRPC_PORT"), Some("1"));
        assert_eq!(get("ORISUN_ADMIN_PORT"), Some("2"));
        assert_eq!(get("ORISUN_PG_NAME"), Some("orisun_bench_x"));
        assert_eq!(get("ORISUN_PG_PASSWORD"), None);
        assert_eq!(get("ORISUN_PG_WRITE_MAX_OPEN_CONNS"), Some("4"));
        assert_eq!(get("ORISUN_PG_READ_MAX_OPEN_CONNS"), Some("12"));
        assert_eq!(get("ORISUN_DATA_DIR"), None);
        let list: serde_json::Value =
            serde_json::from_str(get("ORISUN_BOUNDARIES").expect("set")).expect("json");
        assert_eq!(list[0]["name"], "bench_a");
        let env = environment(1, 2, Path::new("/d"), &Storage::Embedded, &[]);
        assert!(env.iter().any(|(k, v)| k == "ORISUN_DATA_DIR" && v == "/d"));
    }

    #[test]
    fn free_ports_differ_from_zero() {
        assert!(free_port().is_ok_and(|p| p > 0));
    }
}
