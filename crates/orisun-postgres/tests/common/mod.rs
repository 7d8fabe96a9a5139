//! Test support: the crate's own `testsuite` module (a fresh database per test, dropped when
//! the test ends), shared with the other crates that test against PostgreSQL.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

pub use orisun_postgres::testsuite::*;
