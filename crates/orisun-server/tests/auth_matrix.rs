//! The authentication and authorisation matrix, end to end on real servers: missing and
//! malformed credentials, wrong passwords, token reuse, expiry and revocation (password change,
//! deletion), roles (OPERATIONS vs ADMIN), reflection and health, and two nodes sharing one
//! store or one PostgreSQL database.

mod auth_support;
mod common;

use auth_support::*;
use common::{assert_status, event, ADMIN};
use orisun_proto as pb;
use orisun_store::{EventStore, MemoryStore};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

fn memory() -> Arc<dyn EventStore> {
    Arc::new(MemoryStore::new())
}

async fn memory_node() -> Node {
    Node::memory(memory(), &[]).await
}

// ---- scenarios (each runs against a running node) -------------------------------------------

async fn no_credentials(addr: SocketAddr) {
    assert_status(
        ping(addr, Headers::none()).await,
        Code::Unauthenticated,
        "missing authorization header",
    );
    let listed = admin_at(addr, Headers::none())
        .await
        .list_users(pb::ListUsersRequest {})
        .await;
    assert_status(
        listed,
        Code::Unauthenticated,
        "missing authorization header",
    );
}

async fn malformed_credentials(addr: SocketAddr) {
    for value in [
        "Bearer abc",
        "Basic !!!not-base64",
        "Basic",
        &format!("Basic {}", "bm9jb2xvbg=="),
    ] {
        assert_status(
            ping(addr, Headers::authorization(value)).await,
            Code::Unauthenticated,
            "invalid authorization header format",
        );
    }
}

async fn wrong_password_and_unknown_user(addr: SocketAddr) {
    for (user, password) in [
        (ADMIN.0, "wrong-password"),
        ("nobody", "whatever"),
        (ADMIN.0, ""),
    ] {
        assert_status(
            ping(addr, Headers::basic(user, password)).await,
            Code::Unauthenticated,
            "invalid credentials",
        );
    }
    assert_status(
        ping(addr, Headers::token("v1.forged.token")).await,
        Code::Unauthenticated,
        "invalid credentials",
    );
    assert_status(
        ping(addr, Headers::token("0b6a1d9e-5d7c-4a47-9a38-0d3e1d1c3f11")).await,
        Code::Unauthenticated,
        "invalid credentials",
    );
}

async fn token_reuse(addr: SocketAddr) {
    let first = ping(addr, admin_headers()).await.expect("basic ping");
    let token = token_of(&first);
    // The token alone authenticates, on a fresh connection, and is echoed back.
    let again = ping(addr, Headers::token(&token))
        .await
        .expect("token ping");
    assert_eq!(token_of(&again), token);
    // It works for the Admin service too.
    let users = admin_at(addr, Headers::token(&token))
        .await
        .list_users(pb::ListUsersRequest {})
        .await
        .expect("list users with token");
    assert_eq!(token_of(&users), token);
    // Every Basic call mints a token (as Go Orisun does).
    let second = ping(addr, admin_headers()).await.expect("basic ping");
    assert!(token_of(&second).starts_with("v1."));
    // Streaming responses carry the header too.
    let stream = events_at(addr, admin_headers())
        .await
        .catch_up_subscribe_to_events(pb::CatchUpSubscribeToEventStoreRequest {
            after_position: Some(common::pos(-1, -1)),
            query: None,
            subscriber_name: format!("auth-{}", uuid::Uuid::now_v7().simple()),
            boundary: "orders".into(),
        })
        .await
        .expect("subscribe");
    assert!(token_of(&stream).starts_with("v1."));
}

async fn revoked_after_password_change(addr: SocketAddr) {
    let user = create_user(addr, "bob", "bob-pass-1", &["OPERATIONS"]).await;
    let token = token_of(
        &ping(addr, Headers::basic("bob", "bob-pass-1"))
            .await
            .expect("bob"),
    );
    // Used twice so the Basic verification is cached before the change.
    ping(addr, Headers::basic("bob", "bob-pass-1"))
        .await
        .expect("bob again");
    ping(addr, Headers::token(&token))
        .await
        .expect("token valid");

    // The FIRST password change works (Go Orisun bug 14), for the user themself.
    let changed = admin_at(addr, Headers::token(&token))
        .await
        .change_password(pb::ChangePasswordRequest {
            user_id: user.user_id.clone(),
            current_password: "bob-pass-1".into(),
            new_password: "bob-pass-2".into(),
        })
        .await
        .expect("first change")
        .into_inner();
    assert!(changed.success);

    assert_status(
        ping(addr, Headers::token(&token)).await,
        Code::Unauthenticated,
        "token revoked",
    );
    assert_status(
        ping(addr, Headers::basic("bob", "bob-pass-1")).await,
        Code::Unauthenticated,
        "invalid credentials",
    );
    let fresh = token_of(
        &ping(addr, Headers::basic("bob", "bob-pass-2"))
            .await
            .expect("new password"),
    );
    ping(addr, Headers::token(&fresh)).await.expect("new token");
    // A revoked token plus valid Basic credentials falls back to Basic.
    let both = ping(
        addr,
        Headers::token(&token).and(Headers::basic("bob", "bob-pass-2")),
    )
    .await
    .expect("basic wins over a revoked token");
    assert_ne!(token_of(&both), token);
}

async fn deleted_user(addr: SocketAddr) {
    let user = create_user(addr, "carol", "carol-pass", &["ADMIN"]).await;
    let token = token_of(
        &ping(addr, Headers::basic("carol", "carol-pass"))
            .await
            .expect("carol"),
    );
    let deleted = admin_at(addr, admin_headers())
        .await
        .delete_user(pb::DeleteUserRequest {
            user_id: user.user_id,
        })
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.success);
    assert_status(
        ping(addr, Headers::token(&token)).await,
        Code::Unauthenticated,
        "token revoked",
    );
    assert_status(
        ping(addr, Headers::basic("carol", "carol-pass")).await,
        Code::Unauthenticated,
        "invalid credentials",
    );
}

async fn operations_role(addr: SocketAddr) {
    let ops = create_user(addr, "opsy", "ops-pass", &["OPERATIONS"]).await;
    let mut admin = admin_at(addr, Headers::basic("opsy", "ops-pass")).await;
    let denied = |r: Result<_, tonic::Status>| {
        let status = r.expect_err("denied");
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains("ADMIN"), "{}", status.message());
    };
    denied(admin.list_users(pb::ListUsersRequest {}).await.map(|_| ()));
    denied(
        admin
            .get_user_count(pb::GetUserCountRequest {})
            .await
            .map(|_| ()),
    );
    denied(
        admin
            .create_user(pb::CreateUserRequest {
                name: "x".into(),
                username: "escalate".into(),
                password: "escalate".into(),
                roles: vec!["ADMIN".into()],
            })
            .await
            .map(|_| ()),
    );
    denied(
        admin
            .delete_user(pb::DeleteUserRequest {
                user_id: ops.user_id.clone(),
            })
            .await
            .map(|_| ()),
    );
    denied(
        admin
            .list_boundaries(pb::ListBoundariesRequest {})
            .await
            .map(|_| ()),
    );
    denied(
        admin
            .validate_credentials(pb::ValidateCredentialsRequest {
                username: ADMIN.0.into(),
                password: ADMIN.1.into(),
            })
            .await
            .map(|_| ()),
    );
    denied(
        admin
            .get_event_count(pb::GetEventCountRequest {
                boundary: "orders".into(),
            })
            .await
            .map(|_| ()),
    );

    // ...but may append and read events.
    let mut events = events_at(addr, Headers::basic("opsy", "ops-pass")).await;
    events
        .save_events(pb::SaveEventsRequest {
            boundary: "orders".into(),
            query: None,
            events: vec![event("OrderPlaced", serde_json::json!({"order": "o-1"}))],
        })
        .await
        .expect("OPERATIONS may save");
    events
        .get_events(pb::GetEventsRequest {
            boundary: "orders".into(),
            count: 10,
            ..Default::default()
        })
        .await
        .expect("OPERATIONS may read");
    // ...and may not forge users through the event API.
    let forged = events
        .save_events(pb::SaveEventsRequest {
            boundary: "orisun_admin".into(),
            query: None,
            events: vec![event(
                "$UserCreated",
                serde_json::json!({"user_id": "x", "username": "mallory", "roles": ["ADMIN"],
                                   "password_hash": "x"}),
            )],
        })
        .await
        .expect_err("reserved event type");
    assert_eq!(forged.code(), Code::PermissionDenied, "{forged:?}");
    // ...and may change their own password.
    admin
        .change_password(pb::ChangePasswordRequest {
            user_id: ops.user_id,
            current_password: "ops-pass".into(),
            new_password: "ops-pass-2".into(),
        })
        .await
        .expect("own password");
}

async fn reflection_and_health(addr: SocketAddr) {
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut anonymous = ServerReflectionClient::new(channel(addr).await);
    let refused = match anonymous
        .server_reflection_info(tokio_stream::iter(vec![list.clone()]))
        .await
    {
        Err(status) => status,
        Ok(response) => {
            use tokio_stream::StreamExt;
            let mut stream = response.into_inner();
            stream
                .next()
                .await
                .expect("an item")
                .expect_err("reflection must need credentials")
        }
    };
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    let mut authed = ServerReflectionClient::with_interceptor(channel(addr).await, admin_headers());
    let response = authed
        .server_reflection_info(tokio_stream::iter(vec![list]))
        .await
        .expect("reflection with credentials");
    let mut stream = response.into_inner();
    let first = stream
        .message()
        .await
        .expect("message")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(services)) = first.message_response else {
        panic!("unexpected reflection response {first:?}");
    };
    let names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"orisun.EventStore".to_owned()), "{names:?}");
    assert!(names.contains(&"orisun.Admin".to_owned()), "{names:?}");
    // The 2025 package is served (and listed) next to today's.
    assert!(
        names.contains(&"eventstore.EventStore".to_owned()),
        "{names:?}"
    );

    // The standard health service is the one exemption.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(addr).await);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health needs no credentials");
}

// ---- the matrix on memory, one test per row -------------------------------------------------

#[tokio::test]
async fn no_credentials_are_unauthenticated() {
    no_credentials(memory_node().await.grpc).await;
}

#[tokio::test]
async fn malformed_authorization_is_rejected() {
    malformed_credentials(memory_node().await.grpc).await;
}

#[tokio::test]
async fn wrong_password_unknown_user_and_forged_tokens_are_rejected() {
    wrong_password_and_unknown_user(memory_node().await.grpc).await;
}

#[tokio::test]
async fn token_from_basic_call_works_alone_unary_and_streaming() {
    token_reuse(memory_node().await.grpc).await;
}

#[tokio::test]
async fn password_change_revokes_tokens_and_cached_passwords() {
    revoked_after_password_change(memory_node().await.grpc).await;
}

#[tokio::test]
async fn deleting_a_user_revokes_tokens_and_basic() {
    deleted_user(memory_node().await.grpc).await;
}

#[tokio::test]
async fn operations_user_cannot_administer_but_can_save() {
    operations_role(memory_node().await.grpc).await;
}

#[tokio::test]
async fn reflection_needs_credentials_and_health_does_not() {
    reflection_and_health(memory_node().await.grpc).await;
}

#[tokio::test]
async fn tokens_expire() {
    let node = Node::memory(memory(), &["--auth-token-ttl", "1s"]).await;
    let addr = node.grpc;
    let token = token_of(&ping(addr, admin_headers()).await.expect("basic"));
    ping(addr, Headers::token(&token))
        .await
        .expect("fresh token");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_status(
        ping(addr, Headers::token(&token)).await,
        Code::Unauthenticated,
        "token expired",
    );
    // Clients that send both headers keep working: Basic wins and a new token comes back.
    let renewed = ping(addr, Headers::token(&token).and(admin_headers()))
        .await
        .expect("basic fallback");
    assert_ne!(token_of(&renewed), token);
}

// ---- two nodes ------------------------------------------------------------------------------

/// Two nodes over one shared store: users, the token key and revocations made on one node
/// apply on the other.
async fn two_nodes(a: SocketAddr, b: SocketAddr) {
    // A user created on A logs in on B at once (B catches up before refusing).
    let dave = create_user(a, "dave", "dave-pass-1", &["OPERATIONS"]).await;
    let token_b = token_of(
        &ping(b, Headers::basic("dave", "dave-pass-1"))
            .await
            .expect("dave on B"),
    );
    // One key for the cluster: a token minted on B works on A and vice versa.
    ping(a, Headers::token(&token_b))
        .await
        .expect("B's token on A");
    let token_a = token_of(
        &ping(a, Headers::basic("dave", "dave-pass-1"))
            .await
            .expect("dave on A"),
    );
    ping(b, Headers::token(&token_a))
        .await
        .expect("A's token on B");

    // A password change on A revokes the token on B, promptly.
    admin_at(a, Headers::basic("dave", "dave-pass-1"))
        .await
        .change_password(pb::ChangePasswordRequest {
            user_id: dave.user_id.clone(),
            current_password: "dave-pass-1".into(),
            new_password: "dave-pass-2".into(),
        })
        .await
        .expect("change on A");
    let revoked = eventually(Duration::from_secs(5), || async {
        matches!(ping(b, Headers::token(&token_b)).await,
            Err(s) if s.code() == Code::Unauthenticated && s.message() == "token revoked")
    })
    .await;
    assert!(revoked, "B still accepts a token revoked on A");
    assert_status(
        ping(b, Headers::basic("dave", "dave-pass-1")).await,
        Code::Unauthenticated,
        "invalid credentials",
    );
    // The new password and a token minted on A after the change work on B.
    let token_a2 = token_of(
        &ping(a, Headers::basic("dave", "dave-pass-2"))
            .await
            .expect("new on A"),
    );
    ping(b, Headers::token(&token_a2))
        .await
        .expect("new token on B");

    // A deletion on B revokes on A.
    admin_at(b, admin_headers())
        .await
        .delete_user(pb::DeleteUserRequest {
            user_id: dave.user_id,
        })
        .await
        .expect("delete on B");
    let revoked = eventually(Duration::from_secs(5), || async {
        matches!(ping(a, Headers::token(&token_a2)).await,
            Err(s) if s.code() == Code::Unauthenticated && s.message() == "token revoked")
    })
    .await;
    assert!(revoked, "A still accepts a deleted user's token");
    // Exactly one bootstrap admin and one key although both nodes started on the store.
    let users = admin_at(b, admin_headers())
        .await
        .list_users(pb::ListUsersRequest {})
        .await
        .expect("list")
        .into_inner()
        .users;
    assert_eq!(users.iter().filter(|u| u.username == ADMIN.0).count(), 1);
}

#[tokio::test]
async fn two_nodes_sharing_a_store_revoke_each_others_tokens() {
    let store = memory();
    let a = Node::memory(store.clone(), &[]).await;
    let b = Node::memory(store, &[]).await;
    two_nodes(a.grpc, b.grpc).await;
}

// ---- the whole matrix on the durable backends -----------------------------------------------

async fn whole_matrix(addr: SocketAddr) {
    no_credentials(addr).await;
    malformed_credentials(addr).await;
    wrong_password_and_unknown_user(addr).await;
    token_reuse(addr).await;
    revoked_after_password_change(addr).await;
    deleted_user(addr).await;
    operations_role(addr).await;
    reflection_and_health(addr).await;
}

#[tokio::test]
async fn whole_matrix_on_sqlite() {
    let server = common::TestServer::start(common::Backend::Sqlite).await;
    whole_matrix(server.grpc).await;
}

#[tokio::test]
async fn whole_matrix_on_postgres() {
    let server = common::TestServer::start(common::Backend::Postgres).await;
    whole_matrix(server.grpc).await;
}

#[tokio::test]
async fn two_nodes_sharing_a_postgres_database() {
    let db = common::TestDb::create().await;
    let a = Node::start(&db.server_args(), None).await;
    let b = Node::start(&db.server_args(), None).await;
    two_nodes(a.grpc, b.grpc).await;
}
