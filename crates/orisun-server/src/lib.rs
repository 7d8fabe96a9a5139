//! The Orisun server: configuration, storage backend selection, the gRPC `EventStore` and
//! `Admin` services, authentication and authorisation, the admin HTTP endpoint, start-up and
//! graceful shutdown.
//!
//! [`serve`] takes already-bound listeners, so tests bind `127.0.0.1:0` and the binary binds the
//! configured ports; [`serve_with_store`] runs over any [`orisun_store::EventStore`].

pub mod admin_boundary;
pub mod admin_http;
pub mod admin_service;
pub mod admin_transport;
pub mod api_error;
pub mod auth;
pub mod backend;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod dashboard;
mod error;
pub mod event_store;
pub mod handshake;
pub mod http_auth;
pub mod indexes;
pub mod legacy;
pub mod metrics;
pub mod oversize;
pub mod profiling;
mod server;
pub mod shutdown;
pub mod subscriptions;
pub mod telemetry;
pub mod users;

pub use config::Config;
pub use error::ServerError;
pub use server::{serve, serve_with_backend, serve_with_store};
