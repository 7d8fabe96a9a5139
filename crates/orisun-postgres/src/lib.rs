//! The PostgreSQL backend of Orisun: [`PostgresStore`], an [`orisun_store::EventStore`] for
//! production and for several nodes sharing one database.
//!
//! # Driver
//!
//! `tokio-postgres` with a `deadpool-postgres` pool: asynchronous (no thread per connection),
//! pipelining (the statements of a group commit go out together and cost one round trip),
//! binary protocol and COPY, LISTEN/NOTIFY on a plain connection, and no database needed at
//! compile time (unlike `sqlx`'s checked macros), which keeps the build self-contained.
//!
//! # Layout
//!
//! A catalog in schema `orisun`: `orisun.schema_migrations` (catalog migrations applied) and
//! `orisun.boundaries(name, schema, prefix, ddl_version, created_at)`. Each boundary lives in a
//! schema ([`PostgresStore::create_boundary_in`]; [`orisun_store::EventStore::create_boundary`]
//! uses [`PostgresConfig::default_schema`], `public` by default) as three tables named after it:
//!
//! - `<b>_orisun_es_event(seq PK, commit_pos, event_id UNIQUE, event_type, data jsonb,
//!   metadata jsonb, date_created timestamptz DEFAULT now())` with an index on
//!   `(commit_pos, seq)`. `seq` is the prepare position, `commit_pos` the commit position.
//!   No index includes `data`, so events of any size fit; `date_created` is a `timestamptz`
//!   set by `now()`, correct whatever the session's TimeZone.
//! - `<b>_orisun_tags(h uuid, lo, hi, PK (h, lo) INCLUDE (hi))`: the tag index, as runs. A row
//!   says that the events `lo..=hi` (`hi` NULL: just `lo`) all have the tag hash `h`
//!   ([`orisun_core::NewEvent::tag_hashes`], 16 bytes stored as a `uuid`); each insert writes one
//!   row per stretch of consecutive events sharing a tag, so a batch or a group of events of one
//!   type, stream or tenant costs one index row for that tag, not one per event. The runs of a
//!   tag never overlap, so the run holding or preceding a seq is one probe. Criteria are
//!   intersections (per criterion) and unions (across criteria) of index scans of this table,
//!   so a condition check or a latest-by-criteria never scans the log. (Boundary DDL version 1
//!   had one row per event and tag, `(h, seq)`; version 2 renames `seq` to `lo` and adds `hi`, so
//!   its rows are runs of one event, read as such.)
//! - `<b>_orisun_head(id = 0, seq, commit_pos)`: the head, and the boundary's writer lock.
//!
//! The prefix `<b>` is the boundary name, or for names too long to leave room for the suffixes
//! within PostgreSQL's 63-byte identifiers, its start plus a hash of the whole name; the catalog
//! records it. Identifiers are validated and always quoted; values are always bind parameters.
//!
//! Migrations are versioned SQL files embedded in the binary (`migrations/NNNN_*.sql` for the
//! catalog, `migrations/boundary/NNNN_*.sql` for each boundary's tables, rendered with the
//! quoted names). They run in a transaction holding a fixed `pg_advisory_xact_lock`, so nodes may
//! start together; a version is applied once, never re-run at start-up.
//!
//! # Writing
//!
//! Positions are assigned in commit order: a writer transaction locks the head row
//! (`SELECT ... FOR UPDATE`), reads the head, assigns the next seqs, inserts and commits while
//! holding the lock. So every snapshot holds a gap-free prefix of the log, without Go Orisun's
//! cluster-wide xmin barrier, and no sequence object is used (a rolled-back transaction consumes
//! no seq), which makes `count` = head seq + 1.
//!
//! Each node runs one writer task per boundary (group commit). It takes every queued request (up
//! to 10,000 events or about 64 MiB) into one READ COMMITTED transaction of two round trips.
//! First `BEGIN`, the lock, the idempotency lookup of all event ids and each condition's
//! tag-index search (bounded below by the expected position, so it costs what was appended
//! since), sent together in that order, so the reads' snapshots are taken under the lock.
//! Requests are then decided in order, each seeing the accepted requests before it (checked in
//! memory with [`orisun_core::Query::matches`]); a rejected request fails alone. Then the
//! accepted events and their tags are inserted with `UNNEST` arrays (in chunks of at most 32 MiB
//! or 10,000 events: PostgreSQL refuses messages and arrays over 1 GiB), the head is moved, one
//! `pg_notify` is queued and `COMMIT` is sent, again together: one fsync answers every caller.
//! If the transaction fails for a reason other than a lost connection, the requests are retried
//! one by one so that a request that cannot be stored fails alone.
//!
//! A group that fits one INSERT and is either unconditional or a single conditional request
//! (the common cases of single-event saves) takes one round trip instead: a single statement,
//! its own transaction, whose data-modifying CTEs lock the head row, insert the events and tags
//! at seqs counted from it, move it and queue the NOTIFY. Waiting for the lock, READ COMMITTED
//! re-reads the head row as the previous writer committed it, so positions stay commit-ordered.
//! A condition is checked in the same statement, against its snapshot, and trusted only if that
//! snapshot holds the locked head (no writer committed between the snapshot and the lock; else
//! the check could have missed that writer's events). If the statement appends nothing (a
//! conflict, an expected position after the head, a stale snapshot) or fails (typically an
//! event id already stored: a retry), nothing of it remains and the group takes the general
//! path above, which gives the precise answer. Measured on 2 cores with local PostgreSQL, this
//! took one-client saves from 1.40 to about 1.0 ms (p50, over gRPC), unconditional or not.
//!
//! A criterion with several tags is searched by leapfrogging over the tag index (a recursive
//! CTE of index probes) rather than by a join, whose plan PostgreSQL would choose without
//! knowing which tag is rare: the cost is bounded by the rarest tag's rows in the range.
//!
//! Library mode ([`PostgresStore::append_in_transaction`]) runs the same algorithm inside the
//! caller's transaction, with unnamed statements.
//!
//! # Wake-ups
//!
//! Each boundary has a `watch` of its head, moved after local commits, by NOTIFYs received on a
//! dedicated LISTEN connection (re-established after a drop, heads re-read on reconnect) and by
//! a poll of the watched heads every [`orisun_store::POLL_FALLBACK`].
//!
//! # Poolers
//!
//! No session state survives a transaction: locks are transaction-level, nothing is `SET`
//! outside a transaction, no temporary tables. Statements are prepared and cached per pooled
//! connection, which a transaction-mode PgBouncer supports from version 1.21
//! (`max_prepared_statements`); with [`PostgresConfig::statement_cache`] off every statement is
//! sent unnamed, for older poolers. Library mode uses unnamed statements only. The LISTEN
//! connection must be direct: [`PostgresConfig::listen_host`] and `listen_port` route it around
//! the pooler. `tests/pgbouncer.rs` runs the conformance suite through PgBouncer 1.18.
//!
//! # Deviations from the design brief
//!
//! - The catalog also records each boundary's `prefix`, so that the naming rule for long
//!   boundary names can change without orphaning tables.
//! - `data` and `metadata` are `jsonb`: they are read back as compact JSON text in `jsonb`'s key
//!   order (shorter keys first), not in the order written; the values are equal.
//! - The NUL character (`\u0000`) cannot be stored in `jsonb` or `text`; such events are
//!   refused with [`orisun_store::StoreError::Invalid`] before they reach a group.
//! - Inserts use `UNNEST` arrays rather than binary COPY. Measured on the development machine
//!   (now the `raw_batch_1000` and `raw_copy_1000` baselines of `orisun bench`), raw
//!   1000-row batches reach about 80,000 rows/s with `UNNEST` and 100,000 with binary COPY;
//!   but in a group the event rows are a minor part of the work (the tag runs, the event-id
//!   lookup, three indexes), and COPY, a protocol sub-mode, cannot be pipelined with the
//!   group's other statements, which would cost a round trip per group.
//!
//! # Errors
//!
//! Driver errors are translated where they occur: a lost connection, a shutdown, a serialization
//! failure or a lack of resources is [`orisun_store::StoreError::Unavailable`] (retry); a unique
//! violation on an event id is [`orisun_store::StoreError::DuplicateEvents`]; a data exception
//! is [`orisun_store::StoreError::Invalid`]; anything else is
//! [`orisun_store::StoreError::Internal`]. Each is logged once with its SQLSTATE.

mod append;
mod caller_tx;
mod config;
mod coordination;
mod db;
mod error;
mod membership;
mod names;
mod notify;
mod read;
mod schema;
mod sql;
mod store;
#[cfg(feature = "testsuite")]
pub mod testsuite;
mod tls;
mod writer;

pub use config::PostgresConfig;
pub use coordination::PostgresCoordination;
/// Classifies driver and pool errors as a `StoreError`, for code that runs its own statements
/// next to the store's (library mode).
pub use error::{db as store_error, pool as pool_error};
pub use membership::PostgresMembership;
pub use schema::migration_script;
pub use store::PostgresStore;
pub use tls::{PgTls, SslMode};

pub use deadpool_postgres;
pub use tokio_postgres;
