//! Many concurrent writers on one boundary: positions stay gap-free, every caller gets the
//! position its events were stored at, and a concurrent reader only ever sees a prefix.

mod common;

use common::{boundary, event};
use orisun_store::core::{NewEvent, Position, ReadRequest};
use orisun_store::{AppendOutcome, EventStore};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const WRITERS: usize = 32;
const BATCHES_PER_WRITER: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_gap_free() -> anyhow::Result<()> {
    let f = common::fresh();
    let b = boundary("busy");
    f.store.create_boundary(&b).await?;
    let store = Arc::new(f.store.clone());
    let done = Arc::new(AtomicBool::new(false));

    // A reader that follows the log while it grows: each page must continue exactly where the
    // previous one ended (no gap, no repeat), which holds only if what is visible is a prefix.
    let reader = {
        let store = Arc::clone(&store);
        let b = b.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut next_seq = 0i64;
            let mut cursor = Position::BEFORE_FIRST;
            loop {
                let finished = done.load(Ordering::Acquire);
                let from = Position::new(cursor.commit, cursor.prepare + 1);
                let page = store
                    .read(&b, &ReadRequest::forward(Some(from), 50))
                    .await?;
                for e in &page {
                    assert_eq!(e.position.prepare, next_seq, "gap or repeat");
                    next_seq += 1;
                    cursor = e.position;
                }
                if page.is_empty() {
                    if finished {
                        return anyhow::Ok(next_seq);
                    }
                    tokio::task::yield_now().await;
                }
            }
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            let b = b.clone();
            tokio::spawn(async move {
                let mut acked: Vec<(Vec<NewEvent>, AppendOutcome)> = Vec::new();
                for i in 0..BATCHES_PER_WRITER {
                    let batch: Vec<NewEvent> = (0..1 + (w + i) % 3)
                        .map(|k| event("E", json!({ "w": w, "i": i, "k": k })))
                        .collect();
                    let outcome = store.append(&b, batch.clone(), None).await?;
                    acked.push((batch, outcome));
                }
                anyhow::Ok(acked)
            })
        })
        .collect();
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await??);
    }
    done.store(true, Ordering::Release);
    let seen = reader.await??;

    let all = store.read(&b, &ReadRequest::forward(None, 10_000)).await?;
    let total: usize = acked.iter().map(|(batch, _)| batch.len()).sum();
    assert_eq!(all.len(), total);
    assert_eq!(seen as usize, total);
    for (seq, e) in all.iter().enumerate() {
        assert_eq!(e.position.prepare, seq as i64, "gap-free seqs");
    }
    let stored: HashMap<_, _> = all.iter().map(|e| (e.event_id, e.position)).collect();
    for (batch, outcome) in &acked {
        assert!(!outcome.already_stored);
        let last = outcome.position;
        for (k, e) in batch.iter().enumerate() {
            let want = Position::new(last.commit, last.prepare + 1 - (batch.len() - k) as i64);
            assert_eq!(
                stored[&e.event_id], want,
                "the caller's position is where it is stored"
            );
        }
        assert_eq!(last.commit, last.prepare + 1);
    }
    assert_eq!(store.count(&b).await?, total as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boundaries_write_independently() -> anyhow::Result<()> {
    let f = common::fresh();
    let store = Arc::new(f.store.clone());
    let names: Vec<_> = (0..4).map(|i| boundary(&format!("b{i}"))).collect();
    for name in &names {
        store.create_boundary(name).await?;
    }
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = Arc::clone(&store);
            let b = names[t % names.len()].clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    store
                        .append(&b, vec![event("E", json!({ "t": t }))], None)
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    for name in &names {
        assert_eq!(store.head(name).await?, Position::new(80, 79));
    }
    Ok(())
}
