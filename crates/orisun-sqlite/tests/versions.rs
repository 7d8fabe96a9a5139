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

/// A boundary file of schema version 2 (one row of `tags` per event and tag), as the build
/// before tag runs wrote it: `events` events of type `Opened`, alternating accounts `a` and
/// `b`, one per commit, all moved into `tags`.
fn write_version_2_file(path: &std::path::Path, name: &str, events: i64) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(include_str!("../migrations/0001_init.sql"))?;
    conn.execute_batch(include_str!("../migrations/0002_tag_log.sql"))?;
    conn.pragma_update(None, "user_version", 2)?;
    conn.execute("INSERT INTO boundary (id, name) VALUES (0, ?1)", [name])?;
    for seq in 0..events {
        let account = if seq % 2 == 0 { "a" } else { "b" };
        let data = json!({"eventType": "Opened", "account": account}).to_string();
        conn.execute(
            "INSERT INTO events (seq, commit_pos, event_id, event_type, data, metadata, \
             date_created) VALUES (?1, ?2, ?3, 'Opened', ?4, '{}', 0)",
            rusqlite::params![seq, seq + 1, &uuid::Uuid::new_v4().as_bytes()[..], data],
        )?;
        for (key, value) in [("eventType", "Opened"), ("account", account)] {
            conn.execute(
                "INSERT INTO tags (h, seq) VALUES (?1, ?2)",
                rusqlite::params![&orisun_store::core::tag_hash(key, value)[..], seq],
            )?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_version_2_file_is_migrated_to_tag_runs_and_keeps_answering() -> anyhow::Result<()> {
    use orisun_store::core::{AppendCondition, Criterion, Position, Query, ReadRequest, Tag};
    let dir = tempfile::tempdir()?;
    write_version_2_file(&dir.path().join("old.db"), "old", 6)?;
    let store = SqliteStore::open(common::config(&dir))?;
    let b = boundary("old");
    let account = |a: &str| Criterion::new([Tag::new("account", a)]);

    // The rows written before the migration are found, by conditions and by reads.
    let latest = store.latest_by_criteria(&b, &[account("a")]).await?;
    let found = latest.events[0].as_ref().map(|e| e.position);
    assert_eq!(found, Some(Position::new(5, 4)));
    let stale = AppendCondition::new(Query::new([account("b")]), Position::new(4, 3));
    let err = store
        .append(
            &b,
            vec![event("Opened", json!({"account": "b"}))],
            Some(stale),
        )
        .await
        .expect_err("account b has an event after (4, 3)");
    assert!(err.to_string().contains("Actual (6, 5)"), "{err}");

    // New appends (a batch whose events share their type and account: one run each) sit
    // beside the old single-event rows.
    let batch = (0..3)
        .map(|_| event("Opened", json!({"account": "a"})))
        .collect();
    let current = AppendCondition::new(Query::new([account("a")]), Position::new(5, 4));
    store.append(&b, batch, Some(current)).await?;
    let read = ReadRequest::forward(None, 100).with_query(Query::new([account("a")]));
    let seqs: Vec<i64> = store
        .read(&b, &read)
        .await?
        .iter()
        .map(|e| e.position.prepare)
        .collect();
    assert_eq!(seqs, [0, 2, 4, 6, 7, 8]);

    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("old.db"))?;
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(
        version, 4,
        "migrated through tag runs (3) to the middle level (4)"
    );
    let recent: i64 = conn.query_row("SELECT count(*) FROM tags_recent", [], |r| r.get(0))?;
    assert_eq!(recent, 0, "a three-event batch goes through the tag log");
    Ok(())
}
