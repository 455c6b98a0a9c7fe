//! The cleaner's key -> latest offset map (Kafka's `OffsetMap` / `SkeinOffsetMap`), bounded by memory.
//!
//! Kafka hashes keys into a fixed buffer (`log.cleaner.dedupe.buffer.size`) and accepts the tiny chance of a hash
//! collision. This map keeps the keys themselves (exact, no collisions) and counts their bytes plus a per-entry
//! overhead against a budget; the cleaner stops mapping at a segment boundary when the budget is reached, as
//! Kafka stops when its map is full.

use std::collections::HashMap;

/// Rough per-entry cost besides the key bytes (hash table slot, offset, allocation).
const ENTRY_OVERHEAD: usize = 64;

#[derive(Debug)]
pub struct OffsetMap {
    map: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    budget: usize,
    latest_offset: i64,
}

impl OffsetMap {
    pub fn new(budget: usize) -> Self {
        OffsetMap { map: HashMap::new(), bytes: 0, budget, latest_offset: -1 }
    }

    /// Records `offset` as the latest for `key` (offsets arrive in increasing order).
    pub fn put(&mut self, key: &[u8], offset: i64) {
        match self.map.get_mut(key) {
            Some(existing) => *existing = offset,
            None => {
                self.bytes += key.len() + ENTRY_OVERHEAD;
                self.map.insert(key.into(), offset);
            }
        }
        self.latest_offset = self.latest_offset.max(offset);
    }

    /// Latest offset of `key`, -1 when it is not in the map.
    pub fn get(&self, key: &[u8]) -> i64 {
        self.map.get(key).copied().unwrap_or(-1)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.bytes >= self.budget
    }

    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_per_key_within_budget() {
        let mut map = OffsetMap::new(3 * (ENTRY_OVERHEAD + 1));
        map.put(b"a", 1);
        map.put(b"b", 2);
        map.put(b"a", 5);
        assert_eq!((map.get(b"a"), map.get(b"b"), map.get(b"c")), (5, 2, -1));
        assert_eq!((map.len(), map.latest_offset()), (2, 5));
        assert!(!map.is_full());
        map.put(b"c", 6);
        assert!(map.is_full());
    }
}
