//! Running statements: prepared and cached on pooled connections (unless the statement cache
//! is off, for transaction-mode poolers), unnamed on a caller's connection.

use deadpool_postgres::StatementCache;
use futures::future::{maybe_done, MaybeDone};
use std::future::Future;
use std::pin::Pin;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error, Row, Statement};

/// A bind parameter with its declared type (statements are prepared with explicit types, so
/// that the same text always means the same thing whatever the values).
pub(crate) type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// Where statements run.
///
/// On the store's own connections statements are prepared once per connection and cached by
/// their text (boundary-specific, since the table names are in the text). On a caller's
/// connection (library mode) they run as unnamed statements, one round trip each, leaving no
/// state in the session.
#[derive(Clone, Copy)]
pub(crate) struct Exec<'a> {
    client: &'a Client,
    cache: Option<&'a StatementCache>,
}

/// A statement ready to run.
pub(crate) enum Prepared<'s> {
    /// Prepared on the connection and cached.
    Named(Statement),
    /// Sent with its parameters each time (parse, bind and execute in one round trip).
    Unnamed(&'s str),
}

/// Above this many cached statements a connection's cache is emptied: statement texts vary with
/// the shape of criteria, and a client must not be able to grow it without bound.
const MAX_CACHED_STATEMENTS: usize = 512;

impl<'a> Exec<'a> {
    /// Runs statements on a pooled connection: with its statement cache when `cache_statements`
    /// (the default), else unnamed, as a transaction-mode pooler without prepared-statement
    /// support (PgBouncer before 1.21) needs: between transactions it may hand each statement to
    /// a different server connection, where a named statement does not exist.
    pub(crate) fn pooled(client: &'a deadpool_postgres::Client, cache_statements: bool) -> Self {
        if !cache_statements {
            return Self::unnamed(client);
        }
        let cache = &client.statement_cache;
        if cache.size() > MAX_CACHED_STATEMENTS {
            cache.clear();
        }
        Self {
            client,
            cache: Some(cache),
        }
    }

    /// Runs statements on a caller's connection, without preparing named statements.
    pub(crate) fn unnamed(client: &'a Client) -> Self {
        Self {
            client,
            cache: None,
        }
    }

    /// Prepares a statement (a no-op when it is cached or runs unnamed).
    pub(crate) async fn prepare<'s>(
        &self,
        sql: &'s str,
        types: &[Type],
    ) -> Result<Prepared<'s>, Error> {
        match self.cache {
            Some(cache) => Ok(Prepared::Named(
                cache.prepare_typed(self.client, sql, types).await?,
            )),
            None => Ok(Prepared::Unnamed(sql)),
        }
    }

    /// Runs a prepared statement and returns its rows.
    ///
    /// The statement is sent on the future's first poll, so futures polled together are
    /// pipelined on the connection in the order they are first polled.
    pub(crate) async fn run(
        &self,
        statement: &Prepared<'_>,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, Error> {
        match statement {
            Prepared::Named(statement) => {
                let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                self.client.query(statement, &values).await
            }
            Prepared::Unnamed(sql) => self.client.query_typed(sql, params).await,
        }
    }

    /// Runs statements in the simple protocol (`BEGIN`, `COMMIT`, `ROLLBACK`).
    pub(crate) async fn simple(&self, sql: &str) -> Result<(), Error> {
        self.client.batch_execute(sql).await
    }

    /// Prepares and runs a statement.
    pub(crate) async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, Error> {
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        let statement = self.prepare(sql, &types).await?;
        self.run(&statement, params).await
    }
}

/// A statement that has been sent, whose result is still to be read.
///
/// The driver delivers results in order through small per-statement channels, so every sent
/// statement's result must be awaited concurrently with the others (`try_join`), never one
/// after the other.
pub(crate) struct Sent<F: Future>(Pin<Box<MaybeDone<F>>>);

/// Polls a statement's future once. A first poll sends the statement, so statements sent later
/// reach the server after it: PostgreSQL runs a connection's statements in the order received.
pub(crate) async fn send<F: Future>(future: F) -> Sent<F> {
    let mut future = Box::pin(maybe_done(future));
    let _ = futures::poll!(future.as_mut());
    Sent(future)
}

impl<F: Future> Sent<F> {
    /// Waits for the statement's result.
    pub(crate) async fn result(mut self) -> F::Output {
        self.0.as_mut().await;
        self.0
            .as_mut()
            .take_output()
            .expect("a MaybeDone that has completed holds its output")
    }
}
