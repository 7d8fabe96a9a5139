//! The user commands. Each reads the events that decide it (the latest `$UserCreated`,
//! `$UserDeleted`, ... of its user), decides, and appends one event conditioned on what it read,
//! so concurrent commands on one user serialise: a command whose context changed in between
//! reads again and decides again ([`Auth::decide_and_append`], the one retry loop).

use super::{validate_new_user, validate_password, NewUser, User, UserError};
use crate::admin_boundary::events::{
    self, of_type_with, system_event, CREATED_AT, NAME, PASSWORD_HASH, ROLES, USERNAME,
    USER_CREATED, USER_DELETED, USER_ID, USER_PASSWORD_CHANGED,
};
use crate::auth::{password, Auth, Caller};
use chrono::{SubsecRound, Utc};
use orisun_core::{AppendCondition, Criterion, Invalid, NewEvent, Query};
use orisun_store::{LatestByCriteria, StoreError};
use serde_json::json;
use std::future::Future;
use uuid::Uuid;

/// How many times a user command re-reads and retries when a concurrent change wins.
const MAX_ATTEMPTS: usize = 8;

impl Auth {
    /// The live users, oldest first (after catching up with the admin boundary).
    pub async fn list_users(&self) -> Result<Vec<User>, UserError> {
        self.refresh().await?;
        Ok(self.known_users())
    }

    /// The number of live users (after catching up with the admin boundary).
    pub async fn user_count(&self) -> Result<usize, UserError> {
        Ok(self.list_users().await?.len())
    }

    /// Returns the user when the credentials are valid, `None` when they are not.
    pub async fn validate_credentials(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, UserError> {
        let user = self.check_password(username, password).await?;
        Ok(user.as_ref().map(User::from))
    }

    /// Creates a user. Fails with [`UserError::Invalid`] naming the field, or
    /// [`UserError::AlreadyExists`] when a live user has the username. Concurrent creations of
    /// one username create exactly one user.
    pub async fn create_user(&self, new: NewUser, by: Option<&Caller>) -> Result<User, UserError> {
        let roles = validate_new_user(&new)?;
        let hash = hash(&new.password).await?;
        let boundary = self.admin_boundary().clone();
        let criteria = [
            of_type_with(USER_CREATED, USERNAME, &new.username),
            of_type_with(USER_DELETED, USERNAME, &new.username),
        ];
        let (new, roles, hash, boundary) = (&new, &roles, &hash, &boundary);
        let user = self
            .decide_and_append(&criteria, |latest| async move {
                let live = match (found(&latest, 0), found(&latest, 1)) {
                    (Some(c), Some(d)) => c.position > d.position,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if live {
                    return Err(UserError::AlreadyExists {
                        username: new.username.clone(),
                    });
                }
                let user = User {
                    user_id: Uuid::now_v7().to_string(),
                    name: new.name.clone(),
                    username: new.username.clone(),
                    roles: roles.clone(),
                    created_at: Utc::now().trunc_subsecs(6),
                };
                let role_names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                let event = system_event(
                    USER_CREATED,
                    boundary,
                    by.map(|c| c.user_id.as_str()),
                    json!({
                        USER_ID: user.user_id,
                        NAME: user.name,
                        USERNAME: user.username,
                        ROLES: role_names,
                        PASSWORD_HASH: hash,
                        CREATED_AT: user.created_at.to_rfc3339(),
                    }),
                );
                Ok((event, user))
            })
            .await?;
        tracing::info!(username = %user.username, user_id = %user.user_id, "user created");
        Ok(user)
    }

    /// Deletes a user. Fails with [`UserError::Invalid`] without an id,
    /// [`UserError::DeleteSelf`] for the caller's own user, [`UserError::NotFound`] for an
    /// unknown or already deleted user.
    pub async fn delete_user(&self, user_id: &str, by: &Caller) -> Result<(), UserError> {
        if user_id.is_empty() {
            return Err(Invalid::new("user_id", "is required").into());
        }
        if user_id == by.user_id {
            return Err(UserError::DeleteSelf);
        }
        let boundary = self.admin_boundary().clone();
        let criteria = [
            of_type_with(USER_CREATED, USER_ID, user_id),
            of_type_with(USER_DELETED, USER_ID, user_id),
        ];
        let boundary = &boundary;
        let username = self
            .decide_and_append(&criteria, |latest| async move {
                let (Some(created), None) = (found(&latest, 0), found(&latest, 1)) else {
                    return Err(not_found(user_id));
                };
                let username = field(&created.data, USERNAME);
                let event = system_event(
                    USER_DELETED,
                    boundary,
                    Some(&by.user_id),
                    json!({ USER_ID: user_id, USERNAME: username }),
                );
                Ok((event, username))
            })
            .await?;
        self.forget_verified(&username);
        tracing::info!(%username, %user_id, by = %by.username, "user deleted");
        Ok(())
    }

    /// Changes the caller's own password. Fails with [`UserError::NotYourPassword`] for another
    /// user, [`UserError::Invalid`] for a missing id or a short new password,
    /// [`UserError::NotFound`] for a deleted user, [`UserError::WrongPassword`] when `current`
    /// is wrong.
    pub async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new_password: &str,
        by: &Caller,
    ) -> Result<(), UserError> {
        if user_id.is_empty() {
            return Err(Invalid::new("user_id", "is required").into());
        }
        if user_id != by.user_id {
            return Err(UserError::NotYourPassword);
        }
        validate_password("new_password", new_password)?;
        let new_hash = hash(new_password).await?;
        let boundary = self.admin_boundary().clone();
        let criteria = [
            of_type_with(USER_CREATED, USER_ID, user_id),
            of_type_with(USER_DELETED, USER_ID, user_id),
            of_type_with(USER_PASSWORD_CHANGED, USER_ID, user_id),
        ];
        let (boundary, new_hash) = (&boundary, &new_hash);
        self.decide_and_append(&criteria, |latest| async move {
            let (Some(created), None) = (found(&latest, 0), found(&latest, 1)) else {
                return Err(not_found(user_id));
            };
            let current_event = found(&latest, 2).unwrap_or(created);
            let current_hash = field(&current_event.data, PASSWORD_HASH);
            if !password::verify_blocking(current.to_owned(), current_hash).await {
                return Err(UserError::WrongPassword);
            }
            let event = system_event(
                USER_PASSWORD_CHANGED,
                boundary,
                Some(&by.user_id),
                json!({ USER_ID: user_id, PASSWORD_HASH: new_hash }),
            );
            Ok((event, ()))
        })
        .await?;
        self.forget_verified(&by.username);
        tracing::info!(username = %by.username, %user_id, "password changed");
        Ok(())
    }

    /// The optimistic loop every user command runs: reads the latest event of each criterion,
    /// lets `decide` turn that context into one event (or refuse), and appends the event on
    /// condition that nothing matching the criteria was appended since. When another command
    /// wins the race it reads and decides again, up to [`MAX_ATTEMPTS`] times. On success the
    /// projection has caught up with the new event before this returns.
    async fn decide_and_append<T, Decision>(
        &self,
        criteria: &[Criterion],
        mut decide: impl FnMut(LatestByCriteria) -> Decision,
    ) -> Result<T, UserError>
    where
        Decision: Future<Output = Result<(NewEvent, T), UserError>>,
    {
        let boundary = self.admin_boundary();
        for _ in 0..MAX_ATTEMPTS {
            let latest = self.store().latest_by_criteria(boundary, criteria).await?;
            let context = latest.context_position;
            let (event, outcome) = decide(latest).await?;
            let condition = AppendCondition::new(Query::new(criteria.to_vec()), context);
            match self
                .store()
                .append(boundary, vec![event], Some(condition))
                .await
            {
                Ok(_) => {
                    self.refresh().await?;
                    return Ok(outcome);
                }
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(UserError::Contended)
    }
}

/// The latest event of criterion `index`, if one matched.
fn found(latest: &LatestByCriteria, index: usize) -> Option<&orisun_core::StoredEvent> {
    latest.events.get(index).and_then(Option::as_ref)
}

/// The text of string field `key` of an event's data, empty when absent.
fn field(data: &str, key: &str) -> String {
    events::parse(data)
        .and_then(|d| events::text(&d, key).map(str::to_owned))
        .unwrap_or_default()
}

fn not_found(user_id: &str) -> UserError {
    UserError::NotFound {
        user_id: user_id.to_owned(),
    }
}

async fn hash(password: &str) -> Result<String, UserError> {
    password::hash_blocking(password.to_owned())
        .await
        .map_err(|e| UserError::Hashing(e.to_string()))
}
