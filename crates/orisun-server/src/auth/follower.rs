//! The follower: a task that keeps the authority's projection current by subscribing to the
//! admin boundary, so that users, passwords and deletions made on other nodes apply here.

use super::authority::Auth;
use futures::StreamExt;
use orisun_core::{BoundaryName, Query};
use orisun_store::EventStore;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Follows the admin boundary for as long as the authority lives, restarting after errors.
pub(super) async fn follow(auth: Weak<Auth>, store: Arc<dyn EventStore>, boundary: BoundaryName) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(cursor) = auth.upgrade().map(|a| a.directory.read().cursor()) else {
            return;
        };
        let mut stream = store.subscribe(&boundary, cursor, Query::all());
        while let Some(item) = stream.next().await {
            let Some(auth) = auth.upgrade() else {
                return;
            };
            match item {
                Ok(event) => {
                    auth.apply(&event);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "following the admin boundary failed; retrying");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
