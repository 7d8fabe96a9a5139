//! Hash partitioning: which of N partitions an event belongs to.
//!
//! The hash is **FNV-1a, 32 bits** (offset basis 2166136261, prime 16777619) over the UTF-8
//! bytes of the partition key, and the partition is `hash % N`. By default the key is the
//! event's `aggregateId`, so all events of one aggregate land in one partition and are handled
//! in log order; an event without one goes to partition 0. This is the hash and the default key
//! pupsourcing's `HashPartitionStrategy` uses, so a read model partitioned there keeps its
//! assignment here.
//!
//! Each partition reads the projection's whole scope and keeps its share: N partitions read N
//! times, in exchange for needing no coordination between them.

use orisun_core::{Invalid, StoredEvent};
use std::fmt;
use std::sync::Arc;

/// FNV-1a over `bytes`, 32 bits.
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(PRIME)
    })
}

/// The partition of `key` among `count` partitions.
pub fn partition_of_key(key: &str, count: u32) -> u32 {
    if count <= 1 {
        return 0;
    }
    fnv1a_32(key.as_bytes()) % count
}

/// Extracts an event's partition key; `None` sends the event to partition 0.
pub type KeyFn = Arc<dyn Fn(&StoredEvent) -> Option<String> + Send + Sync>;

/// One partition of a projection: `index` of `count`.
#[derive(Clone)]
pub struct Partition {
    index: u32,
    count: u32,
    key: Option<KeyFn>,
}

impl fmt::Debug for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Partition({}/{})", self.index, self.count)
    }
}

impl Partition {
    /// The only partition: every event.
    pub fn whole() -> Self {
        Self {
            index: 0,
            count: 1,
            key: None,
        }
    }

    /// Partition `index` of `count` (`index < count`, `count >= 1`).
    pub fn new(index: u32, count: u32) -> Result<Self, Invalid> {
        if count == 0 {
            return Err(Invalid::new("partitions", "must be at least 1"));
        }
        if index >= count {
            return Err(Invalid::new(
                "partition",
                format!("must be below the partition count {count}, got {index}"),
            ));
        }
        Ok(Self {
            index,
            count,
            key: None,
        })
    }

    /// Returns a copy that partitions by `key` instead of the aggregate id.
    pub fn with_key(mut self, key: KeyFn) -> Self {
        self.key = Some(key);
        self
    }

    /// The custom key function, if any.
    pub(crate) fn key(&self) -> Option<KeyFn> {
        self.key.clone()
    }

    /// This partition's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The partition count.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True when `event` belongs to this partition.
    pub fn owns(&self, event: &StoredEvent) -> bool {
        if self.count <= 1 {
            return true;
        }
        let key = match &self.key {
            Some(key) => key(event),
            None => aggregate_id(event),
        };
        key.map_or(0, |k| partition_of_key(&k, self.count)) == self.index
    }
}

/// The default partition key: the event's `aggregateId` data field, when it is a string.
pub fn aggregate_id(event: &StoredEvent) -> Option<String> {
    let data: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&event.data).ok()?;
    data.get("aggregateId")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn keys_spread_over_every_partition_deterministically() {
        let mut seen = [0u32; 4];
        for i in 0..400 {
            let p = partition_of_key(&format!("acc-{i}"), 4);
            assert_eq!(p, partition_of_key(&format!("acc-{i}"), 4));
            seen[p as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "skewed: {seen:?}");
        assert_eq!(partition_of_key("anything", 1), 0);
    }

    #[test]
    fn bad_partitions_are_refused() {
        assert_eq!(Partition::new(0, 0).expect_err("zero").field, "partitions");
        assert_eq!(
            Partition::new(4, 4).expect_err("too high").field,
            "partition"
        );
    }
}
