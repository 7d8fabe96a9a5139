//! The boundaries page's API: the boundary catalog (list, create) and index definitions
//! (list, create, drop), through the same code as the gRPC Admin and EventStore services.

use super::csrf::Change;
use super::events::boundary;
use super::session::Session;
use super::DashboardError;
use crate::indexes;
use axum::extract::{Path, Query as QueryParams};
use axum::Json;
use orisun_core::Invalid;
use orisun_proto as pb;
use orisun_proto::admin_server::Admin;
use serde::Deserialize;
use serde_json::{json, Value};

fn boundary_json(b: &pb::BoundaryInfo) -> Value {
    let status = pb::BoundaryLifecycleStatus::try_from(b.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("BOUNDARY_LIFECYCLE_STATUS_")
                .to_owned()
        })
        .unwrap_or_else(|_| b.status.to_string());
    let placement = b.placement.clone().unwrap_or_default();
    json!({
        "name": b.name,
        "description": b.description,
        "status": status,
        "backend": placement.backend,
        "namespace": placement.namespace,
        "last_error": b.last_error,
    })
}

/// `GET /api/boundaries`: the catalog's definitions, by name.
pub async fn boundaries(session: Session) -> Result<Json<Value>, DashboardError> {
    let list = session.dash.admin.boundaries().await?;
    Ok(Json(json!({
        "backend": session.dash.backend,
        "boundaries": list.iter().map(boundary_json).collect::<Vec<_>>(),
    })))
}

/// A boundary to create.
#[derive(Debug, Deserialize)]
pub struct CreateBoundary {
    /// Its name (an identifier).
    pub name: String,
    /// What it holds.
    #[serde(default)]
    pub description: String,
    /// Its placement namespace (the PostgreSQL schema); defaults to the server's choice for
    /// the running backend.
    #[serde(default)]
    pub namespace: String,
}

/// `POST /api/boundaries` (ADMIN): defines and provisions a boundary on the running backend.
pub async fn create_boundary(
    Change(session): Change,
    Json(form): Json<CreateBoundary>,
) -> Result<Json<Value>, DashboardError> {
    session.require_admin()?;
    let dash = &session.dash;
    let namespace = if !form.namespace.trim().is_empty() {
        form.namespace.trim().to_owned()
    } else if dash.backend == "postgres" {
        crate::backend::DEFAULT_PG_SCHEMA.to_owned()
    } else {
        form.name.clone()
    };
    let mut request = tonic::Request::new(pb::CreateBoundaryRequest {
        name: form.name,
        description: form.description,
        placement: Some(pb::BoundaryPlacementInput {
            backend: dash.backend.clone(),
            namespace,
        }),
        existed_before_catalog: false,
    });
    request.extensions_mut().insert(session.caller.clone());
    let created = dash.admin.create_boundary(request).await?.into_inner();
    let info = created.boundary.unwrap_or_default();
    Ok(Json(boundary_json(&info)))
}

/// Which index definitions to list.
#[derive(Debug, Deserialize, Default)]
pub struct IndexParams {
    /// Only this boundary's.
    #[serde(default)]
    pub boundary: Option<String>,
}

/// `GET /api/indexes`: the live index definitions.
pub async fn indexes(
    session: Session,
    QueryParams(params): QueryParams<IndexParams>,
) -> Result<Json<Value>, DashboardError> {
    let only = params
        .boundary
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(boundary)
        .transpose()?;
    let dash = &session.dash;
    let list = indexes::list(
        dash.store.as_ref(),
        dash.auth.admin_boundary(),
        only.as_ref(),
    )
    .await?;
    let list: Vec<Value> = list
        .iter()
        .map(|i| {
            json!({
                "boundary": i.boundary.as_str(),
                "name": i.name,
                "definition": i.definition,
            })
        })
        .collect();
    Ok(Json(json!({"indexes": list})))
}

/// One indexed field: `key` and its value type (`TEXT`, `NUMERIC`, `BOOLEAN`, `TIMESTAMPTZ`).
#[derive(Debug, Deserialize)]
pub struct IndexField {
    /// The JSON key.
    pub key: String,
    /// The value type's wire name.
    #[serde(default = "text_type")]
    pub value_type: String,
}

fn text_type() -> String {
    "TEXT".to_owned()
}

/// A partial-index condition.
#[derive(Debug, Deserialize)]
pub struct IndexCondition {
    /// The JSON key.
    pub key: String,
    /// One of [`indexes::OPERATORS`].
    pub operator: String,
    /// The value compared with.
    pub value: String,
}

/// An index to create.
#[derive(Debug, Deserialize)]
pub struct CreateIndex {
    /// The boundary.
    pub boundary: String,
    /// The index name.
    pub name: String,
    /// The indexed fields.
    #[serde(default)]
    pub fields: Vec<IndexField>,
    /// Conditions of a partial index.
    #[serde(default)]
    pub conditions: Vec<IndexCondition>,
    /// `AND` or `OR`.
    #[serde(default)]
    pub combinator: Option<String>,
}

/// Converts the form into the wire request, naming a bad value type or combinator.
fn index_request(form: CreateIndex) -> Result<pb::CreateIndexRequest, Invalid> {
    let mut fields = Vec::with_capacity(form.fields.len());
    for (i, f) in form.fields.into_iter().enumerate() {
        let value_type = pb::ValueType::from_str_name(&f.value_type).ok_or_else(|| {
            Invalid::new(
                format!("fields[{i}].value_type"),
                format!(
                    "{:?} is not TEXT, NUMERIC, BOOLEAN or TIMESTAMPTZ",
                    f.value_type
                ),
            )
        })?;
        fields.push(pb::IndexField {
            json_key: f.key,
            value_type: value_type as i32,
        });
    }
    let combinator = form.combinator.as_deref().unwrap_or("AND");
    let combinator = pb::ConditionCombinator::from_str_name(combinator)
        .ok_or_else(|| Invalid::new("combinator", format!("{combinator:?} is not AND or OR")))?;
    Ok(pb::CreateIndexRequest {
        boundary: form.boundary,
        name: form.name,
        fields,
        conditions: form
            .conditions
            .into_iter()
            .map(|c| pb::IndexCondition {
                key: c.key,
                operator: c.operator,
                value: c.value,
            })
            .collect(),
        condition_combinator: combinator as i32,
    })
}

/// Fails with the store's unknown-boundary error when `b` does not exist.
async fn require_boundary(
    dash: &super::Dashboard,
    b: &orisun_core::BoundaryName,
) -> Result<(), DashboardError> {
    if dash.store.boundaries().await?.contains(b) {
        Ok(())
    } else {
        Err(orisun_store::StoreError::UnknownBoundary {
            name: b.as_str().to_owned(),
        }
        .into())
    }
}

/// `POST /api/indexes` (ADMIN): records an index definition (idempotent).
pub async fn create_index(
    Change(session): Change,
    Json(form): Json<CreateIndex>,
) -> Result<Json<Value>, DashboardError> {
    session.require_admin()?;
    let b = boundary(&form.boundary)?;
    let request = index_request(form)?;
    let index = indexes::validate_create(b, &request)?;
    let dash = &session.dash;
    require_boundary(dash, &index.boundary).await?;
    let recorded = indexes::record_create(
        dash.store.as_ref(),
        dash.auth.admin_boundary(),
        &index,
        &session.caller.user_id,
    )
    .await?;
    Ok(Json(json!({"created": recorded})))
}

/// `DELETE /api/indexes/{boundary}/{name}` (ADMIN): records an index's drop (idempotent).
pub async fn drop_index(
    Change(session): Change,
    Path((name, index)): Path<(String, String)>,
) -> Result<Json<Value>, DashboardError> {
    session.require_admin()?;
    let b = boundary(&name)?;
    let index = indexes::validate_name(&index)?;
    let dash = &session.dash;
    require_boundary(dash, &b).await?;
    let recorded = indexes::record_drop(
        dash.store.as_ref(),
        dash.auth.admin_boundary(),
        &b,
        &index,
        &session.caller.user_id,
    )
    .await?;
    Ok(Json(json!({"dropped": recorded})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_forms_name_bad_values() {
        let form = |value_type: &str, combinator: Option<&str>| CreateIndex {
            boundary: "orders".into(),
            name: "by_amount".into(),
            fields: vec![IndexField {
                key: "amount".into(),
                value_type: value_type.into(),
            }],
            conditions: vec![],
            combinator: combinator.map(str::to_owned),
        };
        let ok = index_request(form("NUMERIC", Some("OR"))).expect("valid");
        assert_eq!(ok.fields[0].value_type, pb::ValueType::Numeric as i32);
        assert_eq!(ok.condition_combinator, pb::ConditionCombinator::Or as i32);
        assert_eq!(
            index_request(form("numeric", None))
                .expect_err("case")
                .field,
            "fields[0].value_type"
        );
        assert_eq!(
            index_request(form("TEXT", Some("XOR")))
                .expect_err("combinator")
                .field,
            "combinator"
        );
    }
}
