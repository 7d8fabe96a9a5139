//! The `orisun.PubSub` gRPC service end to end over a real tonic server: publish, subscribe with
//! competing and fanned-out consumers, status codes for bad input, and subscriptions ending on
//! shutdown.

mod common;

use anyhow::{bail, Result};
use futures::StreamExt;
use orisun_nats::{LocalPubSub, NatsPubSub, PubSub, PubSubService};
use orisun_proto::pub_sub_client::PubSubClient;
use orisun_proto::{PublishRequest, SubscribeRequest, SubscribeResponse};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use uuid::Uuid;

/// Serves `pubsub` on a free port; returns a client and the trigger that shuts it down.
async fn serve(pubsub: Arc<dyn PubSub>) -> Result<(PubSubClient<Channel>, oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let (stop_streams_tx, stop_streams) = oneshot::channel::<()>();
    let service = PubSubService::new(pubsub).with_shutdown(async move {
        let _ = stop_streams.await;
    });
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let _ = stopped.await;
                    let _ = stop_streams_tx.send(());
                },
            )
            .await;
    });
    // The listener is bound already, so connecting cannot race the server's start.
    let client = PubSubClient::connect(format!("http://{addr}")).await?;
    Ok((client, stop))
}

async fn next(stream: &mut Streaming<SubscribeResponse>) -> Result<orisun_proto::Message> {
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(SubscribeResponse { message: Some(m) }))) => Ok(m),
        other => bail!("expected a message, got {other:?}"),
    }
}

async fn subscribe(
    client: &mut PubSubClient<Channel>,
    subject: &str,
    name: &str,
) -> Result<Streaming<SubscribeResponse>> {
    Ok(client
        .subscribe_to_pub_sub(SubscribeRequest {
            subject: subject.into(),
            consumer_name: name.into(),
        })
        .await?
        .into_inner())
}

async fn round_trip(pubsub: Arc<dyn PubSub>, settle: impl AsyncFn() -> Result<()>) -> Result<()> {
    let (mut client, stop) = serve(pubsub).await?;
    let subject = format!("t{}.events", Uuid::new_v4().simple());
    // The response headers arrive once the subscription is registered.
    let mut a1 = subscribe(&mut client, &subject, "a").await?;
    let mut a2 = subscribe(&mut client, &subject, "a").await?;
    let mut b = subscribe(&mut client, &subject, "b").await?;
    settle().await?;

    for i in 0..10 {
        client
            .publish_to_pub_sub(PublishRequest {
                id: format!("id{i}"),
                subject: subject.clone(),
                data: vec![i as u8; 3],
            })
            .await?;
    }
    for i in 0..10 {
        let m = next(&mut b).await?;
        assert_eq!(
            (m.id, m.subject.as_str(), m.data),
            (format!("id{i}"), subject.as_str(), vec![i as u8; 3])
        );
    }
    let mut ids = Vec::new();
    let mut merged = futures::stream::select(a1.by_ref(), a2.by_ref());
    while ids.len() < 10 {
        match tokio::time::timeout(Duration::from_secs(10), merged.next()).await {
            Ok(Some(Ok(SubscribeResponse { message: Some(m) }))) => ids.push(m.id),
            other => bail!("group a: {other:?}"),
        }
    }
    drop(merged);
    ids.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("id{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected, "the group shares all ten, each once");

    // Bad input maps to precise codes.
    let status = client
        .publish_to_pub_sub(PublishRequest {
            id: String::new(),
            subject: "a.*".into(),
            data: Vec::new(),
        })
        .await
        .expect_err("wildcard publish");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("subject"), "{status:?}");
    let status = client
        .subscribe_to_pub_sub(SubscribeRequest {
            subject: "a.b".into(),
            consumer_name: "has space".into(),
        })
        .await
        .expect_err("bad consumer name");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("consumer_name"), "{status:?}");
    let status = client
        .publish_to_pub_sub(PublishRequest {
            id: String::new(),
            subject: "a.b".into(),
            data: vec![0; 1_100_000],
        })
        .await
        .expect_err("oversize");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Shutting down ends the subscriptions cleanly instead of holding the server open.
    let _ = stop.send(());
    for stream in [&mut a1, &mut a2, &mut b] {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(None) | Ok(Some(Err(_))) => {}
            other => bail!("subscription still open after shutdown: {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn grpc_pubsub_over_local() -> Result<()> {
    round_trip(Arc::new(LocalPubSub::default()), async || Ok(())).await
}

#[tokio::test]
async fn grpc_pubsub_over_nats() -> Result<()> {
    common::init_tracing();
    let client = common::connect(&common::shared_nats_url()).await?;
    let settle_client = client.clone();
    round_trip(Arc::new(NatsPubSub::new(client)), async || {
        settle_client.flush().await?;
        Ok(())
    })
    .await
}
