//! The store conformance suite over the wire on the PostgreSQL backend: every test gets its
//! own server on a database created for it (`orisun_postgres::testsuite::TestDb`).

mod support;

async fn postgres_server() -> std::sync::Arc<dyn orisun_store::EventStore> {
    support::Served::start(support::Backend::Postgres).await
}

orisun_store::conformance_suite!(postgres_server);
