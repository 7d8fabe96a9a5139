//! Conversions a server needs: wire requests into validated domain values, and domain answers
//! into wire responses. (The client's direction is in [`crate::client`], errors in
//! [`crate::status`].)

use crate as pb;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, Direction, NewEvent, Position, Query, ReadRequest,
    StoredEvent, Tag,
};
use orisun_store::{AppendOutcome, LatestByCriteria};
use tonic::metadata::MetadataValue;
use tonic::{Response, Status};

pub use crate::status::{invalid, status};

impl From<Position> for pb::Position {
    fn from(p: Position) -> Self {
        Self {
            commit_position: p.commit,
            prepare_position: p.prepare,
        }
    }
}

impl From<pb::Position> for Position {
    fn from(p: pb::Position) -> Self {
        Position::new(p.commit_position, p.prepare_position)
    }
}

impl From<pb::Tag> for Tag {
    fn from(t: pb::Tag) -> Self {
        Tag::new(t.key, t.value)
    }
}

impl From<Tag> for pb::Tag {
    fn from(t: Tag) -> Self {
        Self {
            key: t.key,
            value: t.value,
        }
    }
}

impl From<pb::Criterion> for Criterion {
    fn from(c: pb::Criterion) -> Self {
        Criterion::new(c.tags.into_iter().map(Tag::from))
    }
}

impl From<Criterion> for pb::Criterion {
    fn from(c: Criterion) -> Self {
        Self {
            tags: c.tags.into_iter().map(pb::Tag::from).collect(),
        }
    }
}

impl From<pb::Query> for Query {
    fn from(q: pb::Query) -> Self {
        Query::new(q.criteria.into_iter().map(Criterion::from))
    }
}

impl From<Query> for pb::Query {
    fn from(q: Query) -> Self {
        Self {
            criteria: q.criteria.into_iter().map(pb::Criterion::from).collect(),
        }
    }
}

impl From<StoredEvent> for pb::Event {
    fn from(e: StoredEvent) -> Self {
        Self {
            event_id: e.event_id.to_string(),
            event_type: e.event_type,
            data: e.data,
            metadata: e.metadata,
            position: Some(e.position.into()),
            date_created: Some(timestamp(e.date_created)),
        }
    }
}

/// Converts a UTC time to a protobuf timestamp.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).expect("nanos below 10^9 fit i32"),
    }
}

/// Validates a boundary name from a request.
pub fn boundary(name: &str) -> Result<BoundaryName, Status> {
    BoundaryName::new(name).map_err(invalid)
}

/// Parses the events of a `SaveEventsRequest`.
pub fn events_to_save(events: Vec<pb::EventToSave>) -> Result<Vec<NewEvent>, Status> {
    if events.is_empty() {
        return Err(Status::invalid_argument(
            "Invalid request: no events provided",
        ));
    }
    events
        .iter()
        .enumerate()
        .map(|(i, e)| NewEvent::from_wire(i, &e.event_id, &e.event_type, &e.data, &e.metadata))
        .collect::<Result<_, _>>()
        .map_err(invalid)
}

/// Turns a `SaveQuery` into an append condition, with Go Orisun's rules: no `query` or no
/// `subsetQuery` means no check (even with an expected position); an unset expected position
/// means `{-1,-1}`; a `subsetQuery` without criteria checks the whole boundary.
pub fn append_condition(query: Option<pb::SaveQuery>) -> Option<AppendCondition> {
    let query = query?;
    let subset = query.subset_query?;
    Some(AppendCondition::new(
        subset.into(),
        query
            .expected_position
            .map_or(Position::BEFORE_FIRST, Position::from),
    ))
}

/// Turns a `GetEventsRequest` into a validated read request.
pub fn read_request(request: &pb::GetEventsRequest) -> Result<ReadRequest, Status> {
    if request.count == 0 {
        return Err(Status::invalid_argument("Count cannot be 0"));
    }
    let direction = match pb::Direction::try_from(request.direction) {
        Ok(pb::Direction::Asc) => Direction::Asc,
        Ok(pb::Direction::Desc) => Direction::Desc,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "direction: unknown value {}",
                request.direction
            )))
        }
    };
    let read = ReadRequest {
        query: request.query.clone().map(Query::from).unwrap_or_default(),
        from: request.from_position.map(Position::from),
        direction,
        limit: request.count,
    };
    read.validate().map_err(invalid)?;
    Ok(read)
}

/// Builds the response of a successful save: the position, and [`crate::ALREADY_STORED_HEADER`]
/// when the save was an idempotent retry.
pub fn save_response(outcome: AppendOutcome) -> Response<pb::WriteResult> {
    let mut response = Response::new(pb::WriteResult {
        log_position: Some(outcome.position.into()),
    });
    if outcome.already_stored {
        response.metadata_mut().insert(
            crate::ALREADY_STORED_HEADER,
            MetadataValue::from_static("true"),
        );
    }
    response
}

/// Builds a `GetLatestByCriteriaResponse`, echoing each criterion.
pub fn latest_response(
    criteria: Vec<Criterion>,
    latest: LatestByCriteria,
) -> pb::GetLatestByCriteriaResponse {
    pb::GetLatestByCriteriaResponse {
        results: criteria
            .into_iter()
            .zip(latest.events)
            .map(|(criterion, event)| pb::LatestCriterionResult {
                criterion: Some(criterion.into()),
                event: event.map(pb::Event::from),
            })
            .collect(),
        context_position: Some(latest.context_position.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn save_query_rules() {
        assert_eq!(append_condition(None), None);
        let no_subset = pb::SaveQuery {
            expected_position: Some(pb::Position {
                commit_position: 3,
                prepare_position: 2,
            }),
            subset_query: None,
        };
        assert_eq!(append_condition(Some(no_subset)), None);
        let subset = pb::SaveQuery {
            expected_position: None,
            subset_query: Some(pb::Query { criteria: vec![] }),
        };
        let c = append_condition(Some(subset)).expect("condition");
        assert_eq!(c.after, Position::BEFORE_FIRST);
        assert!(c.query.matches_all());
    }

    #[test]
    fn count_bounds() {
        let mut r = pb::GetEventsRequest {
            count: 0,
            ..Default::default()
        };
        assert_eq!(
            read_request(&r).expect_err("0").message(),
            "Count cannot be 0"
        );
        r.count = 10_001;
        assert_eq!(
            read_request(&r).expect_err("big").code(),
            Code::InvalidArgument
        );
        r.count = 10_000;
        assert!(read_request(&r).is_ok());
        r.direction = 7;
        assert_eq!(
            read_request(&r).expect_err("dir").code(),
            Code::InvalidArgument
        );
    }
}
