//! In-process pub/sub, used when no NATS is configured: groups of competing members per
//! subject pattern and consumer name, bounded buffers, never blocking the publisher.

use super::{
    message_id_or_new, subject_matches, validate_consumer_name, validate_subject, Message,
    MessageStream, PubSub, PubSubError, DEFAULT_MAX_PAYLOAD,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tracing::debug;

/// Messages a member may have waiting before it counts as full.
pub const DEFAULT_MEMBER_BUFFER: usize = 1_024;

/// Pub/sub inside one process.
///
/// For each subscription pattern and consumer name there is a group; a published message goes
/// to every group whose pattern matches its subject, and within a group to one member, chosen
/// round-robin. Each member has a bounded buffer: a message goes to the next member in turn
/// that has room, and when every member of a group is full the group misses the message
/// (counted by [`LocalPubSub::dropped`]). Publishing therefore never waits for a subscriber.
/// Each member receives its messages in publication order.
#[derive(Clone)]
pub struct LocalPubSub {
    inner: Arc<Inner>,
}

struct Inner {
    /// pattern -> consumer name -> group.
    groups: Mutex<HashMap<String, HashMap<String, Group>>>,
    member_buffer: usize,
    max_payload: usize,
    next_member: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Group {
    members: Vec<(u64, mpsc::Sender<Message>)>,
    /// Index of the member whose turn is next.
    next: usize,
}

impl Default for LocalPubSub {
    fn default() -> Self {
        Self::new(DEFAULT_MEMBER_BUFFER)
    }
}

impl LocalPubSub {
    /// Creates an empty pub/sub whose members buffer up to `member_buffer` messages each.
    pub fn new(member_buffer: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                groups: Mutex::new(HashMap::new()),
                member_buffer: member_buffer.max(1),
                max_payload: DEFAULT_MAX_PAYLOAD,
                next_member: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Returns how many times a group missed a message because all its members were full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Returns the number of live subscriptions (members of all groups).
    pub fn members(&self) -> usize {
        self.inner
            .groups
            .lock()
            .values()
            .flat_map(HashMap::values)
            .map(|g| g.members.len())
            .sum()
    }
}

#[async_trait]
impl PubSub for LocalPubSub {
    async fn publish(&self, subject: &str, id: &str, data: Bytes) -> Result<(), PubSubError> {
        validate_subject(subject, false)?;
        let id = message_id_or_new(id)?;
        if data.len() > self.inner.max_payload {
            return Err(PubSubError::TooLarge {
                size: data.len(),
                max: self.inner.max_payload,
            });
        }
        let message = Message {
            id,
            subject: subject.to_owned(),
            data,
        };
        let mut groups = self.inner.groups.lock();
        for (pattern, by_name) in groups.iter_mut() {
            if !subject_matches(pattern, subject) {
                continue;
            }
            for (name, group) in by_name.iter_mut() {
                if !group.offer(&message) {
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    debug!(%pattern, consumer_name = %name, "every member of the group is full; the group misses this message");
                }
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        subject: &str,
        consumer_name: &str,
    ) -> Result<MessageStream, PubSubError> {
        validate_subject(subject, true)?;
        validate_consumer_name(consumer_name)?;
        let (tx, rx) = mpsc::channel(self.inner.member_buffer);
        let id = self.inner.next_member.fetch_add(1, Ordering::Relaxed);
        self.inner
            .groups
            .lock()
            .entry(subject.to_owned())
            .or_default()
            .entry(consumer_name.to_owned())
            .or_default()
            .members
            .push((id, tx));
        Ok(Box::pin(Member {
            rx,
            _guard: Membership {
                inner: self.inner.clone(),
                pattern: subject.to_owned(),
                name: consumer_name.to_owned(),
                id,
            },
        }))
    }
}

impl Group {
    /// Gives `message` to the next member in turn that has room; false when none has.
    fn offer(&mut self, message: &Message) -> bool {
        let n = self.members.len();
        for i in 0..n {
            let idx = (self.next + i) % n;
            if self.members[idx].1.try_send(message.clone()).is_ok() {
                self.next = (idx + 1) % n;
                return true;
            }
        }
        false
    }
}

/// One subscription's messages.
struct Member {
    rx: mpsc::Receiver<Message>,
    _guard: Membership,
}

impl Stream for Member {
    type Item = Result<Message, PubSubError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|m| m.map(Ok))
    }
}

/// Removes the member from its group (and the group when it empties) when the subscription is
/// dropped, so no message is handed to a member that is gone.
struct Membership {
    inner: Arc<Inner>,
    pattern: String,
    name: String,
    id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut groups = self.inner.groups.lock();
        let Some(by_name) = groups.get_mut(&self.pattern) else {
            return;
        };
        if let Some(group) = by_name.get_mut(&self.name) {
            group.members.retain(|(id, _)| *id != self.id);
            if group.members.is_empty() {
                by_name.remove(&self.name);
            } else {
                group.next %= group.members.len();
            }
        }
        if by_name.is_empty() {
            groups.remove(&self.pattern);
        }
    }
}
