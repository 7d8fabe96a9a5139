//! A TCP proxy between `orisun serve` and PostgreSQL that the test controls: it can drop every
//! connection it carries at once, and refuse new ones (accepted and closed at once, as a
//! database that is down would) until told to accept again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxy; stops accepting when dropped.
pub struct Proxy {
    /// Where `orisun` connects.
    pub addr: SocketAddr,
    /// Bumped to drop the connections open now.
    generation: watch::Sender<u64>,
    /// While set, new connections are closed as soon as they are accepted.
    refusing: Arc<AtomicBool>,
    /// Connections carried so far.
    carried: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

impl Proxy {
    /// Starts a proxy to `target` on a loopback port chosen by the OS.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (generation, _) = watch::channel(0u64);
        let refusing = Arc::new(AtomicBool::new(false));
        let carried = Arc::new(AtomicUsize::new(0));
        let accept = {
            let generation = generation.clone();
            let refusing = Arc::clone(&refusing);
            let carried = Arc::clone(&carried);
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if refusing.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        continue;
                    };
                    carried.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(pipe(client, server, generation.subscribe()));
                }
            })
        };
        Self {
            addr,
            generation,
            refusing,
            carried,
            accept,
        }
    }

    /// Drops every connection open now (both sides see a reset).
    pub fn drop_all(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Refuses (`true`) or carries (`false`) new connections.
    pub fn refuse(&self, refuse: bool) {
        self.refusing.store(refuse, Ordering::SeqCst);
    }

    /// Connections carried so far.
    pub fn carried(&self) -> usize {
        self.carried.load(Ordering::SeqCst)
    }
}

/// Copies bytes both ways until either side closes or the proxy drops the connection.
async fn pipe(mut client: TcpStream, mut server: TcpStream, mut generation: watch::Receiver<u64>) {
    generation.borrow_and_update();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = generation.changed() => {}
    }
    // Dropping both sockets closes them: each side sees its connection end mid-conversation.
}
