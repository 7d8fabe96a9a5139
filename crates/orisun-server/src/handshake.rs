//! Owns the gRPC handshake deadline: a connection that has not sent the 24-byte HTTP/2 client
//! preface within `ORISUN_GRPC_HANDSHAKE_TIMEOUT` is closed (slowloris).
//!
//! hyper's HTTP/2 server waits for a connection's preface without any deadline, and its
//! keepalive pings (`ORISUN_GRPC_KEEP_ALIVE_TIME`) only begin once the preface has arrived, so a
//! client that connects and then sends nothing, or half a preface, would hold a socket and a
//! task for ever. [`Deadline`] wraps each accepted TCP stream: until 24 bytes have been read it
//! races every read against the deadline, after that it only forwards. A connection that
//! stalls later (half a frame, no ping acknowledgement) is closed by the keepalive instead.
//! With TLS the bytes counted are the TLS handshake's, so the TLS handshake itself is bounded by
//! tonic's TLS handshake timeout, set to the same value (see `server.rs`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Length of the HTTP/2 client connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const PREFACE_LEN: usize = 24;

/// An accepted connection that fails its reads once `timeout` has passed without its first
/// 24 bytes.
pub struct Deadline {
    inner: TcpStream,
    /// Armed until the preface's length has been read; `None` afterwards, or with no timeout.
    deadline: Option<Pin<Box<Sleep>>>,
    read: usize,
}

impl Deadline {
    /// Wraps `inner`; a zero `timeout` means no deadline.
    pub fn new(inner: TcpStream, timeout: Duration) -> Self {
        let deadline = (!timeout.is_zero()).then(|| Box::pin(tokio::time::sleep(timeout)));
        Self {
            inner,
            deadline,
            read: 0,
        }
    }
}

impl AsyncRead for Deadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = this.deadline.as_mut() {
            // Polled on every read attempt, so the timer's wake-up reaches the connection's
            // task while it waits for bytes that never come.
            if deadline.as_mut().poll(cx).is_ready() {
                this.deadline = None;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 preface within ORISUN_GRPC_HANDSHAKE_TIMEOUT",
                )));
            }
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.read += buf.filled().len() - before;
            if this.read >= PREFACE_LEN {
                this.deadline = None;
            }
        }
        polled
    }
}

impl AsyncWrite for Deadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Connected for Deadline {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    async fn pair(timeout: Duration) -> (Deadline, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (Deadline::new(server, timeout), client)
    }

    #[tokio::test]
    async fn a_half_preface_times_out() {
        let (mut server, mut client) = pair(Duration::from_millis(100)).await;
        client.write_all(b"PRI * HTTP").await.expect("write");
        let mut buf = [0u8; 64];
        let n = server.read(&mut buf).await.expect("first bytes");
        assert_eq!(n, 10);
        let err = server.read(&mut buf).await.expect_err("deadline");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_whole_preface_disarms_the_deadline() {
        let (mut server, mut client) = pair(Duration::from_millis(100)).await;
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 24];
        server.read_exact(&mut buf).await.expect("preface");
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.write_all(b"later").await.expect("write");
        let mut later = [0u8; 5];
        server
            .read_exact(&mut later)
            .await
            .expect("no deadline any more");
        assert_eq!(&later, b"later");
    }
}
