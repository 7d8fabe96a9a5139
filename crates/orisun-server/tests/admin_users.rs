//! The Admin service's user RPCs end to end: validation, duplicates (also concurrent), deletion
//! and re-creation, password changes, listing, counts, credential validation, the configured
//! bootstrap admin, and that password hashes never leave the server through the event API.

mod auth_support;
mod common;

use auth_support::*;
use common::{assert_status, ADMIN};
use futures::StreamExt;
use orisun_proto as pb;
use orisun_store::{EventStore, MemoryStore};
use std::collections::HashSet;
use std::sync::Arc;
use tonic::Code;

async fn node() -> Node {
    Node::memory(Arc::new(MemoryStore::new()), &[]).await
}

fn request(name: &str, username: &str, password: &str, roles: &[&str]) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        name: name.into(),
        username: username.into(),
        password: password.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

#[tokio::test]
async fn create_user_validates_each_field() {
    let node = node().await;
    let mut admin = node.admin(admin_headers()).await;
    let cases = [
        (
            request("", "erin", "secret", &["ADMIN"]),
            "name: is required",
        ),
        (
            request("Erin", "er", "secret", &["ADMIN"]),
            "username: must be at least 3 characters",
        ),
        (
            request("Erin", "er:in", "secret", &["ADMIN"]),
            "username: must not contain ':' or control characters",
        ),
        (
            request("Erin", "erin", "12345", &["ADMIN"]),
            "password: must be at least 6 characters",
        ),
        (
            request("Erin", "erin", "secret", &[]),
            "roles: at least one role is required",
        ),
        (
            request("Erin", "erin", "secret", &["OPERATIONS", "admin"]),
            "roles[1]: unknown role \"admin\"; expected ADMIN or OPERATIONS",
        ),
    ];
    for (req, message) in cases {
        assert_status(admin.create_user(req).await, Code::InvalidArgument, message);
    }
    let count = admin
        .get_user_count(pb::GetUserCountRequest {})
        .await
        .expect("count")
        .into_inner()
        .count;
    assert_eq!(count, 1, "nothing was created");
}

#[tokio::test]
async fn create_user_returns_the_user_without_secrets_and_rejects_duplicates() {
    let node = node().await;
    let mut admin = node.admin(admin_headers()).await;
    let before = chrono::Utc::now();
    let user = admin
        .create_user(request(
            "Erin E.",
            "erin",
            "secret-1",
            &["OPERATIONS", "ADMIN", "ADMIN"],
        ))
        .await
        .expect("created")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(user.name, "Erin E.");
    assert_eq!(user.username, "erin");
    assert_eq!(user.roles, vec!["OPERATIONS", "ADMIN"]);
    let id = uuid::Uuid::parse_str(&user.user_id).expect("uuid");
    assert_eq!(id.get_version_num(), 7);
    let created = user.created_at.expect("created_at");
    assert!(
        created.seconds >= before.timestamp() - 1,
        "real creation time"
    );

    assert_status(
        admin
            .create_user(request("Other", "erin", "secret-2", &["ADMIN"]))
            .await,
        Code::AlreadyExists,
        "user \"erin\" already exists",
    );
    // ListUsers shows the same creation time later on (not "now").
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let listed = admin
        .list_users(pb::ListUsersRequest {})
        .await
        .expect("list")
        .into_inner()
        .users;
    let erin = listed
        .iter()
        .find(|u| u.username == "erin")
        .expect("erin listed");
    assert_eq!(erin.created_at, Some(created));
    assert_eq!(erin.user_id, user.user_id);
    assert_eq!(erin.roles, user.roles, "same roles, same order");
    assert!(listed
        .iter()
        .any(|u| u.username == ADMIN.0 && u.roles == ["ADMIN"]));
}

#[tokio::test]
async fn concurrent_creations_of_one_username_make_exactly_one_user() {
    let node = node().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let addr = node.grpc;
        tasks.push(tokio::spawn(async move {
            admin_at(addr, admin_headers())
                .await
                .create_user(request(
                    &format!("Racer {i}"),
                    "racer",
                    "racer-pass",
                    &["OPERATIONS"],
                ))
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("joined") {
            Ok(_) => ok += 1,
            Err(s) => assert_eq!(s.code(), Code::AlreadyExists, "{s:?}"),
        }
    }
    assert_eq!(ok, 1);
    let users = node
        .admin(admin_headers())
        .await
        .list_users(pb::ListUsersRequest {})
        .await
        .expect("list")
        .into_inner()
        .users;
    assert_eq!(users.iter().filter(|u| u.username == "racer").count(), 1);
}

#[tokio::test]
async fn delete_user_rules_and_recreation() {
    let node = node().await;
    let mut admin = node.admin(admin_headers()).await;
    let me = admin
        .validate_credentials(pb::ValidateCredentialsRequest {
            username: ADMIN.0.into(),
            password: ADMIN.1.into(),
        })
        .await
        .expect("validate")
        .into_inner()
        .user
        .expect("admin user");
    assert_status(
        admin
            .delete_user(pb::DeleteUserRequest {
                user_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "user_id: is required",
    );
    assert_status(
        admin
            .delete_user(pb::DeleteUserRequest {
                user_id: me.user_id.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "cannot delete your own user",
    );
    assert_status(
        admin
            .delete_user(pb::DeleteUserRequest {
                user_id: "nope".into(),
            })
            .await,
        Code::NotFound,
        "user \"nope\" not found",
    );
    let frank = create_user(node.grpc, "frank", "frank-pass", &["OPERATIONS"]).await;
    assert!(
        admin
            .delete_user(pb::DeleteUserRequest {
                user_id: frank.user_id.clone()
            })
            .await
            .expect("deleted")
            .into_inner()
            .success
    );
    assert_status(
        admin
            .delete_user(pb::DeleteUserRequest {
                user_id: frank.user_id.clone(),
            })
            .await,
        Code::NotFound,
        &format!("user {:?} not found", frank.user_id),
    );
    let users = admin
        .list_users(pb::ListUsersRequest {})
        .await
        .expect("list")
        .into_inner()
        .users;
    assert!(
        users.iter().all(|u| u.username != "frank"),
        "deleted users are not listed"
    );
    let count = admin
        .get_user_count(pb::GetUserCountRequest {})
        .await
        .expect("count")
        .into_inner();
    assert_eq!(count.count, 1);

    // The username is free again; the new user is a different user.
    let again = create_user(node.grpc, "frank", "frank-pass-2", &["ADMIN"]).await;
    assert_ne!(again.user_id, frank.user_id);
    ping(node.grpc, Headers::basic("frank", "frank-pass-2"))
        .await
        .expect("new frank logs in");
    let count = admin
        .get_user_count(pb::GetUserCountRequest {})
        .await
        .expect("count")
        .into_inner();
    assert_eq!(count.count, 2);
}

#[tokio::test]
async fn change_password_rules() {
    let node = node().await;
    let grace = create_user(node.grpc, "grace", "grace-pass-1", &["OPERATIONS"]).await;
    let heidi = create_user(node.grpc, "heidi", "heidi-pass", &["ADMIN"]).await;
    let mut as_grace = node.admin(Headers::basic("grace", "grace-pass-1")).await;
    let change = |user_id: &str, current: &str, new: &str| pb::ChangePasswordRequest {
        user_id: user_id.into(),
        current_password: current.into(),
        new_password: new.into(),
    };
    assert_status(
        as_grace
            .change_password(change(&heidi.user_id, "heidi-pass", "hacked!"))
            .await,
        Code::PermissionDenied,
        "permission denied: you can only change your own password",
    );
    // Even an admin cannot change another user's password through this RPC.
    let mut as_heidi = node.admin(Headers::basic("heidi", "heidi-pass")).await;
    assert_status(
        as_heidi
            .change_password(change(&grace.user_id, "grace-pass-1", "hacked!"))
            .await,
        Code::PermissionDenied,
        "permission denied: you can only change your own password",
    );
    assert_status(
        as_grace
            .change_password(change(&grace.user_id, "wrong", "grace-pass-2"))
            .await,
        Code::Unauthenticated,
        "current password is incorrect",
    );
    assert_status(
        as_grace
            .change_password(change(&grace.user_id, "grace-pass-1", "short"))
            .await,
        Code::InvalidArgument,
        "new_password: must be at least 6 characters",
    );
    assert_status(
        as_grace
            .change_password(change("", "grace-pass-1", "grace-pass-2"))
            .await,
        Code::InvalidArgument,
        "user_id: is required",
    );
    // First and second changes both work.
    as_grace
        .change_password(change(&grace.user_id, "grace-pass-1", "grace-pass-2"))
        .await
        .expect("first change");
    let mut as_grace = node.admin(Headers::basic("grace", "grace-pass-2")).await;
    as_grace
        .change_password(change(&grace.user_id, "grace-pass-2", "grace-pass-3"))
        .await
        .expect("second change");
    ping(node.grpc, Headers::basic("grace", "grace-pass-3"))
        .await
        .expect("latest password");
}

#[tokio::test]
async fn validate_credentials_reports_success_without_erroring() {
    let node = node().await;
    create_user(node.grpc, "ivan", "ivan-pass", &["OPERATIONS"]).await;
    let mut admin = node.admin(admin_headers()).await;
    let check = |username: &str, password: &str| pb::ValidateCredentialsRequest {
        username: username.into(),
        password: password.into(),
    };
    let ok = admin
        .validate_credentials(check("ivan", "ivan-pass"))
        .await
        .expect("ok")
        .into_inner();
    assert!(ok.success);
    let user = ok.user.expect("user");
    assert_eq!(
        (user.username.as_str(), user.roles.as_slice()),
        ("ivan", &["OPERATIONS".to_owned()][..])
    );
    for (u, p) in [("ivan", "wrong-pass"), ("nobody", "ivan-pass"), ("", "")] {
        let r = admin
            .validate_credentials(check(u, p))
            .await
            .expect("not an error")
            .into_inner();
        assert!(!r.success && r.user.is_none(), "{u}/{p}");
    }
}

#[tokio::test]
async fn event_count_per_boundary() {
    let node = node().await;
    let mut events = node.events(admin_headers()).await;
    events
        .save_events(pb::SaveEventsRequest {
            boundary: "orders".into(),
            query: None,
            events: (0..3)
                .map(|i| common::event("Placed", serde_json::json!({"i": i})))
                .collect(),
        })
        .await
        .expect("saved");
    let mut admin = node.admin(admin_headers()).await;
    let count = |b: &str| pb::GetEventCountRequest { boundary: b.into() };
    assert_eq!(
        admin
            .get_event_count(count("orders"))
            .await
            .expect("count")
            .into_inner()
            .count,
        3
    );
    assert_eq!(
        admin
            .get_event_count(count("payments"))
            .await
            .expect("count")
            .into_inner()
            .count,
        0
    );
    let missing = admin
        .get_event_count(count("nowhere"))
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Code::FailedPrecondition, "{missing:?}");
    let bad = admin
        .get_event_count(count("no-dashes"))
        .await
        .expect_err("invalid");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
}

#[tokio::test]
async fn bootstrap_admin_comes_from_the_configuration() {
    let node = Node::memory(
        Arc::new(MemoryStore::new()),
        &[
            "--admin-username",
            "root",
            "--admin-password",
            "s3cret-root",
        ],
    )
    .await;
    ping(node.grpc, Headers::basic("root", "s3cret-root"))
        .await
        .expect("configured admin");
    assert_status(
        ping(node.grpc, Headers::basic(ADMIN.0, ADMIN.1)).await,
        Code::Unauthenticated,
        "invalid credentials",
    );
    let users = admin_at(node.grpc, Headers::basic("root", "s3cret-root"))
        .await
        .list_users(pb::ListUsersRequest {})
        .await
        .expect("root is ADMIN")
        .into_inner()
        .users;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].roles, vec!["ADMIN"]);
}

#[tokio::test]
async fn users_survive_a_restart_and_the_bootstrap_is_not_repeated() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let first = Node::memory(store.clone(), &[]).await;
    create_user(first.grpc, "judy", "judy-pass", &["OPERATIONS"]).await;
    let token = token_of(
        &ping(first.grpc, Headers::basic("judy", "judy-pass"))
            .await
            .expect("judy"),
    );
    // Aborted, not stopped: a graceful stop waits for the store (which this test holds) to be
    // released.
    drop(first);
    let second = Node::memory(store, &["--admin-password", "another-one"]).await;
    // The same signing key: tokens survive the restart.
    ping(second.grpc, Headers::token(&token))
        .await
        .expect("token after restart");
    ping(second.grpc, Headers::basic("judy", "judy-pass"))
        .await
        .expect("judy after restart");
    // Users exist, so the configured password does not re-create or reset the admin.
    ping(second.grpc, admin_headers())
        .await
        .expect("original admin password");
    let count = admin_at(second.grpc, admin_headers())
        .await
        .get_user_count(pb::GetUserCountRequest {})
        .await
        .expect("count")
        .into_inner()
        .count;
    assert_eq!(count, 2);
}

/// Password hashes and the token key never leave the server: not through GetEvents, not
/// through GetLatestByCriteria, not through a subscription of the admin boundary.
#[tokio::test]
async fn admin_boundary_secrets_are_never_served() {
    let node = node().await;
    let kim = create_user(node.grpc, "kim", "kim-pass-1", &["OPERATIONS"]).await;
    admin_at(node.grpc, Headers::basic("kim", "kim-pass-1"))
        .await
        .change_password(pb::ChangePasswordRequest {
            user_id: kim.user_id.clone(),
            current_password: "kim-pass-1".into(),
            new_password: "kim-pass-2".into(),
        })
        .await
        .expect("changed");
    let leaks = |text: &str| {
        text.contains("password_hash") || text.contains("$argon2") || text.contains("\"key\"")
    };
    let mut events = node.events(Headers::basic("kim", "kim-pass-2")).await;

    let all = events
        .get_events(pb::GetEventsRequest {
            boundary: "orisun_admin".into(),
            count: 1_000,
            ..Default::default()
        })
        .await
        .expect("read admin boundary")
        .into_inner()
        .events;
    let types: HashSet<&str> = all.iter().map(|e| e.event_type.as_str()).collect();
    for t in ["$UserCreated", "$UserPasswordChanged", "$AuthKeyCreated"] {
        assert!(types.contains(t), "{t} missing from {types:?}");
    }
    for e in &all {
        assert!(!leaks(&e.data), "GetEvents leaked a secret: {}", e.data);
    }
    let kim_created = all
        .iter()
        .find(|e| e.event_type == "$UserCreated" && e.data.contains("\"kim\""))
        .expect("kim's creation");
    let data: serde_json::Value = serde_json::from_str(&kim_created.data).expect("json");
    assert_eq!(data["username"], "kim", "non-secret fields stay readable");

    let latest = events
        .get_latest_by_criteria(pb::GetLatestByCriteriaRequest {
            boundary: "orisun_admin".into(),
            criteria: ["$UserCreated", "$UserPasswordChanged", "$AuthKeyCreated"]
                .iter()
                .map(|t| common::criterion(&[("eventType", t)]))
                .collect(),
        })
        .await
        .expect("latest")
        .into_inner();
    for r in &latest.results {
        let e = r.event.as_ref().expect("found");
        assert!(
            !leaks(&e.data),
            "GetLatestByCriteria leaked a secret: {}",
            e.data
        );
    }

    let mut stream = events
        .catch_up_subscribe_to_events(pb::CatchUpSubscribeToEventStoreRequest {
            after_position: Some(common::pos(-1, -1)),
            query: None,
            subscriber_name: "secrets-test".into(),
            boundary: "orisun_admin".into(),
        })
        .await
        .expect("subscribe")
        .into_inner();
    for _ in 0..all.len() {
        let e = stream
            .next()
            .await
            .expect("an event")
            .expect("not an error");
        assert!(
            !leaks(&e.data),
            "a subscription leaked a secret: {}",
            e.data
        );
    }
}
