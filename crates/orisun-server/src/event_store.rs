//! The `orisun.EventStore` gRPC service: request validation, role checks, redaction of the
//! admin boundary, and subscriptions that end cleanly when the server stops.
//!
//! Every handler checks that the auth layer identified a caller (defence in depth: a router
//! built without the layer serves nothing), validates the request into domain types with
//! `orisun_proto::convert`, calls the store, and maps store errors with `convert::status`, the
//! one mapping from domain errors to gRPC codes.

use crate::admin_boundary::{guard_save, redact};
use crate::auth::{self, Role};
use crate::indexes;
use crate::shutdown::Shutdown;
use crate::subscriptions::{self, SubscriberRegistry};
use futures::{Stream, StreamExt};
use orisun_core::{BoundaryName, Criterion, Position, Query, StoredEvent};
use orisun_proto::convert::{self, status};
use orisun_proto::{self as pb, event_store_server};
use orisun_store::{rules, EventStore, StoreError};
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// The roles that may save events.
const WRITERS: [Role; 2] = [Role::Admin, Role::Operations];

/// The message of the status that ends every subscription when the server stops.
pub const SHUTTING_DOWN: &str = "server shutting down";

/// Implements `orisun.EventStore` over any [`EventStore`].
#[derive(Clone)]
pub struct EventStoreService {
    store: Arc<dyn EventStore>,
    admin_boundary: BoundaryName,
    subscribers: SubscriberRegistry,
    shutdown: Shutdown,
}

impl EventStoreService {
    /// Creates the service. `admin_boundary` is the boundary whose secrets are redacted from
    /// every event served; `shutdown` ends the running subscriptions.
    pub fn new(
        store: Arc<dyn EventStore>,
        admin_boundary: BoundaryName,
        subscribers: SubscriberRegistry,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            store,
            admin_boundary,
            subscribers,
            shutdown,
        }
    }

    fn to_wire(&self, boundary: &BoundaryName, event: StoredEvent) -> pb::Event {
        redact(boundary, &self.admin_boundary, event).into()
    }

    /// Fails with `FAILED_PRECONDITION` unless the boundary exists.
    async fn require_boundary(&self, boundary: &BoundaryName) -> Result<Position, Status> {
        self.store.head(boundary).await.map_err(status)
    }
}

/// Validates the criteria of a `GetLatestByCriteriaRequest`: at least one, each with at least
/// one tag, each tag with a key.
fn latest_criteria(criteria: Vec<pb::Criterion>) -> Result<Vec<Criterion>, Status> {
    let criteria: Vec<Criterion> = criteria.into_iter().map(Criterion::from).collect();
    rules::validate_criteria(&criteria).map_err(status)?;
    Ok(criteria)
}

type EventResult = Result<pb::Event, Status>;

/// The stream a subscription returns.
pub type SubscriptionStream = Pin<Box<dyn Stream<Item = EventResult> + Send>>;

#[tonic::async_trait]
impl event_store_server::EventStore for EventStoreService {
    async fn save_events(
        &self,
        request: Request<pb::SaveEventsRequest>,
    ) -> Result<Response<pb::WriteResult>, Status> {
        auth::caller(&request)?.require_any(&WRITERS)?;
        let request = request.into_inner();
        let boundary = convert::boundary(&request.boundary)?;
        let events = convert::events_to_save(request.events)?;
        // Nobody forges users or passwords by saving `$`-typed events to the admin boundary.
        guard_save(&boundary, &self.admin_boundary, &events)?;
        let condition = convert::append_condition(request.query);
        if let Some(condition) = &condition {
            condition
                .query
                .validate("query.subsetQuery")
                .map_err(convert::invalid)?;
        }
        // The append runs in its own task: once accepted, a save completes (or fails) whole
        // even if the client disconnects or the server starts shutting down meanwhile.
        let store = self.store.clone();
        let outcome = tokio::spawn(
            // The call's span goes along, so the save's spans belong to the call's trace.
            async move { store.append(&boundary, events, condition).await }.in_current_span(),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "save task failed");
            Status::internal("Internal server error")
        })?
        .map_err(status)?;
        Ok(convert::save_response(outcome))
    }

    async fn get_events(
        &self,
        request: Request<pb::GetEventsRequest>,
    ) -> Result<Response<pb::GetEventsResponse>, Status> {
        auth::caller(&request)?;
        let request = request.into_inner();
        let boundary = convert::boundary(&request.boundary)?;
        let read = convert::read_request(&request)?;
        let events = self.store.read(&boundary, &read).await.map_err(status)?;
        Ok(Response::new(pb::GetEventsResponse {
            events: events
                .into_iter()
                .map(|e| self.to_wire(&boundary, e))
                .collect(),
        }))
    }

    async fn get_latest_by_criteria(
        &self,
        request: Request<pb::GetLatestByCriteriaRequest>,
    ) -> Result<Response<pb::GetLatestByCriteriaResponse>, Status> {
        auth::caller(&request)?;
        let request = request.into_inner();
        let boundary = convert::boundary(&request.boundary)?;
        let criteria = latest_criteria(request.criteria)?;
        let mut latest = self
            .store
            .latest_by_criteria(&boundary, &criteria)
            .await
            .map_err(status)?;
        latest.events = latest
            .events
            .into_iter()
            .map(|e| e.map(|e| redact(&boundary, &self.admin_boundary, e)))
            .collect();
        Ok(Response::new(convert::latest_response(criteria, latest)))
    }

    type CatchUpSubscribeToEventsStream = SubscriptionStream;

    async fn catch_up_subscribe_to_events(
        &self,
        request: Request<pb::CatchUpSubscribeToEventStoreRequest>,
    ) -> Result<Response<Self::CatchUpSubscribeToEventsStream>, Status> {
        auth::caller(&request)?;
        let request = request.into_inner();
        let boundary = convert::boundary(&request.boundary)?;
        subscriptions::validate_name(&request.subscriber_name)?;
        let query = request.query.map(Query::from).unwrap_or_default();
        query.validate("query").map_err(convert::invalid)?;
        // Unset means "from the beginning" (Go Orisun instead replays its newest 100 matching
        // events newest-first, then goes live; see the README).
        let after = request
            .after_position
            .map_or(Position::BEFORE_FIRST, Position::from);
        self.require_boundary(&boundary).await?;
        let lease = self
            .subscribers
            .acquire(
                &boundary,
                &request.subscriber_name,
                subscriptions::ACQUIRE_WAIT,
            )
            .await?;
        tracing::debug!(%boundary, subscriber = %request.subscriber_name, %after, "subscription started");

        let service = self.clone();
        let boundary_name = boundary.clone();
        let progress = lease.progress();
        progress.record(after);
        let events = self.store.subscribe(&boundary, after, query).map(
            move |item: Result<StoredEvent, StoreError>| match item {
                Ok(event) => {
                    progress.record(event.position);
                    Ok(service.to_wire(&boundary, event))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "subscription ended by a storage error");
                    Err(status(e))
                }
            },
        );
        let state = Subscription {
            events: Box::pin(events),
            shutdown: self.shutdown.clone(),
            lease,
            boundary: boundary_name,
            subscriber: request.subscriber_name,
            done: false,
        };
        let stream = futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            tokio::select! {
                biased;
                () = st.shutdown.wait() => {
                    st.done = true;
                    Some((Err(Status::unavailable(SHUTTING_DOWN)), st))
                }
                reason = st.lease.lost() => {
                    // Another stream may own the name now: stop before delivering more.
                    st.done = true;
                    let message = subscriptions::lost_message(&st.boundary, &st.subscriber, &reason);
                    Some((Err(Status::aborted(message)), st))
                }
                item = st.events.next() => match item {
                    // A node resumed after a pause past the lease wakes with this stream and
                    // the lease keeper both runnable: deliver nothing the name may now be
                    // another node's to deliver.
                    Some(Ok(_)) if !st.lease.is_current() => {
                        tracing::warn!(boundary = %st.boundary, subscriber = %st.subscriber, "named stream stopped: its lease may have lapsed");
                        st.done = true;
                        let message = subscriptions::lost_message(
                            &st.boundary,
                            &st.subscriber,
                            "the lease expired before it could be renewed",
                        );
                        Some((Err(Status::aborted(message)), st))
                    }
                    item => item.map(|item| (item, st)),
                },
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn ping(
        &self,
        request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        auth::caller(&request)?;
        Ok(Response::new(pb::PingResponse {}))
    }

    async fn create_index(
        &self,
        request: Request<pb::CreateIndexRequest>,
    ) -> Result<Response<pb::CreateIndexResponse>, Status> {
        indexes::create_index(self.store.as_ref(), &self.admin_boundary, request).await
    }

    async fn drop_index(
        &self,
        request: Request<pb::DropIndexRequest>,
    ) -> Result<Response<pb::DropIndexResponse>, Status> {
        indexes::drop_index(self.store.as_ref(), &self.admin_boundary, request).await
    }
}

struct Subscription {
    events: SubscriptionStream,
    shutdown: Shutdown,
    /// Keeps the subscriber name taken for as long as the stream lives; ends the stream if the
    /// name is lost.
    lease: subscriptions::Lease,
    boundary: BoundaryName,
    subscriber: String,
    done: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn latest_criteria_rules() {
        assert_eq!(
            latest_criteria(vec![]).expect_err("none").message(),
            "criteria: at least one criterion is required"
        );
        let tagless = vec![pb::Criterion { tags: vec![] }];
        assert_eq!(
            latest_criteria(tagless).expect_err("tagless").message(),
            "criteria[0].tags: at least one tag is required"
        );
        let keyless = vec![
            pb::Criterion {
                tags: vec![pb::Tag {
                    key: "a".into(),
                    value: "1".into(),
                }],
            },
            pb::Criterion {
                tags: vec![pb::Tag {
                    key: String::new(),
                    value: "1".into(),
                }],
            },
        ];
        let err = latest_criteria(keyless).expect_err("keyless");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.message(), "criteria[1].tags[0].key: must not be empty");
    }
}
