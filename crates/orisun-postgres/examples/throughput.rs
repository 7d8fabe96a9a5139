//! Quick throughput figures for the PostgreSQL backend (not the project's benchmark command):
//! single-event appends at 1 and 64 concurrent tasks, conditional appends, 1000-event batches,
//! reads, and raw INSERT baselines on the same server.
//!
//! `cargo run --release -p orisun-postgres --example throughput` (server from `ORISUN_TEST_PG`,
//! default `host=127.0.0.1 port=5432 user=postgres`; a scratch database is created and dropped).

use orisun_core::{
    AppendCondition, BoundaryName, Criterion, NewEvent, Position, Query, ReadRequest, Tag,
};
use orisun_postgres::{PostgresConfig, PostgresStore};
use orisun_store::EventStore;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

fn event(data: Value) -> NewEvent {
    let Value::Object(data) = data else {
        unreachable!("object literal")
    };
    NewEvent::new(Uuid::new_v4(), "Bench", data, Default::default()).expect("valid")
}

async fn admin(config: &PostgresConfig) -> anyhow::Result<tokio_postgres::Client> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .user(&config.user)
        .dbname(&config.dbname);
    if let Some(p) = &config.password {
        pg.password(p);
    }
    let (client, connection) = pg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn report(name: &str, events: usize, elapsed: Duration) {
    println!(
        "{name:<48} {events:>8} events in {:>7.2} s = {:>9.0} events/s",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
}

/// Runs `tasks` tasks appending single events for `duration`; returns the events appended.
async fn single_appends(
    store: &PostgresStore,
    b: &BoundaryName,
    tasks: usize,
    duration: Duration,
    conditional: bool,
) -> usize {
    let deadline = Instant::now() + duration;
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (store, b) = (store.clone(), b.clone());
            tokio::spawn(async move {
                let mut n = 0usize;
                let mut last = Position::BEFORE_FIRST;
                let entity = format!("{t}-{}", Uuid::new_v4().simple());
                while Instant::now() < deadline {
                    let entity = entity.clone();
                    let condition = conditional.then(|| {
                        AppendCondition::new(
                            Query::new([Criterion::new([Tag::new("entity", entity.clone())])]),
                            last,
                        )
                    });
                    let outcome = store
                        .append(
                            &b,
                            vec![event(json!({"entity": entity, "n": n}))],
                            condition,
                        )
                        .await
                        .expect("append");
                    last = outcome.position;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.expect("task");
    }
    total
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let text = std::env::var("ORISUN_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned());
    let mut server = PostgresConfig::from_connection_string(&text)?;
    if !text.contains("dbname") {
        server.dbname = "postgres".to_owned();
    }
    let dbname = format!("orisun_bench_{}", Uuid::new_v4().simple());
    admin(&server)
        .await?
        .batch_execute(&format!("CREATE DATABASE \"{dbname}\""))
        .await?;
    let result = run(server.clone().with_dbname(&dbname)).await;
    admin(&server)
        .await?
        .batch_execute(&format!("DROP DATABASE \"{dbname}\" WITH (FORCE)"))
        .await?;
    result
}

async fn run(config: PostgresConfig) -> anyhow::Result<()> {
    let secs = Duration::from_secs(
        std::env::var("SECONDS_PER_SCENARIO")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let store = PostgresStore::connect(PostgresConfig {
        pool_size: 32,
        ..config.clone()
    })
    .await?;
    let b = BoundaryName::new("bench").expect("valid");
    store.create_boundary(&b).await?;

    for tasks in [1, 16, 64] {
        let start = Instant::now();
        let n = single_appends(&store, &b, tasks, secs, false).await;
        report(
            &format!("single-event appends, {tasks} tasks"),
            n,
            start.elapsed(),
        );
    }
    for tasks in [1, 64] {
        let start = Instant::now();
        let n = single_appends(&store, &b, tasks, secs, true).await;
        report(
            &format!("conditional single-event appends, {tasks} tasks"),
            n,
            start.elapsed(),
        );
    }
    for size in [100, 1000, 10_000] {
        let rounds = (100_000 / size).max(5);
        let start = Instant::now();
        for _ in 0..rounds {
            let batch = (0..size)
                .map(|i| event(json!({"i": i, "group": i % 10})))
                .collect();
            store.append(&b, batch, None).await?;
        }
        report(
            &format!("{size}-event batches, 1 task"),
            rounds * size,
            start.elapsed(),
        );
    }
    let count = store.count(&b).await? as usize;
    let start = Instant::now();
    let mut from = None;
    let mut read = 0;
    loop {
        let page = store.read(&b, &ReadRequest::forward(from, 1000)).await?;
        let Some(last) = page.last() else { break };
        from = Some(Position::new(
            last.position.commit,
            last.position.prepare + 1,
        ));
        read += page.len();
    }
    assert_eq!(read, count);
    report("reads, 1000-event pages", read, start.elapsed());

    // Baselines: the same rows inserted directly, without positions, checks or tags.
    let client = admin(&config).await?;
    client
        .batch_execute(
            "CREATE TABLE raw (seq bigserial PRIMARY KEY, event_id uuid NOT NULL UNIQUE, \
             event_type text NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL, \
             date_created timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let insert = client
        .prepare("INSERT INTO raw (event_id, event_type, data, metadata) VALUES ($1, $2, $3, $4)")
        .await?;
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < secs {
        let e = event(json!({"entity": "1", "n": n}));
        client
            .execute(
                &insert,
                &[
                    &e.event_id,
                    &e.event_type,
                    &Value::Object(e.data),
                    &Value::Object(e.metadata),
                ],
            )
            .await?;
        n += 1;
    }
    report(
        "raw single-row INSERT (autocommit), 1 task",
        n,
        start.elapsed(),
    );
    let unnest = client
        .prepare(
            "INSERT INTO raw (event_id, event_type, data, metadata) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::jsonb[], $4::jsonb[])",
        )
        .await?;
    let start = Instant::now();
    let rounds = 100;
    for _ in 0..rounds {
        let events: Vec<NewEvent> = (0..1000)
            .map(|i| event(json!({"i": i, "group": i % 10})))
            .collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let data: Vec<Value> = events
            .iter()
            .map(|e| Value::Object(e.data.clone()))
            .collect();
        let meta: Vec<Value> = events
            .iter()
            .map(|e| Value::Object(e.metadata.clone()))
            .collect();
        client
            .execute(&unnest, &[&ids, &types, &data, &meta])
            .await?;
    }
    report(
        "raw 1000-row UNNEST INSERT, 1 task",
        rounds * 1000,
        start.elapsed(),
    );

    let start = Instant::now();
    for _ in 0..rounds {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::{ToSql, Type};
        let sink = client
            .copy_in("COPY raw (event_id, event_type, data, metadata) FROM STDIN BINARY")
            .await?;
        let writer =
            BinaryCopyInWriter::new(sink, &[Type::UUID, Type::TEXT, Type::JSONB, Type::JSONB]);
        futures::pin_mut!(writer);
        for i in 0..1000 {
            let e = event(json!({"i": i, "group": i % 10}));
            let data = Value::Object(e.data);
            let meta = Value::Object(e.metadata);
            let row: [&(dyn ToSql + Sync); 4] = [&e.event_id, &e.event_type, &data, &meta];
            writer.as_mut().write(&row).await?;
        }
        writer.finish().await?;
    }
    report(
        "raw 1000-row binary COPY, 1 task",
        rounds * 1000,
        start.elapsed(),
    );
    Ok(())
}
