//! Library mode over the wire: the aggregate-stream and projection suites run through
//! [`orisun_client::OrisunClient`] against a real server on the SQLite backend. Projection
//! checkpoints and leases stay with the application (here process-local coordination).

mod support;

use orisun_store::EventStore;
use std::sync::Arc;

async fn remote() -> Arc<dyn EventStore> {
    support::Served::start(support::Backend::Sqlite).await
}

mod aggregates {
    use super::remote;
    orisun_aggregates::aggregate_suite!(remote);
}

mod projections {
    use super::remote;
    use orisun_projections::testsuite::Fixture;

    async fn fresh() -> Fixture {
        (
            remote().await,
            Arc::new(orisun_store::LocalCoordination::new()),
        )
    }

    use std::sync::Arc;
    orisun_projections::projection_suite!(fresh);
}
