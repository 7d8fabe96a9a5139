//! The users page's API: list, create (with roles), delete, and change one's own password,
//! all through the user commands of [`crate::users`] shared with the gRPC Admin service.

use super::csrf::Change;
use super::session::Session;
use super::DashboardError;
use crate::users::{NewUser, User};
use axum::extract::Path;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

fn user_json(user: &User) -> Value {
    json!({
        "user_id": user.user_id,
        "name": user.name,
        "username": user.username,
        "roles": user.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "created_at": user.created_at.to_rfc3339(),
    })
}

/// `GET /api/users`: the live users, oldest first (any logged-in user may look).
pub async fn list(session: Session) -> Result<Json<Value>, DashboardError> {
    let users = session.dash.auth.list_users().await?;
    Ok(Json(json!({
        "users": users.iter().map(user_json).collect::<Vec<_>>(),
    })))
}

/// A user to create.
#[derive(Debug, Deserialize)]
pub struct CreateUser {
    /// Display name.
    pub name: String,
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Roles (`ADMIN`, `OPERATIONS`).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `POST /api/users` (ADMIN): creates a user.
pub async fn create(
    Change(session): Change,
    Json(form): Json<CreateUser>,
) -> Result<Json<Value>, DashboardError> {
    session.require_admin()?;
    let user = session
        .dash
        .auth
        .create_user(
            NewUser {
                name: form.name,
                username: form.username,
                password: form.password,
                roles: form.roles,
            },
            Some(&session.caller),
        )
        .await?;
    Ok(Json(user_json(&user)))
}

/// `DELETE /api/users/{user_id}` (ADMIN): deletes a user, which ends their sessions.
pub async fn remove(
    Change(session): Change,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, DashboardError> {
    session.require_admin()?;
    session
        .dash
        .auth
        .delete_user(&user_id, &session.caller)
        .await?;
    Ok(Json(json!({"ok": true})))
}

/// A password change.
#[derive(Debug, Deserialize)]
pub struct ChangePassword {
    /// The current password.
    pub current_password: String,
    /// The new password.
    pub new_password: String,
}

/// `POST /api/password` (ADMIN): changes the logged-in user's own password, which ends every
/// session of theirs, this one included (the page logs in again). Non-ADMIN users change
/// theirs over gRPC: the dashboard is read-only for them.
pub async fn change_password(
    Change(session): Change,
    Json(form): Json<ChangePassword>,
) -> Result<Json<Value>, DashboardError> {
    session.require_admin()?;
    session
        .dash
        .auth
        .change_password(
            &session.caller.user_id,
            &form.current_password,
            &form.new_password,
            &session.caller,
        )
        .await?;
    Ok(Json(json!({"ok": true})))
}
