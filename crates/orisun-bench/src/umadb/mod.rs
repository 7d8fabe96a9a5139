//! UmaDB beside ours (`--baseline umadb`): installs UmaDB 0.7.8 from its PyPI wheel (which
//! carries the server as the `umadb` console script) into a virtualenv, starts it on
//! `127.0.0.1:0` in a scratch directory, finds the port the system gave it in `/proc` (UmaDB does
//! not print it), awaits it through a `Head` call, and kills it at the end.
//! The scenarios that drive it over its gRPC API (`umadb.v1.DCB`) are in `scenarios`, the events
//! they write (the same data, type and tags as ours) in `events`.

mod events;
mod scenarios;

pub use events::{event, tags_of};
pub use scenarios::UmaBench;

use crate::child::LoggedChild;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// The generated client of UmaDB's gRPC API (our own subset of its `.proto`).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("umadb.v1");
}

/// The UmaDB release compared with.
pub const VERSION: &str = "0.7.8";

/// How long UmaDB may take to answer its first `Head` (it starts in milliseconds).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Returns the default virtualenv: `$XDG_CACHE_HOME/orisun-bench/umadb-<version>`, else
/// `$HOME/.cache/...`, else a directory under the system's temporary directory.
pub fn default_venv() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("orisun-bench").join(format!("umadb-{VERSION}"))
}

/// Returns the `umadb` executable of `venv`, installing UmaDB there first when it is missing or
/// another version (`python3 -m venv`, then `pip install umadb==<VERSION>`).
pub async fn install(venv: &Path) -> anyhow::Result<PathBuf> {
    let bin = venv.join("bin").join("umadb");
    if version_of(&bin).await.as_deref() == Some(VERSION) {
        return Ok(bin);
    }
    eprintln!(
        "installing UmaDB {VERSION} from PyPI into {} (pip install umadb=={VERSION})",
        venv.display()
    );
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    run(Command::new("python3").arg("-m").arg("venv").arg(venv))
        .await
        .with_context(|| {
            format!(
                "creating the virtualenv {} (python3 -m venv)",
                venv.display()
            )
        })?;
    run(Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("umadb=={VERSION}")))
    .await
    .with_context(|| {
        format!(
            "installing UmaDB {VERSION} from PyPI into {} failed: PyPI must be reachable (or pass \
             an installed server with --umadb-bin)",
            venv.display()
        )
    })?;
    match version_of(&bin).await {
        Some(v) if v == VERSION => Ok(bin),
        other => bail!(
            "{} reports version {other:?} after installing UmaDB {VERSION}",
            bin.display()
        ),
    }
}

/// Runs a command to completion; fails with its output when it fails.
async fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .context("could not start the command")?;
    if !output.status.success() {
        bail!(
            "{}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Returns the version `bin --version` prints (`UmaDB gRPC server 0.7.8` or the like: its last
/// word), or `None` when it does not run.
async fn version_of(bin: &Path) -> Option<String> {
    if !bin.exists() {
        return None;
    }
    let output = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let word = text.split_whitespace().last()?;
    Some(word.trim_start_matches('v').to_owned())
}

/// Returns the TCP port process `pid` listens on, from its socket descriptors and the kernel's
/// table of TCP sockets (`/proc/<pid>/net/tcp`), or `None` before it listens.
fn listening_port(pid: u32) -> Option<u16> {
    let sockets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|entry| {
            let target = std::fs::read_link(entry.ok()?.path()).ok()?;
            let text = target.to_str()?;
            Some(text.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    listening_port_in(&table, &sockets)
}

/// Returns the local port of the first socket of `table` (the format of `/proc/net/tcp`) that
/// is listening (state `0A`) and whose inode is one of `inodes`.
fn listening_port_in(table: &str, inodes: &[String]) -> Option<u16> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
        if *state != "0A" || !inodes.iter().any(|i| i == inode) {
            return None;
        }
        u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
    })
}

/// A running UmaDB server child process.
#[derive(Debug)]
pub struct UmaDbServer {
    process: LoggedChild,
    endpoint: String,
}

impl UmaDbServer {
    /// Starts `bin --listen 127.0.0.1:0 --db-path <scratch>/uma.db` with its defaults otherwise
    /// (durable appends, file I/O) and waits until it listens and answers `Head`.
    pub async fn start(bin: &Path) -> anyhow::Result<Self> {
        let process = LoggedChild::spawn("UmaDB", "orisun-bench-umadb-", "umadb.log", |dir| {
            let mut command = Command::new(bin);
            command
                .arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--db-path")
                .arg(dir.join("uma.db"))
                // Its settings come from these flags only, not from the bench's environment.
                .env_remove("UMADB_API_KEY")
                .env_remove("UMADB_TLS_CERT")
                .env_remove("UMADB_TLS_KEY")
                .env_remove("UMADB_PIPELINED_WRITER")
                .env_remove("UMADB_READ_METHOD");
            command
        })
        .with_context(|| bin.display().to_string())?;
        let mut server = Self {
            process,
            endpoint: String::new(),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            self.process.check_running("exited during start-up")?;
            if self.endpoint.is_empty() {
                if let Some(port) = listening_port(self.process.pid()) {
                    self.endpoint = format!("http://127.0.0.1:{port}");
                }
            }
            if !self.endpoint.is_empty() && scenarios::head(&self.endpoint).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "UmaDB did not answer Head after {}s; its log ends with:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns its gRPC endpoint (`http://127.0.0.1:<port>`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Returns its process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Returns the last lines of its log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Checks it is still running; explains with its log if it is not.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.process.check_running("died")
    }

    /// Kills it and waits for it to exit.
    pub async fn stop(self) {
        self.process.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_port_of_its_sockets() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:81D5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0
   1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0 100 0 0 10 0
   2: 0100007F:9C40 0100007F:81D5 01 00000000:00000000 00:00000000 00000000     0        0 4243 1 0 100 0 0 10 0";
        assert_eq!(listening_port_in(table, &["4242".to_owned()]), Some(0x81D5));
        // An established connection is not a listener, and others' sockets are not ours.
        assert_eq!(listening_port_in(table, &["4243".to_owned()]), None);
        assert_eq!(listening_port_in(table, &[]), None);
    }

    #[test]
    fn the_default_virtualenv_is_versioned() {
        assert!(default_venv().ends_with(format!("orisun-bench/umadb-{VERSION}")));
    }
}
