//! Pub/sub semantics, the same scenarios on `LocalPubSub` and on `NatsPubSub` (several
//! connections to a real nats-server, as several nodes would have): members sharing a consumer
//! name compete, different names each get every message, wildcards, leaving members, bad input;
//! plus the local overflow policy.

mod common;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use common::*;
use futures::StreamExt;
use orisun_nats::{LocalPubSub, Message, MessageStream, NatsPubSub, PubSub, PubSubError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Three "nodes" (subscriber side), one publisher, and a way to make sure subscriptions made so
/// far are in effect before publishing.
struct Setup {
    nodes: Vec<Arc<dyn PubSub>>,
    publisher: Arc<dyn PubSub>,
    clients: Vec<async_nats::Client>,
}

impl Setup {
    fn local() -> Self {
        let local: Arc<dyn PubSub> = Arc::new(LocalPubSub::default());
        Self {
            nodes: vec![local.clone(), local.clone(), local.clone()],
            publisher: local,
            clients: Vec::new(),
        }
    }

    async fn nats() -> Result<Self> {
        let url = shared_nats_url();
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(connect(&url).await?);
        }
        Ok(Self {
            nodes: clients[..3]
                .iter()
                .map(|c| Arc::new(NatsPubSub::new(c.clone())) as Arc<dyn PubSub>)
                .collect(),
            publisher: Arc::new(NatsPubSub::new(clients[3].clone())),
            clients,
        })
    }

    /// Waits until every (un)subscription sent so far has been processed by the server (a
    /// request nobody answers comes back as "no responders" after the server handled
    /// everything the connection sent before it).
    async fn settle(&self) -> Result<()> {
        for c in &self.clients {
            let probe = format!("SETTLE.{}", Uuid::new_v4().simple());
            let _ = tokio::time::timeout(Duration::from_secs(5), c.request(probe, Bytes::new()))
                .await
                .context("settle round trip")?;
        }
        Ok(())
    }
}

fn topic() -> String {
    format!("t{}.orders", Uuid::new_v4().simple())
}

async fn next(stream: &mut MessageStream) -> Result<Message> {
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(m))) => Ok(m),
        Ok(Some(Err(e))) => bail!("subscription failed: {e}"),
        Ok(None) => bail!("subscription ended"),
        Err(_) => bail!("no message within 10 s"),
    }
}

/// Asserts that nothing more arrives for a moment (absence cannot be awaited otherwise).
async fn assert_quiet(stream: &mut MessageStream) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
        panic!("unexpected extra message {m:?}");
    }
}

async fn competing_members_share_and_groups_each_get_all(s: Setup) -> Result<()> {
    let subject = topic();
    let mut a1 = s.nodes[0].subscribe(&subject, "billing").await?;
    let mut a2 = s.nodes[1].subscribe(&subject, "billing").await?;
    let mut b = s.nodes[2].subscribe(&subject, "audit").await?;
    s.settle().await?;

    let n = 200;
    for i in 0..n {
        s.publisher
            .publish(
                &subject,
                &format!("m{i:03}"),
                Bytes::from(format!("body {i}")),
            )
            .await?;
    }

    // "audit" gets every message, in order, intact.
    for i in 0..n {
        let m = next(&mut b).await?;
        assert_eq!(m.id, format!("m{i:03}"));
        assert_eq!(m.subject, subject);
        assert_eq!(m.data, Bytes::from(format!("body {i}")));
    }
    // "billing"'s members share them: together all, each once, each member in order.
    let mut seen = HashSet::new();
    let (mut got1, mut got2) = (Vec::new(), Vec::new());
    let mut merged =
        futures::stream::select(a1.by_ref().map(|m| (1, m)), a2.by_ref().map(|m| (2, m)));
    while seen.len() < n {
        let (member, m) = tokio::time::timeout(Duration::from_secs(10), merged.next())
            .await
            .context("billing stalled")?
            .context("billing ended")?;
        let m = m?;
        assert!(seen.insert(m.id.clone()), "{} delivered twice", m.id);
        if member == 1 {
            got1.push(m.id)
        } else {
            got2.push(m.id)
        }
    }
    drop(merged);
    assert!(
        !got1.is_empty() && !got2.is_empty(),
        "one member got everything: {} / {}",
        got1.len(),
        got2.len()
    );
    for got in [&got1, &got2] {
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, &sorted, "a member saw its messages out of order");
    }
    assert_quiet(&mut a1).await;
    assert_quiet(&mut a2).await;
    assert_quiet(&mut b).await;
    Ok(())
}

async fn wildcards_and_generated_ids(s: Setup) -> Result<()> {
    let base = format!("t{}", Uuid::new_v4().simple());
    let mut any = s.nodes[0].subscribe(&format!("{base}.*"), "w").await?;
    let mut deep = s.nodes[1].subscribe(&format!("{base}.>"), "d").await?;
    let mut only_x = s.nodes[2].subscribe(&format!("{base}.x"), "x").await?;
    s.settle().await?;

    s.publisher
        .publish(&format!("{base}.x"), "", Bytes::from_static(b"1"))
        .await?;
    s.publisher
        .publish(&format!("{base}.y"), "id-y", Bytes::from_static(b"2"))
        .await?;
    s.publisher
        .publish(&format!("{base}.y.z"), "id-z", Bytes::new())
        .await?;

    let m = next(&mut any).await?;
    assert_eq!(m.subject, format!("{base}.x"));
    assert_eq!(
        m.id.len(),
        36,
        "a UUID is generated for an empty id: {:?}",
        m.id
    );
    assert_eq!(next(&mut any).await?.id, "id-y");
    assert_quiet(&mut any).await;

    let ids: Vec<String> = vec![
        next(&mut deep).await?.subject,
        next(&mut deep).await?.subject,
        next(&mut deep).await?.subject,
    ];
    assert_eq!(
        ids,
        vec![
            format!("{base}.x"),
            format!("{base}.y"),
            format!("{base}.y.z")
        ]
    );

    assert_eq!(next(&mut only_x).await?.data, Bytes::from_static(b"1"));
    assert_quiet(&mut only_x).await;
    Ok(())
}

async fn a_member_that_leaves_gets_nothing_more(s: Setup) -> Result<()> {
    let subject = topic();
    let mut stays = s.nodes[0].subscribe(&subject, "g").await?;
    let leaves = s.nodes[1].subscribe(&subject, "g").await?;
    s.settle().await?;
    drop(leaves);
    s.settle().await?;
    for i in 0..20 {
        s.publisher
            .publish(&subject, &i.to_string(), Bytes::new())
            .await?;
    }
    for i in 0..20 {
        assert_eq!(next(&mut stays).await?.id, i.to_string());
    }
    Ok(())
}

async fn bad_input_is_refused(s: Setup) -> Result<()> {
    let p = &s.publisher;
    for subject in ["", "a.*", "a.>", "a..b", "a b", ".a"] {
        match p.publish(subject, "", Bytes::new()).await {
            Err(PubSubError::Invalid {
                field: "subject", ..
            }) => {}
            other => bail!("publish to {subject:?}: {other:?}"),
        }
    }
    for (subject, name, field) in [
        ("a.b", "", "consumer_name"),
        ("a.b", "x y", "consumer_name"),
        ("a.b", "x.y", "consumer_name"),
        ("a..b", "x", "subject"),
        ("a.>.b", "x", "subject"),
    ] {
        match p.subscribe(subject, name).await {
            Err(PubSubError::Invalid { field: f, .. }) if f == field => {}
            Err(other) => bail!("subscribe {subject:?}/{name:?}: {other}"),
            Ok(_) => bail!("subscribe {subject:?}/{name:?} was accepted"),
        }
    }
    match p.publish("a.b", "bad\nid", Bytes::new()).await {
        Err(PubSubError::Invalid { field: "id", .. }) => {}
        other => bail!("bad id: {other:?}"),
    }
    match p
        .publish("a.b", "", Bytes::from(vec![0u8; 2 * 1_048_576]))
        .await
    {
        Err(PubSubError::TooLarge { .. }) => {}
        other => bail!("oversize: {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn local_competing_members_share_and_groups_each_get_all() -> Result<()> {
    competing_members_share_and_groups_each_get_all(Setup::local()).await
}

#[tokio::test]
async fn nats_competing_members_share_and_groups_each_get_all() -> Result<()> {
    init_tracing();
    competing_members_share_and_groups_each_get_all(Setup::nats().await?).await
}

#[tokio::test]
async fn local_wildcards_and_generated_ids() -> Result<()> {
    wildcards_and_generated_ids(Setup::local()).await
}

#[tokio::test]
async fn nats_wildcards_and_generated_ids() -> Result<()> {
    wildcards_and_generated_ids(Setup::nats().await?).await
}

#[tokio::test]
async fn local_a_member_that_leaves_gets_nothing_more() -> Result<()> {
    a_member_that_leaves_gets_nothing_more(Setup::local()).await
}

#[tokio::test]
async fn nats_a_member_that_leaves_gets_nothing_more() -> Result<()> {
    a_member_that_leaves_gets_nothing_more(Setup::nats().await?).await
}

#[tokio::test]
async fn local_bad_input_is_refused() -> Result<()> {
    bad_input_is_refused(Setup::local()).await
}

#[tokio::test]
async fn nats_bad_input_is_refused() -> Result<()> {
    bad_input_is_refused(Setup::nats().await?).await
}

/// Local members round-robin exactly; a full member is skipped; a group whose members are all
/// full misses the message, counted, and the publisher never waits.
#[tokio::test]
async fn local_overflow_skips_full_members_then_drops() -> Result<()> {
    let ps = LocalPubSub::new(2);
    let subject = topic();
    let mut m1 = ps.subscribe(&subject, "g").await?;
    let mut m2 = ps.subscribe(&subject, "g").await?;
    assert_eq!(ps.members(), 2);
    for i in 0..5 {
        ps.publish(&subject, &i.to_string(), Bytes::new()).await?;
    }
    assert_eq!(ps.dropped(), 1, "the fifth message found both members full");
    assert_eq!(next(&mut m1).await?.id, "0");
    assert_eq!(next(&mut m1).await?.id, "2");
    // m1 has room again, m2 is still full: m2's turn is skipped.
    ps.publish(&subject, "5", Bytes::new()).await?;
    ps.publish(&subject, "6", Bytes::new()).await?;
    assert_eq!(next(&mut m1).await?.id, "5");
    assert_eq!(next(&mut m1).await?.id, "6");
    assert_eq!(next(&mut m2).await?.id, "1");
    assert_eq!(next(&mut m2).await?.id, "3");
    assert_eq!(ps.dropped(), 1);
    drop(m1);
    drop(m2);
    assert_eq!(ps.members(), 0, "leaving members are removed at once");
    Ok(())
}
