//! Runs the bank example: the commands and their refusals, transfers racing out of one
//! account, the exactly-once read model, the example binary itself, and the README's
//! walkthrough, whose code must be the example's code.

use orisun_core::BoundaryName;
use orisun_example_bank::{Bank, BankError};
use orisun_postgres::testsuite::TestDb;
use orisun_projections::Mode;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn bank() -> (TestDb, Bank) {
    let db = TestDb::create().await;
    let bank = Bank::open(db.store().await, BoundaryName::new("bank").expect("valid"))
        .await
        .expect("bank opens");
    (db, bank)
}

#[tokio::test]
async fn commands_decide_and_the_read_model_follows() {
    let (_db, bank) = bank().await;
    bank.open_account("alice", "Alice").await.expect("open");
    bank.open_account("bob", "Bob").await.expect("open");
    assert!(matches!(
        bank.open_account("alice", "Eve").await,
        Err(BankError::AccountExists(_))
    ));
    assert!(matches!(
        bank.deposit("carol", 5).await,
        Err(BankError::UnknownAccount(_))
    ));
    assert!(matches!(
        bank.deposit("alice", 0).await,
        Err(BankError::BadAmount(0))
    ));
    assert!(matches!(
        bank.transfer("alice", "carol", 5).await,
        Err(BankError::UnknownAccount(_))
    ));
    assert_eq!(bank.deposit("alice", 100).await.expect("deposit"), 2);
    bank.transfer("alice", "bob", 30).await.expect("transfer");
    match bank.transfer("alice", "bob", 500).await {
        Err(BankError::InsufficientFunds {
            balance: 70,
            amount: 500,
            ..
        }) => {}
        other => panic!("expected an overdraft refusal, got {other:?}"),
    }
    assert_eq!(bank.balance_at("alice").await.expect("balance").0, 70);
    assert_eq!(bank.balance_at("bob").await.expect("balance").0, 30);
    bank.balances_projection(Mode::OneOff)
        .expect("projection")
        .run(CancellationToken::new())
        .await
        .expect("projection run");
    let expected: BTreeMap<String, i64> = [("alice".into(), 70), ("bob".into(), 30)].into();
    assert_eq!(bank.read_model().await.expect("read model"), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_transfers_never_overdraw() {
    let (_db, bank) = bank().await;
    for id in ["alice", "bob", "carol"] {
        bank.open_account(id, id).await.expect("open");
    }
    bank.deposit("alice", 100).await.expect("deposit");
    let projection = bank
        .balances_projection(Mode::Continuous)
        .expect("projection");
    let mut progress = projection.progress();
    let stop = CancellationToken::new();
    let following = tokio::spawn(projection.run(stop.clone()));
    let transfers: Vec<_> = (0..10)
        .map(|i| {
            let bank = bank.clone();
            let to = if i % 2 == 0 { "bob" } else { "carol" };
            tokio::spawn(async move { bank.transfer("alice", to, 30).await })
        })
        .collect();
    // Deposits elsewhere are outside alice's consistency boundary and go on meanwhile.
    for _ in 0..5 {
        bank.deposit("carol", 1).await.expect("deposit");
    }
    let mut sent = 0;
    for t in transfers {
        match t.await.expect("task") {
            Ok(_) => sent += 1,
            Err(BankError::InsufficientFunds { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(sent, 3, "exactly three transfers of 30 fit in 100");
    assert_eq!(bank.balance_at("alice").await.expect("balance").0, 10);
    let head = bank_head(&bank).await;
    tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|p| p.checkpoint >= head),
    )
    .await
    .expect("the read model caught up")
    .expect("progress");
    stop.cancel();
    following.await.expect("task").expect("clean stop");
    let model = bank.read_model().await.expect("read model");
    assert_eq!(model["alice"], 10);
    assert_eq!(model["bob"] + model["carol"], 90 + 5);
}

async fn bank_head(bank: &Bank) -> orisun_core::Position {
    let mut latest = orisun_core::Position::BEFORE_FIRST;
    for id in ["alice", "bob", "carol"] {
        latest = latest.max(bank.balance_at(id).await.expect("balance").1);
    }
    latest
}

#[test]
fn the_example_binary_runs() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(TestDb::create());
    let config = db.config();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orisun-example-bank"))
        .env(
            "ORISUN_EXAMPLE_PG",
            format!(
                "host={} port={} user={} dbname={}",
                config.host, config.port, config.user, config.dbname
            ),
        )
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("cannot send 500"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("alice-") && l.ends_with(": 70")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("bob-") && l.ends_with(": 30")),
        "{stdout}"
    );
    drop(db);
}

/// Every Rust block of the README's "Library mode" section is code of the example, so the
/// walkthrough cannot drift from what the tests above run.
#[test]
fn the_readme_walkthrough_is_the_example_code() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
    let readme = std::fs::read_to_string(format!("{root}README.md")).expect("README");
    let section = readme
        .split("\n## Library mode")
        .nth(1)
        .expect("the README has a Library mode section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let sources: String = ["lib.rs", "events.rs", "read_model.rs", "main.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("{root}examples/bank/src/{f}")).expect("source"))
        .collect();
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let sources = squash(&sources);
    let blocks: Vec<&str> = section
        .split("```rust")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or(""))
        .collect();
    assert!(blocks.len() >= 3, "the walkthrough shows the code");
    for block in blocks {
        for part in block.split("// ...") {
            let part = squash(part);
            assert!(
                part.is_empty() || sources.contains(&part),
                "README block not in the example:\n{part}"
            );
        }
    }
}
