//! The operator's view of a cluster on PostgreSQL: the dashboard's overview lists every live
//! node sharing the database (and drops one that stops); the dashboard's subscribers page and
//! `/metrics` show the library-mode projection workers of a replica set running beside the
//! servers on the same database, with who holds which partition.

mod common;
mod dashboard_support;

use async_trait::async_trait;
use common::{TestDb, TestServer, ADMIN};
use dashboard_support::Browser;
use orisun_core::BoundaryName;
use orisun_postgres::PostgresStore;
use orisun_projections::workers::{Worker, WorkerConfig};
use orisun_projections::{Batch, Handler, HandlerError, Processor, ProjectionConfig};
use orisun_store::Coordination;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Polls `path` on `browser` until `check` holds, for at most 10 s; returns the last answer.
async fn until(browser: &Browser, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = browser.get(path).await.json();
        if check(&answer) {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "{path}: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn node_ids(overview: &Value) -> Vec<String> {
    overview["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_owned())
        .collect()
}

struct Ignore;

#[async_trait]
impl Handler for Ignore {
    async fn handle(&self, _batch: &Batch) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_lists_the_cluster_and_subscribers_list_projection_workers() {
    let db = TestDb::create().await;
    let mut args = db.server_args();
    args.extend(["--metrics-public".to_owned(), "true".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = TestServer::start_raw(&args).await;
    let b = TestServer::start_raw(&args).await;
    let browser = Browser::login(a.http, ADMIN.0, ADMIN.1).await;

    // Both nodes are listed on either; exactly one is "this node".
    let overview = until(&browser, "/api/overview", |o| node_ids(o).len() == 2).await;
    let this: Vec<&Value> = overview["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["this"] == true)
        .collect();
    assert_eq!(this.len(), 1, "{overview}");
    assert_eq!(this[0]["id"], overview["node"]["id"]);
    let other = Browser::login(b.http, ADMIN.0, ADMIN.1).await;
    let seen_by_b = until(&other, "/api/overview", |o| node_ids(o).len() == 2).await;
    assert_eq!(node_ids(&seen_by_b), node_ids(&overview));

    // A replica set of projection workers on the same database shows on the subscribers page.
    let store = PostgresStore::connect(db.pg_config())
        .await
        .expect("library-mode store");
    let config = WorkerConfig::new("dashboard-set", 2)
        .expect("valid")
        .ttl(Duration::from_secs(5))
        .worker("worker-one");
    let projection =
        ProjectionConfig::new("ignore", BoundaryName::new("orders").expect("name")).expect("valid");
    let (events, coordination) = (Arc::new(store.clone()), store.coordination());
    let worker = Worker::new(store.membership(), config).projection(projection, move |c| {
        let coordination: Arc<dyn Coordination> = coordination.clone();
        Processor::new(events.clone(), coordination, c, Ignore)
    });
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    let listed = until(&browser, "/api/subscribers", |s| {
        s["replica_sets"][0]["claims"]
            .as_array()
            .is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["holder"] == "worker-one"))
    })
    .await;
    let sets = listed["replica_sets"].as_array().expect("sets");
    assert_eq!(
        sets.len(),
        1,
        "the nodes' own set is not a replica set: {listed}"
    );
    assert_eq!(sets[0]["name"], "dashboard-set");
    assert_eq!(sets[0]["partitions"], 2);
    assert_eq!(sets[0]["members"][0]["worker"], "worker-one");

    // The same, as scrape-time gauges of the server's /metrics.
    let (status, metrics) = common::http_get(a.http, "/metrics").await.expect("scrape");
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains(r#"orisun_replica_set_workers{set="dashboard-set"} 1"#),
        "{metrics}"
    );
    for partition in 0..2 {
        let unheld = format!(
            r#"orisun_replica_set_partition_unheld{{set="dashboard-set",boundary="orders",projection="ignore",partition="{partition}"}} 0"#
        );
        assert!(metrics.contains(&unheld), "{unheld} in {metrics}");
    }
    assert!(
        !metrics.contains(r#"set="orisun.nodes""#),
        "the nodes' list is not a replica set"
    );
    stop.cancel();
    running.await.expect("joined").expect("clean stop");

    // A node that stops leaves the list at once, not a TTL later.
    b.stop().await.expect("clean stop");
    let overview = until(&browser, "/api/overview", |o| node_ids(o).len() == 1).await;
    assert_eq!(
        node_ids(&overview),
        [overview["node"]["id"].as_str().expect("id")]
    );
}
