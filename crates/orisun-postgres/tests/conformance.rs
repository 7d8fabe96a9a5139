//! The generic conformance suite of `orisun_store`, run against PostgreSQL (a fresh database
//! per test).

mod common;

orisun_store::conformance_suite!(common::fresh_store);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_head_wakes_on_append() {
    let store = common::owned_store().await;
    orisun_store::conformance::watch_head_wakes_on_append(&store).await;
}
