//! [`Auth`]: one node's authority over users and tokens. It owns the projection of the admin
//! boundary's user and key events and keeps it current; the jobs built on it live beside it:
//! start-up ([`super::bootstrap`]), credential and token checks ([`super::credentials`]),
//! following other nodes' changes ([`super::follower`]) and the user commands
//! ([`crate::users`]).

use super::credentials::Verified;
use super::directory::{Directory, UserRecord};
use super::follower::follow;
use super::token::Clock;
use super::AuthConfig;
use crate::users::User;
use anyhow::Context as _;
use orisun_core::{BoundaryName, Position, ReadRequest};
use orisun_store::{EventStore, StoreError};
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Page size of catch-up reads of the admin boundary.
const PAGE: u32 = 1_000;

/// The user directory and token authority of one node.
///
/// It keeps a projection of the admin boundary's user events, following the boundary live so
/// that changes made by other nodes sharing the database apply here too, and checks credentials
/// and tokens against it.
pub struct Auth {
    pub(super) store: Arc<dyn EventStore>,
    pub(super) cfg: AuthConfig,
    pub(super) directory: RwLock<Directory>,
    refresh_lock: tokio::sync::Mutex<()>,
    pub(super) verified: Mutex<HashMap<String, Verified>>,
    pub(super) cache_salt: [u8; 32],
    pub(super) clock: Clock,
    pub(super) follower: Mutex<Option<JoinHandle<()>>>,
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

    /// The store that holds the admin boundary.
    pub(crate) fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The live users, oldest first, as this node knows them now (no catch-up).
    pub(crate) fn known_users(&self) -> Vec<User> {
        self.directory
            .read()
            .users()
            .iter()
            .map(User::from)
            .collect()
    }

    /// Forgets the cached password verification of `username` (after its password changed or
    /// the user was deleted).
    pub(crate) fn forget_verified(&self, username: &str) {
        self.verified.lock().remove(username);
    }

    pub(super) fn apply(&self, event: &orisun_core::StoredEvent) {
        self.directory.write().apply(event);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::credentials::VERIFY_CACHE_TTL;
    use crate::auth::{AuthError, Role};
    use crate::users::NewUser;
    use orisun_store::MemoryStore;
    use std::time::Duration;

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
}
