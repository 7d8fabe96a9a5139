//! Test support for the fault and limits tests: `orisun serve` processes that can be killed,
//! paused and resumed by signal, whose logs are kept for inspection, whose memory and open
//! files are read from `/proc`, and raw gRPC calls with explicit credentials (Basic or a token).

#![allow(dead_code)]

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use orisun_proto as pb;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// The admin user every node bootstraps.
pub const ADMIN: (&str, &str) = ("admin", "changeit");

/// An `orisun serve` process, killed on drop (resumed first if it was paused).
pub struct Node {
    child: Child,
    /// Its process id, for signals and `/proc`.
    pub pid: u32,
    /// `127.0.0.1:<port>` of the gRPC API.
    pub grpc: String,
    /// `127.0.0.1:<port>` of the admin HTTP port.
    pub admin: String,
    /// The node id it logged (the prefix of its lease holders).
    pub node_id: String,
    /// Every line it printed so far.
    logs: Arc<Mutex<Vec<String>>>,
    /// Set once SIGKILLed and reaped: nothing left to signal.
    killed: bool,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts `orisun serve` on loopback with OS-chosen ports, OpenTelemetry off, and `env`
    /// added last (so it can select the backend); waits for its "orisun is listening" line.
    pub fn start(env: &[(&str, String)]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_orisun"));
        command
            .arg("serve")
            .env("ORISUN_HOST", "127.0.0.1")
            .env("ORISUN_GRPC_PORT", "0")
            .env("ORISUN_ADMIN_PORT", "0")
            .env("ORISUN_DATA_DIR", dir.path())
            .env("ORISUN_SQLITE_SYNCHRONOUS", "OFF")
            .env("ORISUN_OTEL_ENABLED", "false")
            .env("ORISUN_LOGGING_LEVEL", "INFO")
            .env_remove("ORISUN_PG_HOST")
            .env_remove("ORISUN_BACKEND")
            .env_remove("ORISUN_NATS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().context("spawn orisun serve")?;
        let pid = child.id();
        let stdout = child.stdout.take().context("stdout")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let kept = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("WARN") || line.contains("ERROR") || line.contains("listening") {
                    eprintln!("[node {pid}] {line}");
                }
                if line.contains("orisun is listening") {
                    let _ = tx.send(line.clone());
                }
                kept.lock().expect("log lock").push(line);
            }
        });
        let mut node = Node {
            child,
            pid,
            grpc: String::new(),
            admin: String::new(),
            node_id: String::new(),
            logs,
            killed: false,
            _dir: dir,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .context("the server logs that it is listening within 60 s")?;
        node.grpc = field(&line, "grpc=")?;
        node.admin = field(&line, "admin=")?;
        node.node_id = field(&line, "node=")?;
        Ok(node)
    }

    /// `http://` URL of its gRPC port.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Sends a signal (`KILL`, `STOP`, `CONT`, ...) with `kill(1)`.
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {} failed", self.pid);
        }
        Ok(())
    }

    /// SIGKILL, and reaps the process.
    pub fn kill9(&mut self) -> Result<()> {
        self.signal("KILL")?;
        self.child.wait()?;
        self.killed = true;
        Ok(())
    }

    /// Whether any line logged so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs
            .lock()
            .expect("log lock")
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Number of lines logged so far (to look only at later ones with [`Node::logged_since`]).
    pub fn log_len(&self) -> usize {
        self.logs.lock().expect("log lock").len()
    }

    /// Whether a line logged after the first `from` lines contains `needle`.
    pub fn logged_since(&self, from: usize, needle: &str) -> bool {
        self.logs
            .lock()
            .expect("log lock")
            .iter()
            .skip(from)
            .any(|l| l.contains(needle))
    }

    /// Resident memory and open file descriptors of the process, now.
    pub fn usage(&self) -> Result<Usage> {
        Usage::of(self.pid)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.killed {
            return;
        }
        // Resume a paused node first, so that nothing is left stopped should the kill fail.
        let _ = self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(line: &str, key: &str) -> Result<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .map(str::to_owned)
        .with_context(|| format!("{key} in {line:?}"))
}

/// What a process holds: resident memory (VmRSS, peak VmHWM) and open file descriptors.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub rss_kib: u64,
    /// Anonymous resident memory (the heap and stacks): RSS without mapped files.
    pub anon_kib: u64,
    pub hwm_kib: u64,
    pub fds: usize,
}

impl Usage {
    /// Reads `/proc/<pid>/status` and counts `/proc/<pid>/fd`.
    pub fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |key: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(key))
                .with_context(|| format!("{key} in /proc/{pid}/status"))?;
            Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
        };
        Ok(Self {
            rss_kib: kib("VmRSS:")?,
            anon_kib: kib("RssAnon:")?,
            hwm_kib: kib("VmHWM:")?,
            fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
        })
    }

    /// Resident memory in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// The `authorization` value of Basic credentials.
pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// How a call authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    Basic(String),
    Token(String),
}

impl Auth {
    /// The admin's Basic credentials.
    pub fn admin() -> Self {
        Auth::Basic(basic(ADMIN.0, ADMIN.1))
    }

    /// Wraps `message` in a request carrying these credentials.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let (key, value) = match self {
            Auth::Basic(v) => ("authorization", v),
            Auth::Token(v) => ("x-auth-token", v),
        };
        request.metadata_mut().insert(
            key,
            MetadataValue::try_from(value.as_str()).expect("credentials are ASCII"),
        );
        request
    }
}

/// A lazily connected channel to `addr` (`host:port`).
pub fn channel(addr: &str) -> Result<Channel> {
    Ok(Channel::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy())
}

/// The EventStore client of a channel, with the 64 MiB message limits of the server.
pub fn events(channel: Channel) -> pb::event_store_client::EventStoreClient<Channel> {
    pb::event_store_client::EventStoreClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(128 * 1024 * 1024)
}

/// The Admin client of a channel.
pub fn admin(channel: Channel) -> pb::admin_client::AdminClient<Channel> {
    pb::admin_client::AdminClient::new(channel)
}

/// Pings `addr` with `auth` and returns the session token the server answers with.
pub async fn token(addr: &str, auth: &Auth) -> Result<String> {
    let response = events(channel(addr)?)
        .ping(auth.request(pb::PingRequest {}))
        .await?;
    Ok(response
        .metadata()
        .get("x-auth-token")
        .context("x-auth-token in the answer")?
        .to_str()?
        .to_owned())
}

/// Pings `addr` with `auth`: the status code of the answer (`Ok` when accepted).
pub async fn ping_code(addr: &str, auth: &Auth) -> Result<tonic::Code> {
    match events(channel(addr)?)
        .ping(auth.request(pb::PingRequest {}))
        .await
    {
        Ok(_) => Ok(tonic::Code::Ok),
        Err(status) => Ok(status.code()),
    }
}

/// `count` new events of type `type_` with unique ids and a `writer`/`n` in their data.
pub fn new_events(type_: &str, writer: usize, first: u64, count: u64) -> Vec<pb::EventToSave> {
    (first..first + count)
        .map(|n| pb::EventToSave {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: type_.to_owned(),
            data: format!(r#"{{"writer":{writer},"n":{n}}}"#),
            metadata: "{}".to_owned(),
        })
        .collect()
}

/// A save request without a condition.
pub fn save(boundary: &str, events: Vec<pb::EventToSave>) -> pb::SaveEventsRequest {
    pb::SaveEventsRequest {
        boundary: boundary.to_owned(),
        query: None,
        events,
    }
}

/// `(commit, prepare)` of a wire position.
pub fn pos(p: Option<&pb::Position>) -> (i64, i64) {
    p.map(|p| (p.commit_position, p.prepare_position))
        .unwrap_or((-1, -1))
}

/// Reads the whole log of `boundary` through `addr`, in position order.
pub async fn read_all(addr: &str, auth: &Auth, boundary: &str) -> Result<Vec<pb::Event>> {
    let mut client = events(channel(addr)?);
    let mut all: Vec<pb::Event> = Vec::new();
    loop {
        // A read is inclusive of its start: start at the last event read and skip it.
        let from = all.last().and_then(|e| e.position);
        let page = client
            .get_events(auth.request(pb::GetEventsRequest {
                query: None,
                from_position: from,
                count: 10_000,
                direction: pb::Direction::Asc as i32,
                boundary: boundary.to_owned(),
            }))
            .await?
            .into_inner()
            .events;
        let before = all.len();
        let last = all.last().map(|e| pos(e.position.as_ref()));
        all.extend(
            page.into_iter()
                .filter(|e| Some(pos(e.position.as_ref())) > last),
        );
        if all.len() == before {
            return Ok(all);
        }
    }
}

/// Polls `condition` every 20 ms until it holds, failing after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let start = Instant::now();
    loop {
        if condition().await? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
