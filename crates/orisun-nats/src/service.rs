//! The `orisun.PubSub` gRPC service over any [`PubSub`] implementation.

use crate::pubsub::{Message, PubSub, PubSubError};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use orisun_proto::pub_sub_server::{self, PubSubServer};
use orisun_proto::{PublishRequest, SubscribeRequest, SubscribeResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::debug;

/// Serves `PublishToPubSub` and `SubscribeToPubSub`.
#[derive(Clone)]
pub struct PubSubService {
    pubsub: Arc<dyn PubSub>,
    shutdown: Shared<BoxFuture<'static, ()>>,
}

impl PubSubService {
    /// Serves `pubsub`; subscriptions last until their client leaves.
    pub fn new(pubsub: Arc<dyn PubSub>) -> Self {
        Self {
            pubsub,
            shutdown: futures::future::pending().boxed().shared(),
        }
    }

    /// Ends every subscription (successfully) when `shutdown` completes, so that a graceful
    /// server shutdown does not wait for subscribers to leave.
    pub fn with_shutdown(mut self, shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown = shutdown.boxed().shared();
        self
    }

    /// Wraps the service for a tonic router.
    pub fn into_server(self) -> PubSubServer<Self> {
        PubSubServer::new(self)
    }
}

/// Maps a pub/sub error to its gRPC status.
pub fn status(e: PubSubError) -> Status {
    match e {
        PubSubError::Invalid { .. } => Status::invalid_argument(e.to_string()),
        PubSubError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        PubSubError::Unavailable { .. } => Status::unavailable(e.to_string()),
    }
}

fn to_wire(m: Message) -> SubscribeResponse {
    SubscribeResponse {
        message: Some(orisun_proto::Message {
            id: m.id,
            subject: m.subject,
            data: m.data.to_vec(),
        }),
    }
}

/// The stream `SubscribeToPubSub` answers with.
pub type SubscribeStream =
    Pin<Box<dyn futures::Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pub_sub_server::PubSub for PubSubService {
    async fn publish_to_pub_sub(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.pubsub
            .publish(&r.subject, &r.id, r.data.into())
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    type SubscribeToPubSubStream = SubscribeStream;

    async fn subscribe_to_pub_sub(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeToPubSubStream>, Status> {
        let r = request.into_inner();
        let messages = self
            .pubsub
            .subscribe(&r.subject, &r.consumer_name)
            .await
            .map_err(status)?;
        debug!(subject = %r.subject, consumer_name = %r.consumer_name, "pub/sub subscriber joined");
        let stream = messages
            .map(|m| m.map(to_wire).map_err(status))
            .take_until(self.shutdown.clone());
        Ok(Response::new(Box::pin(stream)))
    }
}
