//! Opening a boundary's database: connection settings and versioned migrations.

use crate::Synchronous;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// A numbered migration: `migrations/NNNN_name.sql`, applied once, in order.
pub(crate) struct Migration {
    /// The `NNNN` of the file name; `PRAGMA user_version` holds the last one applied.
    pub version: u32,
    /// The `name` of the file name.
    pub name: &'static str,
    /// The SQL, run in the same transaction that records the version.
    pub sql: &'static str,
}

/// Every migration, in order. A file in `migrations/` that is not listed here is a bug (a test
/// checks the two agree).
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "tag_log",
        sql: include_str!("../migrations/0002_tag_log.sql"),
    },
    Migration {
        version: 3,
        name: "tag_runs",
        sql: include_str!("../migrations/0003_tag_runs.sql"),
    },
    Migration {
        version: 4,
        name: "tags_recent",
        sql: include_str!("../migrations/0004_tags_recent.sql"),
    },
];

/// How long a connection waits for a lock before reporting `SQLITE_BUSY`. Only another process
/// opening the same file (which the data directory lock prevents) or a checkpoint contend.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Statements per connection kept prepared; the backend uses fewer than this.
const STATEMENT_CACHE: usize = 64;

/// Opens the write connection of a boundary, creating the file when `create` is set.
pub(crate) fn open_writer(
    path: &Path,
    synchronous: Synchronous,
    create: bool,
) -> rusqlite::Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    keep_plans(&conn)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("journal_mode is {mode}, WAL is required")),
        ));
    }
    conn.pragma_update(None, "synchronous", synchronous.pragma())?;
    // Truncate the WAL back to 64 MiB after a checkpoint so that one huge group does not leave
    // a huge file behind.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    // Checkpoint every ~40 MiB of WAL (10,000 pages) rather than SQLite's 4 MiB: the pages every
    // commit touches (the head, the right edge of the log and of hot tag keys) are then copied
    // into the database once per checkpoint, not once per 4 MiB, and each checkpoint's two
    // fsyncs come ten times less often.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    // 16 MiB of page cache (negative = KiB) keeps the upper levels of the tag index hot.
    conn.pragma_update(None, "cache_size", -16 * 1024)?;
    // Temporary structures (sorts, statement journals) stay in memory, off the disk.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// Makes the connection's cached statements keep their plans whatever values are bound.
///
/// Without this, SQLite (3.54) marks a statement whose `LIMIT` is a bound parameter to be
/// prepared again after every new binding, so that the planner can use the value: every
/// execution of the tag lookups (`LIMIT ?4`) and of the log reads then parsed and planned its
/// SQL again, which took 17% of the writer's CPU under 64 concurrent conditional saves. The
/// query planner stability guarantee turns that off; our plans never depend on a bound value
/// (there are no statistics, and every lookup is an index search, see `sql::plan_tests`).
fn keep_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Opens a read connection. It is opened read-write but with `query_only` set, rather than with
/// `SQLITE_OPEN_READONLY`: a read-only connection to a WAL database fails when the `-shm` file
/// does not exist yet, while `query_only` gives the same guarantee (no statement can write).
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    keep_plans(&conn)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// What [`migrate`] found that is not a SQLite error.
#[derive(Debug)]
pub(crate) enum SchemaError {
    /// The file was written by a newer build.
    TooNew {
        /// The file's `user_version`.
        found: u32,
        /// The last migration this build knows.
        known: u32,
    },
    /// The file belongs to a boundary with another name (same name but for case).
    OtherBoundary {
        /// The name recorded in the file.
        recorded: String,
    },
    /// SQLite failed.
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e)
    }
}

/// Applies the pending migrations, each in its own transaction with the version it records,
/// then records the boundary's name (or checks the one recorded).
///
/// Idempotent, and safe after a crash at any point: a migration is applied with its version or
/// not at all, and a file whose creation was cut short is completed here.
pub(crate) fn migrate(conn: &mut Connection, boundary: &str) -> Result<(), SchemaError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > known {
        return Err(SchemaError::TooNew {
            found: current,
            known,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-read under the write lock: another connection may have migrated meanwhile.
        let now: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if now < migration.version {
            tracing::info!(
                boundary,
                version = migration.version,
                name = migration.name,
                "applying migration"
            );
            tx.execute_batch(migration.sql)?;
            tx.pragma_update(None, "user_version", migration.version)?;
        }
        tx.commit()?;
    }
    conn.execute(
        "INSERT OR IGNORE INTO boundary (id, name) VALUES (0, ?1)",
        [boundary],
    )?;
    let recorded: Option<String> = conn
        .query_row("SELECT name FROM boundary WHERE id = 0", [], |r| r.get(0))
        .optional()?;
    match recorded {
        Some(recorded) if recorded != boundary => Err(SchemaError::OtherBoundary { recorded }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
        }
    }

    #[test]
    fn every_migration_file_is_listed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, listed);
    }

    #[test]
    fn a_bound_limit_does_not_prepare_a_statement_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.db");
        let mut writer = open_writer(&path, Synchronous::Off, true).expect("writer");
        migrate(&mut writer, "b").expect("migrate");
        let reader = open_reader(&path).expect("reader");
        for conn in [&writer, &reader] {
            let mut stmt = conn.prepare_cached(crate::sql::TAGS.desc).expect("prepare");
            for limit in 1..=3i64 {
                let rows = stmt
                    .query_map(rusqlite::params![&[0u8; 16][..], 10, limit], |_| Ok(()))
                    .expect("query");
                assert_eq!(rows.count(), 0);
            }
            let again = stmt.get_status(rusqlite::StatementStatus::RePrepare);
            assert_eq!(again, 0, "prepared again after binding a new limit");
        }
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn, "b").expect("first");
        migrate(&mut conn, "b").expect("second");
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, MIGRATIONS.len() as u32);
        assert!(matches!(
            migrate(&mut conn, "B"),
            Err(SchemaError::OtherBoundary { recorded }) if recorded == "b"
        ));
    }
}
