//! `CreateIndex` / `DropIndex`: validated, then recorded as events of the admin boundary.
//!
//! Go Orisun runs `CREATE INDEX CONCURRENTLY` on a JSON expression so that criteria stop scanning
//! the boundary. Our backends keep a tag index (`key=value` -> positions) for every top-level
//! scalar field of every event, so criteria and consistency checks are O(log n) without any
//! explicit index. The two RPCs are therefore kept for compatibility: the request is validated
//! exactly (nothing reaches SQL), the boundary must exist, and the definition is recorded as a
//! `$IndexCreated` / `$IndexDropped` event in the admin boundary (durable, visible to operators,
//! ready for backends that may want to use it). Like Go's `IF NOT EXISTS` / `IF EXISTS`, creating
//! an existing index or dropping a missing one succeeds without change.
//!
//! [`create_index`] and [`drop_index`] are the whole RPCs, shared by `orisun.EventStore` (where
//! today's clients call them) and `orisun.Admin` (where Go Orisun served them from 2026-02-27 to
//! 2026-05-29), so both answer alike.

use crate::auth::{self, Role};
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, Invalid, JsonObject, NewEvent, Query, Tag,
};
use orisun_proto::{self as pb, convert};
use orisun_store::{EventStore, StoreError};
use serde_json::{json, Value};
use uuid::Uuid;

/// Type of the event recording a created index.
pub const INDEX_CREATED: &str = "$IndexCreated";
/// Type of the event recording a dropped index.
pub const INDEX_DROPPED: &str = "$IndexDropped";

/// Comparison operators a partial-index condition may use (Go Orisun's set).
pub const OPERATORS: [&str; 5] = ["=", ">", "<", ">=", "<="];

/// How many times a record is retried when a concurrent change to the same index wins.
const ATTEMPTS: usize = 5;

/// The `CreateIndex` RPC: role `ADMIN`, a valid request, an existing boundary; records the
/// index in `admin_boundary`.
pub async fn create_index(
    store: &dyn EventStore,
    admin_boundary: &BoundaryName,
    request: tonic::Request<pb::CreateIndexRequest>,
) -> Result<tonic::Response<pb::CreateIndexResponse>, tonic::Status> {
    let caller = auth::caller(&request)?;
    caller.require_any(&[Role::Admin])?;
    let request = request.into_inner();
    let boundary = convert::boundary(&request.boundary)?;
    let index = validate_create(boundary, &request).map_err(convert::invalid)?;
    store.head(&index.boundary).await.map_err(convert::status)?;
    let recorded = record_create(store, admin_boundary, &index, &caller.user_id)
        .await
        .map_err(convert::status)?;
    tracing::info!(boundary = %index.boundary, name = %index.name, recorded, "index created");
    Ok(tonic::Response::new(pb::CreateIndexResponse {}))
}

/// The `DropIndex` RPC: role `ADMIN`, a valid name, an existing boundary; records the drop in
/// `admin_boundary`.
pub async fn drop_index(
    store: &dyn EventStore,
    admin_boundary: &BoundaryName,
    request: tonic::Request<pb::DropIndexRequest>,
) -> Result<tonic::Response<pb::DropIndexResponse>, tonic::Status> {
    let caller = auth::caller(&request)?;
    caller.require_any(&[Role::Admin])?;
    let request = request.into_inner();
    let boundary = convert::boundary(&request.boundary)?;
    let name = validate_name(&request.name).map_err(convert::invalid)?;
    store.head(&boundary).await.map_err(convert::status)?;
    let recorded = record_drop(store, admin_boundary, &boundary, &name, &caller.user_id)
        .await
        .map_err(convert::status)?;
    tracing::info!(%boundary, %name, recorded, "index dropped");
    Ok(tonic::Response::new(pb::DropIndexResponse {}))
}

/// A validated `CreateIndexRequest`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDefinition {
    /// The boundary the index is for.
    pub boundary: BoundaryName,
    /// The index name (an identifier).
    pub name: String,
    /// The definition as recorded (JSON object with fields, conditions and combinator).
    pub definition: JsonObject,
}

/// Validates an index name with the identifier rule of boundaries (`[A-Za-z_][A-Za-z0-9_]*`,
/// at most 63 characters), reporting it as field `name`.
pub fn validate_name(name: &str) -> Result<String, Invalid> {
    BoundaryName::new(name)
        .map(|n| n.as_str().to_owned())
        .map_err(|e| Invalid::new("name", e.reason))
}

/// Validates a `CreateIndexRequest` (the boundary name is validated by the caller).
pub fn validate_create(
    boundary: BoundaryName,
    request: &pb::CreateIndexRequest,
) -> Result<IndexDefinition, Invalid> {
    let name = validate_name(&request.name)?;
    if request.fields.is_empty() {
        return Err(Invalid::new("fields", "at least one field is required"));
    }
    let mut fields = Vec::with_capacity(request.fields.len());
    for (i, field) in request.fields.iter().enumerate() {
        if field.json_key.is_empty() {
            return Err(Invalid::new(
                format!("fields[{i}].json_key"),
                "must not be empty",
            ));
        }
        let value_type = pb::ValueType::try_from(field.value_type).map_err(|_| {
            Invalid::new(
                format!("fields[{i}].value_type"),
                format!("unknown value {}", field.value_type),
            )
        })?;
        fields.push(json!({"jsonKey": field.json_key, "valueType": value_type.as_str_name()}));
    }
    let mut conditions = Vec::with_capacity(request.conditions.len());
    for (i, condition) in request.conditions.iter().enumerate() {
        if condition.key.is_empty() {
            return Err(Invalid::new(
                format!("conditions[{i}].key"),
                "must not be empty",
            ));
        }
        if !OPERATORS.contains(&condition.operator.as_str()) {
            return Err(Invalid::new(
                format!("conditions[{i}].operator"),
                format!(
                    "{:?} is not one of {}",
                    condition.operator,
                    OPERATORS.join(" ")
                ),
            ));
        }
        conditions.push(json!({
            "key": condition.key,
            "operator": condition.operator,
            "value": condition.value,
        }));
    }
    let combinator =
        pb::ConditionCombinator::try_from(request.condition_combinator).map_err(|_| {
            Invalid::new(
                "condition_combinator",
                format!("unknown value {}", request.condition_combinator),
            )
        })?;
    let mut definition = JsonObject::new();
    definition.insert("fields".into(), Value::Array(fields));
    definition.insert("conditions".into(), Value::Array(conditions));
    definition.insert(
        "conditionCombinator".into(),
        Value::String(combinator.as_str_name().to_owned()),
    );
    Ok(IndexDefinition {
        boundary,
        name,
        definition,
    })
}

/// The criteria that find the records of one index: [created, dropped].
fn record_criteria(boundary: &BoundaryName, name: &str) -> Vec<Criterion> {
    [INDEX_CREATED, INDEX_DROPPED]
        .into_iter()
        .map(|event_type| {
            Criterion::new([
                Tag::new("eventType", event_type),
                Tag::new("boundary", boundary.as_str()),
                Tag::new("name", name),
            ])
        })
        .collect()
}

/// Records a created index unless it exists. Returns true when a record was appended.
pub async fn record_create(
    store: &dyn EventStore,
    admin_boundary: &BoundaryName,
    index: &IndexDefinition,
    created_by: &str,
) -> Result<bool, StoreError> {
    let mut data = index.definition.clone();
    data.insert("boundary".into(), Value::String(index.boundary.to_string()));
    data.insert("name".into(), Value::String(index.name.clone()));
    record(
        store,
        admin_boundary,
        &index.boundary,
        &index.name,
        true,
        data,
        created_by,
    )
    .await
}

/// Records a dropped index if it exists. Returns true when a record was appended.
pub async fn record_drop(
    store: &dyn EventStore,
    admin_boundary: &BoundaryName,
    boundary: &BoundaryName,
    name: &str,
    dropped_by: &str,
) -> Result<bool, StoreError> {
    let mut data = JsonObject::new();
    data.insert("boundary".into(), Value::String(boundary.to_string()));
    data.insert("name".into(), Value::String(name.to_owned()));
    record(
        store,
        admin_boundary,
        boundary,
        name,
        false,
        data,
        dropped_by,
    )
    .await
}

async fn record(
    store: &dyn EventStore,
    admin_boundary: &BoundaryName,
    boundary: &BoundaryName,
    name: &str,
    create: bool,
    data: JsonObject,
    user_id: &str,
) -> Result<bool, StoreError> {
    let criteria = record_criteria(boundary, name);
    let event_type = if create { INDEX_CREATED } else { INDEX_DROPPED };
    let mut metadata = JsonObject::new();
    metadata.insert("createdBy".into(), Value::String(user_id.to_owned()));
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let latest = store.latest_by_criteria(admin_boundary, &criteria).await?;
        let created = latest.events.first().and_then(|e| e.as_ref());
        let dropped = latest.events.get(1).and_then(|e| e.as_ref());
        let exists = match (created, dropped) {
            (Some(c), Some(d)) => c.position > d.position,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if exists == create {
            return Ok(false);
        }
        let event = NewEvent::new(Uuid::now_v7(), event_type, data.clone(), metadata.clone())?;
        // The condition makes a concurrent create/drop of the same index lose and re-decide.
        let condition = AppendCondition::new(Query::new(criteria.clone()), latest.context_position);
        match store
            .append(admin_boundary, vec![event], Some(condition))
            .await
        {
            Ok(_) => return Ok(true),
            Err(e @ StoreError::ConditionFailed { .. }) => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| StoreError::internal("index record retries exhausted")))
}

/// Lists the live index definitions (created and not dropped since), by boundary and name,
/// from their records in the admin boundary. `boundary` narrows the list to one boundary.
pub async fn list(
    store: &dyn EventStore,
    admin_boundary: &BoundaryName,
    boundary: Option<&BoundaryName>,
) -> Result<Vec<IndexDefinition>, StoreError> {
    let criteria = [INDEX_CREATED, INDEX_DROPPED].map(|event_type| {
        let mut tags = vec![Tag::new("eventType", event_type)];
        if let Some(b) = boundary {
            tags.push(Tag::new("boundary", b.as_str()));
        }
        Criterion::new(tags)
    });
    let query = Query::new(criteria);
    let mut live = std::collections::BTreeMap::new();
    let mut from = None;
    loop {
        let request = orisun_core::ReadRequest::forward(from, PAGE).with_query(query.clone());
        let page = store.read(admin_boundary, &request).await?;
        for event in &page {
            let Some(mut data) = crate::admin_boundary::events::parse(&event.data) else {
                continue;
            };
            let text = |data: &JsonObject, key: &str| {
                data.get(key).and_then(Value::as_str).map(str::to_owned)
            };
            let (Some(b), Some(name)) = (text(&data, "boundary"), text(&data, "name")) else {
                continue;
            };
            let Ok(b) = BoundaryName::new(b) else {
                continue;
            };
            if event.event_type == INDEX_CREATED {
                for key in ["boundary", "name", "eventType"] {
                    data.remove(key);
                }
                let definition = IndexDefinition {
                    boundary: b.clone(),
                    name: name.clone(),
                    definition: data,
                };
                live.insert((b, name), definition);
            } else {
                live.remove(&(b, name));
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => {
                from = Some(orisun_core::Position::new(
                    last.position.commit,
                    last.position.prepare.saturating_add(1),
                ));
            }
            _ => return Ok(live.into_values().collect()),
        }
    }
}

/// Page size of [`list`]'s reads.
const PAGE: u32 = 1_000;

#[cfg(test)]
mod tests {
    use super::*;
    use orisun_store::MemoryStore;

    fn request() -> pb::CreateIndexRequest {
        pb::CreateIndexRequest {
            boundary: "orders".into(),
            name: "placed_amount".into(),
            fields: vec![pb::IndexField {
                json_key: "amount".into(),
                value_type: pb::ValueType::Numeric as i32,
            }],
            conditions: vec![pb::IndexCondition {
                key: "eventType".into(),
                operator: "=".into(),
                value: "OrderPlaced".into(),
            }],
            condition_combinator: pb::ConditionCombinator::And as i32,
        }
    }

    fn orders() -> BoundaryName {
        BoundaryName::new("orders").expect("valid")
    }

    #[test]
    fn rejects_each_bad_part() {
        type Mutation = Box<dyn Fn(&mut pb::CreateIndexRequest)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|r| r.name = "x; DROP TABLE y".into()), "name"),
            (Box::new(|r| r.name = String::new()), "name"),
            (Box::new(|r| r.fields.clear()), "fields"),
            (
                Box::new(|r| r.fields[0].json_key.clear()),
                "fields[0].json_key",
            ),
            (
                Box::new(|r| r.fields[0].value_type = 9),
                "fields[0].value_type",
            ),
            (
                Box::new(|r| r.conditions[0].key.clear()),
                "conditions[0].key",
            ),
            (
                Box::new(|r| r.conditions[0].operator = "!=".into()),
                "conditions[0].operator",
            ),
            (
                Box::new(|r| r.condition_combinator = 2),
                "condition_combinator",
            ),
        ];
        for (mutate, field) in cases {
            let mut r = request();
            mutate(&mut r);
            let err = validate_create(orders(), &r).expect_err(field);
            assert_eq!(err.field, field);
        }
        assert!(validate_create(orders(), &request()).is_ok());
    }

    #[tokio::test]
    async fn records_are_idempotent() {
        let store = MemoryStore::new();
        let admin = BoundaryName::new("orisun_admin").expect("valid");
        store.create_boundary(&admin).await.expect("created");
        let index = validate_create(orders(), &request()).expect("valid");
        assert!(record_create(&store, &admin, &index, "u")
            .await
            .expect("ok"));
        assert!(!record_create(&store, &admin, &index, "u")
            .await
            .expect("ok"));
        assert!(record_drop(&store, &admin, &orders(), &index.name, "u")
            .await
            .expect("ok"));
        assert!(!record_drop(&store, &admin, &orders(), &index.name, "u")
            .await
            .expect("ok"));
        assert!(record_create(&store, &admin, &index, "u")
            .await
            .expect("ok"));
        assert_eq!(store.count(&admin).await.expect("count"), 3);
    }

    #[tokio::test]
    async fn lists_live_definitions() {
        let store = MemoryStore::new();
        let admin = BoundaryName::new("orisun_admin").expect("valid");
        store.create_boundary(&admin).await.expect("created");
        let index = validate_create(orders(), &request()).expect("valid");
        let mut other = request();
        other.name = "second".into();
        let other = validate_create(orders(), &other).expect("valid");
        assert!(list(&store, &admin, None).await.expect("list").is_empty());
        record_create(&store, &admin, &index, "u")
            .await
            .expect("ok");
        record_create(&store, &admin, &other, "u")
            .await
            .expect("ok");
        record_drop(&store, &admin, &orders(), "second", "u")
            .await
            .expect("ok");
        let listed = list(&store, &admin, Some(&orders())).await.expect("list");
        assert_eq!(listed, vec![index.clone()]);
        let payments = BoundaryName::new("payments").expect("valid");
        assert!(list(&store, &admin, Some(&payments))
            .await
            .expect("list")
            .is_empty());
    }
}
