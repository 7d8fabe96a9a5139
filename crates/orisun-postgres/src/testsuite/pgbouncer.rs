//! A PgBouncer in transaction mode in front of the test PostgreSQL server, for tests that run
//! the store through a pooler (Debian's `pgbouncer` package; `scripts/test` installs it).
//!
//! PgBouncer refuses to run as root, so it runs as user `postgres` (through `runuser`) when the
//! tests run as root. It is started through a shell that stops it when its standard input
//! closes, so it never outlives the test process, even one that is killed.

use super::cluster::free_port;
use super::server;
use crate::PostgresConfig;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs PgBouncer.
const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// A running PgBouncer in transaction mode, forwarding every database to the test server;
/// stopped when dropped.
pub struct PgBouncer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    /// Closing it stops PgBouncer (see the module docs).
    stdin: Option<ChildStdin>,
    dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts PgBouncer on a free loopback port and waits until it accepts connections.
    ///
    /// Panics with what to install when PgBouncer is missing.
    pub fn start() -> Self {
        assert!(
            Path::new(PGBOUNCER).exists(),
            "{PGBOUNCER} is missing: install Debian's pgbouncer package (scripts/test does)"
        );
        let target = server();
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let ini = format!(
            "[databases]\n\
             * = host={host} port={pg_port} user={user}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\n\
             max_client_conn = 500\n\
             default_pool_size = 20\n\
             server_reset_query =\n\
             ignore_startup_parameters = extra_float_digits\n\
             pidfile = {dir}/pgbouncer.pid\n\
             logfile = {dir}/pgbouncer.log\n",
            host = target.host,
            pg_port = target.port,
            user = target.user,
            dir = dir.path().display(),
        );
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).expect("write pgbouncer.ini");
        std::fs::write(
            dir.path().join("userlist.txt"),
            format!("\"{}\" \"\"\n", target.user),
        )
        .expect("write userlist.txt");
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if as_root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown of the PgBouncer directory failed");
        }
        // The shell stops PgBouncer once its stdin closes (drop, or this process's death).
        let script = format!(
            "{PGBOUNCER} -q {ini} & pid=$!; echo started; read _; kill $pid; wait $pid",
            ini = dir.path().join("pgbouncer.ini").display()
        );
        let mut command = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", &script]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", &script]);
            c
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pgbouncer");
        let stdin = child.stdin.take();
        let mut started = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut started)
            .expect("read from the PgBouncer shell");
        let bouncer = Self {
            port,
            child,
            stdin,
            dir,
        };
        bouncer.await_ready();
        bouncer
    }

    /// Waits until the port accepts TCP connections (PgBouncer listens once its configuration
    /// is loaded).
    fn await_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PgBouncer did not listen on {} within 20 s; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// PgBouncer's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// A store configuration for database `dbname` through this PgBouncer, as the README
    /// documents for transaction mode: unnamed statements, and the LISTEN connection straight to
    /// PostgreSQL (or, with `listen` false, no LISTEN connection: the fallback poll).
    pub fn store_config(&self, dbname: &str, listen: bool) -> PostgresConfig {
        let direct = server();
        PostgresConfig {
            host: "127.0.0.1".to_owned(),
            port: self.port,
            listen,
            listen_host: Some(direct.host.clone()),
            listen_port: Some(direct.port),
            statement_cache: false,
            application_name: "orisun_bounced".to_owned(),
            ..direct.with_dbname(dbname)
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
