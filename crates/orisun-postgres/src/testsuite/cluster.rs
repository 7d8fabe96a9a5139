//! A private PostgreSQL cluster for tests that must reconfigure, stop or restart their server
//! (TLS, outages): `initdb` into a temporary directory and `pg_ctl` as user `postgres` (through
//! `runuser`, since the tests run as root and PostgreSQL refuses to), on a free loopback port.
//! The shared server of the other tests is never touched. Stopped (immediately) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Returns the path of a PostgreSQL server program (`initdb`, `pg_ctl`, `psql`) of the newest
/// installed major version.
pub fn pg_bin(tool: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed");
    let mut found: Vec<PathBuf> = versions
        .filter_map(Result::ok)
        .map(|v| v.path().join("bin").join(tool))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("{tool} not found under /usr/lib/postgresql"))
}

/// A command running `program` as user `postgres`.
fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

/// A port the OS had free a moment ago (PostgreSQL and PgBouncer cannot be given port 0).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A PostgreSQL cluster of the test's own. Created by [`Cluster::init`] (not yet running): the
/// test may add configuration and files to [`Cluster::data_dir`] before [`Cluster::start`].
pub struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// Runs `initdb` (trust authentication, superuser `postgres`) and configures the cluster
    /// to listen on a free loopback port, its socket in the temporary directory, without fsync
    /// (these tests restart the server, they do not power it off).
    pub fn init() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = Self {
            dir,
            port: free_port(),
        };
        cluster.chown();
        let out = as_postgres(&pg_bin("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(cluster.data_dir())
            .stdout(Stdio::null())
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.append_conf(&format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = off\n",
            cluster.port,
            cluster.dir.path().display()
        ));
        cluster
    }

    /// Initialises and starts a cluster with the default configuration.
    pub fn start_default() -> Self {
        let cluster = Self::init();
        cluster.start();
        cluster
    }

    /// The cluster's data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The port the server listens on, at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Appends `text` to `postgresql.conf` (later settings win).
    pub fn append_conf(&self, text: &str) {
        let path = self.data_dir().join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&path).expect("read postgresql.conf");
        conf.push('\n');
        conf.push_str(text);
        std::fs::write(&path, conf).expect("write postgresql.conf");
    }

    /// Replaces `pg_hba.conf`.
    pub fn write_hba(&self, text: &str) {
        self.write_file("pg_hba.conf", text);
    }

    /// Writes a file into the data directory (owned by `postgres` once the server starts).
    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.data_dir().join(name);
        std::fs::write(&path, text).expect("write into the data directory");
        path
    }

    /// Writes a file next to the data directory (for the test's own use: certificates, logs).
    pub fn side_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write beside the data directory");
        path
    }

    fn chown(&self) {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(self.dir.path())
            .status()
            .expect("chown");
        assert!(ok.success(), "chown the cluster's directory");
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        as_postgres(&pg_bin("pg_ctl"))
            .args(["-w", "-t", "60", "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("-D")
            .arg(self.data_dir())
            .args(args)
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl")
    }

    fn pg_ctl_ok(&self, args: &[&str]) {
        let out = self.pg_ctl(args);
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        self.chown();
        self.pg_ctl_ok(&["start"]);
    }

    /// Stops the server with `mode` (`smart`, `fast`, `immediate`) and waits until it is down.
    pub fn stop(&self, mode: &str) {
        self.pg_ctl_ok(&["-m", mode, "stop"]);
    }

    /// Restarts the server with shutdown `mode` and waits until it accepts connections again.
    pub fn restart(&self, mode: &str) {
        self.pg_ctl_ok(&["-m", mode, "restart"]);
    }

    /// Runs each statement through `psql` as `postgres` on database `postgres`.
    pub fn psql(&self, statements: &[&str]) {
        let mut command = as_postgres(&pg_bin("psql"));
        command
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1"]);
        for statement in statements {
            command.args(["-c", statement]);
        }
        let out = command.stdout(Stdio::null()).output().expect("psql");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&pg_bin("pg_ctl"))
            .args(["-m", "immediate", "-D"])
            .arg(self.data_dir())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
