//! [`EventStore2025`]: the `eventstore.EventStore` service of 2025 clients, over today's log.
//!
//! Streams are aggregate streams of `orisun-aggregates` (identity and version are the data
//! fields `aggregateType`, `aggregateId`, `aggregateVersion`; see
//! `orisun_proto::legacy::v2025` for the name and version mapping). Everything else is
//! today's `orisun.EventStore`: the same validation and messages, the same role checks, the
//! same redaction of the admin boundary, and subscriptions that are today's subscriptions with
//! their events converted. Its pub/sub RPCs (on this service until August 2025) are today's
//! `orisun.PubSub` with the messages converted.

use crate::admin_boundary::{guard_save, redact};
use crate::auth::{self, Role};
use crate::event_store::EventStoreService;
use futures::{Stream, StreamExt};
use orisun_aggregates::{AggregateId, Aggregates};
use orisun_core::{BoundaryName, Position, Query, StoredEvent};
use orisun_nats::PubSubService;
use orisun_proto::convert::{self, invalid, status};
use orisun_proto::legacy::eventstore_2025::{self as old, event_store_server};
use orisun_proto::legacy::v2025;
use orisun_proto::{self as pb, ALREADY_STORED_HEADER};
use orisun_store::{AppendOutcome, EventStore};
use std::pin::Pin;
use std::sync::Arc;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

/// The roles that may save events (as on today's API).
const WRITERS: [Role; 2] = [Role::Admin, Role::Operations];

/// The stream a subscription of the 2025 API returns.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<old::Event, Status>> + Send>>;

/// Implements `eventstore.EventStore` (2025) over the store that today's service uses.
#[derive(Clone)]
pub struct EventStore2025 {
    today: EventStoreService,
    store: Arc<dyn EventStore>,
    admin_boundary: BoundaryName,
    pubsub: Option<PubSubService>,
}

impl EventStore2025 {
    /// Creates the service. `today` is the `orisun.EventStore` service its subscriptions run on;
    /// `store` and `admin_boundary` must be the ones `today` was built with.
    pub fn new(
        today: EventStoreService,
        store: Arc<dyn EventStore>,
        admin_boundary: BoundaryName,
    ) -> Self {
        Self {
            today,
            store,
            admin_boundary,
            pubsub: None,
        }
    }

    /// Serves `PublishToPubSub` / `SubscribeToPubSub` with `pubsub` (today's `orisun.PubSub`
    /// service); without it they are `UNIMPLEMENTED`.
    pub fn with_pubsub(mut self, pubsub: PubSubService) -> Self {
        self.pubsub = Some(pubsub);
        self
    }

    fn pubsub(&self) -> Result<&PubSubService, Status> {
        self.pubsub
            .as_ref()
            .ok_or_else(|| Status::unimplemented("pub/sub is not served by this server"))
    }

    /// Wraps the service for a tonic router.
    pub fn into_server(self) -> event_store_server::EventStoreServer<Self> {
        event_store_server::EventStoreServer::new(self)
    }

    fn to_wire(&self, boundary: &BoundaryName, event: StoredEvent) -> old::Event {
        v2025::stored_event(redact(boundary, &self.admin_boundary, event))
    }

    /// Runs an append in its own task, so that an accepted save completes whole even if the
    /// client goes away (as today's `SaveEvents` does).
    async fn spawn<T: Send + 'static>(
        work: impl std::future::Future<Output = Result<T, Status>> + Send + 'static,
    ) -> Result<T, Status> {
        tokio::spawn(work).await.map_err(|e| {
            tracing::error!(error = %e, "save task failed");
            Status::internal("Internal server error")
        })?
    }
}

fn write_result(
    position: Position,
    new_stream_version: i64,
    already_stored: bool,
) -> Response<old::WriteResult> {
    let mut response = Response::new(old::WriteResult {
        log_position: Some(position.into()),
        new_stream_version,
    });
    if already_stored {
        response
            .metadata_mut()
            .insert(ALREADY_STORED_HEADER, MetadataValue::from_static("true"));
    }
    response
}

/// The aggregate a request's stream name stands for (an empty name is bad input).
fn stream_of(field: &str, name: &str) -> Result<AggregateId, Status> {
    v2025::stream_aggregate(field, name).map_err(invalid)
}

#[tonic::async_trait]
impl event_store_server::EventStore for EventStore2025 {
    async fn save_events(
        &self,
        request: Request<old::SaveEventsRequest>,
    ) -> Result<Response<old::WriteResult>, Status> {
        auth::caller(&request)?.require_any(&WRITERS)?;
        let request = request.into_inner();
        let boundary = convert::boundary(&request.boundary)?;
        let events = v2025::events_to_save(request.events)?;
        guard_save(&boundary, &self.admin_boundary, &events)?;
        match request.stream {
            Some(stream) => {
                let aggregate = stream_of("stream.name", &stream.name)?;
                if request.consistency_condition.is_some() {
                    return Err(Status::invalid_argument(
                        "consistency_condition: cannot be combined with stream (a stream save \
                         checks the stream's version)",
                    ));
                }
                if stream.subset_query.is_some() {
                    return Err(Status::invalid_argument(
                        "stream.subsetQuery: not supported: a stream save checks the version of \
                         the whole stream",
                    ));
                }
                let expected =
                    v2025::expected_version("stream.expected_version", stream.expected_version)
                        .map_err(invalid)?;
                let aggregates = Aggregates::new(self.store.clone(), boundary);
                let appended = Self::spawn(async move {
                    aggregates
                        .append(&aggregate, expected, events)
                        .await
                        .map_err(v2025::aggregate_status)
                })
                .await?;
                Ok(write_result(
                    appended.position,
                    v2025::stream_version(appended.last_version),
                    appended.already_stored,
                ))
            }
            None => {
                let condition = v2025::consistency_condition(request.consistency_condition);
                if let Some(condition) = &condition {
                    condition
                        .query
                        .validate("consistency_condition.query")
                        .map_err(invalid)?;
                }
                let store = self.store.clone();
                let outcome: AppendOutcome = Self::spawn(async move {
                    store
                        .append(&boundary, events, condition)
                        .await
                        .map_err(status)
                })
                .await?;
                Ok(write_result(outcome.position, 0, outcome.already_stored))
            }
        }
    }

    async fn get_events(
        &self,
        request: Request<old::GetEventsRequest>,
    ) -> Result<Response<old::GetEventsResponse>, Status> {
        auth::caller(&request)?;
        let request = request.into_inner();
        let boundary = convert::boundary(&request.boundary)?;
        let read = v2025::read_request(&request)?;
        let events = match &request.stream {
            Some(stream) => {
                let aggregate = stream_of("stream.name", &stream.name)?;
                let from = u64::try_from(stream.from_version).map_err(|_| {
                    Status::invalid_argument(format!(
                        "stream.from_version: must be >= 0, got {}",
                        stream.from_version
                    ))
                })?;
                let versions = from.saturating_add(1)..;
                let stream = Aggregates::new(self.store.clone(), boundary.clone())
                    .read(&aggregate, versions)
                    .await
                    .map_err(v2025::aggregate_status)?;
                v2025::read_stream(&read, stream.events)
            }
            None => self.store.read(&boundary, &read).await.map_err(status)?,
        };
        Ok(Response::new(old::GetEventsResponse {
            events: events
                .into_iter()
                .map(|e| self.to_wire(&boundary, e))
                .collect(),
        }))
    }

    type CatchUpSubscribeToEventsStream = EventStream;

    async fn catch_up_subscribe_to_events(
        &self,
        request: Request<old::CatchUpSubscribeToEventStoreRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let today = pb::CatchUpSubscribeToEventStoreRequest {
            after_position: request.after_position.map(pb::Position::from),
            query: request.query.map(pb::Query::from),
            subscriber_name: request.subscriber_name,
            boundary: request.boundary,
        };
        subscribe(&self.today, metadata, extensions, today, None).await
    }

    type CatchUpSubscribeToStreamStream = EventStream;

    async fn catch_up_subscribe_to_stream(
        &self,
        request: Request<old::CatchUpSubscribeToStreamRequest>,
    ) -> Result<Response<EventStream>, Status> {
        auth::caller(&request)?;
        let (metadata, extensions, request) = request.into_parts();
        let boundary = convert::boundary(&request.boundary)?;
        let aggregate = stream_of("stream", &request.stream)?;
        if request.after_version < -1 {
            return Err(Status::invalid_argument(format!(
                "after_version: must be -1 (from the first event) or a version >= 0, got {}",
                request.after_version
            )));
        }
        let query = request.query.map(Query::from).unwrap_or_default();
        query.validate("query").map_err(invalid)?;
        // Start right after the event at `after_version` when the stream has it; the filter
        // below drops any earlier version the criteria still let through.
        let after = match u64::try_from(request.after_version) {
            Ok(version) => self
                .store
                .latest_by_criteria(&boundary, &[v2025::version_criterion(&aggregate, version)])
                .await
                .map_err(status)?
                .events
                .into_iter()
                .next()
                .flatten()
                .map(|e| e.position),
            Err(_) => None,
        };
        let today = pb::CatchUpSubscribeToEventStoreRequest {
            after_position: Some(after.unwrap_or(Position::BEFORE_FIRST).into()),
            query: Some(v2025::within_stream(query, &aggregate).into()),
            subscriber_name: request.subscriber_name,
            boundary: request.boundary,
        };
        subscribe(
            &self.today,
            metadata,
            extensions,
            today,
            Some(request.after_version),
        )
        .await
    }

    async fn ping(
        &self,
        request: Request<old::PingRequest>,
    ) -> Result<Response<old::PingResponse>, Status> {
        auth::caller(&request)?;
        Ok(Response::new(old::PingResponse {}))
    }

    async fn publish_to_pub_sub(
        &self,
        request: Request<old::PublishRequest>,
    ) -> Result<Response<()>, Status> {
        use orisun_proto::pub_sub_server::PubSub as _;
        auth::caller(&request)?;
        let (metadata, extensions, r) = request.into_parts();
        let today = pb::PublishRequest {
            id: r.id,
            subject: r.subject,
            data: r.data,
        };
        self.pubsub()?
            .publish_to_pub_sub(Request::from_parts(metadata, extensions, today))
            .await
    }

    type SubscribeToPubSubStream = PubSubStream;

    async fn subscribe_to_pub_sub(
        &self,
        request: Request<old::SubscribeRequest>,
    ) -> Result<Response<PubSubStream>, Status> {
        use orisun_proto::pub_sub_server::PubSub as _;
        auth::caller(&request)?;
        let (metadata, extensions, r) = request.into_parts();
        let today = pb::SubscribeRequest {
            subject: r.subject,
            consumer_name: r.consumer_name,
        };
        let response = self
            .pubsub()?
            .subscribe_to_pub_sub(Request::from_parts(metadata, extensions, today))
            .await?;
        let (metadata, messages, extensions) = response.into_parts();
        let messages: PubSubStream = Box::pin(messages.map(|item| {
            item.map(|r| old::SubscribeResponse {
                message: r.message.map(|m| old::Message {
                    id: m.id,
                    subject: m.subject,
                    data: m.data,
                }),
            })
        }));
        Ok(Response::from_parts(metadata, messages, extensions))
    }
}

/// The stream `SubscribeToPubSub` answers with.
pub type PubSubStream = Pin<Box<dyn Stream<Item = Result<old::SubscribeResponse, Status>> + Send>>;

/// Runs today's subscription for `request` (with the caller's metadata and extensions, so it
/// sees the same caller) and converts its events; with `after_version`, events of a lower or
/// equal stream version are skipped.
async fn subscribe(
    today: &EventStoreService,
    metadata: tonic::metadata::MetadataMap,
    extensions: tonic::Extensions,
    request: pb::CatchUpSubscribeToEventStoreRequest,
    after_version: Option<i64>,
) -> Result<Response<EventStream>, Status> {
    use orisun_proto::event_store_server::EventStore as _;
    let request = Request::from_parts(metadata, extensions, request);
    let response = today.catch_up_subscribe_to_events(request).await?;
    let (metadata, events, extensions) = response.into_parts();
    let events = events.filter_map(move |item| {
        let item = item.map(v2025::event);
        let keep = match (&item, after_version) {
            (Ok(event), Some(after)) => i64::try_from(event.version).unwrap_or(i64::MAX) > after,
            _ => true,
        };
        futures::future::ready(keep.then_some(item))
    });
    let events: EventStream = Box::pin(events);
    Ok(Response::from_parts(metadata, events, extensions))
}
