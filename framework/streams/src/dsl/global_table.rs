//! `GlobalKTable<K, V>`: a table filled from all partitions of its topic in every instance, for stream joins by
//! a key derived from each record. Its store is global: every task may read it.

use std::marker::PhantomData;

/// A fully replicated table (Kafka's `GlobalKTable`).
pub struct GlobalKTable<K, V> {
    pub(crate) store: String,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable { store: self.store.clone(), _types: PhantomData }
    }
}

impl<K, V> GlobalKTable<K, V> {
    pub(crate) fn new(store: String) -> Self {
        GlobalKTable { store, _types: PhantomData }
    }

    /// The store holding the table.
    pub fn queryable_store_name(&self) -> &str {
        &self.store
    }
}
