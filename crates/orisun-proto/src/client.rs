//! Conversions a client needs: domain values into wire requests, and wire responses back into
//! domain values. Each request builder is the inverse of the server's parsing in
//! [`crate::convert`], so a value that goes out through one comes back equal through the other.

use crate as pb;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, Direction, Invalid, NewEvent, Position, Query,
    ReadRequest, StoredEvent,
};
use orisun_store::{AppendOutcome, LatestByCriteria};
use uuid::Uuid;

impl From<&NewEvent> for pb::EventToSave {
    fn from(e: &NewEvent) -> Self {
        Self {
            event_id: e.event_id.to_string(),
            event_type: e.event_type.clone(),
            data: e.data_json(),
            metadata: e.metadata_json(),
        }
    }
}

impl From<&AppendCondition> for pb::SaveQuery {
    fn from(c: &AppendCondition) -> Self {
        Self {
            expected_position: Some(c.after.into()),
            subset_query: Some(c.query.clone().into()),
        }
    }
}

impl From<Direction> for pb::Direction {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Asc => pb::Direction::Asc,
            Direction::Desc => pb::Direction::Desc,
        }
    }
}

/// Builds the request that appends `events` to `boundary`, checked against `condition`.
pub fn save_request(
    boundary: &BoundaryName,
    events: &[NewEvent],
    condition: Option<&AppendCondition>,
) -> pb::SaveEventsRequest {
    pb::SaveEventsRequest {
        boundary: boundary.to_string(),
        query: condition.map(pb::SaveQuery::from),
        events: events.iter().map(pb::EventToSave::from).collect(),
    }
}

/// Builds the request that reads one page of `boundary`.
pub fn get_events_request(boundary: &BoundaryName, read: &ReadRequest) -> pb::GetEventsRequest {
    pb::GetEventsRequest {
        query: Some(read.query.clone().into()),
        from_position: read.from.map(pb::Position::from),
        count: read.limit,
        direction: pb::Direction::from(read.direction).into(),
        boundary: boundary.to_string(),
    }
}

/// Builds the request for the latest event matching each of `criteria`.
pub fn latest_request(
    boundary: &BoundaryName,
    criteria: &[Criterion],
) -> pb::GetLatestByCriteriaRequest {
    pb::GetLatestByCriteriaRequest {
        boundary: boundary.to_string(),
        criteria: criteria.iter().cloned().map(pb::Criterion::from).collect(),
    }
}

/// Builds the request that subscribes to `boundary` after `after`. An empty `subscriber_name`
/// asks for an anonymous stream; a name makes the stream exclusive across the cluster.
pub fn subscribe_request(
    boundary: &BoundaryName,
    after: Position,
    query: &Query,
    subscriber_name: &str,
) -> pb::CatchUpSubscribeToEventStoreRequest {
    pb::CatchUpSubscribeToEventStoreRequest {
        after_position: Some(after.into()),
        query: Some(query.clone().into()),
        subscriber_name: subscriber_name.to_owned(),
        boundary: boundary.to_string(),
    }
}

/// The position a save answered with; a response without one is malformed.
pub fn write_result(result: pb::WriteResult) -> Result<Position, Invalid> {
    result
        .log_position
        .map(Position::from)
        .ok_or_else(|| Invalid::new("log_position", "missing from the response"))
}

/// Reads a save's response back into its outcome: the position, and whether the server reported
/// an idempotent retry ([`crate::ALREADY_STORED_HEADER`]; absent means a new append).
pub fn append_outcome(
    response: tonic::Response<pb::WriteResult>,
) -> Result<AppendOutcome, Invalid> {
    let already_stored = response
        .metadata()
        .get(crate::ALREADY_STORED_HEADER)
        .is_some_and(|v| v.as_bytes() == b"true");
    Ok(AppendOutcome {
        position: write_result(response.into_inner())?,
        already_stored,
    })
}

/// Builds the `CreateBoundary` request for `boundary` on the server's `backend` (`sqlite` or
/// `postgres`, which the server insists on), placed in the namespace of the boundary's own name:
/// the only one SQLite accepts, and the schema of that name on PostgreSQL.
pub fn create_boundary_request(
    boundary: &BoundaryName,
    backend: &str,
) -> pb::CreateBoundaryRequest {
    pb::CreateBoundaryRequest {
        name: boundary.to_string(),
        description: String::new(),
        placement: Some(pb::BoundaryPlacementInput {
            backend: backend.to_owned(),
            namespace: boundary.to_string(),
        }),
        existed_before_catalog: false,
    }
}

/// The boundaries of a `ListBoundaries` response that exist: those the catalog reports
/// `ACTIVE` (a definition still provisioning, or whose provisioning failed, has no storage).
pub fn active_boundaries(
    response: pb::ListBoundariesResponse,
) -> Result<Vec<BoundaryName>, Invalid> {
    response
        .boundaries
        .into_iter()
        .filter(|b| b.status == pb::BoundaryLifecycleStatus::Active as i32)
        .map(|b| BoundaryName::new(b.name))
        .collect()
}

/// The count of a `GetEventCount` response; a negative count is malformed.
pub fn event_count(response: pb::GetEventCountResponse) -> Result<u64, Invalid> {
    u64::try_from(response.count)
        .map_err(|_| Invalid::new("count", format!("{} is negative", response.count)))
}

/// Reads an event of a response back into the domain; a malformed event names its field.
pub fn stored_event(e: pb::Event) -> Result<StoredEvent, Invalid> {
    let event_id = Uuid::parse_str(&e.event_id)
        .map_err(|_| Invalid::new("event_id", format!("{:?} is not a UUID", e.event_id)))?;
    let position = e
        .position
        .map(Position::from)
        .ok_or_else(|| Invalid::new("position", "missing from the event"))?;
    let created = e
        .date_created
        .ok_or_else(|| Invalid::new("date_created", "missing from the event"))?;
    let nanos = u32::try_from(created.nanos)
        .map_err(|_| Invalid::new("date_created", "negative nanoseconds"))?;
    let date_created = chrono::DateTime::from_timestamp(created.seconds, nanos)
        .ok_or_else(|| Invalid::new("date_created", "out of range"))?;
    Ok(StoredEvent {
        event_id,
        event_type: e.event_type,
        data: e.data,
        metadata: e.metadata,
        position,
        date_created,
    })
}

/// Reads a latest-by-criteria response back into the domain. The server answers one result per
/// requested criterion, in order; a different count is malformed.
pub fn latest_by_criteria(
    response: pb::GetLatestByCriteriaResponse,
    criteria: usize,
) -> Result<LatestByCriteria, Invalid> {
    if response.results.len() != criteria {
        return Err(Invalid::new(
            "results",
            format!("{} results for {criteria} criteria", response.results.len()),
        ));
    }
    let events = response
        .results
        .into_iter()
        .map(|r| r.event.map(stored_event).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let latest = LatestByCriteria::new(events);
    let sent = response.context_position.map(Position::from);
    match sent {
        Some(p) if p != latest.context_position => Err(Invalid::new(
            "context_position",
            format!(
                "{p} is not the latest result's position {}",
                latest.context_position
            ),
        )),
        _ => Ok(latest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert;
    use orisun_core::Tag;
    use serde_json::json;

    fn event(n: u32) -> NewEvent {
        let serde_json::Value::Object(data) = json!({ "n": n, "account": "a1" }) else {
            unreachable!("object literal")
        };
        let serde_json::Value::Object(meta) = json!({ "by": "test" }) else {
            unreachable!("object literal")
        };
        NewEvent::new(Uuid::now_v7(), "Deposited", data, meta).expect("valid")
    }

    fn query() -> Query {
        Query::new([
            Criterion::new([
                Tag::new("account", "a1"),
                Tag::new("eventType", "Deposited"),
            ]),
            Criterion::new([Tag::new("n", "3")]),
        ])
    }

    #[test]
    fn a_save_parses_back_to_the_same_events_and_condition() {
        let boundary = BoundaryName::new("orders").expect("valid");
        let events = vec![event(1), event(2)];
        let condition = AppendCondition::new(query(), Position::new(7, 6));
        let request = save_request(&boundary, &events, Some(&condition));
        assert_eq!(request.boundary, "orders");
        assert_eq!(
            convert::events_to_save(request.events).expect("valid"),
            events
        );
        assert_eq!(convert::append_condition(request.query), Some(condition));
        let unconditional = save_request(&boundary, &events, None);
        assert_eq!(convert::append_condition(unconditional.query), None);
        // A condition over the whole boundary before anything exists stays one.
        let whole = AppendCondition::new(Query::all(), Position::BEFORE_FIRST);
        let request = save_request(&boundary, &events, Some(&whole));
        assert_eq!(convert::append_condition(request.query), Some(whole));
    }

    #[test]
    fn a_read_parses_back_to_the_same_request() {
        let boundary = BoundaryName::new("orders").expect("valid");
        for read in [
            ReadRequest::forward(None, 10),
            ReadRequest::forward(Some(Position::new(3, 2)), 10_000).with_query(query()),
            ReadRequest::forward(Some(Position::new(9, 9)), 1).with_direction(Direction::Desc),
        ] {
            let wire = get_events_request(&boundary, &read);
            assert_eq!(convert::read_request(&wire).expect("valid"), read);
        }
    }

    #[test]
    fn a_save_response_reads_back_to_the_same_outcome() {
        for already_stored in [false, true] {
            let outcome = AppendOutcome {
                position: Position::new(9, 8),
                already_stored,
            };
            let wire = convert::save_response(outcome);
            assert_eq!(append_outcome(wire).expect("valid"), outcome);
        }
        let empty = tonic::Response::new(pb::WriteResult { log_position: None });
        assert_eq!(
            append_outcome(empty).expect_err("missing").field,
            "log_position"
        );
    }

    #[test]
    fn admin_requests_and_responses() {
        let boundary = BoundaryName::new("orders").expect("valid");
        let request = create_boundary_request(&boundary, "sqlite");
        assert_eq!(request.name, "orders");
        let placement = request.placement.expect("placement");
        assert_eq!(
            (placement.backend.as_str(), placement.namespace.as_str()),
            ("sqlite", "orders")
        );
        let info = |name: &str, status: pb::BoundaryLifecycleStatus| pb::BoundaryInfo {
            name: name.to_owned(),
            status: status as i32,
            ..Default::default()
        };
        let listed = pb::ListBoundariesResponse {
            boundaries: vec![
                info("orders", pb::BoundaryLifecycleStatus::Active),
                info("broken", pb::BoundaryLifecycleStatus::Failed),
                info("coming", pb::BoundaryLifecycleStatus::Provisioning),
                info("payments", pb::BoundaryLifecycleStatus::Active),
            ],
        };
        let names: Vec<String> = active_boundaries(listed)
            .expect("valid")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["orders", "payments"]);
        let bad = pb::ListBoundariesResponse {
            boundaries: vec![info("bad-name", pb::BoundaryLifecycleStatus::Active)],
        };
        assert_eq!(active_boundaries(bad).expect_err("name").field, "boundary");
        assert_eq!(
            event_count(pb::GetEventCountResponse { count: 12 }).expect("valid"),
            12
        );
        assert_eq!(
            event_count(pb::GetEventCountResponse { count: -1 })
                .expect_err("negative")
                .field,
            "count"
        );
    }

    #[test]
    fn responses_read_back_into_the_domain() {
        let stored = StoredEvent {
            event_id: Uuid::now_v7(),
            event_type: "Deposited".into(),
            data: r#"{"n":1,"eventType":"Deposited"}"#.into(),
            metadata: "{}".into(),
            position: Position::new(4, 3),
            date_created: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000)
                .expect("in range"),
        };
        assert_eq!(
            stored_event(pb::Event::from(stored.clone())).expect("valid"),
            stored
        );
        let latest = LatestByCriteria::new(vec![None, Some(stored.clone())]);
        let criteria = query().criteria;
        let wire = convert::latest_response(criteria.clone(), latest.clone());
        assert_eq!(
            latest_by_criteria(wire.clone(), criteria.len()).expect("valid"),
            latest
        );
        assert_eq!(
            latest_by_criteria(wire, 3).expect_err("count").field,
            "results"
        );
        let mut missing = pb::Event::from(stored);
        missing.position = None;
        assert_eq!(
            stored_event(missing).expect_err("position").field,
            "position"
        );
        assert_eq!(
            write_result(pb::WriteResult { log_position: None })
                .expect_err("missing")
                .field,
            "log_position"
        );
    }
}
