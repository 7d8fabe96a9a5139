//! Conformance scenarios under concurrency: isolated boundaries, gap-free positions for 32
//! writers, the bank-transfer invariant, and a paging reader under 8 writers.

use super::*;

/// Each boundary has its own positions.
pub async fn boundaries_are_isolated(store: Store) {
    let b1 = fresh_boundary(&store).await;
    let b2 = fresh_boundary(&store).await;
    append(&store, &b1, vec![event("E", json!({"k": "1"}))]).await;
    append(&store, &b1, vec![event("E", json!({"k": "1"}))]).await;
    let p = append(&store, &b2, vec![event("E", json!({"k": "1"}))]).await;
    assert_eq!(p, Position::new(1, 0));
    assert_eq!(read_all(&store, &b1).await.len(), 2);
    assert_eq!(read_all(&store, &b2).await.len(), 1);
    let listed = store.boundaries().await.expect("list");
    assert!(listed.contains(&b1) && listed.contains(&b2));
    // Creating again is a no-op.
    store.create_boundary(&b1).await.expect("idempotent");
    assert_eq!(read_all(&store, &b1).await.len(), 2);
}

/// Concurrent appends receive distinct, gap-free positions matching what is stored.
pub async fn concurrent_appends_get_gap_free_positions(store: Store) {
    let b = fresh_boundary(&store).await;
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..10 {
                let size = 1 + (t + i) % 3;
                let batch: Vec<NewEvent> =
                    (0..size).map(|_| event("E", json!({"task": t}))).collect();
                let last = batch.last().expect("non-empty").event_id;
                let p = store
                    .append(&b, batch, None)
                    .await
                    .expect("append")
                    .position;
                mine.push((last, p));
            }
            mine
        }));
    }
    let mut reported = HashMap::new();
    for task in tasks {
        reported.extend(task.await.expect("task"));
    }
    let all = read_all(&store, &b).await;
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position.prepare, i as i64, "gap-free sequence");
    }
    for e in &all {
        if let Some(p) = reported.get(&e.event_id) {
            assert_eq!(*p, e.position, "reported position is the stored one");
        }
    }
    assert_eq!(reported.len(), 320);
}

const ACCOUNTS: usize = 10;
const OPENING_BALANCE: i64 = 100;

fn account_query(a: usize, b: usize) -> Query {
    Query::new([
        tag("account", &a.to_string()),
        tag("account", &b.to_string()),
    ])
}

fn amount_of(e: &StoredEvent) -> (usize, i64) {
    let data = data_of(e);
    let account = data["account"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("account");
    let amount = data["amount"].as_i64().expect("amount");
    let signed = if e.event_type == "Debited" {
        -amount
    } else {
        amount
    };
    (account, signed)
}

/// 32 concurrent tasks transfer money between 10 accounts with conditional appends whose
/// context is the two accounts. Afterwards no account was ever negative, the balances equal
/// what the successful transfers imply, money is conserved, and every conflict was genuine.
pub async fn bank_transfers_keep_balances_consistent(store: Store) {
    let b = fresh_boundary(&store).await;
    let opening: Vec<NewEvent> = (0..ACCOUNTS)
        .map(|a| {
            event(
                "Credited",
                json!({"account": a.to_string(), "amount": OPENING_BALANCE}),
            )
        })
        .collect();
    append(&store, &b, opening).await;

    let conflicts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..32usize {
        let store = store.clone();
        let b = b.clone();
        let conflicts = conflicts.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let mut rng = t as u64 * 7919 + 1;
            for _ in 0..6 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let from = (rng >> 33) as usize % ACCOUNTS;
                let to = (from + 1 + (rng >> 40) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                let amount = 1 + (rng >> 50) as i64 % 60;
                loop {
                    let query = account_query(from, to);
                    let context = read_all_matching(&store, &b, query.clone()).await;
                    let expected = context
                        .last()
                        .map_or(Position::BEFORE_FIRST, |e| e.position);
                    let balance: i64 = context
                        .iter()
                        .map(amount_of)
                        .filter(|(a, _)| *a == from)
                        .map(|(_, v)| v)
                        .sum();
                    if balance < amount {
                        break;
                    }
                    let events = vec![
                        event(
                            "Debited",
                            json!({"account": from.to_string(), "amount": amount}),
                        ),
                        event(
                            "Credited",
                            json!({"account": to.to_string(), "amount": amount}),
                        ),
                    ];
                    match store
                        .append(
                            &b,
                            events,
                            Some(AppendCondition::new(query.clone(), expected)),
                        )
                        .await
                    {
                        Ok(_) => {
                            done.push((from, to, amount));
                            break;
                        }
                        Err(StoreError::ConditionFailed { actual, .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                            // Genuine: a matching event really exists after `expected`.
                            let later = store
                                .read(
                                    &b,
                                    &ReadRequest::forward(
                                        Some(Position::new(expected.commit, expected.prepare + 1)),
                                        1,
                                    )
                                    .with_query(query),
                                )
                                .await
                                .expect("read");
                            assert!(!later.is_empty(), "conflict without a later match");
                            assert!(actual > expected);
                        }
                        Err(other) => panic!("unexpected error {other:?}"),
                    }
                }
            }
            done
        }));
    }
    let mut transfers = Vec::new();
    for task in tasks {
        transfers.extend(task.await.expect("task"));
    }

    let mut expected = [OPENING_BALANCE; ACCOUNTS];
    for (from, to, amount) in &transfers {
        expected[*from] -= amount;
        expected[*to] += amount;
    }
    let mut replayed = [0i64; ACCOUNTS];
    for e in read_all(&store, &b).await {
        let (account, delta) = amount_of(&e);
        replayed[account] += delta;
        assert!(
            replayed[account] >= 0 || delta > 0,
            "account {account} went negative"
        );
    }
    for balance in replayed {
        assert!(balance >= 0);
    }
    assert_eq!(
        replayed, expected,
        "log replay equals the acknowledged transfers"
    );
    assert_eq!(
        replayed.iter().sum::<i64>(),
        OPENING_BALANCE * ACCOUNTS as i64
    );
    assert!(!transfers.is_empty());
    tracing::info!(
        transfers = transfers.len(),
        conflicts = conflicts.load(Ordering::Relaxed),
        "bank scenario done"
    );
}

/// While 8 tasks append (some conditionally), a reader paging forward from its last position
/// sees every event exactly once, in order, with no gap.
pub async fn paging_reader_sees_every_event_once_under_concurrent_writers(store: Store) {
    let b = fresh_boundary(&store).await;
    let mut writers = Vec::new();
    for t in 0..8usize {
        let store = store.clone();
        let b = b.clone();
        writers.push(tokio::spawn(async move {
            let mut appended = 0usize;
            for i in 0..40usize {
                let size = 1 + (t * 3 + i) % 4;
                let batch: Vec<NewEvent> = (0..size)
                    .map(|_| event("W", json!({"writer": t})))
                    .collect();
                let cond = if i % 3 == 0 {
                    let head = store.head(&b).await.expect("head");
                    Some(AppendCondition::new(
                        Query::new([tag("writer", &t.to_string())]),
                        head,
                    ))
                } else {
                    None
                };
                match store.append(&b, batch, cond).await {
                    Ok(_) => appended += size,
                    Err(StoreError::ConditionFailed { .. }) => {}
                    Err(e) => panic!("append failed: {e:?}"),
                }
            }
            appended
        }));
    }
    let reader = {
        let store = store.clone();
        let b = b.clone();
        tokio::spawn(async move {
            let mut seen: Vec<StoredEvent> = Vec::new();
            let mut idle_rounds = 0;
            loop {
                let from = seen
                    .last()
                    .map(|e| Position::new(e.position.commit, e.position.prepare + 1));
                let page = store
                    .read(&b, &ReadRequest::forward(from, 7))
                    .await
                    .expect("read");
                if page.is_empty() {
                    idle_rounds += 1;
                    if idle_rounds > 200 {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                idle_rounds = 0;
                seen.extend(page);
            }
        })
    };
    let mut total = 0;
    for w in writers {
        total += w.await.expect("writer");
    }
    let seen = reader.await.expect("reader");
    assert_eq!(seen.len(), total, "reader saw every appended event");
    let unique: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(unique.len(), total, "no duplicates");
    for (i, e) in seen.iter().enumerate() {
        assert_eq!(e.position.prepare, i as i64, "in order, no gap");
    }
}
