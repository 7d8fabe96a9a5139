//! Schema versions across builds: a boundary file written by a newer Orisun is refused at open,
//! with a message naming the versions, and the file is left as it was.

mod common;

use common::{boundary, event};
use orisun_sqlite::SqliteStore;
use orisun_store::EventStore;
use serde_json::json;

#[tokio::test]
async fn a_file_migrated_by_a_newer_build_is_refused() -> anyhow::Result<()> {
    let f = common::fresh();
    let b = boundary("ahead");
    f.store.create_boundary(&b).await?;
    f.store
        .append(&b, vec![event("Opened", json!({"acct": 1}))], None)
        .await?;
    drop(f.store);

    let file = f.dir.path().join("ahead.db");
    let conn = rusqlite::Connection::open(&file)?;
    conn.pragma_update(None, "user_version", 9999)?;
    drop(conn);

    let Err(err) = SqliteStore::open(common::config(&f.dir)) else {
        panic!("a newer file is refused");
    };
    let message = err.to_string();
    assert!(
        message.contains("ahead.db") && message.contains("schema version 9999"),
        "{message}"
    );
    let conn = rusqlite::Connection::open(&file)?;
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(version, 9999, "left as it was");
    Ok(())
}
