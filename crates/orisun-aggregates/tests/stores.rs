//! The aggregate suite on every in-process store: the in-memory model, the embedded store and
//! PostgreSQL (each test on its own database).

use orisun_store::EventStore;
use std::sync::Arc;

mod memory {
    use super::*;

    async fn fresh() -> Arc<dyn EventStore> {
        Arc::new(orisun_store::MemoryStore::new())
    }

    orisun_aggregates::aggregate_suite!(fresh);
}

mod sqlite {
    use super::*;
    use orisun_sqlite::{SqliteConfig, SqliteStore};
    use orisun_store::testsuite::Owned;

    async fn fresh() -> Arc<dyn EventStore> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open store");
        Arc::new(Owned::new(store, dir))
    }

    orisun_aggregates::aggregate_suite!(fresh);
}

mod postgres {
    orisun_aggregates::aggregate_suite!(orisun_postgres::testsuite::fresh_store);
}
