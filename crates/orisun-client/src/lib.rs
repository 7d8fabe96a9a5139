//! A Rust client of an Orisun server: [`OrisunClient`] implements [`orisun_store::EventStore`]
//! over gRPC, so code written against the trait (aggregates, projections, the conformance
//! suite) runs unchanged against a remote server.
//!
//! # Usage
//!
//! ```no_run
//! use orisun_client::{OrisunClient, RetryPolicy};
//! use orisun_store::EventStore;
//! use orisun_store::core::{BoundaryName, NewEvent, Position, Query};
//! use futures::StreamExt;
//! use std::time::Duration;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = OrisunClient::builder("http://127.0.0.1:5005")
//!     .credentials("admin", "changeit")
//!     .request_timeout(Some(Duration::from_secs(10)))
//!     .retry_policy(RetryPolicy::default())
//!     .connect() // or .build(), which connects on the first call
//!     .await?;
//! let orders = BoundaryName::new("orders")?;
//! let mut data = serde_json::Map::new();
//! data.insert("order".into(), "o-1".into());
//! let event = NewEvent::new(uuid::Uuid::now_v7(), "OrderPlaced", data, Default::default())?;
//! let outcome = client.append(&orders, vec![event], None).await?;
//! println!("stored at {}", outcome.position);
//!
//! let mut events = client.subscribe(&orders, Position::BEFORE_FIRST, Query::all());
//! while let Some(event) = events.next().await {
//!     println!("{}", event?.event_type);
//! }
//! # Ok(()) }
//! ```
//!
//! For TLS, use an `https://` endpoint; [`ClientBuilder::ca_certificate`] trusts a private CA
//! (otherwise the system's trust store is used) and [`ClientBuilder::tls_domain`] names the
//! certificate's host when it differs from the endpoint's.
//!
//! # Guarantees
//!
//! - Every method has the trait's semantics and reports the same [`orisun_store::StoreError`]
//!   variants as an in-process store (`ConditionFailed`, `Invalid` naming the same field,
//!   `UnknownBoundary`, `DuplicateEvents`, ...), decoded from the gRPC status by
//!   `orisun_proto::status::store_error`. A failure of the connection, once retries are
//!   exhausted, is `Unavailable`; a refused login or token is `Unauthenticated`, a call the
//!   user's roles do not allow is `PermissionDenied`, each with the server's reason.
//! - `subscribe` delivers every matching event once, in position order, across broken
//!   connections (see [`subscription`]). Its errors arrive as an item, after which it ends.
//! - `head` is derived from a one-event backwards read (the API has no call for it);
//!   `create_boundary`, `boundaries` and `count` use the `orisun.Admin` service, which the
//!   server allows only to users with role `ADMIN`.
//!
//! # Retries
//!
//! Transient failures (`UNAVAILABLE`, an attempt past its deadline, a connection that broke
//! during the call) are retried with exponential backoff and jitter ([`RetryPolicy`]). Nothing
//! the server decided is retried: a failed condition, invalid input, an unknown boundary, a
//! refused login.
//!
//! Retrying a save is safe because the save carries its event ids: if the lost attempt was
//! stored, the server recognises the ids and reports the original position instead of
//! appending again (`orisun_store::rules::classify_retry`), with `already_stored` set. That
//! holds because the client resends the very same batch: code that builds events with fresh
//! random ids on each of its own attempts would append duplicates, and should keep the ids of
//! a batch until it is known to be stored.
//!
//! # Authentication
//!
//! The first call sends `authorization: Basic ...`; the server answers with a session token
//! (header `x-auth-token`), which later calls send instead, so the password is verified once
//! rather than per call. When the server rejects the token (expired, or revoked by a password
//! change), the call is repeated once with Basic, which brings a fresh token. Clones share the
//! token. See [`auth`].

pub mod auth;
mod builder;
mod client;
mod retry;
mod store;
pub mod subscription;

pub use builder::{BuildError, ClientBuilder};
pub use client::OrisunClient;
pub use retry::RetryPolicy;
