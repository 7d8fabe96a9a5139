//! `migration_script`: the SQL a team applies with its own tools gives the same schema the
//! store would create, and a store that connects afterwards changes nothing.

mod common;

use common::TestDb;
use orisun_core::{BoundaryName, JsonObject, NewEvent, ReadRequest};
use orisun_postgres::migration_script;
use orisun_store::EventStore;

#[tokio::test]
async fn an_applied_script_is_what_the_store_expects() {
    let db = TestDb::create().await;
    let bank = BoundaryName::new("bank").expect("valid");
    let script = migration_script(&[(bank.clone(), "ledger".to_owned())]).expect("script renders");
    assert!(script.starts_with("-- Orisun PostgreSQL schema"));
    let client = db.client().await;
    client.batch_execute(&script).await.expect("script applies");
    let applied_before: Vec<(i32, String)> = client
        .query(
            "SELECT version, applied_at::text FROM orisun.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("versions")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(!applied_before.is_empty());

    let store = db.store().await;
    let applied_after: Vec<(i32, String)> = client
        .query(
            "SELECT version, applied_at::text FROM orisun.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("versions")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        applied_after, applied_before,
        "connecting re-applied a migration"
    );
    assert_eq!(
        store.boundaries().await.expect("boundaries"),
        vec![bank.clone()]
    );
    let event = NewEvent::new(
        uuid::Uuid::new_v4(),
        "Opened",
        JsonObject::new(),
        JsonObject::new(),
    )
    .expect("valid");
    store
        .append(&bank, vec![event], None)
        .await
        .expect("append");
    let page = store
        .read(&bank, &ReadRequest::forward(None, 10))
        .await
        .expect("read");
    assert_eq!(page.len(), 1);
    let schema: String = client
        .query_one(
            "SELECT schema FROM orisun.boundaries WHERE name = 'bank'",
            &[],
        )
        .await
        .expect("placement")
        .get(0);
    assert_eq!(schema, "ledger");
}

#[test]
fn a_bad_schema_name_is_refused() {
    let bank = BoundaryName::new("bank").expect("valid");
    let error = migration_script(&[(bank, "no; DROP".to_owned())]).expect_err("refused");
    assert!(error.to_string().contains("schema"), "{error}");
}
