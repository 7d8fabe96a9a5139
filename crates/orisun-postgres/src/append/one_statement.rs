//! The one-statement fast path of [`super::append_group`]: a small group, unconditional or with
//! one condition independent of the group's earlier events, appended by a single statement that
//! is its own transaction (one round trip instead of two).

use super::{event_size, AppendRequest, Check, Chunk, GroupOutcome, CHUNK_BYTES, CHUNK_EVENTS};
use crate::db::{Exec, Param};
use crate::sql::BoundarySql;
use orisun_core::Position;
use orisun_store::{AppendOutcome, StoreError};
use tokio_postgres::types::Type;

/// Most conditional requests one statement checks. Each adds a subquery, and a statement with
/// many costs more to plan than the round trip it saves: with 64 clients saving conditionally,
/// allowing 128 took PostgreSQL from about 5,100 to 2,300 saves/s on 2 cores.
const ONE_STATEMENT_CHECKS: usize = 1;

/// A group small enough for one INSERT with at most [`ONE_STATEMENT_CHECKS`] conditions, each
/// independent of the group's earlier events: appended by one statement that is its own
/// transaction (one round trip, like a plain autocommit INSERT; see [`BoundarySql::append_in_one_statement`]), all or nothing. Positions
/// are counted from the head row the statement locks (after waiting for any other writer to
/// commit, it sees that writer's head), so they stay commit-ordered. The checks are trusted
/// only if the statement's snapshot holds the locked head. An event id that is already stored
/// fails the statement (unique violation), which rolls it back whole.
pub(super) struct OneStatement<'a> {
    /// The arrays, with positions relative to the head: the prepare position of event `i` is
    /// `i`, its commit position its request's last offset + 1.
    chunk: Chunk<'a>,
    /// The offset of each request's last event.
    last_offsets: Vec<i64>,
    /// The conditions, each with its expected position moved to [`Position::BEFORE_FIRST`] if
    /// it means the beginning.
    checks: Vec<Check>,
}

impl<'a> OneStatement<'a> {
    /// Returns the arrays of `requests`, or `None` if they need the general path.
    pub(super) fn new(requests: &[&'a AppendRequest]) -> Option<Self> {
        let count: usize = requests.iter().map(|r| r.events.len()).sum();
        if count > CHUNK_EVENTS {
            return None;
        }
        let bytes: usize = requests
            .iter()
            .flat_map(|r| r.events.iter().map(event_size))
            .sum();
        if bytes > CHUNK_BYTES {
            return None;
        }
        let mut checks = Vec::new();
        for (j, request) in requests.iter().enumerate() {
            let Some(condition) = &request.condition else {
                continue;
            };
            if condition.query.matches_all() || checks.len() == ONE_STATEMENT_CHECKS {
                return None;
            }
            // The statement checks each condition against the stored log only; one that would
            // also match an earlier request's events of the group needs the general path.
            let sees_earlier = requests[..j]
                .iter()
                .flat_map(|r| &r.events)
                .any(|e| condition.query.matches(&e.data));
            if sees_earlier {
                return None;
            }
            let mut check = Check::new(condition);
            if check.after.is_beginning() {
                check.after = Position::BEFORE_FIRST;
            }
            checks.push(check);
        }
        let mut this = Self {
            chunk: Chunk::default(),
            last_offsets: Vec::with_capacity(requests.len()),
            checks,
        };
        let mut offset = 0i64;
        for request in requests {
            let last = offset + request.events.len() as i64 - 1;
            for event in &request.events {
                this.chunk.push(event, Position::new(last + 1, offset), 0);
                offset += 1;
            }
            this.last_offsets.push(last);
        }
        this.chunk.make_runs();
        Some(this)
    }

    /// Runs the statement; `None` when it appended nothing because the condition needs the
    /// general path (a match, an expected position after the head, or a snapshot older than
    /// the lock).
    pub(super) async fn append(
        &self,
        exec: Exec<'_>,
        sql: &BoundarySql,
        channel: &str,
    ) -> Result<Option<GroupOutcome>, tokio_postgres::Error> {
        let types = [
            Type::INT8_ARRAY,
            Type::UUID_ARRAY,
            Type::TEXT_ARRAY,
            Type::JSONB_ARRAY,
            Type::JSONB_ARRAY,
            Type::UUID_ARRAY,
            Type::INT8_ARRAY,
            Type::INT8_ARRAY,
            Type::INT8,
            Type::TEXT,
        ];
        let mut check_params: Vec<Param<'_>> = Vec::new();
        let mut checks = Vec::with_capacity(self.checks.len());
        for check in &self.checks {
            let first = check_params.len() + 1;
            checks.push((sql.condition_check_from(&check.shape, first), first));
            check_params.extend(check.params());
        }
        let text =
            (!checks.is_empty()).then(|| sql.append_in_one_statement(&checks, check_params.len()));
        let mut all_types: Vec<Type> = check_params.iter().map(|(_, t)| t.clone()).collect();
        all_types.extend(types);
        let statement = exec
            .prepare(
                text.as_deref().unwrap_or(&sql.append_unconditional),
                &all_types,
            )
            .await?;
        let c = &self.chunk;
        let count = c.ids.len() as i64;
        let channel = channel.to_owned();
        let mut params: Vec<Param<'_>> = check_params;
        params.extend([
            (&c.commits as _, Type::INT8_ARRAY),
            (&c.ids as _, Type::UUID_ARRAY),
            (&c.types as _, Type::TEXT_ARRAY),
            (&c.data as _, Type::JSONB_ARRAY),
            (&c.metadata as _, Type::JSONB_ARRAY),
            (&c.tag_hashes as _, Type::UUID_ARRAY),
            (&c.tag_lo as _, Type::INT8_ARRAY),
            (&c.tag_hi as _, Type::INT8_ARRAY),
            (&count as _, Type::INT8),
            (&channel as _, Type::TEXT),
        ]);
        let rows = exec.run(&statement, &params).await?;
        let Some(row) = rows.first() else {
            // No head row: nothing was inserted (every part of the statement joins it).
            return Ok(Some(GroupOutcome {
                outcomes: self
                    .last_offsets
                    .iter()
                    .map(|_| {
                        Err(StoreError::internal(format!(
                            "the head row of {} is missing; it is created with the boundary and never deleted",
                            sql.names.head
                        )))
                    })
                    .collect(),
                head: Position::BEFORE_FIRST,
                appended: false,
            }));
        };
        let appended: i64 = row.try_get(2)?;
        if appended == 0 {
            return Ok(None);
        }
        let before: i64 = row.try_get(0)?;
        let outcomes = self
            .last_offsets
            .iter()
            .map(|last| {
                let prepare = before + 1 + last;
                Ok(AppendOutcome {
                    position: Position::new(prepare + 1, prepare),
                    already_stored: false,
                })
            })
            .collect();
        Ok(Some(GroupOutcome {
            outcomes,
            head: Position::new(before + count + 1, before + count),
            appended: true,
        }))
    }
}
