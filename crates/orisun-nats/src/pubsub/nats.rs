//! Pub/sub over core NATS: a subject `s` travels as `ORISUN_PUBSUB.s`, a consumer name is a
//! NATS queue group, and the message id rides in the `Orisun-Msg-Id` header.
//!
//! Core NATS rather than JetStream, deliberately: it gives exactly the live, at-most-once
//! semantics of Go Orisun's pub/sub and of [`super::LocalPubSub`], spreads a group's messages
//! over its members at random (so competing members on different nodes share the load), and
//! keeps no server-side state that could outlive its subscribers. A subscription is in effect
//! on the server when `subscribe` returns. Subscriptions survive a NATS
//! reconnect (the client re-subscribes); messages published while the connection is down are
//! lost for the groups that were cut off. A member whose client-side buffer (64 Ki messages)
//! overflows loses messages (NATS "slow consumer").

use super::{
    message_id_or_new, validate_consumer_name, validate_subject, Message, MessageStream, PubSub,
    PubSubError,
};
use async_nats::HeaderMap;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;
use tracing::debug;

/// Prefix of every pub/sub subject on NATS, keeping them apart from the event streams and from
/// other applications sharing the server.
pub const SUBJECT_PREFIX: &str = "ORISUN_PUBSUB";

/// Header carrying the message id.
const ID_HEADER: &str = "Orisun-Msg-Id";

/// How long a publication may wait for NATS to accept it.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Pub/sub over a NATS connection, shared by every Orisun node connected to the same NATS.
#[derive(Clone)]
pub struct NatsPubSub {
    client: async_nats::Client,
}

impl NatsPubSub {
    /// Uses `client` for publications and subscriptions.
    pub fn new(client: async_nats::Client) -> Self {
        Self { client }
    }

    /// Waits until the server has processed everything this connection sent so far, so that a
    /// subscription is in effect (for publishers on every connection) when `subscribe`
    /// returns. The server handles a connection's operations in order and answers a request
    /// nobody listens to with "no responders" at once, which makes a cheap round trip.
    async fn round_trip(&self) {
        let probe = format!("{SUBJECT_PREFIX}_PING.{}", self.client.new_inbox());
        let answered =
            tokio::time::timeout(PUBLISH_TIMEOUT, self.client.request(probe, Bytes::new())).await;
        if answered.is_err() {
            debug!("NATS did not answer the subscription round trip in time");
        }
    }
}

#[async_trait]
impl PubSub for NatsPubSub {
    async fn publish(&self, subject: &str, id: &str, data: Bytes) -> Result<(), PubSubError> {
        validate_subject(subject, false)?;
        let id = message_id_or_new(id)?;
        let max = self.client.server_info().max_payload;
        // Headers take a few dozen bytes of the server's limit too.
        let size = data.len() + ID_HEADER.len() + id.len() + 32;
        if max > 0 && size > max {
            return Err(PubSubError::TooLarge {
                size: data.len(),
                max,
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert(ID_HEADER, id.as_str());
        let send = async {
            self.client
                .publish_with_headers(format!("{SUBJECT_PREFIX}.{subject}"), headers, data)
                .await
                .map_err(PubSubError::unavailable)?;
            // The flush returns once the server has processed the publication.
            self.client.flush().await.map_err(PubSubError::unavailable)
        };
        tokio::time::timeout(PUBLISH_TIMEOUT, send)
            .await
            .map_err(|_| PubSubError::unavailable("NATS did not accept the message in time"))?
    }

    async fn subscribe(
        &self,
        subject: &str,
        consumer_name: &str,
    ) -> Result<MessageStream, PubSubError> {
        validate_subject(subject, true)?;
        validate_consumer_name(consumer_name)?;
        let subscriber = self
            .client
            .queue_subscribe(
                format!("{SUBJECT_PREFIX}.{subject}"),
                consumer_name.to_owned(),
            )
            .await
            .map_err(PubSubError::unavailable)?;
        self.round_trip().await;
        let prefix_len = SUBJECT_PREFIX.len() + 1;
        Ok(Box::pin(subscriber.map(move |m| {
            let subject = m.subject.as_str();
            Ok(Message {
                id: m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(ID_HEADER))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default(),
                subject: subject.get(prefix_len..).unwrap_or(subject).to_owned(),
                data: m.payload,
            })
        })))
    }
}
