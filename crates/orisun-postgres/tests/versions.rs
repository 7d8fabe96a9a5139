//! Schema versions across builds: a database migrated by a newer Orisun is refused at start,
//! with a message naming the versions, and nothing in it is changed. (An older schema is
//! upgraded in place at start; `postgres.rs` tests that.)

mod common;

use common::TestDb;
use orisun_core::BoundaryName;
use orisun_postgres::PostgresStore;
use orisun_store::EventStore;

async fn migrations(client: &tokio_postgres::Client) -> Vec<(i32, String)> {
    client
        .query(
            "SELECT version, name FROM orisun.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("migrations")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_migrated_by_a_newer_build_is_refused() {
    let db = TestDb::create().await;
    drop(db.store().await);
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO orisun.schema_migrations (version, name) VALUES (9999, 'from the future')",
            &[],
        )
        .await
        .expect("pretend a newer build ran");
    let before = migrations(&client).await;

    let err = PostgresStore::connect(db.config())
        .await
        .err()
        .expect("a newer catalog is refused");
    let message = err.to_string();
    assert!(
        message.contains("schema version 9999") && message.contains("newer Orisun"),
        "{message}"
    );
    assert_eq!(migrations(&client).await, before, "nothing was applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boundary_migrated_by_a_newer_build_is_refused() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let b = BoundaryName::new("ahead").expect("valid name");
    store.create_boundary(&b).await.expect("create");
    drop(store);
    let client = db.client().await;
    client
        .execute(
            "UPDATE orisun.boundaries SET ddl_version = 9999 WHERE name = 'ahead'",
            &[],
        )
        .await
        .expect("pretend a newer build upgraded the boundary");

    let err = PostgresStore::connect(db.config())
        .await
        .err()
        .expect("a newer boundary is refused");
    let message = err.to_string();
    assert!(
        message.contains("\"ahead\"") && message.contains("table version 9999"),
        "{message}"
    );
    let version: i32 = client
        .query_one(
            "SELECT ddl_version FROM orisun.boundaries WHERE name = 'ahead'",
            &[],
        )
        .await
        .expect("boundary row")
        .get(0);
    assert_eq!(version, 9999, "left as it was");
}
