//! The store conformance suite over the wire: every test talks to a real server on the SQLite
//! backend (its own server, in a temporary directory) through [`orisun_client::OrisunClient`].

mod support;

async fn sqlite_server() -> std::sync::Arc<dyn orisun_store::EventStore> {
    support::Served::start(support::Backend::Sqlite).await
}

orisun_store::conformance_suite!(sqlite_server);
