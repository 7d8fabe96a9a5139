//! The Admin service's boundary catalog end to end: validation of CreateBoundary, synchronous
//! provisioning (usable at once), duplicates (also concurrent), GetBoundary/ListBoundaries with
//! the start-up boundaries, a failing provisioner (FAILED with last_error, on a bare tonic
//! server with the AuthLayer), and persistence across a restart on SQLite.

mod auth_support;
mod common;

use async_trait::async_trait;
use auth_support::*;
use common::assert_status;
use orisun_core::BoundaryName;
use orisun_proto as pb;
use orisun_proto::admin_server::AdminServer;
use orisun_server::admin_service::AdminService;
use orisun_server::auth::{Auth, AuthConfig, AuthLayer};
use orisun_server::catalog::{Provisioner, StartupBoundary};
use orisun_store::{EventStore, MemoryStore, StoreError};
use pb::BoundaryLifecycleStatus as Status;
use std::sync::Arc;
use tonic::Code;

fn create(name: &str, backend: &str, namespace: &str) -> pb::CreateBoundaryRequest {
    pb::CreateBoundaryRequest {
        name: name.into(),
        description: format!("{name} boundary"),
        placement: Some(pb::BoundaryPlacementInput {
            backend: backend.into(),
            namespace: namespace.into(),
        }),
        existed_before_catalog: false,
    }
}

async fn memory_node() -> Node {
    Node::memory(Arc::new(MemoryStore::new()), &[]).await
}

#[tokio::test]
async fn create_boundary_validates_its_input() {
    let node = memory_node().await;
    let mut admin = node.admin(admin_headers()).await;
    let mut no_placement = create("shipping", "memory", "shipping");
    no_placement.placement = None;
    assert_status(
        admin.create_boundary(no_placement).await,
        Code::InvalidArgument,
        "placement: is required",
    );
    let cases = [
        (
            create("1bad", "memory", "1bad"),
            "name: \"1bad\" must start with a letter or underscore",
        ),
        (create("", "memory", "x"), "name: must not be empty"),
        (
            create("shipping", "", "shipping"),
            "placement.backend: is required",
        ),
        (
            create("shipping", "postgres", "shipping"),
            "placement.backend: this server runs the \"memory\" backend, got \"postgres\"",
        ),
        (
            create("shipping", "memory", ""),
            "placement.namespace: is required",
        ),
        (
            create("shipping", "memory", "elsewhere"),
            "placement.namespace: must equal the boundary name \"shipping\" on the memory backend",
        ),
    ];
    for (request, message) in cases {
        assert_status(
            admin.create_boundary(request).await,
            Code::InvalidArgument,
            message,
        );
    }
    assert_status(
        admin
            .get_boundary(pb::GetBoundaryRequest {
                name: "shipping".into(),
            })
            .await,
        Code::NotFound,
        "boundary \"shipping\" not found",
    );
}

#[tokio::test]
async fn created_boundaries_are_active_and_usable_at_once() {
    let node = memory_node().await;
    let mut admin = node.admin(admin_headers()).await;
    let info = admin
        .create_boundary(create("shipping", "memory", "shipping"))
        .await
        .expect("created")
        .into_inner()
        .boundary
        .expect("info");
    assert_eq!(info.name, "shipping");
    assert_eq!(info.status, Status::Active as i32);
    assert!(info.last_error.is_empty());
    assert!(!info.existed_before_catalog);
    let defined = info.definition_position.expect("definition position");
    let status = info.status_position.expect("status position");
    assert!(
        (status.commit_position, status.prepare_position)
            > (defined.commit_position, defined.prepare_position)
    );

    // Usable without a restart.
    let mut events = node.events(admin_headers()).await;
    events
        .save_events(pb::SaveEventsRequest {
            boundary: "shipping".into(),
            query: None,
            events: vec![common::event(
                "Shipped",
                serde_json::json!({"parcel": "p1"}),
            )],
        })
        .await
        .expect("save to the new boundary");
    let read = events
        .get_events(pb::GetEventsRequest {
            boundary: "shipping".into(),
            count: 10,
            ..Default::default()
        })
        .await
        .expect("read the new boundary")
        .into_inner()
        .events;
    assert_eq!(read.len(), 1);

    // GetBoundary folds the same events.
    let got = admin
        .get_boundary(pb::GetBoundaryRequest {
            name: "shipping".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .boundary
        .expect("info");
    assert_eq!(got, info);

    assert_status(
        admin
            .create_boundary(create("shipping", "memory", "shipping"))
            .await,
        Code::AlreadyExists,
        "boundary \"shipping\" already exists",
    );
    assert_status(
        admin
            .get_boundary(pb::GetBoundaryRequest {
                name: "bad name".into(),
            })
            .await,
        Code::InvalidArgument,
        "name: \"bad name\" may contain only letters, digits and underscores",
    );
}

#[tokio::test]
async fn list_boundaries_includes_startup_boundaries_by_name() {
    let node = memory_node().await;
    let mut admin = node.admin(admin_headers()).await;
    admin
        .create_boundary(create("zeta", "memory", "zeta"))
        .await
        .expect("created");
    let list = admin
        .list_boundaries(pb::ListBoundariesRequest {})
        .await
        .expect("list")
        .into_inner()
        .boundaries;
    let names: Vec<&str> = list.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["orders", "orisun_admin", "payments", "zeta"]);
    for b in &list {
        assert_eq!(b.status, Status::Active as i32, "{b:?}");
        assert_eq!(b.existed_before_catalog, b.name != "zeta", "{b:?}");
        assert_eq!(
            b.placement.as_ref().map(|p| p.backend.as_str()),
            Some("memory")
        );
    }
    let orders = list.iter().find(|b| b.name == "orders").expect("orders");
    assert_eq!(orders.description, "orders");
}

#[tokio::test]
async fn concurrent_creations_of_one_boundary_define_it_once() {
    let node = memory_node().await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let addr = node.grpc;
        tasks.push(tokio::spawn(async move {
            admin_at(addr, admin_headers())
                .await
                .create_boundary(create("racy", "memory", "racy"))
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
}

#[tokio::test]
async fn runtime_boundaries_survive_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args: Vec<String> = [
        "--backend",
        "sqlite",
        "--data-dir",
        &dir.path().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let first = Node::start(&args, None).await;
    let info = admin_at(first.grpc, admin_headers())
        .await
        .create_boundary(create("returns", "sqlite", "returns"))
        .await
        .expect("created")
        .into_inner()
        .boundary
        .expect("info");
    assert_eq!(info.status, Status::Active as i32);
    events_at(first.grpc, admin_headers())
        .await
        .save_events(pb::SaveEventsRequest {
            boundary: "returns".into(),
            query: None,
            events: vec![common::event("Returned", serde_json::json!({"item": 1}))],
        })
        .await
        .expect("saved");
    first.stop().await;

    let second = Node::start(&args, None).await;
    let got = admin_at(second.grpc, admin_headers())
        .await
        .get_boundary(pb::GetBoundaryRequest {
            name: "returns".into(),
        })
        .await
        .expect("still defined")
        .into_inner()
        .boundary
        .expect("info");
    assert_eq!(got, info);
    let read = events_at(second.grpc, admin_headers())
        .await
        .get_events(pb::GetEventsRequest {
            boundary: "returns".into(),
            count: 10,
            ..Default::default()
        })
        .await
        .expect("usable after restart")
        .into_inner()
        .events;
    assert_eq!(read.len(), 1);
}

#[tokio::test]
async fn boundaries_on_postgres_take_a_schema_namespace() {
    let server = common::TestServer::start(common::Backend::Postgres).await;
    let mut admin = admin_at(server.grpc, admin_headers()).await;
    assert_status(
        admin.create_boundary(create("ledger", "postgres", "bad-schema")).await,
        Code::InvalidArgument,
        "placement.namespace: invalid schema name: \"bad-schema\" may contain only letters, digits and underscores",
    );
    let info = admin
        .create_boundary(create("ledger", "postgres", "ledger_schema"))
        .await
        .expect("created")
        .into_inner()
        .boundary
        .expect("info");
    assert_eq!(info.status, Status::Active as i32, "{info:?}");
    let mut events = events_at(server.grpc, admin_headers()).await;
    events
        .save_events(pb::SaveEventsRequest {
            boundary: "ledger".into(),
            query: None,
            events: vec![common::event("Booked", serde_json::json!({"n": 1}))],
        })
        .await
        .expect("usable at once");
}

/// A provisioner that always fails, to see the FAILED lifecycle.
struct Broken;

#[async_trait]
impl Provisioner for Broken {
    async fn provision(&self, _name: &BoundaryName, _namespace: &str) -> Result<(), StoreError> {
        Err(StoreError::unavailable("disk on fire"))
    }
}

/// The Admin service and the AuthLayer alone on a bare tonic server over a memory store.
#[tokio::test]
async fn failed_provisioning_reports_failed_with_the_error() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let admin_boundary = BoundaryName::new("orisun_admin").expect("valid");
    let auth = Auth::start(store.clone(), AuthConfig::new(admin_boundary.clone()))
        .await
        .expect("auth starts");
    let service =
        AdminService::new(store.clone(), auth.clone(), "memory").with_provisioner(Arc::new(Broken));
    service
        .register_startup_boundaries(&[StartupBoundary::new(admin_boundary, "admin")])
        .await
        .expect("startup registration");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(AuthLayer::new(auth))
            .add_service(AdminServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let mut anonymous = admin_at(addr, Headers::none()).await;
    assert_status(
        anonymous
            .list_boundaries(pb::ListBoundariesRequest {})
            .await,
        Code::Unauthenticated,
        "missing authorization header",
    );
    let mut admin = admin_at(addr, admin_headers()).await;
    let info = admin
        .create_boundary(create("doomed", "memory", "doomed"))
        .await
        .expect("answered")
        .into_inner()
        .boundary
        .expect("info");
    assert_eq!(info.status, Status::Failed as i32);
    assert_eq!(info.last_error, "storage unavailable: disk on fire");
    let got = admin
        .get_boundary(pb::GetBoundaryRequest {
            name: "doomed".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .boundary
        .expect("info");
    assert_eq!(got, info);
    assert!(store
        .boundaries()
        .await
        .expect("list")
        .iter()
        .all(|b| b.as_str() != "doomed"));
    server.abort();
}
