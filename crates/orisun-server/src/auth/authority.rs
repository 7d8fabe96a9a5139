//! [`Auth`]: the user directory, the credential checks and the token authority.

use super::directory::{Directory, UserRecord};
use super::events::{
    self, of_type, of_type_with, system_event, AUTH_KEY_CREATED, CREATED_AT, KEY, KEY_ID, NAME,
    PASSWORD_HASH, ROLES, USERNAME, USER_CREATED, USER_DELETED, USER_ID, USER_PASSWORD_CHANGED,
};
use super::password;
use super::token::{self, Claims, Clock, TokenError, TokenKey};
use super::{AuthConfig, Caller, Role, DEFAULT_ADMIN_PASSWORD};
use anyhow::Context as _;
use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use orisun_core::{AppendCondition, BoundaryName, Invalid, Position, Query, ReadRequest};
use orisun_proto::convert;
use orisun_store::{EventStore, StoreError};
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use serde_json::json;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Status;
use uuid::Uuid;

/// How long a successful password verification is remembered for the same password.
const VERIFY_CACHE_TTL: Duration = Duration::from_secs(60);

/// How many times a user command re-reads and retries when a concurrent change wins.
const MAX_ATTEMPTS: usize = 8;

/// Page size of catch-up reads of the admin boundary.
const PAGE: u32 = 1_000;

/// Longest password accepted, in bytes (bounds the work a request can cause).
const MAX_PASSWORD_BYTES: usize = 1_024;

/// A user as the Admin API shows it (never with a password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's id (UUIDv7).
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Login name.
    pub username: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}

impl From<&UserRecord> for User {
    fn from(r: &UserRecord) -> Self {
        Self {
            user_id: r.user_id.clone(),
            name: r.name.clone(),
            username: r.username.clone(),
            roles: r.roles.clone(),
            created_at: r.created_at,
        }
    }
}

impl User {
    /// The caller this user is when authenticated.
    pub fn caller(&self) -> Caller {
        Caller {
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            roles: self.roles.clone(),
        }
    }
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Display name (required).
    pub name: String,
    /// Login name: at least 3 characters, no `:` (it separates Basic credentials), no control
    /// characters.
    pub username: String,
    /// At least 6 characters, at most 1024 bytes.
    pub password: String,
    /// At least one of `ADMIN`, `OPERATIONS`.
    pub roles: Vec<String>,
}

/// Why a call was not authenticated. Each maps to `UNAUTHENTICATED` with Go Orisun's message,
/// except a storage failure, which is `UNAVAILABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials at all.
    Missing,
    /// An `authorization` header that is not `Basic base64(user:pass)`.
    BadFormat,
    /// Unknown user, wrong password or a token that is not ours.
    InvalidCredentials,
    /// A token past its expiry.
    Expired,
    /// A token issued before a password change or the user's deletion.
    Revoked,
    /// The user directory could not be read.
    Unavailable(String),
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => Status::unauthenticated("missing authorization header"),
            AuthError::BadFormat => Status::unauthenticated("invalid authorization header format"),
            AuthError::InvalidCredentials => Status::unauthenticated("invalid credentials"),
            AuthError::Expired => Status::unauthenticated("token expired"),
            AuthError::Revoked => Status::unauthenticated("token revoked"),
            AuthError::Unavailable(reason) => {
                Status::unavailable(format!("authentication unavailable: {reason}"))
            }
        }
    }
}

struct Verified {
    user_id: String,
    epoch: i64,
    digest: [u8; 32],
    at: Instant,
}

/// The user directory and token authority of one node.
///
/// It keeps a projection of the admin boundary's user events, following the boundary live so
/// that changes made by other nodes sharing the database apply here too, and checks credentials
/// and tokens against it.
pub struct Auth {
    store: Arc<dyn EventStore>,
    cfg: AuthConfig,
    directory: RwLock<Directory>,
    refresh_lock: tokio::sync::Mutex<()>,
    verified: Mutex<HashMap<String, Verified>>,
    cache_salt: [u8; 32],
    clock: Clock,
    follower: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Auth {
    fn drop(&mut self) {
        if let Some(task) = self.follower.lock().take() {
            task.abort();
        }
    }
}

impl Auth {
    /// Starts the authority: creates the admin boundary if needed, loads the users, makes sure
    /// the cluster has a token key, creates the bootstrap admin from `cfg` when no user exists,
    /// and starts following the admin boundary.
    pub async fn start(store: Arc<dyn EventStore>, cfg: AuthConfig) -> anyhow::Result<Arc<Auth>> {
        store
            .create_boundary(&cfg.admin_boundary)
            .await
            .with_context(|| format!("creating admin boundary {}", cfg.admin_boundary))?;
        let mut cache_salt = [0u8; 32];
        rand::rng().fill_bytes(&mut cache_salt);
        let auth = Arc::new(Auth {
            store,
            cfg,
            directory: RwLock::new(Directory::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            verified: Mutex::new(HashMap::new()),
            cache_salt,
            clock: Clock::start(),
            follower: Mutex::new(None),
        });
        auth.refresh().await.context("loading users")?;
        auth.ensure_key().await?;
        auth.bootstrap_admin().await?;
        let task = tokio::spawn(follow(
            Arc::downgrade(&auth),
            auth.store.clone(),
            auth.cfg.admin_boundary.clone(),
        ));
        *auth.follower.lock() = Some(task);
        Ok(auth)
    }

    /// The admin boundary.
    pub fn admin_boundary(&self) -> &BoundaryName {
        &self.cfg.admin_boundary
    }

    /// The configuration the authority was started with.
    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// Brings the projection up to the admin boundary's head (reads what it has not seen yet).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        loop {
            let cursor = self.directory.read().cursor();
            let from = Position::new(cursor.commit, cursor.prepare.saturating_add(1));
            let page = self
                .store
                .read(
                    &self.cfg.admin_boundary,
                    &ReadRequest::forward(Some(from), PAGE),
                )
                .await?;
            let full = page.len() == PAGE as usize;
            {
                let mut directory = self.directory.write();
                for event in &page {
                    directory.apply(event);
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn apply(&self, event: &orisun_core::StoredEvent) {
        self.directory.write().apply(event);
    }

    async fn ensure_key(&self) -> anyhow::Result<()> {
        if self.directory.read().key().is_some() {
            return Ok(());
        }
        let key = TokenKey::generate();
        let event = system_event(
            AUTH_KEY_CREATED,
            &self.cfg.admin_boundary,
            None,
            json!({ KEY_ID: Uuid::now_v7().to_string(), KEY: key.to_base64() }),
        );
        let only_first = AppendCondition::new(
            Query::new([of_type(AUTH_KEY_CREATED)]),
            Position::BEFORE_FIRST,
        );
        match self
            .store
            .append(&self.cfg.admin_boundary, vec![event], Some(only_first))
            .await
        {
            Ok(_) => tracing::info!("created the cluster's token signing key"),
            Err(StoreError::ConditionFailed { .. }) => {
                tracing::debug!("another node created the token signing key first")
            }
            Err(e) => return Err(e).context("storing the token signing key"),
        }
        self.refresh().await.context("loading the token key")?;
        if self.directory.read().key().is_none() {
            anyhow::bail!("the admin boundary holds no usable $AuthKeyCreated event");
        }
        Ok(())
    }

    async fn bootstrap_admin(&self) -> anyhow::Result<()> {
        let username = self.cfg.admin_username.clone();
        let default_password = self.cfg.admin_password == DEFAULT_ADMIN_PASSWORD;
        if self.directory.read().len() == 0 {
            let new = NewUser {
                name: "Administrator".to_owned(),
                username: username.clone(),
                password: self.cfg.admin_password.clone(),
                roles: vec![Role::Admin.as_str().to_owned()],
            };
            match self.create_user(new, None).await {
                Ok(user) => tracing::info!(username = %user.username, user_id = %user.user_id,
                    "created the bootstrap admin user"),
                Err(s) if s.code() == tonic::Code::AlreadyExists => {}
                Err(s) => anyhow::bail!(
                    "cannot create the bootstrap admin {username:?} (check ORISUN_ADMIN_USERNAME \
                     and ORISUN_ADMIN_PASSWORD): {}",
                    s.message()
                ),
            }
        }
        let admin_hash = self
            .directory
            .read()
            .by_username(&username)
            .map(|u| u.password_hash.clone());
        if let Some(hash) = admin_hash {
            if password::verify_blocking(DEFAULT_ADMIN_PASSWORD.to_owned(), hash).await {
                tracing::warn!(
                    username = %username,
                    "SECURITY WARNING: user {username:?} still has the default password \
                     {DEFAULT_ADMIN_PASSWORD:?}; anyone can administer this event store. Change it \
                     with Admin/ChangePassword or start with ORISUN_ADMIN_PASSWORD set."
                );
            }
        } else if default_password {
            tracing::warn!("ORISUN_ADMIN_PASSWORD is the default {DEFAULT_ADMIN_PASSWORD:?}");
        }
        Ok(())
    }

    // ---- authentication -------------------------------------------------------------------

    /// Checks Basic credentials. On success returns the caller and a fresh token.
    pub async fn authenticate_basic(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(Caller, String), AuthError> {
        let user = self
            .check_password(username, password)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let token = self.issue_token(&user)?;
        Ok((User::from(&user).caller(), token))
    }

    /// Checks a token. On success returns the caller.
    pub async fn authenticate_token(&self, token: &str) -> Result<Caller, AuthError> {
        let key = self
            .directory
            .read()
            .key()
            .cloned()
            .ok_or_else(|| AuthError::Unavailable("no token key loaded".into()))?;
        let claims = token::verify(&key, token, self.clock.now_ms()).map_err(|e| match e {
            TokenError::Invalid => AuthError::InvalidCredentials,
            TokenError::Expired => AuthError::Expired,
        })?;
        match self.token_user(&claims) {
            TokenCheck::Valid(caller) => return Ok(caller),
            TokenCheck::Revoked => return Err(AuthError::Revoked),
            TokenCheck::Unknown => {}
        }
        // The token is newer than what this node has seen (issued by another node after a
        // change this node has not followed yet): catch up once, then decide.
        self.refresh()
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        match self.token_user(&claims) {
            TokenCheck::Valid(caller) => Ok(caller),
            TokenCheck::Revoked | TokenCheck::Unknown => Err(AuthError::Revoked),
        }
    }

    fn token_user(&self, claims: &Claims) -> TokenCheck {
        let directory = self.directory.read();
        match directory.user(&claims.user_id) {
            Some(user) if user.epoch == claims.epoch => {
                TokenCheck::Valid(User::from(user).caller())
            }
            Some(user) if user.epoch > claims.epoch => TokenCheck::Revoked,
            Some(_) => TokenCheck::Unknown,
            None if directory.was_deleted(&claims.user_id) => TokenCheck::Revoked,
            None => TokenCheck::Unknown,
        }
    }

    /// Issues a token for `user` valid for the configured time-to-live.
    fn issue_token(&self, user: &UserRecord) -> Result<String, AuthError> {
        let key = self
            .directory
            .read()
            .key()
            .cloned()
            .ok_or_else(|| AuthError::Unavailable("no token key loaded".into()))?;
        let ttl = i64::try_from(self.cfg.token_ttl.as_millis()).unwrap_or(i64::MAX);
        let claims = Claims {
            user_id: user.user_id.clone(),
            epoch: user.epoch,
            expires_ms: self.clock.now_ms().saturating_add(ttl),
        };
        Ok(token::sign(&key, &claims))
    }

    /// Returns the live user when `password` is theirs, `None` when the user is unknown or the
    /// password wrong. Catches up with the admin boundary once before saying no, so a user or
    /// password just created on another node is accepted.
    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<UserRecord>, AuthError> {
        let mut refreshed = false;
        loop {
            let user = self.directory.read().by_username(username).cloned();
            if let Some(user) = &user {
                if self.password_matches(user, password).await {
                    return Ok(Some(user.clone()));
                }
            }
            if refreshed {
                return Ok(None);
            }
            let before = self.directory.read().cursor();
            self.refresh()
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            if self.directory.read().cursor() == before {
                if user.is_none() {
                    // Spend the same work as for a wrong password, so the answer's timing
                    // does not tell which usernames exist.
                    password::verify_dummy_blocking(password.to_owned()).await;
                }
                return Ok(None);
            }
            refreshed = true;
        }
    }

    async fn password_matches(&self, user: &UserRecord, password: &str) -> bool {
        let digest = self.digest(password);
        if let Some(v) = self.verified.lock().get(&user.username) {
            if v.user_id == user.user_id
                && v.epoch == user.epoch
                && v.at.elapsed() < VERIFY_CACHE_TTL
                && constant_time_eq(&v.digest, &digest)
            {
                return true;
            }
        }
        let ok = password::verify_blocking(password.to_owned(), user.password_hash.clone()).await;
        if ok {
            self.verified.lock().insert(
                user.username.clone(),
                Verified {
                    user_id: user.user_id.clone(),
                    epoch: user.epoch,
                    digest,
                    at: Instant::now(),
                },
            );
        }
        ok
    }

    /// A keyed digest of a password: lets the cache compare passwords without keeping them.
    fn digest(&self, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.cache_salt)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    // ---- users --------------------------------------------------------------------------

    /// The live users, oldest first (after catching up with the admin boundary).
    pub async fn list_users(&self) -> Result<Vec<User>, Status> {
        self.refresh().await.map_err(convert::status)?;
        Ok(self
            .directory
            .read()
            .users()
            .iter()
            .map(User::from)
            .collect())
    }

    /// The number of live users (after catching up with the admin boundary).
    pub async fn user_count(&self) -> Result<usize, Status> {
        self.refresh().await.map_err(convert::status)?;
        Ok(self.directory.read().len())
    }

    /// Returns the user when the credentials are valid, `None` when they are not.
    pub async fn validate_credentials(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, Status> {
        match self.check_password(username, password).await {
            Ok(user) => Ok(user.as_ref().map(User::from)),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a user. Errors: `INVALID_ARGUMENT` naming the field, `ALREADY_EXISTS` when a live
    /// user has the username. Concurrent creations of one username create exactly one user.
    pub async fn create_user(&self, new: NewUser, by: Option<&Caller>) -> Result<User, Status> {
        let roles = validate_new_user(&new).map_err(convert::invalid)?;
        let hash = password::hash_blocking(new.password.clone())
            .await
            .map_err(|e| Status::internal(format!("hashing the password: {e}")))?;
        let boundary = &self.cfg.admin_boundary;
        let criteria = [
            of_type_with(USER_CREATED, USERNAME, &new.username),
            of_type_with(USER_DELETED, USERNAME, &new.username),
        ];
        for _ in 0..MAX_ATTEMPTS {
            let latest = self
                .store
                .latest_by_criteria(boundary, &criteria)
                .await
                .map_err(convert::status)?;
            let created = latest.events.first().and_then(Option::as_ref);
            let deleted = latest.events.get(1).and_then(Option::as_ref);
            let live = match (created, deleted) {
                (Some(c), Some(d)) => c.position > d.position,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if live {
                return Err(Status::already_exists(format!(
                    "user {:?} already exists",
                    new.username
                )));
            }
            let user_id = Uuid::now_v7().to_string();
            let created_at = Utc::now().trunc_subsecs(6);
            let role_names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let event = system_event(
                USER_CREATED,
                boundary,
                by.map(|c| c.user_id.as_str()),
                json!({
                    USER_ID: user_id,
                    NAME: new.name,
                    USERNAME: new.username,
                    ROLES: role_names,
                    PASSWORD_HASH: hash,
                    CREATED_AT: created_at.to_rfc3339(),
                }),
            );
            let condition =
                AppendCondition::new(Query::new(criteria.clone()), latest.context_position);
            match self
                .store
                .append(boundary, vec![event], Some(condition))
                .await
            {
                Ok(_) => {
                    self.refresh().await.map_err(convert::status)?;
                    tracing::info!(username = %new.username, %user_id, "user created");
                    return Ok(User {
                        user_id,
                        name: new.name,
                        username: new.username,
                        roles,
                        created_at,
                    });
                }
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(convert::status(e)),
            }
        }
        Err(too_contended())
    }

    /// Deletes a user. Errors: `INVALID_ARGUMENT` without an id, `FAILED_PRECONDITION` for
    /// yourself, `NOT_FOUND` for an unknown or already deleted user.
    pub async fn delete_user(&self, user_id: &str, by: &Caller) -> Result<(), Status> {
        if user_id.is_empty() {
            return Err(convert::invalid(Invalid::new("user_id", "is required")));
        }
        if user_id == by.user_id {
            return Err(Status::failed_precondition("cannot delete your own user"));
        }
        let boundary = &self.cfg.admin_boundary;
        let criteria = [
            of_type_with(USER_CREATED, USER_ID, user_id),
            of_type_with(USER_DELETED, USER_ID, user_id),
        ];
        for _ in 0..MAX_ATTEMPTS {
            let latest = self
                .store
                .latest_by_criteria(boundary, &criteria)
                .await
                .map_err(convert::status)?;
            let created = latest.events.first().and_then(Option::as_ref);
            let deleted = latest.events.get(1).and_then(Option::as_ref);
            let (Some(created), None) = (created, deleted) else {
                return Err(Status::not_found(format!("user {user_id:?} not found")));
            };
            let username = events::parse(&created.data)
                .and_then(|d| events::text(&d, USERNAME).map(str::to_owned))
                .unwrap_or_default();
            let event = system_event(
                USER_DELETED,
                boundary,
                Some(&by.user_id),
                json!({ USER_ID: user_id, USERNAME: username }),
            );
            let condition =
                AppendCondition::new(Query::new(criteria.clone()), latest.context_position);
            match self
                .store
                .append(boundary, vec![event], Some(condition))
                .await
            {
                Ok(_) => {
                    self.refresh().await.map_err(convert::status)?;
                    self.verified.lock().remove(&username);
                    tracing::info!(%username, %user_id, by = %by.username, "user deleted");
                    return Ok(());
                }
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(convert::status(e)),
            }
        }
        Err(too_contended())
    }

    /// Changes the caller's own password. Errors: `PERMISSION_DENIED` for another user,
    /// `INVALID_ARGUMENT` for a missing id or a short new password, `NOT_FOUND` for a deleted
    /// user, `UNAUTHENTICATED` when `current` is wrong.
    pub async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new_password: &str,
        by: &Caller,
    ) -> Result<(), Status> {
        if user_id.is_empty() {
            return Err(convert::invalid(Invalid::new("user_id", "is required")));
        }
        if user_id != by.user_id {
            return Err(Status::permission_denied(
                "permission denied: you can only change your own password",
            ));
        }
        validate_password("new_password", new_password).map_err(convert::invalid)?;
        let new_hash = password::hash_blocking(new_password.to_owned())
            .await
            .map_err(|e| Status::internal(format!("hashing the password: {e}")))?;
        let boundary = &self.cfg.admin_boundary;
        let criteria = [
            of_type_with(USER_CREATED, USER_ID, user_id),
            of_type_with(USER_DELETED, USER_ID, user_id),
            of_type_with(USER_PASSWORD_CHANGED, USER_ID, user_id),
        ];
        for _ in 0..MAX_ATTEMPTS {
            let latest = self
                .store
                .latest_by_criteria(boundary, &criteria)
                .await
                .map_err(convert::status)?;
            let (Some(created), None) = (
                latest.events.first().and_then(Option::as_ref),
                latest.events.get(1).and_then(Option::as_ref),
            ) else {
                return Err(Status::not_found(format!("user {user_id:?} not found")));
            };
            let current_event = latest
                .events
                .get(2)
                .and_then(Option::as_ref)
                .unwrap_or(created);
            let current_hash = events::parse(&current_event.data)
                .and_then(|d| events::text(&d, PASSWORD_HASH).map(str::to_owned))
                .unwrap_or_default();
            if !password::verify_blocking(current.to_owned(), current_hash).await {
                return Err(Status::unauthenticated("current password is incorrect"));
            }
            let event = system_event(
                USER_PASSWORD_CHANGED,
                boundary,
                Some(&by.user_id),
                json!({ USER_ID: user_id, PASSWORD_HASH: new_hash }),
            );
            let condition =
                AppendCondition::new(Query::new(criteria.clone()), latest.context_position);
            match self
                .store
                .append(boundary, vec![event], Some(condition))
                .await
            {
                Ok(_) => {
                    self.refresh().await.map_err(convert::status)?;
                    self.verified.lock().remove(&by.username);
                    tracing::info!(username = %by.username, %user_id, "password changed");
                    return Ok(());
                }
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(convert::status(e)),
            }
        }
        Err(too_contended())
    }
}

enum TokenCheck {
    Valid(Caller),
    Revoked,
    Unknown,
}

fn too_contended() -> Status {
    Status::aborted("too many concurrent changes to this user; retry")
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn validate_password(field: &str, password: &str) -> Result<(), Invalid> {
    if password.chars().count() < 6 {
        return Err(Invalid::new(field, "must be at least 6 characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Invalid::new(
            field,
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Validates a user to create and returns its parsed, de-duplicated roles.
fn validate_new_user(new: &NewUser) -> Result<Vec<Role>, Invalid> {
    if new.name.trim().is_empty() {
        return Err(Invalid::new("name", "is required"));
    }
    if new.username.chars().count() < 3 {
        return Err(Invalid::new("username", "must be at least 3 characters"));
    }
    if new.username.len() > 128 {
        return Err(Invalid::new("username", "must be at most 128 bytes"));
    }
    if new.username.contains(':') || new.username.chars().any(char::is_control) {
        return Err(Invalid::new(
            "username",
            "must not contain ':' or control characters",
        ));
    }
    validate_password("password", &new.password)?;
    if new.roles.is_empty() {
        return Err(Invalid::new("roles", "at least one role is required"));
    }
    let mut roles = Vec::with_capacity(new.roles.len());
    for (i, name) in new.roles.iter().enumerate() {
        let role = Role::parse(name).ok_or_else(|| {
            Invalid::new(
                format!("roles[{i}]"),
                format!("unknown role {name:?}; expected ADMIN or OPERATIONS"),
            )
        })?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// Follows the admin boundary for as long as the authority lives, restarting after errors.
async fn follow(auth: Weak<Auth>, store: Arc<dyn EventStore>, boundary: BoundaryName) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(cursor) = auth.upgrade().map(|a| a.directory.read().cursor()) else {
            return;
        };
        let mut stream = store.subscribe(&boundary, cursor, Query::all());
        while let Some(item) = stream.next().await {
            let Some(auth) = auth.upgrade() else {
                return;
            };
            match item {
                Ok(event) => {
                    auth.apply(&event);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "following the admin boundary failed; retrying");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orisun_store::MemoryStore;

    fn config() -> AuthConfig {
        let mut cfg = AuthConfig::new(BoundaryName::new("orisun_admin").expect("valid"));
        cfg.admin_password = "bootstrap-pass".into();
        cfg
    }

    async fn start(store: &Arc<dyn EventStore>) -> Arc<Auth> {
        Auth::start(store.clone(), config())
            .await
            .expect("auth starts")
    }

    fn stop_following(auth: &Auth) {
        if let Some(task) = auth.follower.lock().take() {
            task.abort();
        }
    }

    #[tokio::test]
    async fn concurrent_starts_share_one_key_and_one_admin() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let (a, b) = tokio::join!(start(&store), start(&store));
        assert_eq!(a.directory.read().key(), b.directory.read().key());
        b.refresh().await.expect("refresh");
        a.refresh().await.expect("refresh");
        assert_eq!(a.list_users().await.expect("users").len(), 1);
        assert_eq!(b.list_users().await.expect("users").len(), 1);
        let (admin, token) = a
            .authenticate_basic("admin", "bootstrap-pass")
            .await
            .expect("admin");
        assert_eq!(admin.roles, vec![Role::Admin]);
        assert_eq!(b.authenticate_token(&token).await, Ok(admin));
    }

    #[tokio::test]
    async fn basic_verifications_are_cached_until_the_password_changes() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let auth = start(&store).await;
        let (admin, _) = auth
            .authenticate_basic("admin", "bootstrap-pass")
            .await
            .expect("admin");
        let cached_epoch = auth.verified.lock().get("admin").map(|v| v.epoch);
        assert!(
            cached_epoch.is_some(),
            "a successful verification is cached"
        );
        // The cache is keyed by the password: a wrong one is still refused.
        assert_eq!(
            auth.authenticate_basic("admin", "wrong-pass").await.err(),
            Some(AuthError::InvalidCredentials)
        );
        auth.change_password(&admin.user_id, "bootstrap-pass", "next-pass", &admin)
            .await
            .expect("changed");
        assert!(auth.verified.lock().get("admin").is_none(), "cache dropped");
        assert_eq!(
            auth.authenticate_basic("admin", "bootstrap-pass")
                .await
                .err(),
            Some(AuthError::InvalidCredentials)
        );
        auth.authenticate_basic("admin", "next-pass")
            .await
            .expect("new password");
        let new_epoch = auth.verified.lock().get("admin").map(|v| v.epoch);
        assert!(new_epoch > cached_epoch, "{new_epoch:?} > {cached_epoch:?}");
    }

    #[tokio::test]
    async fn a_lagging_node_catches_up_before_judging() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let a = start(&store).await;
        let b = start(&store).await;
        stop_following(&b); // B now learns only by catching up on demand.
        let admin = a.list_users().await.expect("users")[0].caller();
        let new = NewUser {
            name: "Lee".into(),
            username: "lee".into(),
            password: "lee-pass-1".into(),
            roles: vec!["OPERATIONS".into()],
        };
        let lee = a.create_user(new, Some(&admin)).await.expect("created");
        // Unknown on B until it catches up, which a login triggers.
        let (caller, old_token) = b
            .authenticate_basic("lee", "lee-pass-1")
            .await
            .expect("B catches up");
        assert_eq!(caller.user_id, lee.user_id);
        a.change_password(&lee.user_id, "lee-pass-1", "lee-pass-2", &caller)
            .await
            .expect("changed on A");
        // A token minted on A after the change is newer than B knows: B catches up, accepts it,
        // and from then on refuses the older token.
        let (_, new_token) = a
            .authenticate_basic("lee", "lee-pass-2")
            .await
            .expect("new password on A");
        assert!(b.authenticate_token(&new_token).await.is_ok());
        assert_eq!(
            b.authenticate_token(&old_token).await,
            Err(AuthError::Revoked)
        );
    }

    #[tokio::test]
    async fn the_follower_applies_other_nodes_changes() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let a = start(&store).await;
        let b = start(&store).await;
        let admin = a.list_users().await.expect("users")[0].caller();
        let new = NewUser {
            name: "Max".into(),
            username: "max".into(),
            password: "max-pass".into(),
            roles: vec!["ADMIN".into()],
        };
        let max = a.create_user(new, Some(&admin)).await.expect("created");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while b.directory.read().user(&max.user_id).is_none() {
            assert!(tokio::time::Instant::now() < deadline, "B never saw max");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        a.delete_user(&max.user_id, &admin).await.expect("deleted");
        while b.directory.read().user(&max.user_id).is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "B never saw the deletion"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(b.directory.read().was_deleted(&max.user_id));
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_expire_after_the_ttl() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let mut cfg = config();
        cfg.token_ttl = Duration::from_secs(60);
        let auth = Auth::start(store, cfg).await.expect("auth starts");
        let (admin, token) = auth
            .authenticate_basic("admin", "bootstrap-pass")
            .await
            .expect("admin");
        tokio::time::advance(Duration::from_millis(59_900)).await;
        assert_eq!(auth.authenticate_token(&token).await, Ok(admin));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(
            auth.authenticate_token(&token).await,
            Err(AuthError::Expired)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cached_verifications_are_brief() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let auth = start(&store).await;
        auth.authenticate_basic("admin", "bootstrap-pass")
            .await
            .expect("admin");
        let first = auth.verified.lock().get("admin").map(|v| v.at);
        tokio::time::advance(VERIFY_CACHE_TTL / 2).await;
        auth.authenticate_basic("admin", "bootstrap-pass")
            .await
            .expect("admin");
        assert_eq!(
            auth.verified.lock().get("admin").map(|v| v.at),
            first,
            "served from the cache"
        );
        tokio::time::advance(VERIFY_CACHE_TTL).await;
        auth.authenticate_basic("admin", "bootstrap-pass")
            .await
            .expect("admin");
        let again = auth.verified.lock().get("admin").map(|v| v.at);
        assert!(again > first, "verified again after the cache time");
    }

    #[tokio::test]
    async fn dropping_the_authority_stops_its_follower() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let auth = start(&store).await;
        let weak = Arc::downgrade(&auth);
        drop(auth);
        assert!(
            weak.upgrade().is_none(),
            "the follower holds no strong reference"
        );
    }

    fn new_user(name: &str, username: &str, password: &str, roles: &[&str]) -> NewUser {
        NewUser {
            name: name.into(),
            username: username.into(),
            password: password.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (new_user("", "bob", "secret", &["ADMIN"]), "name"),
            (new_user("B", "bo", "secret", &["ADMIN"]), "username"),
            (new_user("B", "b:ob", "secret", &["ADMIN"]), "username"),
            (new_user("B", "bob", "12345", &["ADMIN"]), "password"),
            (new_user("B", "bob", "secret", &[]), "roles"),
            (
                new_user("B", "bob", "secret", &["ADMIN", "admin"]),
                "roles[1]",
            ),
        ];
        for (user, field) in cases {
            assert_eq!(validate_new_user(&user).expect_err(field).field, field);
        }
        let roles = validate_new_user(&new_user(
            "B",
            "bob",
            "secret",
            &["OPERATIONS", "ADMIN", "ADMIN"],
        ))
        .expect("valid");
        assert_eq!(roles, vec![Role::Operations, Role::Admin]);
    }
}
