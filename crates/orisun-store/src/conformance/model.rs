//! Conformance: random operation sequences compared with [`MemoryStore`] (proptest).

use super::*;

/// Criteria as indexes into [`KEYS`] and [`VALUES`].
type CriteriaSpec = Vec<Vec<(u8, u8)>>;

/// One operation of the random model comparison.
#[derive(Debug, Clone)]
enum Op {
    Append {
        events: Vec<(u8, u8)>,
        reuse: Option<usize>,
        condition: Option<(CriteriaSpec, u8)>,
    },
    Read {
        criteria: CriteriaSpec,
        from: Option<u8>,
        desc: bool,
        limit: u32,
    },
    Latest {
        criteria: CriteriaSpec,
    },
}

fn criteria_strategy() -> impl Strategy<Value = CriteriaSpec> {
    prop::collection::vec(prop::collection::vec((0u8..3, 0u8..3), 0..3), 0..3)
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            prop::collection::vec((0u8..3, 0u8..3), 1..4),
            prop::option::weighted(0.1, 0usize..64),
            prop::option::weighted(0.5, (criteria_strategy(), 0u8..12)),
        )
            .prop_map(|(events, reuse, condition)| Op::Append { events, reuse, condition }),
        2 => (criteria_strategy(), prop::option::of(0u8..12), any::<bool>(), 1u32..6)
            .prop_map(|(criteria, from, desc, limit)| Op::Read { criteria, from, desc, limit }),
        1 => criteria_strategy().prop_map(|criteria| Op::Latest { criteria }),
    ]
}

const KEYS: [&str; 3] = ["a", "b", "eventType"];
const VALUES: [&str; 3] = ["x", "y", "T1"];

fn to_criteria(spec: &[Vec<(u8, u8)>]) -> Vec<Criterion> {
    spec.iter()
        .map(|tags| {
            Criterion::new(
                tags.iter()
                    .map(|(k, v)| Tag::new(KEYS[*k as usize], VALUES[*v as usize])),
            )
        })
        .collect()
}

/// Picks a probe position from the log so far: event positions, sentinels and in-between ones.
fn probe(log: &[Position], pick: u8) -> Position {
    match pick {
        0 => Position::BEFORE_FIRST,
        1 => Position::new(0, 0),
        2 => log.last().copied().unwrap_or(Position::BEFORE_FIRST),
        3 => log.last().map_or(Position::new(5, 4), |p| {
            Position::new(p.commit + 1, p.prepare + 1)
        }),
        n if log.is_empty() => Position::new(i64::from(n), 0),
        n => {
            let p = log[usize::from(n) * 7 % log.len()];
            if n % 2 == 0 {
                p
            } else {
                Position::new(p.commit, 0)
            }
        }
    }
}

fn outcome_kind(r: &Result<crate::AppendOutcome, StoreError>) -> String {
    match r {
        Ok(o) => format!("ok {:?} {}", o.position, o.already_stored),
        Err(StoreError::ConditionFailed { expected, actual }) => {
            format!("conflict {expected:?} {actual:?}")
        }
        Err(StoreError::Invalid(i)) => format!("invalid {}", i.field),
        Err(StoreError::DuplicateEvents { event_ids }) => format!("duplicate {event_ids:?}"),
        Err(e) => format!("other {e}"),
    }
}

fn comparable(events: &[StoredEvent]) -> Vec<(Uuid, String, Value, Value, Position)> {
    events
        .iter()
        .map(|e| {
            (
                e.event_id,
                e.event_type.clone(),
                data_of(e),
                serde_json::from_str(&e.metadata).expect("metadata JSON"),
                e.position,
            )
        })
        .collect()
}

async fn run_ops(store: &Store, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let model: Store = Arc::new(MemoryStore::new());
    let b = fresh_boundary(store).await;
    model.create_boundary(&b).await.expect("model boundary");
    let mut sent: Vec<Vec<NewEvent>> = Vec::new();
    let mut log: Vec<Position> = Vec::new();
    for op in ops {
        match op {
            Op::Append {
                events,
                reuse,
                condition,
            } => {
                let batch: Vec<NewEvent> = match reuse.filter(|_| !sent.is_empty()) {
                    Some(i) => sent[i % sent.len()].clone(),
                    None => events
                        .iter()
                        .map(|(t, v)| {
                            event(
                                ["T1", "T2", "T3"][*t as usize],
                                json!({"a": VALUES[*v as usize], "b": VALUES[(*v as usize + *t as usize) % 3]}),
                            )
                        })
                        .collect(),
                };
                let condition = condition.map(|(c, pick)| {
                    AppendCondition::new(Query::new(to_criteria(&c)), probe(&log, pick))
                });
                let got = store.append(&b, batch.clone(), condition.clone()).await;
                let want = model.append(&b, batch.clone(), condition).await;
                prop_assert_eq!(outcome_kind(&got), outcome_kind(&want));
                if let Ok(o) = want {
                    if !o.already_stored {
                        sent.push(batch);
                        log.extend(batch_positions(
                            log.last().map_or(0, |p| p.prepare + 1),
                            sent.last().map_or(0, Vec::len),
                        ));
                    }
                }
            }
            Op::Read {
                criteria,
                from,
                desc,
                limit,
            } => {
                let request = ReadRequest {
                    query: Query::new(to_criteria(&criteria)),
                    from: from.map(|p| probe(&log, p)),
                    direction: if desc {
                        Direction::Desc
                    } else {
                        Direction::Asc
                    },
                    limit,
                };
                let got = store.read(&b, &request).await.expect("read");
                let want = model.read(&b, &request).await.expect("model read");
                prop_assert_eq!(comparable(&got), comparable(&want), "{:?}", request);
            }
            Op::Latest { criteria } => {
                let criteria = to_criteria(&criteria);
                let got = store.latest_by_criteria(&b, &criteria).await;
                let want = model.latest_by_criteria(&b, &criteria).await;
                match (got, want) {
                    (Ok(g), Ok(w)) => {
                        prop_assert_eq!(g.context_position, w.context_position);
                        let g: Vec<Option<Uuid>> = g
                            .events
                            .iter()
                            .map(|e| e.as_ref().map(|e| e.event_id))
                            .collect();
                        let w: Vec<Option<Uuid>> = w
                            .events
                            .iter()
                            .map(|e| e.as_ref().map(|e| e.event_id))
                            .collect();
                        prop_assert_eq!(g, w);
                    }
                    (Err(StoreError::Invalid(g)), Err(StoreError::Invalid(w))) => {
                        prop_assert_eq!(g.field, w.field)
                    }
                    (g, w) => prop_assert!(false, "differ: {:?} vs {:?}", g, w),
                }
            }
        }
    }
    prop_assert_eq!(
        store.head(&b).await.expect("head"),
        model.head(&b).await.expect("head")
    );
    prop_assert_eq!(
        comparable(&read_all(store, &b).await),
        comparable(&read_all(&model, &b).await)
    );
    Ok(())
}

/// Random sequences of appends (with and without conditions, including retries) and reads
/// give the same results on the store as on the in-memory model.
pub async fn matches_the_model_on_random_operations(store: Store) {
    let cases: u32 = std::env::var("ORISUN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(move || {
        let mut runner = TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let result = runner.run(&prop::collection::vec(op_strategy(), 1..40), |ops| {
            handle.block_on(run_ops(&store, ops))
        });
        if let Err(e) = result {
            panic!("store differs from the model: {e}");
        }
    });
}
