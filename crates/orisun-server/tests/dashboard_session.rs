//! Dashboard sessions and CSRF over plain HTTP: no cookie means the login page or 401; a login
//! sets an HttpOnly, SameSite=Strict cookie that expires like a token; forged state changes are
//! refused and change nothing; non-ADMIN users are refused every state change; logout, a
//! password change and a deletion end sessions.

mod common;
mod dashboard_support;

use axum::http::StatusCode;
use common::{Backend, Credentials, TestServer, ADMIN};
use dashboard_support::Browser;
use orisun_proto as pb;
use orisun_proto::admin_client::AdminClient;
use serde_json::json;

async fn usernames(b: &Browser) -> Vec<String> {
    let answer = b.get("/api/users").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json()["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].as_str().expect("username").to_owned())
        .collect()
}

#[tokio::test]
async fn without_a_session_pages_go_to_login_and_the_api_says_401() {
    let server = TestServer::start(Backend::Memory).await;
    let anonymous = Browser::new(server.http);
    let root = anonymous.get("/").await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(root.headers["location"], "/login");
    let login = anonymous.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.text.contains("login-form"), "{}", login.text);
    assert!(login.headers["content-security-policy"]
        .to_str()
        .expect("ascii")
        .contains("default-src 'self'"));
    for path in [
        "/api/me",
        "/api/overview",
        "/api/users",
        "/api/events/orders",
        "/api/subscribers",
        "/api/boundaries",
        "/api/indexes",
    ] {
        let answer = anonymous.get(path).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(answer.json()["error"], "missing authorization header");
    }
    // A cookie that is not one of our tokens is no better.
    let mut forged = Browser::new(server.http);
    forged.session = Some("v1.eyJ1IjoieCJ9.AAAA".into());
    assert_eq!(forged.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.get("/").await.status, StatusCode::SEE_OTHER);
    // The probes stay open.
    assert_eq!(anonymous.get("/health").await.status, StatusCode::OK);
    assert_eq!(anonymous.get("/ready").await.status, StatusCode::OK);
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_bad_credentials_get_none() {
    let server = TestServer::start(Backend::Memory).await;
    let anonymous = Browser::new(server.http);
    let refused = anonymous
        .post(
            "/api/login",
            json!({"username": "admin", "password": "wrong-one"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"], "invalid credentials");
    assert!(refused.set_cookie().is_none());

    let answer = anonymous
        .post(
            "/api/login",
            json!({"username": ADMIN.0, "password": ADMIN.1}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let cookie = answer.set_cookie().expect("cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let admin = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    let me = admin.get("/api/me").await.json();
    assert_eq!(me["username"], "admin");
    assert_eq!(me["admin"], true);
    assert_eq!(me["csrf"], admin.csrf.clone().expect("csrf").as_str());
    assert_eq!(admin.get("/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn forged_state_changes_are_refused_and_change_nothing() {
    let server = TestServer::start(Backend::Memory).await;
    let admin = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    let new_user =
        json!({"name": "Eve", "username": "eve", "password": "eve-pass", "roles": ["ADMIN"]});

    let mut no_token = admin.clone();
    no_token.csrf = None;
    let answer = no_token.post("/api/users", new_user.clone()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.json()["error"],
        "CSRF check failed: missing x-csrf-token header"
    );

    let mut wrong_token = admin.clone();
    wrong_token.csrf = Some("not-the-token".into());
    let answer = wrong_token.post("/api/users", new_user.clone()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.json()["error"],
        "CSRF check failed: wrong x-csrf-token"
    );

    // Another user's CSRF token does not fit this session either.
    let other = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    let mut borrowed = admin.clone();
    borrowed.csrf = other.csrf.clone();
    if borrowed.csrf != admin.csrf {
        assert_eq!(
            borrowed.post("/api/users", new_user.clone()).await.status,
            StatusCode::FORBIDDEN
        );
    }

    let mut cross_site = admin.clone();
    cross_site.origin = Some("http://evil.example".into());
    let answer = cross_site.post("/api/users", new_user.clone()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.json()["error"],
        "CSRF check failed: request from another origin"
    );
    assert_eq!(
        cross_site.delete("/api/users/some-id").await.status,
        StatusCode::FORBIDDEN
    );
    // Login CSRF: a foreign page cannot log the browser in either.
    let mut foreign = Browser::new(server.http);
    foreign.origin = Some("http://evil.example".into());
    let answer = foreign
        .post(
            "/api/login",
            json!({"username": ADMIN.0, "password": ADMIN.1}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.set_cookie().is_none());

    assert_eq!(usernames(&admin).await, vec!["admin"], "nothing changed");
    let answer = admin.post("/api/users", new_user).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(usernames(&admin).await, vec!["admin", "eve"]);
}

#[tokio::test]
async fn a_non_admin_reads_but_is_refused_every_state_change() {
    let server = TestServer::start(Backend::Memory).await;
    server
        .create_user("olga", "olga-pass", &["OPERATIONS"])
        .await;
    let ops = Browser::login(server.http, "olga", "olga-pass").await;
    let admin = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    assert_eq!(ops.get("/api/me").await.json()["admin"], false);
    for path in [
        "/api/overview",
        "/api/users",
        "/api/events/orders",
        "/api/subscribers",
        "/api/boundaries",
        "/api/indexes",
    ] {
        assert_eq!(ops.get(path).await.status, StatusCode::OK, "{path}");
    }
    let olga_id = ops.get("/api/me").await.json()["user_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let admin_id = admin.get("/api/me").await.json()["user_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let boundaries_before = admin.get("/api/boundaries").await.json();
    let changes = [
        ops.post(
            "/api/users",
            json!({"name": "X", "username": "xavier", "password": "secret1", "roles": ["ADMIN"]}),
        )
        .await,
        ops.delete(&format!("/api/users/{admin_id}")).await,
        ops.post(
            "/api/password",
            json!({"current_password": "olga-pass", "new_password": "olga-pass-2"}),
        )
        .await,
        ops.post("/api/boundaries", json!({"name": "sneaky"})).await,
        ops.post(
            "/api/indexes",
            json!({"boundary": "orders", "name": "ix", "fields": [{"key": "a"}]}),
        )
        .await,
        ops.delete("/api/indexes/orders/ix").await,
    ];
    for answer in changes {
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
        assert!(
            answer.json()["error"]
                .as_str()
                .expect("error")
                .contains("needs role ADMIN"),
            "{}",
            answer.text
        );
    }
    assert_eq!(usernames(&admin).await, vec!["admin", "olga"]);
    assert_eq!(admin.get("/api/boundaries").await.json(), boundaries_before);
    assert_eq!(admin.get("/api/indexes").await.json()["indexes"], json!([]));
    // The old password still works: nothing changed.
    Browser::login(server.http, "olga", "olga-pass").await;
    // Ending one's own session is allowed.
    assert_eq!(
        ops.post("/api/logout", json!({})).await.status,
        StatusCode::OK
    );
    let _ = olga_id;
}

#[tokio::test]
async fn logout_password_change_and_deletion_end_sessions() {
    let server = TestServer::start(Backend::Memory).await;
    // Logout: the cookie is cleared and a kept copy is refused.
    let admin = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    let out = admin.post("/api/logout", json!({})).await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.set_cookie().expect("cleared").contains("Max-Age=0"));
    let answer = admin.get("/api/me").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json()["error"], "token revoked");

    // A password change over gRPC (another path, as from another node) ends bob's sessions.
    server.create_user("bob", "bob-pass-1", &["ADMIN"]).await;
    let bob = Browser::login(server.http, "bob", "bob-pass-1").await;
    let bob_id = bob.get("/api/me").await.json()["user_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut bob_grpc = AdminClient::with_interceptor(
        server.channel().await,
        Credentials::basic("bob", "bob-pass-1"),
    );
    bob_grpc
        .change_password(pb::ChangePasswordRequest {
            user_id: bob_id,
            current_password: "bob-pass-1".into(),
            new_password: "bob-pass-2".into(),
        })
        .await
        .expect("changed");
    let answer = bob.get("/api/me").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json()["error"], "token revoked");

    // A password change in the dashboard ends the session that made it.
    let bob = Browser::login(server.http, "bob", "bob-pass-2").await;
    let wrong = bob
        .post(
            "/api/password",
            json!({"current_password": "nope-nope", "new_password": "bob-pass-3"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bob.get("/api/me").await.status, StatusCode::OK, "unchanged");
    let short = bob
        .post(
            "/api/password",
            json!({"current_password": "bob-pass-2", "new_password": "x"}),
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        short.json()["error"],
        "new_password: must be at least 6 characters"
    );
    let changed = bob
        .post(
            "/api/password",
            json!({"current_password": "bob-pass-2", "new_password": "bob-pass-3"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(bob.get("/api/me").await.status, StatusCode::UNAUTHORIZED);

    // Deleting a user ends their sessions.
    let bob = Browser::login(server.http, "bob", "bob-pass-3").await;
    let admin = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    let bob_id = bob.get("/api/me").await.json()["user_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deleted = admin.delete(&format!("/api/users/{bob_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(bob.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
    let again = admin.delete(&format!("/api/users/{bob_id}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expired_sessions_are_refused() {
    // Sessions live as long as tokens: one second here.
    let server = TestServer::start_with(Backend::Memory, &["--auth-token-ttl", "1s"]).await;
    let admin = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    assert_eq!(admin.get("/api/me").await.status, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let answer = admin.get("/api/me").await;
        if answer.status == StatusCode::UNAUTHORIZED {
            assert_eq!(answer.json()["error"], "token expired");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        // Waiting for wall time to pass the token's expiry (the server's clock is real).
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_api_reads_events_and_names_bad_input() {
    let server = TestServer::start(Backend::Memory).await;
    let mut c = server.client().await;
    c.save_events(pb::SaveEventsRequest {
        boundary: "orders".into(),
        query: None,
        events: (0..5)
            .map(|i| {
                common::event(
                    "OrderPlaced",
                    json!({"orderId": format!("o{i}"), "n": i % 2}),
                )
            })
            .collect(),
    })
    .await
    .expect("saved");
    let admin = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    let page = admin.get("/api/events/orders?limit=2").await.json();
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "{page}");
    assert_eq!(events[0]["data"]["orderId"], "o4", "newest first");
    let last = &events[1]["position"];
    let from = format!("{}:{}", last["commit"], last["prepare"]);
    let older = admin
        .get(&format!("/api/events/orders?limit=2&dir=older&from={from}"))
        .await
        .json();
    assert_eq!(older["events"][0]["data"]["orderId"], "o2");
    let newer = admin
        .get(&format!(
            "/api/events/orders?limit=10&dir=newer&from={from}"
        ))
        .await
        .json();
    assert_eq!(newer["events"].as_array().expect("events").len(), 1);
    assert_eq!(newer["events"][0]["data"]["orderId"], "o4");
    let filtered = admin
        .get("/api/events/orders?criteria=n%3D1&type=OrderPlaced")
        .await
        .json();
    let ids: Vec<&str> = filtered["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["data"]["orderId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec!["o3", "o1"]);
    let p = &events[0]["position"];
    let one = admin
        .get(&format!(
            "/api/events/orders/{}/{}",
            p["commit"], p["prepare"]
        ))
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["event_type"], "OrderPlaced");

    let bad = admin.get("/api/events/orders?criteria=nonsense").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json()["error"],
        "criteria[0]: \"nonsense\" is not key=value"
    );
    let bad = admin.get("/api/events/orders?from=12").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown = admin.get("/api/events/nowhere").await;
    assert_eq!(unknown.status, StatusCode::PRECONDITION_FAILED);
    let missing = admin.get("/api/events/orders/999/0").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Secrets of the admin boundary stay redacted.
    let admin_events = admin.get("/api/events/orisun_admin?limit=100").await;
    assert_eq!(admin_events.status, StatusCode::OK);
    assert!(
        !admin_events.text.contains("$argon2"),
        "hashes are redacted"
    );
}

#[tokio::test]
async fn boundaries_and_indexes_are_created_listed_and_dropped() {
    let server = TestServer::start(Backend::Memory).await;
    let admin = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    let created = admin
        .post(
            "/api/boundaries",
            json!({"name": "invoices", "description": "bills"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.json()["status"], "ACTIVE");
    let bad = admin.post("/api/boundaries", json!({"name": "1bad"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let list = admin.get("/api/boundaries").await.json();
    let names: Vec<&str> = list["boundaries"]
        .as_array()
        .expect("list")
        .iter()
        .map(|b| b["name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"invoices"), "{names:?}");

    let index = json!({"boundary": "invoices", "name": "by_amount",
        "fields": [{"key": "amount", "value_type": "NUMERIC"}], "combinator": "AND"});
    let answer = admin.post("/api/indexes", index).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["created"], true);
    let bad_type = admin
        .post(
            "/api/indexes",
            json!({"boundary": "invoices", "name": "x", "fields": [{"key": "a", "value_type": "FLOAT"}]}),
        )
        .await;
    assert_eq!(bad_type.status, StatusCode::BAD_REQUEST);
    assert!(bad_type.json()["error"]
        .as_str()
        .expect("error")
        .starts_with("fields[0].value_type"));
    let unknown = admin
        .post(
            "/api/indexes",
            json!({"boundary": "nowhere", "name": "x", "fields": [{"key": "a"}]}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::PRECONDITION_FAILED);
    let listed = admin.get("/api/indexes?boundary=invoices").await.json();
    assert_eq!(listed["indexes"][0]["name"], "by_amount");
    assert_eq!(
        listed["indexes"][0]["definition"]["fields"][0]["jsonKey"],
        "amount"
    );
    let dropped = admin.delete("/api/indexes/invoices/by_amount").await;
    assert_eq!(dropped.json()["dropped"], true);
    assert_eq!(admin.get("/api/indexes").await.json()["indexes"], json!([]));
}

#[tokio::test]
async fn named_subscribers_show_their_position_and_lag() {
    let server = TestServer::start(Backend::Memory).await;
    let mut c = server.client().await;
    c.save_events(pb::SaveEventsRequest {
        boundary: "orders".into(),
        query: None,
        events: (0..3)
            .map(|i| common::event("OrderPlaced", json!({"orderId": format!("o{i}")})))
            .collect(),
    })
    .await
    .expect("saved");
    let mut stream = c
        .catch_up_subscribe_to_events(pb::CatchUpSubscribeToEventStoreRequest {
            after_position: None,
            query: None,
            subscriber_name: "billing".into(),
            boundary: "orders".into(),
        })
        .await
        .expect("subscribed")
        .into_inner();
    // Read only the first event: the subscriber then lags by the two after it.
    let first = stream.message().await.expect("ok").expect("an event");
    let p = first.position.expect("position");
    let admin = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let listed = loop {
        let listed = admin.get("/api/subscribers").await.json();
        // The server may have pulled the next events into the stream's buffer already; what
        // is listed is what it delivered, at or after the event we read.
        if listed["subscribers"][0]["position"]["commit"].as_i64() >= Some(p.commit_position) {
            break listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let s = &listed["subscribers"][0];
    assert_eq!(s["boundary"], "orders");
    assert_eq!(s["name"], "billing");
    assert_eq!(s["node"], listed["node"]);
    // The three events share one commit (prepare 0, 1, 2): the lag is what follows.
    let delivered = s["position"]["prepare"].as_u64().expect("prepare");
    assert_eq!(s["lag"].as_u64(), Some(2 - delivered), "{listed}");
    assert_eq!(listed["nats"], false);
    assert_eq!(listed["publishers"], json!([]));
    drop(stream);
    // The name is released when the stream ends; the list follows.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while admin.get("/api/subscribers").await.json()["subscribers"] != json!([]) {
        assert!(tokio::time::Instant::now() < deadline, "never released");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_tail_streams_batches_and_open_streams_do_not_hold_up_shutdown() {
    use http_body_util::BodyExt;
    let server = TestServer::start(Backend::Memory).await;
    let admin = Browser::login(server.http, ADMIN.0, ADMIN.1).await;
    let (status, _) = admin.open_stream("/api/tail/orders?criteria=bad").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, mut tail) = admin
        .open_stream("/api/tail/orders?criteria=kind%3Dkeep")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _overview) = admin.open_stream("/api/overview/stream").await;
    assert_eq!(status, StatusCode::OK);
    let mut c = server.client().await;
    c.save_events(pb::SaveEventsRequest {
        boundary: "orders".into(),
        query: None,
        events: vec![
            common::event("Dropped", json!({"kind": "skip"})),
            common::event("Kept", json!({"kind": "keep"})),
        ],
    })
    .await
    .expect("saved");
    let mut received = String::new();
    let deadline = std::time::Duration::from_secs(5);
    while !received.contains("\n\n") {
        let frame = tokio::time::timeout(deadline, tail.frame())
            .await
            .expect("a batch in time")
            .expect("a frame")
            .expect("body");
        if let Ok(data) = frame.into_data() {
            received.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(received.starts_with("event: events\n"), "{received}");
    assert!(received.contains("\"event_type\":\"Kept\""), "{received}");
    assert!(!received.contains("Dropped"), "filtered: {received}");
    assert!(received.contains("\"skipped\":0"), "{received}");
    // Both streams are still open: the graceful shutdown ends them instead of waiting forever.
    tokio::time::timeout(std::time::Duration::from_secs(10), server.stop())
        .await
        .expect("the server stops with dashboard streams open")
        .expect("clean stop");
}
