//! Test support: runs the `orisun` binary as a server on ports chosen by the OS and finds them
//! in its "orisun is listening" log line (printed once the server is ready).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The `orisun` binary under test.
pub fn orisun() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orisun"))
}

/// A server process, killed on drop unless stopped with [`Server::terminate`].
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:<port>` of the gRPC API.
    pub grpc: String,
    /// `127.0.0.1:<port>` of the admin HTTP endpoint.
    pub admin: String,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `orisun serve` on the SQLite backend in a temporary directory, with `env` added.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Self::start_in(dir.path(), env);
        server._dir = Some(dir);
        server
    }

    /// Starts `orisun serve` on the SQLite backend with its data in `data_dir`, `env` added.
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = orisun();
        command
            .arg("serve")
            .env("ORISUN_HOST", "127.0.0.1")
            .env("ORISUN_GRPC_PORT", "0")
            .env("ORISUN_ADMIN_PORT", "0")
            .env("ORISUN_DATA_DIR", data_dir)
            .env("ORISUN_SQLITE_SYNCHRONOUS", "OFF")
            .env(
                "ORISUN_BOUNDARIES",
                r#"[{"name":"orders","description":"orders"}]"#,
            )
            .env("ORISUN_LOGGING_LEVEL", "INFO")
            .env_remove("ORISUN_PG_HOST")
            .env_remove("ORISUN_BACKEND")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn orisun serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if line.contains("orisun is listening") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server logs that it is listening within 60 s");
        Self {
            child: Some(child),
            grpc: field(&line, "grpc="),
            admin: field(&line, "admin="),
            _dir: None,
        }
    }

    /// The address for `orisun call --addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Runs `orisun call --addr <this server> <args>`.
    pub fn call(&self, args: &[&str]) -> Output {
        orisun()
            .arg("call")
            .arg("--addr")
            .arg(self.url())
            .args(args)
            .output()
            .expect("run orisun call")
    }

    /// Sends SIGTERM and returns whether the process exited successfully.
    pub fn terminate(mut self) -> bool {
        let mut child = self.child.take().expect("child");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        child.wait().expect("wait").success()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("{key} in {line:?}"))
        .to_owned()
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
