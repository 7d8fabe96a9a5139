//! A worked example of Orisun's library mode, in-process on PostgreSQL: bank accounts are
//! aggregates, a transfer is a command whose DCB condition spans two accounts, and balances are
//! a read-model table kept by an exactly-once projection. The README's "Library mode" section
//! walks through this code; `tests/walkthrough.rs` runs it.

pub mod events;
pub mod read_model;

use events::{balance_query, deposited, effects, opened, transferred, ACCOUNT};
use orisun_aggregates::{AggregateError, AggregateId, Aggregates, ExpectedVersion};
use orisun_core::{AppendCondition, BoundaryName, Position, ReadRequest, MAX_READ_LIMIT};
use orisun_postgres::PostgresStore;
use orisun_projections::{Mode, Processor, ProjectionConfig};
use orisun_store::{EventStore, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a bank command was refused.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// The account does not exist.
    #[error("account {0} does not exist")]
    UnknownAccount(String),
    /// The account exists already.
    #[error("account {0} exists already")]
    AccountExists(String),
    /// The amount is not positive.
    #[error("amounts must be positive, got {0}")]
    BadAmount(i64),
    /// The source account cannot cover the transfer.
    #[error("account {account} holds {balance}, cannot send {amount}")]
    InsufficientFunds {
        /// The source account.
        account: String,
        /// Its balance when the transfer was decided.
        balance: i64,
        /// The amount asked for.
        amount: i64,
    },
    /// The store or the aggregate layer failed.
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The bank: one boundary of a PostgreSQL store.
#[derive(Clone)]
pub struct Bank {
    store: PostgresStore,
    boundary: BoundaryName,
    accounts: Aggregates,
}

impl Bank {
    /// Opens the bank in `boundary` of `store`, creating the boundary and the read model.
    pub async fn open(store: PostgresStore, boundary: BoundaryName) -> anyhow::Result<Self> {
        store.create_boundary(&boundary).await?;
        store
            .pool()
            .get()
            .await?
            .batch_execute(read_model::SCHEMA)
            .await?;
        let accounts = Aggregates::new(Arc::new(store.clone()), boundary.clone());
        Ok(Self {
            store,
            boundary,
            accounts,
        })
    }

    /// Opens an account: its stream must not exist yet.
    pub async fn open_account(&self, id: &str, owner: &str) -> Result<(), BankError> {
        let account = AggregateId::new(ACCOUNT, id).map_err(AggregateError::from)?;
        match self
            .accounts
            .append(&account, ExpectedVersion::NoStream, vec![opened(owner)])
            .await
        {
            Ok(_) => Ok(()),
            Err(AggregateError::WrongVersion { .. }) => Err(BankError::AccountExists(id.into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Deposits into an existing account: the append expects the version that was read, so a
    /// deposit can never land on an account that does not exist.
    pub async fn deposit(&self, id: &str, amount: i64) -> Result<u64, BankError> {
        if amount <= 0 {
            return Err(BankError::BadAmount(amount));
        }
        let account = AggregateId::new(ACCOUNT, id).map_err(AggregateError::from)?;
        loop {
            let version = self.accounts.version(&account).await?;
            if version == 0 {
                return Err(BankError::UnknownAccount(id.into()));
            }
            match self
                .accounts
                .append(
                    &account,
                    ExpectedVersion::Exact(version),
                    vec![deposited(amount)],
                )
                .await
            {
                Ok(appended) => return Ok(appended.last_version),
                // Another deposit got in first: decide again on the new version.
                Err(AggregateError::WrongVersion { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Moves `amount` from one account to another, never overdrawing `from`.
    ///
    /// The decision reads every event that changes `from`'s balance ([`balance_query`]) and
    /// appends the transfer on the condition that none was appended since: the DCB condition
    /// spans `from`'s stream and every transfer naming it, so two transfers racing out of one
    /// account cannot both spend the same money, while deposits and transfers elsewhere go on.
    pub async fn transfer(&self, from: &str, to: &str, amount: i64) -> Result<Position, BankError> {
        if amount <= 0 {
            return Err(BankError::BadAmount(amount));
        }
        for id in [from, to] {
            let account = AggregateId::new(ACCOUNT, id).map_err(AggregateError::from)?;
            if self.accounts.version(&account).await? == 0 {
                return Err(BankError::UnknownAccount(id.into()));
            }
        }
        loop {
            let (balance, seen) = self.balance_at(from).await?;
            if balance < amount {
                return Err(BankError::InsufficientFunds {
                    account: from.into(),
                    balance,
                    amount,
                });
            }
            let condition = AppendCondition::new(balance_query(from), seen);
            match self
                .store
                .append(
                    &self.boundary,
                    vec![transferred(from, to, amount)],
                    Some(condition),
                )
                .await
            {
                Ok(outcome) => return Ok(outcome.position),
                // `from`'s balance changed since we read it: decide again.
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The balance of `account` from its events, and the position it was decided at.
    pub async fn balance_at(&self, account: &str) -> Result<(i64, Position), BankError> {
        let query = balance_query(account);
        let (mut balance, mut seen, mut from) = (0, Position::BEFORE_FIRST, None);
        loop {
            let request = ReadRequest::forward(from, MAX_READ_LIMIT).with_query(query.clone());
            let page = self.store.read(&self.boundary, &request).await?;
            let full = page.len() == MAX_READ_LIMIT as usize;
            let after = seen;
            for event in page.iter().filter(|e| e.position > after) {
                balance += effects(event)
                    .iter()
                    .filter(|(a, _)| a == account)
                    .map(|(_, change)| change)
                    .sum::<i64>();
                seen = event.position;
            }
            if !full {
                return Ok((balance, seen));
            }
            from = Some(seen);
        }
    }

    /// The projection that keeps `bank_balances`, exactly once per event.
    pub fn balances_projection(&self, mode: Mode) -> anyhow::Result<Processor> {
        let config = ProjectionConfig::new("bank_balances", self.boundary.clone())?.mode(mode);
        Ok(orisun_projections::postgres::processor(
            &self.store,
            config,
            read_model::Balances,
        ))
    }

    /// The read model's rows.
    pub async fn read_model(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let client = self.store.pool().get().await?;
        let rows = client
            .query("SELECT account, balance FROM bank_balances", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
