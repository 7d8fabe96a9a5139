//! Authentication and authorisation for every gRPC call.
//!
//! # What a call must carry
//!
//! Every gRPC call (the `EventStore` and `Admin` services and gRPC reflection) passes through
//! [`AuthLayer`]. A call authenticates with either header:
//!
//! - `x-auth-token: <token>` — a token this cluster issued earlier (checked first, it is cheap);
//! - `authorization: Basic base64(username:password)` — checked with argon2id. Successful
//!   verifications are cached briefly (keyed by user, password epoch and a salted digest of the
//!   password, so a password change invalidates them at once), so hot clients do not pay a key
//!   derivation per call.
//!
//! When a token is present but no longer valid and Basic credentials are present too, Basic
//! wins, so clients that send both (as the Go, Node and Java clients do) keep working when their
//! token expires. On success the response carries header `x-auth-token` (unary and streaming):
//! a fresh token after Basic, the same token after a token call. The only calls that need no
//! credentials are those of the standard health service `/grpc.health.v1.Health/*`, so load
//! balancers can probe the server.
//!
//! # Tokens
//!
//! A token is `v1.<payload>.<mac>`: the payload (base64url JSON) names the user id, the user's
//! *password epoch* and the expiry time; the MAC is HMAC-SHA256 under a key shared by every node
//! through the database (a `$AuthKeyCreated` event appended once to the admin boundary under a
//! condition, so exactly one key wins; [`crate::admin_boundary::redact`] hides it from the event API).
//! The password epoch is the log position of the event that set the user's current password, so
//! a password change or a deletion, on any node, revokes every token issued before it as soon as
//! the node checking the token has followed the admin boundary (each node follows it live through
//! [`orisun_store::EventStore::subscribe`]; a node that sees a token newer than what it knows catches up
//! first). Tokens expire after [`AuthConfig::token_ttl`] (`ORISUN_AUTH_TOKEN_TTL`, default one
//! hour).
//!
//! # Users
//!
//! Users are event-sourced in the admin boundary (`$UserCreated`, `$UserDeleted`,
//! `$UserPasswordChanged`); [`Auth`] keeps an in-memory projection of them, and the user
//! commands ([`crate::users`]) run on it. Roles are `ADMIN` and `OPERATIONS`.
//!
//! # Where each job lives
//!
//! [`authority`] holds [`Auth`] and its projection; `bootstrap` creates the token key and the
//! first admin; `credentials` checks passwords and tokens; `follower` applies other nodes'
//! changes; [`layer`] is the tower layer that authenticates every call. Errors become gRPC
//! statuses in [`crate::api_error`].

pub mod authority;
mod bootstrap;
mod credentials;
mod directory;
mod follower;
pub mod layer;
pub(crate) mod password;
mod token;

pub use authority::Auth;
pub use credentials::AuthError;
pub use layer::{authenticate_headers, AuthLayer, AuthService, EXEMPT_PREFIX};

use crate::api_error::ApiError;
use orisun_core::BoundaryName;
use std::fmt;
use std::time::Duration;
use tonic::Status;

/// The request header that carries a token, and the response header that returns one.
pub const TOKEN_HEADER: &str = "x-auth-token";

/// The password of the bootstrap admin when none is configured. Starting with it logs a warning.
pub const DEFAULT_ADMIN_PASSWORD: &str = "changeit";

/// The username of the bootstrap admin when none is configured.
pub const DEFAULT_ADMIN_USERNAME: &str = "admin";

/// How long a token stays valid when `ORISUN_AUTH_TOKEN_TTL` is not set.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The environment variable that sets [`AuthConfig::token_ttl`] (parsed by
/// [`crate::config::parse_duration`]).
pub const TOKEN_TTL_ENV: &str = "ORISUN_AUTH_TOKEN_TTL";

/// A role a user can hold. Wire strings are `ADMIN` and `OPERATIONS` (case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// May do everything, including the Admin service and index management.
    Admin,
    /// May read and append events, but not administer.
    Operations,
}

impl Role {
    /// Every role, in wire order.
    pub const ALL: [Role; 2] = [Role::Admin, Role::Operations];

    /// Returns the wire string of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Operations => "OPERATIONS",
        }
    }

    /// Parses a wire string (case-sensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated user of a call, inserted into the request extensions by [`AuthLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user's id (a UUIDv7).
    pub user_id: String,
    /// The user's login name.
    pub username: String,
    /// The user's roles.
    pub roles: Vec<Role>,
}

impl Caller {
    /// Returns true when the caller holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Succeeds when the caller holds at least one of `roles`, else `PERMISSION_DENIED` naming
    /// the roles needed.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.has(*r)) {
            return Ok(());
        }
        let needed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::Denied(format!(
            "permission denied: user {:?} needs role {}",
            self.username,
            needed.join(" or ")
        )))
    }
}

/// Returns the caller that [`AuthLayer`] put into a request, or `UNAUTHENTICATED` when there is
/// none (the service was served without the layer).
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| AuthError::Missing.into())
}

/// Configuration of [`Auth`].
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The boundary that holds users, the token key and the boundary catalog
    /// (`ORISUN_ADMIN_BOUNDARY`).
    pub admin_boundary: BoundaryName,
    /// Username of the bootstrap admin (`ORISUN_ADMIN_USERNAME`), created when no user exists.
    pub admin_username: String,
    /// Password of the bootstrap admin (`ORISUN_ADMIN_PASSWORD`).
    pub admin_password: String,
    /// How long a token stays valid ([`TOKEN_TTL_ENV`]).
    pub token_ttl: Duration,
}

impl AuthConfig {
    /// A configuration with the defaults (`admin`/`changeit`, one-hour tokens) for `admin_boundary`.
    pub fn new(admin_boundary: BoundaryName) -> Self {
        Self {
            admin_boundary,
            admin_username: DEFAULT_ADMIN_USERNAME.to_owned(),
            admin_password: DEFAULT_ADMIN_PASSWORD.to_owned(),
            token_ttl: DEFAULT_TOKEN_TTL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_case_sensitively() {
        assert_eq!(Role::parse("ADMIN"), Some(Role::Admin));
        assert_eq!(Role::parse("OPERATIONS"), Some(Role::Operations));
        assert_eq!(Role::parse("admin"), None);
        assert_eq!(Role::parse(""), None);
        assert_eq!(Role::Operations.to_string(), "OPERATIONS");
    }

    #[test]
    fn require_any_names_the_role() {
        let c = Caller {
            user_id: "u".into(),
            username: "ops".into(),
            roles: vec![Role::Operations],
        };
        assert!(c.require_any(&[Role::Admin, Role::Operations]).is_ok());
        let err = c.require_any(&[Role::Admin]).expect_err("not admin");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(err.to_string().contains("ADMIN"), "{err}");
    }
}
