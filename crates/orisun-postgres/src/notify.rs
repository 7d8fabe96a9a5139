//! Wake-ups from other nodes: a LISTEN task on a dedicated connection, and a fallback poll of
//! the heads of watched boundaries, so that neither a lost NOTIFY nor a dropped listener can
//! stall a subscriber for longer than [`orisun_store::POLL_FALLBACK`].

use crate::db::Exec;
use crate::names::quote;
use crate::read;
use crate::tls::Connector;
use crate::writer::Shared;
use futures::future::{join_all, poll_fn};
use orisun_core::Position;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Notification};

/// Longest wait between two reconnection attempts of the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Parses a NOTIFY payload written by `append::insert`: `commit,prepare`.
fn parse_payload(payload: &str) -> Option<Position> {
    let (commit, prepare) = payload.split_once(',')?;
    Some(Position::new(commit.parse().ok()?, prepare.parse().ok()?))
}

/// Drives the listener's connection on its own task, passing its notifications on.
fn drive<S, T>(
    mut connection: Connection<S, T>,
    notifications: mpsc::UnboundedSender<Notification>,
) -> JoinHandle<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notifications.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "listener connection failed");
                    return;
                }
            }
        }
    })
}

/// Reads the heads of `boundaries` (pipelined) and advances their watches.
pub(crate) async fn refresh(exec: Exec<'_>, boundaries: &[Arc<Shared>]) {
    let heads = join_all(boundaries.iter().map(|b| read::head(exec, &b.sql))).await;
    for (boundary, head) in boundaries.iter().zip(heads) {
        match head {
            Ok(Some(head)) => boundary.advance(head),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(boundary = %boundary.name, error = %e, "head poll failed");
            }
        }
    }
}

/// The LISTEN task: keeps one direct connection listening on the channel of every watched
/// boundary (sent through `commands`), reconnecting with backoff when it drops. After each
/// (re)connection and each new LISTEN it re-reads the heads, since NOTIFYs sent while it was
/// not listening are lost. Ends when `commands` closes.
pub(crate) async fn listen(
    config: tokio_postgres::Config,
    connector: Connector,
    mut commands: mpsc::UnboundedReceiver<Arc<Shared>>,
) {
    let mut channels: HashMap<String, Arc<Shared>> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        let (notifications, mut received) = mpsc::unbounded_channel();
        let connected = match &connector {
            Connector::Plain => config
                .connect(NoTls)
                .await
                .map(|(client, connection)| (client, drive(connection, notifications))),
            Connector::Rustls(tls) => config
                .connect(tls.clone())
                .await
                .map(|(client, connection)| (client, drive(connection, notifications))),
        };
        let (client, driver) = match connected {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "listener cannot connect; retrying");
                if !wait(&mut commands, &mut channels, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let ready = async {
            for channel in channels.keys() {
                client
                    .batch_execute(&format!("LISTEN {}", quote(channel)))
                    .await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }
        .await;
        if let Err(e) = ready {
            tracing::warn!(error = %e, "listener cannot LISTEN; reconnecting");
            driver.abort();
            if !wait(&mut commands, &mut channels, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        let all: Vec<Arc<Shared>> = channels.values().cloned().collect();
        refresh(Exec::unnamed(&client), &all).await;
        backoff = Duration::from_millis(100);
        tracing::debug!(channels = channels.len(), "listener connected");
        let closed = serve(&client, &mut commands, &mut received, &mut channels).await;
        driver.abort();
        if closed {
            return;
        }
        tracing::warn!("listener connection lost; reconnecting");
        if !wait(&mut commands, &mut channels, backoff).await {
            return;
        }
    }
}

/// Serves one connection; returns true when the store is gone, false when the connection is.
async fn serve(
    client: &Client,
    commands: &mut mpsc::UnboundedReceiver<Arc<Shared>>,
    received: &mut mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    channels: &mut HashMap<String, Arc<Shared>>,
) -> bool {
    loop {
        tokio::select! {
            notification = received.recv() => {
                let Some(n) = notification else { return false };
                if let Some(boundary) = channels.get(n.channel()) {
                    match parse_payload(n.payload()) {
                        Some(head) => boundary.advance(head),
                        None => tracing::debug!(payload = n.payload(), "unexpected NOTIFY payload"),
                    }
                }
            }
            command = commands.recv() => {
                let Some(boundary) = command else { return true };
                let channel = boundary.channel.clone();
                if channels.insert(channel.clone(), boundary.clone()).is_some() {
                    continue;
                }
                if let Err(e) = client.batch_execute(&format!("LISTEN {}", quote(&channel))).await {
                    tracing::warn!(error = %e, "LISTEN failed");
                    return false;
                }
                refresh(Exec::unnamed(client), &[boundary]).await;
            }
        }
    }
}

/// Sleeps while still accepting new channels; returns false when the store is gone.
async fn wait(
    commands: &mut mpsc::UnboundedReceiver<Arc<Shared>>,
    channels: &mut HashMap<String, Arc<Shared>>,
    duration: Duration,
) -> bool {
    let deadline = tokio::time::sleep(duration);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return true,
            command = commands.recv() => match command {
                Some(boundary) => {
                    channels.insert(boundary.channel.clone(), boundary);
                }
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_payloads() {
        assert_eq!(parse_payload("4,3"), Some(Position::new(4, 3)));
        assert_eq!(parse_payload("4"), None);
        assert_eq!(parse_payload("x,1"), None);
    }
}
