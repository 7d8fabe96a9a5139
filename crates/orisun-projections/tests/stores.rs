//! The projection suite on every in-process store: the in-memory model (with process-local
//! coordination), the embedded store and PostgreSQL (each with its own coordination).

use orisun_projections::testsuite::Fixture;
use std::sync::Arc;

mod memory {
    use super::*;

    async fn fresh() -> Fixture {
        (
            Arc::new(orisun_store::MemoryStore::new()),
            Arc::new(orisun_store::LocalCoordination::new()),
        )
    }

    orisun_projections::projection_suite!(fresh);
}

mod sqlite {
    use super::*;
    use orisun_sqlite::{SqliteConfig, SqliteStore};
    use orisun_store::testsuite::Owned;

    async fn fresh() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open store");
        let coordination = store.coordination();
        (Arc::new(Owned::new(store, dir)), coordination)
    }

    orisun_projections::projection_suite!(fresh);
}

mod postgres {
    use super::*;

    async fn fresh() -> Fixture {
        let owned = orisun_postgres::testsuite::owned_store().await;
        let coordination = owned.store().coordination();
        (Arc::new(owned), coordination)
    }

    orisun_projections::projection_suite!(fresh);
}
