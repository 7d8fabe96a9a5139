//! [`AdminService`]: the `orisun.Admin` gRPC service (users and the boundary catalog). Not to
//! be confused with the admin boundary ([`crate::admin_boundary`]) or the admin HTTP port
//! ([`crate::admin_http`]).
//!
//! # Differences from Go Orisun (deliberate)
//!
//! - Every Admin RPC needs role `ADMIN` (Go checks no role); `ChangePassword` is open to any
//!   authenticated user for their own user id; `ValidateCredentials` needs `ADMIN` (it is a
//!   password oracle).
//! - `CreateUser` accepts only the roles `ADMIN` and `OPERATIONS` (`INVALID_ARGUMENT` for any
//!   other string; Go stores free strings) and reports a duplicate username as `ALREADY_EXISTS`
//!   (Go: `INTERNAL`). Usernames cannot contain `:` (Basic credentials could not carry them).
//! - A deleted username can be created again; `ListUsers` shows live users with their real
//!   `created_at`; the first `ChangePassword` works (Go bugs 14 and 15).
//! - `CreateBoundary` provisions synchronously and answers `ACTIVE` (or `FAILED` with
//!   `last_error`) instead of `PROVISIONING`; the placement backend must be the running one.
//! - `GetUserCount` and `GetEventCount` are exact (Go reads approximate projected counters);
//!   `GetEventCount` of an unknown boundary is `FAILED_PRECONDITION`, like every other call on
//!   a boundary that does not exist.
//! - Password hashes and the token key are removed from admin-boundary events served by the
//!   event API ([`crate::admin_boundary::redact`]), and clients cannot append `$`-typed events to the admin boundary
//!   ([`crate::admin_boundary::guard_save`]), so nobody can forge users or passwords through `SaveEvents`.

use crate::auth::{self, Auth, Caller, Role};
use crate::catalog::{Catalog, Provisioner, StartupBoundary, StoreProvisioner};
use crate::indexes;
use crate::users::{NewUser, User};
use orisun_core::{BoundaryName, Invalid};
use orisun_proto::admin_server::Admin;
use orisun_proto::{self as pb, convert};
use orisun_store::EventStore;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The `orisun.Admin` service: users and the boundary catalog, plus `CreateIndex`/`DropIndex`
/// where Go Orisun served them from 2026-02-27 to 2026-05-29 (the same handlers as
/// `orisun.EventStore`'s, in [`crate::indexes`]).
///
/// Every RPC needs role `ADMIN`, except `ChangePassword`, which any authenticated user may call
/// for their own user id. (Go Orisun checks no role on Admin RPCs.) Serve it behind
/// [`crate::auth::AuthLayer`], which supplies the caller.
#[derive(Clone)]
pub struct AdminService {
    store: Arc<dyn EventStore>,
    auth: Arc<Auth>,
    catalog: Arc<Catalog>,
}

impl AdminService {
    /// Creates the service. `backend` is the running backend's name (`sqlite` or `postgres`):
    /// `CreateBoundary` accepts only that placement backend. Boundaries are provisioned with
    /// [`EventStore::create_boundary`] unless [`AdminService::with_provisioner`] says otherwise.
    pub fn new(store: Arc<dyn EventStore>, auth: Arc<Auth>, backend: impl Into<String>) -> Self {
        let catalog = Catalog {
            store: store.clone(),
            admin_boundary: auth.admin_boundary().clone(),
            backend: backend.into(),
            provisioner: Arc::new(StoreProvisioner(store.clone())),
        };
        Self {
            store,
            auth,
            catalog: Arc::new(catalog),
        }
    }

    /// Uses `provisioner` to create the storage of new boundaries (the PostgreSQL backend passes
    /// the placement's namespace as the schema).
    pub fn with_provisioner(self, provisioner: Arc<dyn Provisioner>) -> Self {
        let catalog = Catalog {
            store: self.catalog.store.clone(),
            admin_boundary: self.catalog.admin_boundary.clone(),
            backend: self.catalog.backend.clone(),
            provisioner,
        };
        Self {
            catalog: Arc::new(catalog),
            ..self
        }
    }

    /// Registers the boundaries created at start-up from the configuration (and the admin
    /// boundary) in the catalog as ACTIVE with `existed_before_catalog = true`, and resumes any
    /// definition left half-provisioned. Call once at start-up, after creating those boundaries.
    pub async fn register_startup_boundaries(
        &self,
        boundaries: &[StartupBoundary],
    ) -> anyhow::Result<()> {
        self.catalog.register_startup(boundaries).await
    }

    /// Every boundary definition, by name (also for the HTTP dashboard).
    pub async fn boundaries(&self) -> Result<Vec<pb::BoundaryInfo>, Status> {
        self.catalog.list().await
    }

    /// The user directory behind the service.
    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }
}

fn admin_caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    let caller = auth::caller(request)?;
    caller.require_any(&[Role::Admin])?;
    Ok(caller)
}

fn admin_user(user: &User) -> pb::AdminUser {
    pb::AdminUser {
        user_id: user.user_id.clone(),
        name: user.name.clone(),
        username: user.username.clone(),
        roles: user.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        created_at: Some(convert::timestamp(user.created_at)),
        updated_at: None,
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_boundary(
        &self,
        request: Request<pb::CreateBoundaryRequest>,
    ) -> Result<Response<pb::CreateBoundaryResponse>, Status> {
        let caller = admin_caller(&request)?;
        let boundary = self
            .catalog
            .create(request.into_inner(), &caller.user_id)
            .await?;
        Ok(Response::new(pb::CreateBoundaryResponse {
            boundary: Some(boundary),
        }))
    }

    async fn list_boundaries(
        &self,
        request: Request<pb::ListBoundariesRequest>,
    ) -> Result<Response<pb::ListBoundariesResponse>, Status> {
        admin_caller(&request)?;
        Ok(Response::new(pb::ListBoundariesResponse {
            boundaries: self.catalog.list().await?,
        }))
    }

    async fn get_boundary(
        &self,
        request: Request<pb::GetBoundaryRequest>,
    ) -> Result<Response<pb::GetBoundaryResponse>, Status> {
        admin_caller(&request)?;
        let name = BoundaryName::new(request.get_ref().name.as_str())
            .map_err(|e| convert::invalid(Invalid::new("name", e.reason)))?;
        Ok(Response::new(pb::GetBoundaryResponse {
            boundary: Some(self.catalog.get(&name).await?),
        }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let caller = admin_caller(&request)?;
        let r = request.into_inner();
        let user = self
            .auth
            .create_user(
                NewUser {
                    name: r.name,
                    username: r.username,
                    password: r.password,
                    roles: r.roles,
                },
                Some(&caller),
            )
            .await?;
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(admin_user(&user)),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let caller = admin_caller(&request)?;
        self.auth
            .delete_user(&request.get_ref().user_id, &caller)
            .await?;
        Ok(Response::new(pb::DeleteUserResponse { success: true }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.get_ref();
        self.auth
            .change_password(&r.user_id, &r.current_password, &r.new_password, &caller)
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse { success: true }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        admin_caller(&request)?;
        let users = self.auth.list_users().await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(admin_user).collect(),
        }))
    }

    async fn validate_credentials(
        &self,
        request: Request<pb::ValidateCredentialsRequest>,
    ) -> Result<Response<pb::ValidateCredentialsResponse>, Status> {
        admin_caller(&request)?;
        let r = request.get_ref();
        let user = self
            .auth
            .validate_credentials(&r.username, &r.password)
            .await?;
        Ok(Response::new(pb::ValidateCredentialsResponse {
            success: user.is_some(),
            user: user.as_ref().map(admin_user),
        }))
    }

    async fn get_user_count(
        &self,
        request: Request<pb::GetUserCountRequest>,
    ) -> Result<Response<pb::GetUserCountResponse>, Status> {
        admin_caller(&request)?;
        let count = self.auth.user_count().await?;
        Ok(Response::new(pb::GetUserCountResponse {
            count: i64::try_from(count).unwrap_or(i64::MAX),
        }))
    }

    async fn get_event_count(
        &self,
        request: Request<pb::GetEventCountRequest>,
    ) -> Result<Response<pb::GetEventCountResponse>, Status> {
        admin_caller(&request)?;
        let boundary = convert::boundary(&request.get_ref().boundary)?;
        let count = self.store.count(&boundary).await.map_err(convert::status)?;
        Ok(Response::new(pb::GetEventCountResponse {
            count: i64::try_from(count).unwrap_or(i64::MAX),
        }))
    }

    /// Go Orisun's Admin RPC of 2026-02..05; the same as `EventStore.CreateIndex`.
    async fn create_index(
        &self,
        request: Request<pb::CreateIndexRequest>,
    ) -> Result<Response<pb::CreateIndexResponse>, Status> {
        indexes::create_index(self.store.as_ref(), &self.catalog.admin_boundary, request).await
    }

    /// Go Orisun's Admin RPC of 2026-02..05; the same as `EventStore.DropIndex`.
    async fn drop_index(
        &self,
        request: Request<pb::DropIndexRequest>,
    ) -> Result<Response<pb::DropIndexResponse>, Status> {
        indexes::drop_index(self.store.as_ref(), &self.catalog.admin_boundary, request).await
    }
}
