//! `impl EventStore for OrisunClient`: each method as one call of the `orisun.EventStore` or
//! `orisun.Admin` service, its answer read back with `orisun_proto::client` and its failure
//! with `orisun_proto::status::store_error`, so callers see the errors an in-process store
//! returns.
//!
//! What needs no log access is checked here first, with the very rules the stores apply
//! (`rules::validate_batch`, `ReadRequest::validate`, `rules::validate_criteria`): the answer is
//! the same error, with the same field, without a round trip.

use crate::client::{Kind, OrisunClient};
use crate::subscription;
use async_trait::async_trait;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, Direction, Invalid, NewEvent, Position, Query,
    ReadRequest, StoredEvent,
};
use orisun_proto::{self as pb, client, status, BoundaryLifecycleStatus};
use orisun_store::{rules, AppendOutcome, EventStore, EventStream, LatestByCriteria, StoreError};
use tonic::{Code, Status};

/// A response the server should never have sent.
pub(crate) fn malformed(e: Invalid) -> StoreError {
    StoreError::internal(format!("malformed response from the server: {e}"))
}

fn decode(status: Status) -> StoreError {
    status::store_error(&status)
}

impl OrisunClient {
    /// The server's storage backend (`sqlite`, `postgres`, ...), read once from the placement of
    /// the boundaries it lists (the admin boundary is always among them).
    async fn backend(&self) -> Result<&str, StoreError> {
        self.inner()
            .backend
            .get_or_try_init(|| async {
                let listed = self.list_boundaries().await?;
                listed
                    .boundaries
                    .into_iter()
                    .filter_map(|b| b.placement)
                    .map(|p| p.backend)
                    .find(|backend| !backend.is_empty())
                    .ok_or_else(|| {
                        StoreError::internal("the server lists no boundary with a backend")
                    })
            })
            .await
            .map(String::as_str)
    }

    async fn list_boundaries(&self) -> Result<pb::ListBoundariesResponse, StoreError> {
        self.call("ListBoundaries", &pb::ListBoundariesRequest {}, |r| {
            let mut c = self.admin();
            async move { c.list_boundaries(r).await }
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(decode)
    }

    /// The catalog's definition of `boundary`, `None` when it has none.
    async fn boundary_info(
        &self,
        boundary: &BoundaryName,
    ) -> Result<Option<pb::BoundaryInfo>, StoreError> {
        let request = pb::GetBoundaryRequest {
            name: boundary.to_string(),
        };
        let answer = self
            .call("GetBoundary", &request, |r| {
                let mut c = self.admin();
                async move { c.get_boundary(r).await }
            })
            .await;
        match answer {
            Ok(response) => Ok(response.into_inner().boundary),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(decode(status)),
        }
    }

    /// Waits until a definition made elsewhere (another client, a retried attempt of ours) is
    /// provisioned: `CreateBoundary` answers `ALREADY_EXISTS` for it, whatever its state.
    async fn await_active(&self, boundary: &BoundaryName) -> Result<(), StoreError> {
        let policy = self.retry_policy();
        let mut checks = 0;
        loop {
            checks += 1;
            let info = self.boundary_info(boundary).await?;
            match info.as_ref().map(lifecycle) {
                Some(BoundaryLifecycleStatus::Active) => return Ok(()),
                Some(BoundaryLifecycleStatus::Failed) => {
                    return Err(provisioning_failed(boundary, info.as_ref()))
                }
                _ if policy.allows_retry(checks) => {
                    tokio::time::sleep(policy.backoff(checks)).await;
                }
                _ => {
                    return Err(StoreError::unavailable(format!(
                        "boundary {:?} is still being provisioned",
                        boundary.as_str()
                    )))
                }
            }
        }
    }

    /// Opens one subscription stream (one attempt; the subscription retries).
    pub(crate) async fn open_subscription(
        &self,
        request: &pb::CatchUpSubscribeToEventStoreRequest,
    ) -> Result<tonic::Streaming<pb::Event>, Status> {
        let send = |r| {
            let mut c = self.event_store();
            async move { c.catch_up_subscribe_to_events(r).await }
        };
        self.authenticated(Kind::Stream, request, &send)
            .await
            .map(tonic::Response::into_inner)
    }
}

fn lifecycle(info: &pb::BoundaryInfo) -> BoundaryLifecycleStatus {
    BoundaryLifecycleStatus::try_from(info.status).unwrap_or(BoundaryLifecycleStatus::Unspecified)
}

fn provisioning_failed(boundary: &BoundaryName, info: Option<&pb::BoundaryInfo>) -> StoreError {
    let error = info.map(|i| i.last_error.as_str()).unwrap_or_default();
    StoreError::internal(format!(
        "boundary {:?} could not be provisioned: {error}",
        boundary.as_str()
    ))
}

/// Every method is one retried call, except:
/// - `create_boundary`, which asks the server's backend once (`ListBoundaries`), then calls
///   `CreateBoundary` (namespace = the boundary's name) and treats `ALREADY_EXISTS` as success
///   once the catalog reports the boundary `ACTIVE`;
/// - `head`, which has no RPC of its own: it reads the one newest event (`GetEvents`,
///   descending, count 1);
/// - `subscribe`, a `CatchUpSubscribeToEvents` stream that resumes after a broken connection
///   (see [`crate::subscription`]).
///
/// `create_boundary`, `boundaries` and `count` are `orisun.Admin` calls, which the server allows
/// only to users with role `ADMIN`.
#[async_trait]
impl EventStore for OrisunClient {
    async fn create_boundary(&self, boundary: &BoundaryName) -> Result<(), StoreError> {
        let backend = self.backend().await?;
        let request = client::create_boundary_request(boundary, backend);
        let answer = self
            .call("CreateBoundary", &request, |r| {
                let mut c = self.admin();
                async move { c.create_boundary(r).await }
            })
            .await;
        match answer {
            Ok(response) => {
                let info = response.into_inner().boundary;
                match info.as_ref().map(lifecycle) {
                    Some(BoundaryLifecycleStatus::Active) => Ok(()),
                    Some(BoundaryLifecycleStatus::Failed) => {
                        Err(provisioning_failed(boundary, info.as_ref()))
                    }
                    _ => self.await_active(boundary).await,
                }
            }
            Err(status) if status.code() == Code::AlreadyExists => {
                self.await_active(boundary).await
            }
            Err(status) => Err(decode(status)),
        }
    }

    async fn boundaries(&self) -> Result<Vec<BoundaryName>, StoreError> {
        client::active_boundaries(self.list_boundaries().await?).map_err(malformed)
    }

    async fn append(
        &self,
        boundary: &BoundaryName,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        rules::validate_batch(&events, condition.as_ref())?;
        let request = client::save_request(boundary, &events, condition.as_ref());
        let response = self
            .call("SaveEvents", &request, |r| {
                let mut c = self.event_store();
                async move { c.save_events(r).await }
            })
            .await
            .map_err(decode)?;
        client::append_outcome(response).map_err(malformed)
    }

    async fn read(
        &self,
        boundary: &BoundaryName,
        request: &ReadRequest,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        request.validate()?;
        let wire = client::get_events_request(boundary, request);
        let response = self
            .call("GetEvents", &wire, |r| {
                let mut c = self.event_store();
                async move { c.get_events(r).await }
            })
            .await
            .map_err(decode)?;
        response
            .into_inner()
            .events
            .into_iter()
            .map(client::stored_event)
            .collect::<Result<_, _>>()
            .map_err(malformed)
    }

    async fn latest_by_criteria(
        &self,
        boundary: &BoundaryName,
        criteria: &[Criterion],
    ) -> Result<LatestByCriteria, StoreError> {
        rules::validate_criteria(criteria)?;
        let request = client::latest_request(boundary, criteria);
        let response = self
            .call("GetLatestByCriteria", &request, |r| {
                let mut c = self.event_store();
                async move { c.get_latest_by_criteria(r).await }
            })
            .await
            .map_err(decode)?;
        client::latest_by_criteria(response.into_inner(), criteria.len()).map_err(malformed)
    }

    async fn head(&self, boundary: &BoundaryName) -> Result<Position, StoreError> {
        let newest = ReadRequest::forward(None, 1).with_direction(Direction::Desc);
        let events = self.read(boundary, &newest).await?;
        Ok(events
            .first()
            .map_or(Position::BEFORE_FIRST, |e| e.position))
    }

    async fn count(&self, boundary: &BoundaryName) -> Result<u64, StoreError> {
        let request = pb::GetEventCountRequest {
            boundary: boundary.to_string(),
        };
        let response = self
            .call("GetEventCount", &request, |r| {
                let mut c = self.admin();
                async move { c.get_event_count(r).await }
            })
            .await
            .map_err(decode)?;
        client::event_count(response.into_inner()).map_err(malformed)
    }

    fn subscribe(&self, boundary: &BoundaryName, after: Position, query: Query) -> EventStream {
        subscription::subscribe(self.clone(), boundary.clone(), after, query)
    }
}
