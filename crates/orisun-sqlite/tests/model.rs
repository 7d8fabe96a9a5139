//! Random sequences of appends (plain, conditional, retried, overlapping) and reads, run against
//! `SqliteStore` and the in-memory model side by side: every answer must be the same.

mod common;

use common::{boundary, obj};
use orisun_sqlite::{SqliteConfig, SqliteStore};
use orisun_store::core::{
    AppendCondition, Criterion, Direction, JsonObject, NewEvent, Position, Query, ReadRequest,
    StoredEvent, Tag,
};
use orisun_store::{EventStore, MemoryStore, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

fn random_event(rng: &mut StdRng) -> NewEvent {
    let kind = ["A", "B", "C"][rng.random_range(0..3)];
    let mut data = obj(json!({ "acct": rng.random_range(1..=4) }));
    if rng.random_bool(0.5) {
        data.insert("vip".into(), json!(rng.random_bool(0.5)));
    }
    if rng.random_bool(0.3) {
        data.insert("note".into(), json!(format!("n{}", rng.random_range(0..3))));
    }
    NewEvent::new(Uuid::from_u128(rng.random()), kind, data, JsonObject::new()).expect("valid")
}

fn random_tag(rng: &mut StdRng) -> Tag {
    match rng.random_range(0..4) {
        0 => Tag::new("eventType", ["A", "B", "C"][rng.random_range(0..3)]),
        1 => Tag::new("acct", rng.random_range(1..=4).to_string()),
        2 => Tag::new(
            "vip",
            if rng.random_bool(0.5) {
                "true"
            } else {
                "false"
            },
        ),
        _ => Tag::new("note", format!("n{}", rng.random_range(0..4))),
    }
}

fn random_query(rng: &mut StdRng) -> Query {
    if rng.random_bool(0.15) {
        return Query::all();
    }
    Query::new(
        (0..rng.random_range(1..=3))
            .map(|_| Criterion::new((0..rng.random_range(1..=3)).map(|_| random_tag(rng)))),
    )
}

fn random_position(rng: &mut StdRng, head: Position, known: &[Position]) -> Position {
    match rng.random_range(0..6) {
        0 => Position::BEFORE_FIRST,
        1 => head,
        2 if !known.is_empty() => known[rng.random_range(0..known.len())],
        3 => Position::new(head.commit, head.prepare + 1),
        _ => Position::new(
            rng.random_range(-1..=head.commit + 2),
            rng.random_range(-1..=head.prepare + 2),
        ),
    }
}

fn comparable(mut events: Vec<StoredEvent>) -> Vec<StoredEvent> {
    for e in &mut events {
        e.date_created = chrono::DateTime::UNIX_EPOCH;
    }
    events
}

fn outcome_text<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("err {e}"),
    }
}

async fn run(
    seed: u64,
    steps: usize,
    tag_log_rows: usize,
    tags_recent_rows: usize,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir()?;
    let sqlite = SqliteStore::open(SqliteConfig {
        tag_log_rows,
        tags_recent_rows,
        ..common::config(&dir)
    })?;
    let model = MemoryStore::new();
    let b = boundary("model");
    sqlite.create_boundary(&b).await?;
    model.create_boundary(&b).await?;
    let mut batches: Vec<Vec<NewEvent>> = Vec::new();
    let mut known: Vec<Position> = Vec::new();
    for step in 0..steps {
        let head = model.head(&b).await?;
        let ctx = format!("seed {seed} step {step}");
        match rng.random_range(0..100) {
            0..60 => {
                let batch: Vec<NewEvent> = (0..rng.random_range(1..=4))
                    .map(|_| random_event(&mut rng))
                    .collect();
                let condition = rng.random_bool(0.6).then(|| {
                    AppendCondition::new(
                        random_query(&mut rng),
                        random_position(&mut rng, head, &known),
                    )
                });
                let got = sqlite.append(&b, batch.clone(), condition.clone()).await;
                let want = model.append(&b, batch.clone(), condition).await;
                assert_eq!(outcome_text(&got), outcome_text(&want), "{ctx}");
                if let Ok(outcome) = want {
                    known.push(outcome.position);
                    batches.push(batch);
                }
            }
            60..70 if !batches.is_empty() => {
                let batch = batches[rng.random_range(0..batches.len())].clone();
                let got = sqlite.append(&b, batch.clone(), None).await;
                let want = model.append(&b, batch, None).await;
                assert_eq!(outcome_text(&got), outcome_text(&want), "{ctx} retry");
            }
            70..75 if !batches.is_empty() => {
                let old = &batches[rng.random_range(0..batches.len())];
                let batch = vec![random_event(&mut rng), old[0].clone()];
                let got = sqlite.append(&b, batch.clone(), None).await;
                let want = model.append(&b, batch, None).await;
                assert_eq!(outcome_text(&got), outcome_text(&want), "{ctx} overlap");
            }
            _ => {
                let request = ReadRequest {
                    query: random_query(&mut rng),
                    from: rng
                        .random_bool(0.8)
                        .then(|| random_position(&mut rng, head, &known)),
                    direction: if rng.random_bool(0.5) {
                        Direction::Asc
                    } else {
                        Direction::Desc
                    },
                    limit: rng.random_range(1..=6),
                };
                let got = comparable(sqlite.read(&b, &request).await?);
                let want = comparable(model.read(&b, &request).await?);
                assert_eq!(got, want, "{ctx} {request:?}");
                let criteria: Vec<Criterion> = (0..rng.random_range(1..=3))
                    .map(|_| Criterion::new([random_tag(&mut rng), random_tag(&mut rng)]))
                    .collect();
                let mut got = sqlite.latest_by_criteria(&b, &criteria).await?;
                let mut want = model.latest_by_criteria(&b, &criteria).await?;
                for e in got
                    .events
                    .iter_mut()
                    .chain(want.events.iter_mut())
                    .flatten()
                {
                    e.date_created = chrono::DateTime::UNIX_EPOCH;
                }
                assert_eq!(got, want, "{ctx} {criteria:?}");
                assert_eq!(sqlite.head(&b).await?, model.head(&b).await?, "{ctx}");
                assert_eq!(sqlite.count(&b).await?, model.count(&b).await?, "{ctx}");
            }
        }
    }
    let all = ReadRequest::forward(None, 10_000);
    assert_eq!(
        comparable(sqlite.read(&b, &all).await?),
        comparable(model.read(&b, &all).await?)
    );
    Ok(())
}

#[tokio::test]
async fn random_operations_match_the_model() -> anyhow::Result<()> {
    for seed in 1..=8 {
        run(
            seed,
            800,
            SqliteConfig::DEFAULT_TAG_LOG_ROWS,
            SqliteConfig::DEFAULT_TAGS_RECENT_ROWS,
        )
        .await?;
    }
    Ok(())
}

/// The same with a tag log of five rows and a middle level that moves a slice on for every row
/// or so it gains: the writer moves rows every group or two, so conditions and reads constantly
/// span the three tables of the tag index.
#[tokio::test]
async fn random_operations_match_the_model_with_a_tiny_tag_log() -> anyhow::Result<()> {
    for seed in 11..=18 {
        run(seed, 800, 5, 300).await?;
    }
    Ok(())
}
