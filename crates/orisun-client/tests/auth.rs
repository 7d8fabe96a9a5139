//! Authentication over the wire: a wrong password, reuse of the session token instead of the
//! password, and the fallback to Basic when the token has expired.

mod support;

use orisun_client::{BuildError, OrisunClient, RetryPolicy};
use orisun_store::core::{Query, ReadRequest};
use orisun_store::{EventStore, StoreError};
use std::time::Duration;
use support::{Backend, TestServer, ADMIN};

fn client_with(server: &TestServer, password: &str, token: Option<&str>) -> OrisunClient {
    let mut builder = OrisunClient::builder(server.url())
        .credentials(ADMIN.0, password)
        .retry_policy(RetryPolicy::NEVER);
    if let Some(token) = token {
        builder = builder.session_token(token);
    }
    builder.build().expect("client configuration")
}

#[track_caller]
fn assert_unauthenticated<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Unauthenticated { reason }) => assert!(
            !reason.is_empty(),
            "an authentication failure without a reason"
        ),
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_unauthenticated_and_not_retried() {
    let server = TestServer::start(Backend::Sqlite, &[]).await;
    let wrong = OrisunClient::builder(server.url())
        .credentials(ADMIN.0, "not-the-password")
        .retry_policy(support::quick_retries());
    let refused = wrong.clone().connect().await.expect_err("refused");
    assert!(
        matches!(&refused, BuildError::Connect(StoreError::Unauthenticated { reason })
            if reason == "invalid credentials"),
        "{refused:?}"
    );
    // Were the refusal retried, the first retry alone would wait at least 2.5 s.
    let patient = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_secs(5),
        max_backoff: Duration::from_secs(5),
    };
    let client = wrong.retry_policy(patient).build().expect("configuration");
    let admin = orisun_store::core::BoundaryName::new("orisun_admin").expect("valid");
    let started = tokio::time::Instant::now();
    assert_unauthenticated(client.read(&admin, &ReadRequest::forward(None, 10)).await);
    // Refused at once: a decision of the server is never retried.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.session_token(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_calls_send_the_token_instead_of_the_password() {
    let server = TestServer::start(Backend::Sqlite, &[]).await;
    let client = client_with(&server, ADMIN.1, None);
    assert_eq!(client.session_token(), None);
    client.ping().await.expect("first call, with Basic");
    let token = client.session_token().expect("the server returned a token");
    client.ping().await.expect("second call");
    // After a token call the server echoes the same token; a Basic call would mint a new one
    // (its expiry, in milliseconds, is part of it).
    assert_eq!(client.session_token().as_deref(), Some(token.as_str()));

    // A client that holds the token but a wrong password is served: its calls carry the token
    // alone, and the password is never checked.
    let holder = client_with(&server, "wrong", Some(&token));
    let boundaries = holder.boundaries().await.expect("served on the token");
    assert!(boundaries.iter().any(|b| b.as_str() == "orisun_admin"));
    let mut live = holder.subscribe(
        &orisun_store::core::BoundaryName::new("orisun_admin").expect("valid"),
        orisun_store::core::Position::BEFORE_FIRST,
        Query::all(),
    );
    let first = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut live))
        .await
        .expect("an event within 10 s");
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    assert_eq!(holder.session_token().as_deref(), Some(token.as_str()));

    // A forged token is refused, and with a wrong password the fallback fails too.
    let forger = client_with(&server, "wrong", Some("v1.forged.token"));
    assert_unauthenticated(forger.ping().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_falls_back_to_basic_once() {
    let server = TestServer::start(Backend::Sqlite, &["--auth-token-ttl", "400ms"]).await;
    let client = client_with(&server, ADMIN.1, None);
    client.ping().await.expect("first call");
    let expired = client.session_token().expect("token");
    // Token expiry is wall time on the server: real time has to pass.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let admin = orisun_store::core::BoundaryName::new("orisun_admin").expect("valid");
    let count = client
        .count(&admin)
        .await
        .expect("served after the fallback");
    assert!(
        count > 0,
        "the admin boundary holds at least the bootstrap admin"
    );
    let fresh = client.session_token().expect("a new token");
    assert_ne!(fresh, expired, "the fallback brought a fresh token");

    // Without the right password there is nothing to fall back on.
    let stale = client_with(&server, "wrong", Some(&expired));
    assert_unauthenticated(stale.ping().await);
    let token_only = OrisunClient::builder(server.url())
        .session_token(&expired)
        .retry_policy(RetryPolicy::NEVER)
        .build()
        .expect("configuration");
    assert_unauthenticated(token_only.ping().await);
}
