//! Users: what a user is, the user commands (create, delete, change password, validate, list;
//! in [`commands`]), their validation rules and their domain errors. The same calls serve the
//! `orisun.Admin` gRPC service and the HTTP dashboard; [`crate::api_error`] maps their errors
//! to both protocols.

mod commands;

use crate::auth::{AuthError, Caller, Role};
use chrono::{DateTime, Utc};
use orisun_core::Invalid;
use orisun_store::StoreError;

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

/// Why a user command did nothing.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A field of the command broke a rule (the error names it).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A live user already has this username.
    #[error("user {username:?} already exists")]
    AlreadyExists {
        /// The username asked for.
        username: String,
    },
    /// No live user has this id.
    #[error("user {user_id:?} not found")]
    NotFound {
        /// The id asked for.
        user_id: String,
    },
    /// A user asked to delete themselves (which could leave the cluster without an admin).
    #[error("cannot delete your own user")]
    DeleteSelf,
    /// A user asked to change another user's password.
    #[error("permission denied: you can only change your own password")]
    NotYourPassword,
    /// The current password given with a password change is wrong.
    #[error("current password is incorrect")]
    WrongPassword,
    /// Other commands on the same user kept winning the race; the caller may retry.
    #[error("too many concurrent changes to this user; retry")]
    Contended,
    /// The password could not be hashed.
    #[error("hashing the password: {0}")]
    Hashing(String),
    /// The credentials could not be checked.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The admin boundary could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn validate_password(field: &str, password: &str) -> Result<(), Invalid> {
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
pub(crate) fn validate_new_user(new: &NewUser) -> Result<Vec<Role>, Invalid> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
