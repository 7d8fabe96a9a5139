//! Start-up of the authority: the cluster's token signing key (created once, first writer wins)
//! and the bootstrap admin user (created when no user exists), with the default-password
//! warning.

use super::authority::Auth;
use super::password;
use super::token::TokenKey;
use super::{Role, DEFAULT_ADMIN_PASSWORD};
use crate::admin_boundary::events::{of_type, system_event, AUTH_KEY_CREATED, KEY, KEY_ID};
use crate::users::{NewUser, UserError};
use anyhow::Context as _;
use orisun_core::{AppendCondition, Position, Query};
use orisun_store::StoreError;
use serde_json::json;
use uuid::Uuid;

impl Auth {
    pub(super) async fn ensure_key(&self) -> anyhow::Result<()> {
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

    pub(super) async fn bootstrap_admin(&self) -> anyhow::Result<()> {
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
                Err(UserError::AlreadyExists { .. }) => {}
                Err(e) => anyhow::bail!(
                    "cannot create the bootstrap admin {username:?} (check ORISUN_ADMIN_USERNAME \
                     and ORISUN_ADMIN_PASSWORD): {e}"
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
}
