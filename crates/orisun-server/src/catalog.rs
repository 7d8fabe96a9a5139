//! The boundary catalog: lifecycle events in the admin boundary and synchronous provisioning.
//!
//! A definition is a `$BoundaryCreated` event `{boundary, description, placement: {backend,
//! namespace}, existedBeforeCatalog}`; its status follows from the later `$BoundaryActivated`
//! `{boundary}` and `$BoundaryProvisioningFailed` `{boundary, error}` events (the last one wins).
//! Unlike Go Orisun, which provisions asynchronously through a singleton controller,
//! `CreateBoundary` provisions before it answers, so a boundary it reports ACTIVE is usable at
//! once, without a restart.

use crate::admin_boundary::events::{
    self, of_type, of_type_with, system_event, BOUNDARY, BOUNDARY_ACTIVATED, BOUNDARY_CREATED,
    BOUNDARY_PROVISIONING_FAILED,
};
use async_trait::async_trait;
use orisun_core::{
    AppendCondition, BoundaryName, Invalid, Position, Query, ReadRequest, StoredEvent,
};
use orisun_proto::{self as pb, convert, BoundaryLifecycleStatus};
use orisun_store::{EventStore, StoreError};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::Status;

/// Page size of catalog reads.
const PAGE: u32 = 1_000;

/// Creates the storage of a boundary. The PostgreSQL backend maps a boundary to a schema named
/// by the placement's namespace; other backends ignore the namespace.
#[async_trait]
pub trait Provisioner: Send + Sync + 'static {
    /// Creates the boundary's storage if it does not exist. Must be idempotent.
    async fn provision(&self, name: &BoundaryName, namespace: &str) -> Result<(), StoreError>;
}

/// The default provisioner: [`EventStore::create_boundary`], ignoring the namespace.
pub struct StoreProvisioner(pub Arc<dyn EventStore>);

#[async_trait]
impl Provisioner for StoreProvisioner {
    async fn provision(&self, name: &BoundaryName, _namespace: &str) -> Result<(), StoreError> {
        self.0.create_boundary(name).await
    }
}

/// A boundary the server created at start-up from its configuration, registered in the catalog
/// as a definition with `existed_before_catalog = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupBoundary {
    /// The boundary.
    pub name: BoundaryName,
    /// Free text shown by ListBoundaries.
    pub description: String,
    /// Where it lives: the PostgreSQL schema, or the boundary name for SQLite.
    pub namespace: String,
}

impl StartupBoundary {
    /// A boundary whose namespace is its own name.
    pub fn new(name: BoundaryName, description: impl Into<String>) -> Self {
        Self {
            namespace: name.as_str().to_owned(),
            name,
            description: description.into(),
        }
    }

    /// Sets the namespace (the PostgreSQL schema).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }
}

/// The catalog over one store.
pub(crate) struct Catalog {
    pub store: Arc<dyn EventStore>,
    pub admin_boundary: BoundaryName,
    pub backend: String,
    pub provisioner: Arc<dyn Provisioner>,
}

fn status_of(info: &pb::BoundaryInfo) -> BoundaryLifecycleStatus {
    BoundaryLifecycleStatus::try_from(info.status).unwrap_or(BoundaryLifecycleStatus::Unspecified)
}

/// Folds lifecycle events (in log order) into definitions by name.
pub(crate) fn fold(events: &[StoredEvent]) -> BTreeMap<String, pb::BoundaryInfo> {
    let mut out: BTreeMap<String, pb::BoundaryInfo> = BTreeMap::new();
    for event in events {
        let Some(data) = events::parse(&event.data) else {
            continue;
        };
        let Some(name) = events::text(&data, BOUNDARY) else {
            continue;
        };
        let position = Some(pb::Position::from(event.position));
        match event.event_type.as_str() {
            BOUNDARY_CREATED => {
                if out.contains_key(name) {
                    continue; // the first definition wins (appends are conditioned on it)
                }
                let placement = data.get("placement").and_then(Value::as_object);
                let field = |k: &str| {
                    placement
                        .and_then(|p| p.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                out.insert(
                    name.to_owned(),
                    pb::BoundaryInfo {
                        name: name.to_owned(),
                        description: events::text(&data, "description")
                            .unwrap_or_default()
                            .to_owned(),
                        placement: Some(pb::BoundaryPlacementInput {
                            backend: field("backend"),
                            namespace: field("namespace"),
                        }),
                        status: BoundaryLifecycleStatus::Provisioning as i32,
                        existed_before_catalog: data
                            .get("existedBeforeCatalog")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        last_error: String::new(),
                        definition_position: position,
                        status_position: position,
                    },
                );
            }
            BOUNDARY_ACTIVATED => {
                if let Some(info) = out.get_mut(name) {
                    info.status = BoundaryLifecycleStatus::Active as i32;
                    info.last_error.clear();
                    info.status_position = position;
                }
            }
            BOUNDARY_PROVISIONING_FAILED => {
                if let Some(info) = out.get_mut(name) {
                    info.status = BoundaryLifecycleStatus::Failed as i32;
                    info.last_error = events::text(&data, "error").unwrap_or_default().to_owned();
                    info.status_position = position;
                }
            }
            _ => {}
        }
    }
    out
}

impl Catalog {
    fn lifecycle_query(name: Option<&str>) -> Query {
        let types = [
            BOUNDARY_CREATED,
            BOUNDARY_ACTIVATED,
            BOUNDARY_PROVISIONING_FAILED,
        ];
        Query::new(types.into_iter().map(|t| match name {
            Some(name) => of_type_with(t, BOUNDARY, name),
            None => of_type(t),
        }))
    }

    async fn read_lifecycle(&self, name: Option<&str>) -> Result<Vec<StoredEvent>, StoreError> {
        let query = Self::lifecycle_query(name);
        let mut all = Vec::new();
        let mut from = None;
        loop {
            let request = ReadRequest::forward(from, PAGE).with_query(query.clone());
            let page = self.store.read(&self.admin_boundary, &request).await?;
            let full = page.len() == PAGE as usize;
            if let Some(last) = page.last() {
                from = Some(Position::new(
                    last.position.commit,
                    last.position.prepare.saturating_add(1),
                ));
            }
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Every definition, by name.
    pub async fn list(&self) -> Result<Vec<pb::BoundaryInfo>, Status> {
        let events = self.read_lifecycle(None).await.map_err(convert::status)?;
        Ok(fold(&events).into_values().collect())
    }

    /// One definition, `NOT_FOUND` when there is none.
    pub async fn get(&self, name: &BoundaryName) -> Result<pb::BoundaryInfo, Status> {
        let events = self
            .read_lifecycle(Some(name.as_str()))
            .await
            .map_err(convert::status)?;
        fold(&events)
            .remove(name.as_str())
            .ok_or_else(|| Status::not_found(format!("boundary {:?} not found", name.as_str())))
    }

    /// Checks a placement against the running backend.
    fn check_placement(
        &self,
        name: &BoundaryName,
        placement: Option<&pb::BoundaryPlacementInput>,
    ) -> Result<(), Invalid> {
        let placement = placement.ok_or_else(|| Invalid::new("placement", "is required"))?;
        if placement.backend.is_empty() {
            return Err(Invalid::new("placement.backend", "is required"));
        }
        if placement.backend != self.backend {
            return Err(Invalid::new(
                "placement.backend",
                format!(
                    "this server runs the {:?} backend, got {:?}",
                    self.backend, placement.backend
                ),
            ));
        }
        if placement.namespace.is_empty() {
            return Err(Invalid::new("placement.namespace", "is required"));
        }
        if self.backend == "postgres" {
            BoundaryName::new(placement.namespace.as_str()).map_err(|e| {
                Invalid::new(
                    "placement.namespace",
                    format!("invalid schema name: {}", e.reason),
                )
            })?;
        } else if placement.namespace != name.as_str() {
            return Err(Invalid::new(
                "placement.namespace",
                format!(
                    "must equal the boundary name {:?} on the {} backend",
                    name.as_str(),
                    self.backend
                ),
            ));
        }
        Ok(())
    }

    /// Appends a definition unless one exists. Returns its event position, or `None` when the
    /// boundary was already defined.
    async fn define(
        &self,
        name: &BoundaryName,
        description: &str,
        placement: &pb::BoundaryPlacementInput,
        existed_before_catalog: bool,
        created_by: Option<&str>,
    ) -> Result<Option<Position>, StoreError> {
        let event = system_event(
            BOUNDARY_CREATED,
            &self.admin_boundary,
            created_by,
            json!({
                BOUNDARY: name.as_str(),
                "description": description,
                "placement": {"backend": placement.backend, "namespace": placement.namespace},
                "existedBeforeCatalog": existed_before_catalog,
            }),
        );
        let condition = AppendCondition::new(
            Query::new([of_type_with(BOUNDARY_CREATED, BOUNDARY, name.as_str())]),
            Position::BEFORE_FIRST,
        );
        match self
            .store
            .append(&self.admin_boundary, vec![event], Some(condition))
            .await
        {
            Ok(outcome) => Ok(Some(outcome.position)),
            Err(StoreError::ConditionFailed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn mark(
        &self,
        name: &BoundaryName,
        error: Option<&str>,
        created_by: Option<&str>,
    ) -> Result<Position, StoreError> {
        let event = match error {
            None => system_event(
                BOUNDARY_ACTIVATED,
                &self.admin_boundary,
                created_by,
                json!({ BOUNDARY: name.as_str() }),
            ),
            Some(error) => system_event(
                BOUNDARY_PROVISIONING_FAILED,
                &self.admin_boundary,
                created_by,
                json!({ BOUNDARY: name.as_str(), "error": error }),
            ),
        };
        Ok(self
            .store
            .append(&self.admin_boundary, vec![event], None)
            .await?
            .position)
    }

    /// Provisions a defined boundary and records the outcome. Returns the outcome event's
    /// position and the error, if provisioning failed.
    async fn provision_and_mark(
        &self,
        name: &BoundaryName,
        namespace: &str,
        created_by: Option<&str>,
    ) -> Result<(Position, Option<String>), StoreError> {
        match self.provisioner.provision(name, namespace).await {
            Ok(()) => Ok((self.mark(name, None, created_by).await?, None)),
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(boundary = %name, %error, "provisioning a boundary failed");
                let position = self.mark(name, Some(&error), created_by).await?;
                Ok((position, Some(error)))
            }
        }
    }

    /// `CreateBoundary`: validates, defines (once, cluster-wide), provisions, and reports the
    /// outcome (ACTIVE, or FAILED with `last_error`).
    pub async fn create(
        &self,
        request: pb::CreateBoundaryRequest,
        created_by: &str,
    ) -> Result<pb::BoundaryInfo, Status> {
        let placement = request.placement.as_ref();
        if placement.is_none() {
            return Err(convert::invalid(Invalid::new("placement", "is required")));
        }
        let name = BoundaryName::new(request.name.as_str())
            .map_err(|e| convert::invalid(Invalid::new("name", e.reason)))?;
        self.check_placement(&name, placement)
            .map_err(convert::invalid)?;
        let placement = placement.cloned().unwrap_or_default();
        let Some(defined_at) = self
            .define(
                &name,
                &request.description,
                &placement,
                request.existed_before_catalog,
                Some(created_by),
            )
            .await
            .map_err(convert::status)?
        else {
            return Err(Status::already_exists(format!(
                "boundary {:?} already exists",
                name.as_str()
            )));
        };
        let (status_at, error) = self
            .provision_and_mark(&name, &placement.namespace, Some(created_by))
            .await
            .map_err(convert::status)?;
        tracing::info!(boundary = %name, ok = error.is_none(), "boundary created");
        let status = if error.is_some() {
            BoundaryLifecycleStatus::Failed
        } else {
            BoundaryLifecycleStatus::Active
        };
        Ok(pb::BoundaryInfo {
            name: name.as_str().to_owned(),
            description: request.description,
            placement: Some(placement),
            status: status as i32,
            existed_before_catalog: request.existed_before_catalog,
            last_error: error.unwrap_or_default(),
            definition_position: Some(defined_at.into()),
            status_position: Some(status_at.into()),
        })
    }

    /// Registers the boundaries the server created at start-up (and the admin boundary) as
    /// ACTIVE definitions with `existed_before_catalog`, then resumes every other definition:
    /// provisions those not yet ACTIVE (a node may have stopped half-way) and makes sure the
    /// ACTIVE ones exist on this node's backend.
    pub async fn register_startup(&self, startup: &[StartupBoundary]) -> anyhow::Result<()> {
        let mut startup = startup.to_vec();
        if !startup.iter().any(|b| b.name == self.admin_boundary) {
            startup.push(StartupBoundary::new(
                self.admin_boundary.clone(),
                "Orisun's admin boundary: users and the boundary catalog",
            ));
        }
        let known = fold(&self.read_lifecycle(None).await?);
        for boundary in &startup {
            let active = known
                .get(boundary.name.as_str())
                .map(|info| status_of(info) == BoundaryLifecycleStatus::Active);
            if active == Some(true) {
                continue;
            }
            if active.is_none() {
                let placement = pb::BoundaryPlacementInput {
                    backend: self.backend.clone(),
                    namespace: boundary.namespace.clone(),
                };
                if self
                    .define(
                        &boundary.name,
                        &boundary.description,
                        &placement,
                        true,
                        None,
                    )
                    .await?
                    .is_none()
                {
                    continue; // another node registered it concurrently
                }
            }
            self.mark(&boundary.name, None, None).await?;
            tracing::debug!(boundary = %boundary.name, "registered a start-up boundary");
        }
        for (name, info) in &known {
            if startup.iter().any(|b| b.name.as_str() == name) {
                continue;
            }
            let Ok(boundary) = BoundaryName::new(name.as_str()) else {
                continue;
            };
            let namespace = info
                .placement
                .as_ref()
                .map(|p| p.namespace.clone())
                .unwrap_or_else(|| name.clone());
            if status_of(info) == BoundaryLifecycleStatus::Active {
                if let Err(e) = self.provisioner.provision(&boundary, &namespace).await {
                    tracing::warn!(boundary = %boundary, error = %e,
                        "an active boundary could not be opened on this node");
                }
            } else {
                self.provision_and_mark(&boundary, &namespace, None).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn ev(prepare: i64, data: Value) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::now_v7(),
            event_type: data["eventType"].as_str().unwrap_or_default().to_owned(),
            data: data.to_string(),
            metadata: "{}".into(),
            position: Position::new(prepare + 1, prepare),
            date_created: Utc::now(),
        }
    }

    #[test]
    fn folds_lifecycle() {
        let events = [
            ev(
                0,
                json!({"eventType": BOUNDARY_CREATED, "boundary": "b", "description": "d",
                "placement": {"backend": "sqlite", "namespace": "b"}, "existedBeforeCatalog": false}),
            ),
            ev(
                1,
                json!({"eventType": BOUNDARY_PROVISIONING_FAILED, "boundary": "b", "error": "disk"}),
            ),
            ev(
                2,
                json!({"eventType": BOUNDARY_CREATED, "boundary": "a", "description": "",
                "placement": {"backend": "sqlite", "namespace": "a"}, "existedBeforeCatalog": true}),
            ),
            ev(3, json!({"eventType": BOUNDARY_ACTIVATED, "boundary": "a"})),
            ev(
                4,
                json!({"eventType": BOUNDARY_ACTIVATED, "boundary": "unknown"}),
            ),
        ];
        let folded = fold(&events);
        let names: Vec<&String> = folded.keys().collect();
        assert_eq!(names, ["a", "b"]);
        let a = &folded["a"];
        assert_eq!(status_of(a), BoundaryLifecycleStatus::Active);
        assert!(a.existed_before_catalog);
        assert_eq!(a.definition_position, Some(Position::new(3, 2).into()));
        assert_eq!(a.status_position, Some(Position::new(4, 3).into()));
        let b = &folded["b"];
        assert_eq!(status_of(b), BoundaryLifecycleStatus::Failed);
        assert_eq!(b.last_error, "disk");
        assert_eq!(b.description, "d");
    }
}
