//! The `bank_balances` read model: a PostgreSQL table kept by an exactly-once projection whose
//! handler writes through the transaction in which its checkpoint moves.

use crate::events::effects;
use async_trait::async_trait;
use orisun_postgres::tokio_postgres::Transaction;
use orisun_projections::postgres::TransactionalHandler;
use orisun_projections::{Batch, HandlerError};

/// The read model's table.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS bank_balances (
    account text   PRIMARY KEY,
    balance bigint NOT NULL
)";

/// Applies each event's balance changes to `bank_balances`.
pub struct Balances;

#[async_trait]
impl TransactionalHandler for Balances {
    async fn handle(&self, tx: &Transaction<'_>, batch: &Batch) -> Result<(), HandlerError> {
        for event in &batch.events {
            for (account, change) in effects(event) {
                tx.execute(
                    "INSERT INTO bank_balances (account, balance) VALUES ($1, $2)
                     ON CONFLICT (account)
                     DO UPDATE SET balance = bank_balances.balance + excluded.balance",
                    &[&account, &change],
                )
                .await?;
            }
        }
        Ok(())
    }
}
