//! The schema: versioned changes of the catalog (`migrations/NNNN_*.sql`) and of each
//! boundary's tables (`migrations/boundary/NNNN_*.sql`, templates over quoted identifiers), the
//! creation of a boundary and the lookup of where one lives (its placement).
//!
//! Every change runs in a transaction that first takes one fixed transaction-level advisory
//! lock, so several nodes starting at once apply each change exactly once and never see a
//! half-made schema. A change is applied only when its version is missing: start-up never
//! rewrites tables.

use crate::error;
use crate::names::{prefix_for, validate_schema, ObjectNames};
use orisun_core::BoundaryName;
use orisun_store::StoreError;
use std::collections::HashSet;
use tokio_postgres::Transaction;

/// Key of the advisory lock that serialises schema changes ("orisun" in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x6f72_6973_756e_0001;

/// The schema and the table that record which catalog migrations ran.
const BOOTSTRAP: &str = "CREATE SCHEMA IF NOT EXISTS orisun;
CREATE TABLE IF NOT EXISTS orisun.schema_migrations (
    version    integer     NOT NULL,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schema_migrations_pkey PRIMARY KEY (version)
);";

/// One versioned change.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Changes to the catalog, in order.
const CATALOG: &[Migration] = &[
    Migration {
        version: 1,
        name: "catalog",
        sql: include_str!("../migrations/0001_catalog.sql"),
    },
    Migration {
        version: 2,
        name: "coordination",
        sql: include_str!("../migrations/0002_coordination.sql"),
    },
    Migration {
        version: 3,
        name: "membership",
        sql: include_str!("../migrations/0003_membership.sql"),
    },
];

/// Changes to each boundary's tables, in order; templates rendered by [`ObjectNames::render`].
const BOUNDARY: &[Migration] = &[
    Migration {
        version: 1,
        name: "tables",
        sql: include_str!("../migrations/boundary/0001_tables.sql"),
    },
    Migration {
        version: 2,
        name: "tag runs",
        sql: include_str!("../migrations/boundary/0002_tag_runs.sql"),
    },
];

/// The per-boundary DDL version this build creates and expects.
pub(crate) fn boundary_ddl_version() -> i32 {
    BOUNDARY.last().map_or(0, |m| m.version)
}

/// Where a boundary's tables are, as recorded in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The schema holding the tables.
    pub schema: String,
    /// The prefix of the object names.
    pub prefix: String,
}

async fn lock(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| error::db("migration lock", e))?;
    Ok(())
}

/// Applies the missing catalog migrations, then brings every boundary's tables to the current
/// DDL version.
pub(crate) async fn migrate(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let db = |e| error::db("migrate", e);
    lock(tx).await?;
    tx.batch_execute(BOOTSTRAP).await.map_err(db)?;
    let applied: HashSet<i32> = tx
        .query("SELECT version FROM orisun.schema_migrations", &[])
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(db)?;
    refuse_newer(tx, &applied).await?;
    for m in CATALOG.iter().filter(|m| !applied.contains(&m.version)) {
        tracing::info!(
            version = m.version,
            name = m.name,
            "applying catalog migration"
        );
        tx.batch_execute(m.sql).await.map_err(db)?;
        tx.execute(
            "INSERT INTO orisun.schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await
        .map_err(db)?;
    }
    let outdated = tx
        .query(
            "SELECT name, schema, prefix, ddl_version FROM orisun.boundaries \
             WHERE ddl_version < $1 ORDER BY name",
            &[&boundary_ddl_version()],
        )
        .await
        .map_err(db)?;
    for row in outdated {
        let name: String = row.try_get(0).map_err(db)?;
        let schema: String = row.try_get(1).map_err(db)?;
        let prefix: String = row.try_get(2).map_err(db)?;
        let from: i32 = row.try_get(3).map_err(db)?;
        upgrade_boundary(tx, &name, &ObjectNames::new(&schema, &prefix), from).await?;
    }
    Ok(())
}

/// Refuses a database that a newer build migrated: its catalog or a boundary's tables have a
/// version this build does not know, so this build could misread them or write rows the newer
/// one does not expect. Nothing has been changed when this fails.
async fn refuse_newer(tx: &Transaction<'_>, applied: &HashSet<i32>) -> Result<(), StoreError> {
    let known = CATALOG.last().map_or(0, |m| m.version);
    if let Some(newest) = applied.iter().copied().filter(|v| *v > known).max() {
        return Err(StoreError::internal(format!(
            "the database's Orisun catalog is at schema version {newest}, newer than this \
             build knows ({known}): it was migrated by a newer Orisun. Run that version or a \
             later one; this build refuses to start rather than misread it"
        )));
    }
    // The boundaries table exists only once catalog migration 1 has run.
    if !applied.contains(&1) {
        return Ok(());
    }
    let newer = tx
        .query_opt(
            "SELECT name, ddl_version FROM orisun.boundaries WHERE ddl_version > $1 \
             ORDER BY name LIMIT 1",
            &[&boundary_ddl_version()],
        )
        .await
        .map_err(|e| error::db("migrate", e))?;
    if let Some(row) = newer {
        let name: String = row.try_get(0).map_err(|e| error::db("migrate", e))?;
        let version: i32 = row.try_get(1).map_err(|e| error::db("migrate", e))?;
        return Err(StoreError::internal(format!(
            "boundary {name:?} has table version {version}, newer than this build knows ({}): \
             it was migrated by a newer Orisun. Run that version or a later one; this build \
             refuses to start rather than misread it",
            boundary_ddl_version()
        )));
    }
    Ok(())
}

/// Applies the boundary DDL versions after `from` and records the new version.
async fn upgrade_boundary(
    tx: &Transaction<'_>,
    boundary: &str,
    names: &ObjectNames,
    from: i32,
) -> Result<(), StoreError> {
    let db = |e| error::db("boundary ddl", e);
    for m in BOUNDARY.iter().filter(|m| m.version > from) {
        tracing::info!(
            boundary,
            version = m.version,
            name = m.name,
            "applying boundary ddl"
        );
        tx.batch_execute(&names.render(m.sql)).await.map_err(db)?;
    }
    tx.execute(
        "UPDATE orisun.boundaries SET ddl_version = $2 WHERE name = $1",
        &[&boundary, &boundary_ddl_version()],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Reads where a boundary is, without locking.
pub(crate) async fn placement(
    client: &tokio_postgres::Client,
    boundary: &BoundaryName,
) -> Result<Option<Placement>, StoreError> {
    let db = |e| error::db("boundary lookup", e);
    let row = client
        .query_opt(
            "SELECT schema, prefix FROM orisun.boundaries WHERE name = $1",
            &[&boundary.as_str()],
        )
        .await
        .map_err(db)?;
    row.map(|r| {
        Ok(Placement {
            schema: r.try_get(0).map_err(db)?,
            prefix: r.try_get(1).map_err(db)?,
        })
    })
    .transpose()
}

/// Creates a boundary's tables in `schema` and records it, unless it exists.
///
/// `strict`: an existing boundary in another schema is an error (an explicit placement was
/// asked for) rather than a success.
pub(crate) async fn create_boundary(
    tx: &Transaction<'_>,
    boundary: &BoundaryName,
    schema: &str,
    strict: bool,
) -> Result<Placement, StoreError> {
    let db = |e| error::db("create boundary", e);
    lock(tx).await?;
    if let Some(existing) = placement(tx.client(), boundary).await? {
        if strict && existing.schema != schema {
            return Err(StoreError::invalid(
                "schema",
                format!(
                    "boundary {boundary} already exists in schema {:?}",
                    existing.schema
                ),
            ));
        }
        return Ok(existing);
    }
    let schema_exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(db)?
        .is_some();
    let prefix = prefix_for(boundary);
    let names = ObjectNames::new(schema, &prefix);
    if !schema_exists {
        tx.batch_execute(&format!("CREATE SCHEMA {}", names.schema))
            .await
            .map_err(db)?;
    }
    tx.execute(
        "INSERT INTO orisun.boundaries (name, schema, prefix, ddl_version) VALUES ($1, $2, $3, 0)",
        &[&boundary.as_str(), &schema, &prefix],
    )
    .await
    .map_err(db)?;
    upgrade_boundary(tx, boundary.as_str(), &names, 0).await?;
    tracing::info!(boundary = %boundary, schema, "created boundary");
    Ok(Placement {
        schema: schema.to_owned(),
        prefix,
    })
}

/// Writes, as one SQL script, everything [`PostgresStore::connect`] and
/// `create_boundary_in` would apply to a new database: the catalog migrations (each recorded in
/// `orisun.schema_migrations`) and the tables of each `(boundary, schema)`, under the same
/// advisory lock, in one transaction. For teams that apply migrations with their own tools: a
/// store that later connects finds every version recorded and changes nothing.
///
/// [`PostgresStore::connect`]: crate::PostgresStore::connect
pub fn migration_script(boundaries: &[(BoundaryName, String)]) -> Result<String, StoreError> {
    use std::fmt::Write as _;
    let catalog = CATALOG.last().map_or(0, |m| m.version);
    let mut out = String::new();
    let w = &mut out;
    // Writing to a String cannot fail.
    let _ = writeln!(
        w,
        "-- Orisun PostgreSQL schema: catalog version {catalog}, boundary DDL version {}.\n\
         -- Generated by `orisun migrations print`, for a database Orisun has not migrated yet.\n\
         -- Orisun takes the same advisory lock, so it never runs concurrently with this script.\n\
         BEGIN;\nSELECT pg_advisory_xact_lock({MIGRATION_LOCK});\n\n{BOOTSTRAP}",
        boundary_ddl_version()
    );
    for m in CATALOG {
        let _ = writeln!(
            w,
            "\n-- catalog {:04} {}\n{}\nINSERT INTO orisun.schema_migrations (version, name) VALUES ({}, '{}');",
            m.version,
            m.name,
            m.sql.trim_end(),
            m.version,
            m.name
        );
    }
    for (boundary, schema) in boundaries {
        validate_schema(schema)?;
        let prefix = prefix_for(boundary);
        let names = ObjectNames::new(schema, &prefix);
        let _ = writeln!(
            w,
            "\n-- boundary {boundary} in schema {schema}\nCREATE SCHEMA IF NOT EXISTS {};\n\
             INSERT INTO orisun.boundaries (name, schema, prefix, ddl_version) VALUES ('{boundary}', '{schema}', '{prefix}', {});",
            names.schema,
            boundary_ddl_version()
        );
        for m in BOUNDARY {
            let _ = writeln!(
                w,
                "-- boundary ddl {:04} {}\n{}",
                m.version,
                m.name,
                names.render(m.sql).trim_end()
            );
        }
    }
    let _ = writeln!(w, "\nCOMMIT;");
    Ok(out)
}
