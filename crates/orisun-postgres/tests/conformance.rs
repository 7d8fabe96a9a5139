//! The generic conformance suite of `orisun_store`, run against PostgreSQL (a fresh database
//! per test).

mod common;

orisun_store::conformance_suite!(common::fresh_store);
