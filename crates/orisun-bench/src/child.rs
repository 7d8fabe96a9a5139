//! A child process the bench runs (our server, UmaDB): a scratch directory of its own, its
//! output in a log file there whose tail explains failures, and a kill at the end.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running child process with its scratch directory and log.
#[derive(Debug)]
pub struct LoggedChild {
    /// What it is, as error messages name it ("the server", "UmaDB").
    name: &'static str,
    child: Child,
    pid: u32,
    log: PathBuf,
    // Holds the scratch directory (data, log) until the process is gone.
    dir: tempfile::TempDir,
}

impl LoggedChild {
    /// Creates a scratch directory named `prefix...`, then spawns the command `build` returns
    /// for it, with stdin closed, stdout and stderr to `<dir>/<log_name>`, killed on drop.
    pub fn spawn(
        name: &'static str,
        prefix: &str,
        log_name: &str,
        build: impl FnOnce(&Path) -> Command,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .with_context(|| format!("creating the scratch directory of {name}"))?;
        let log = dir.path().join(log_name);
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating the log of {name}"))?;
        let mut command = build(dir.path());
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("duplicating the log handle")?)
            .stderr(log_file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child
            .id()
            .with_context(|| format!("{name} exited before its pid could be read"))?;
        Ok(Self {
            name,
            child,
            pid,
            log,
            dir,
        })
    }

    /// Returns its scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Returns the last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Fails, with its log, if it has exited; `during` says when ("died", "exited during
    /// start-up").
    pub fn check_running(&mut self, during: &str) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} {during} ({status}); its log ends with:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Kills it and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
