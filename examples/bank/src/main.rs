//! Runs the bank example once against the PostgreSQL of `ORISUN_EXAMPLE_PG` (libpq key=value,
//! default `host=127.0.0.1 port=5432 user=postgres dbname=postgres`): opens two accounts,
//! deposits, transfers, refuses an overdraft, builds the read model, and prints it.

use orisun_core::BoundaryName;
use orisun_example_bank::{Bank, BankError};
use orisun_postgres::{PostgresConfig, PostgresStore};
use orisun_projections::Mode;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let text = std::env::var("ORISUN_EXAMPLE_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".into());
    let store = PostgresStore::connect(PostgresConfig::from_connection_string(&text)?).await?;
    let bank = Bank::open(store, BoundaryName::new("bank_example")?).await?;
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (alice, bob) = (format!("alice-{run}"), format!("bob-{run}"));

    bank.open_account(&alice, "Alice").await?;
    bank.open_account(&bob, "Bob").await?;
    bank.deposit(&alice, 100).await?;
    bank.transfer(&alice, &bob, 30).await?;
    match bank.transfer(&alice, &bob, 500).await {
        Err(BankError::InsufficientFunds { balance, .. }) => {
            println!("refused: {alice} holds {balance}, cannot send 500");
        }
        other => anyhow::bail!("an overdraft was not refused: {other:?}"),
    }

    bank.balances_projection(Mode::OneOff)?
        .run(CancellationToken::new())
        .await?;
    let balances = bank.read_model().await?;
    for account in [&alice, &bob] {
        println!("{account}: {}", balances.get(account).copied().unwrap_or(0));
    }
    Ok(())
}
