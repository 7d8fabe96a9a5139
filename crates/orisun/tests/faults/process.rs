//! An `orisun serve` child process that a fault test can SIGKILL: at a moment of the test's
//! choosing, or from the thread that reads its log, the instant a given line appears (so the
//! kill lands inside the operation that line announces).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Where the server keeps its events.
#[derive(Debug, Clone)]
pub enum Storage {
    /// The embedded backend in this directory, with the default (durable) `synchronous`.
    Embedded(std::path::PathBuf),
    /// PostgreSQL at `127.0.0.1:port`, database `dbname`.
    Postgres { port: u16, dbname: String },
}

/// A running `orisun serve`, killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Arc<Mutex<Option<Child>>>,
    /// `http://127.0.0.1:<port>` of the gRPC API.
    pub url: String,
    /// Set by the log reader when it killed the process on seeing the trigger line.
    killed_on_line: Arc<AtomicBool>,
    trigger: Arc<Mutex<Option<Trigger>>>,
}

/// A line that kills the server, and the flag set just before (so that the clients know their
/// failures are expected).
struct Trigger {
    text: String,
    killing: Arc<AtomicBool>,
}

/// Kills a server from another thread.
#[derive(Clone)]
pub struct Killer(Arc<Mutex<Option<Child>>>);

impl Killer {
    /// Sends SIGKILL, unless the process was already reaped.
    pub fn kill9(&self) {
        if let Some(child) = self.0.lock().expect("child lock").as_mut() {
            let _ = child.kill();
        }
    }
}

impl ServerProcess {
    /// Starts `orisun serve` on `storage` with boundary `orders`, `env` added, and waits for
    /// its "orisun is listening" line (printed once it is ready).
    pub fn start(storage: &Storage, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orisun"));
        command
            .arg("serve")
            .env("ORISUN_HOST", "127.0.0.1")
            .env("ORISUN_GRPC_PORT", "0")
            .env("ORISUN_ADMIN_PORT", "0")
            .env(
                "ORISUN_BOUNDARIES",
                r#"[{"name":"orders","description":"orders"}]"#,
            )
            .env("ORISUN_LOGGING_LEVEL", "INFO")
            .env_remove("ORISUN_NATS_URL")
            .env("ORISUN_OTEL_ENABLED", "false")
            .env_remove("ORISUN_SQLITE_SYNCHRONOUS")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match storage {
            Storage::Embedded(dir) => {
                command
                    .env("ORISUN_BACKEND", "sqlite")
                    .env("ORISUN_DATA_DIR", dir)
                    .env_remove("ORISUN_PG_HOST");
            }
            Storage::Postgres { port, dbname } => {
                command
                    .env("ORISUN_BACKEND", "postgres")
                    .env("ORISUN_PG_HOST", "127.0.0.1")
                    .env("ORISUN_PG_PORT", port.to_string())
                    .env("ORISUN_PG_USER", "postgres")
                    .env("ORISUN_PG_NAME", dbname)
                    // Small pools: PostgreSQL's connections are shared with other tests.
                    .env("ORISUN_PG_WRITE_MAX_OPEN_CONNS", "4")
                    .env("ORISUN_PG_READ_MAX_OPEN_CONNS", "4");
            }
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn orisun serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let child = Arc::new(Mutex::new(Some(child)));
        let trigger: Arc<Mutex<Option<Trigger>>> = Arc::new(Mutex::new(None));
        let killed_on_line = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        {
            let child = Arc::clone(&child);
            let trigger = Arc::clone(&trigger);
            let killed_on_line = Arc::clone(&killed_on_line);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let fired = {
                        let mut trigger = trigger.lock().expect("trigger lock");
                        if trigger.as_ref().is_some_and(|t| line.contains(&t.text)) {
                            trigger.take()
                        } else {
                            None
                        }
                    };
                    if let Some(fired) = fired {
                        // Killed from this thread, before anything else, to land inside
                        // the operation the line announces.
                        fired.killing.store(true, Ordering::SeqCst);
                        if let Some(child) = child.lock().expect("child lock").as_mut() {
                            let _ = child.kill();
                            killed_on_line.store(true, Ordering::SeqCst);
                        }
                        eprintln!("[server] {line}  <- killed here");
                        continue;
                    }
                    if !line.contains("group committed") {
                        eprintln!("[server] {line}");
                    }
                    if line.contains("orisun is listening") {
                        let _ = ready_tx.send(line);
                    }
                }
            });
        }
        let line = match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(e) => {
                if let Some(mut c) = child.lock().expect("child lock").take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!("the server did not log that it is listening within 60 s: {e}");
            }
        };
        let grpc = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("grpc="))
            .unwrap_or_else(|| panic!("grpc= in {line:?}"))
            .to_owned();
        Self {
            child,
            url: format!("http://{grpc}"),
            killed_on_line,
            trigger,
        }
    }

    /// Arms the log reader: the first line containing `text` from now on sets `killing` and
    /// kills the server.
    pub fn kill_on_line(&self, text: &str, killing: Arc<AtomicBool>) {
        *self.trigger.lock().expect("trigger lock") = Some(Trigger {
            text: text.to_owned(),
            killing,
        });
    }

    /// A handle that kills this server from another thread.
    pub fn killer(&self) -> Killer {
        Killer(Arc::clone(&self.child))
    }

    /// True once the log reader killed the server on its trigger line.
    pub fn killed_on_line(&self) -> bool {
        self.killed_on_line.load(Ordering::SeqCst)
    }

    /// Sends SIGKILL (no destructor, no flush, no clean close) and reaps the process.
    pub fn kill9(&self) {
        if let Some(child) = self.child.lock().expect("child lock").as_mut() {
            let _ = child.kill();
        }
    }

    /// True if the process has exited by itself (or was killed) by now.
    pub fn reap_if_exited(&self) -> bool {
        match self.child.lock().expect("child lock").as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_some(),
            None => true,
        }
    }

    /// Waits for the process to be gone (after a kill) and reports whether it had been
    /// killed rather than exiting.
    pub fn reap(&self) -> bool {
        let taken = self.child.lock().expect("child lock").take();
        match taken {
            Some(mut child) => {
                let status = child.wait().expect("wait for orisun");
                !status.success()
            }
            None => true,
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The path of boundary `orders` of an embedded data directory.
pub fn orders_file(dir: &Path) -> std::path::PathBuf {
    dir.join("orders.db")
}
