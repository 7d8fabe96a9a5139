//! Helpers shared by the integration tests: fresh stores in temporary directories and events.
#![allow(dead_code)]

use orisun_sqlite::{SqliteConfig, SqliteStore, Synchronous};
use orisun_store::core::{BoundaryName, JsonObject, NewEvent};
use serde_json::Value;
use tempfile::TempDir;
use uuid::Uuid;

/// A store in its own temporary directory, which lives as long as the value.
pub struct Fresh {
    pub dir: TempDir,
    pub store: SqliteStore,
}

/// Opens a store in a new temporary directory, with fsync off (durability is tested separately).
pub fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(config(&dir)).expect("open");
    Fresh { dir, store }
}

/// The configuration the tests use for `dir`.
pub fn config(dir: &TempDir) -> SqliteConfig {
    SqliteConfig::new(dir.path()).with_synchronous(Synchronous::Off)
}

pub fn boundary(name: &str) -> BoundaryName {
    BoundaryName::new(name).expect("valid boundary name")
}

pub fn obj(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// An event of type `ty` with the given data and a random id.
pub fn event(ty: &str, data: Value) -> NewEvent {
    NewEvent::new(Uuid::new_v4(), ty, obj(data), JsonObject::new()).expect("valid event")
}
