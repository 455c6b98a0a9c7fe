//! Interactive queries (Kafka's `KafkaStreams#store`): read-only views over the instances of one store held by
//! this application instance's running tasks. A view looks the store instances up at each call, so it follows
//! tasks as rebalances move them; a key lives in one partition, so a lookup asks each local instance until one
//! has it (Kafka's `CompositeReadOnlyKeyValueStore`).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::RwLock;
use spate::{Decode, Encode};

use crate::state::StoreHandle;
use crate::{StreamsError, TaskId, Windowed};

/// The store instances of the running tasks, by store name and task.
#[derive(Default)]
#[doc(hidden)]
pub struct StoreRegistry {
    stores: RwLock<BTreeMap<String, BTreeMap<TaskId, StoreHandle>>>,
}

impl StoreRegistry {
    pub(crate) fn register(&self, task: TaskId, handles: Vec<StoreHandle>) {
        let mut s = self.stores.write();
        for h in handles {
            s.entry(h.name()).or_default().insert(task, h);
        }
    }

    pub(crate) fn unregister(&self, task: TaskId) {
        for m in self.stores.write().values_mut() {
            m.remove(&task);
        }
    }

    fn handles(&self, name: &str) -> Vec<StoreHandle> {
        self.stores.read().get(name).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }
}

/// Which store to query (Kafka's `StoreQueryParameters`).
#[derive(Debug, Clone)]
pub struct StoreQueryParameters {
    pub(crate) name: String,
    pub(crate) stale: bool,
}

impl StoreQueryParameters {
    /// The store named `name` (the `Materialized::as_` name, or a Processor API store's name).
    pub fn from_name(name: impl Into<String>) -> Self {
        StoreQueryParameters { name: name.into(), stale: false }
    }

    /// Also reads the store's standby replicas on this instance, which may lag behind the active task (Kafka's
    /// `enableStaleStores`).
    pub fn enable_stale_stores(mut self) -> Self {
        self.stale = true;
        self
    }

    /// The store's name.
    pub fn store_name(&self) -> &str {
        &self.name
    }
}

/// A view [`KafkaStreams::store`](super::KafkaStreams::store) can return (Kafka's `QueryableStoreType`).
pub trait QueryableStore: Sized {
    /// Builds the view.
    #[doc(hidden)]
    fn create(name: String, registries: Vec<Arc<StoreRegistry>>) -> Self;
}

/// A read-only key-value store over every local instance (plain values, also for timestamped stores such as
/// the DSL's `count`/`aggregate` tables).
pub struct ReadOnlyKeyValueStore<K, V> {
    name: String,
    registries: Vec<Arc<StoreRegistry>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> QueryableStore for ReadOnlyKeyValueStore<K, V> {
    fn create(name: String, registries: Vec<Arc<StoreRegistry>>) -> Self {
        ReadOnlyKeyValueStore { name, registries, _types: PhantomData }
    }
}

impl<K: Encode + Decode, V: Encode + Decode> ReadOnlyKeyValueStore<K, V> {
    fn instances(&self) -> Result<Vec<crate::KeyValueStore<K, V>>, StreamsError> {
        self.registries
            .iter()
            .flat_map(|r| r.handles(&self.name))
            .map(|h| {
                h.key_value_store::<K, V>().ok_or_else(|| StreamsError::store(&self.name, "not a key-value store"))
            })
            .collect()
    }

    /// The current value of `key`, from whichever local task holds its partition.
    pub fn get(&self, key: &K) -> Result<Option<V>, StreamsError> {
        for s in self.instances()? {
            if let Some(v) = s.get(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Every entry of every local instance.
    pub fn all(&self) -> Result<Vec<(K, V)>, StreamsError> {
        let mut out = Vec::new();
        for s in self.instances()? {
            out.extend(s.all()?);
        }
        Ok(out)
    }

    /// Entries with keys in `from..=to` (by serialized key order) across the local instances.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, StreamsError> {
        let mut out = Vec::new();
        for s in self.instances()? {
            out.extend(s.range(from, to)?);
        }
        Ok(out)
    }

    /// The number of entries across the local instances (approximate for persistent stores, as in Kafka).
    pub fn approximate_num_entries(&self) -> Result<u64, StreamsError> {
        let mut n = 0;
        for s in self.instances()? {
            n += s.approximate_num_entries()?;
        }
        Ok(n)
    }
}

/// A read-only window store over every local instance.
pub struct ReadOnlyWindowStore<K, V> {
    name: String,
    registries: Vec<Arc<StoreRegistry>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> QueryableStore for ReadOnlyWindowStore<K, V> {
    fn create(name: String, registries: Vec<Arc<StoreRegistry>>) -> Self {
        ReadOnlyWindowStore { name, registries, _types: PhantomData }
    }
}

impl<K: Encode + Decode + Clone, V: Encode + Decode> ReadOnlyWindowStore<K, V> {
    fn instances(&self) -> Result<Vec<crate::WindowStore<K, V>>, StreamsError> {
        self.registries
            .iter()
            .flat_map(|r| r.handles(&self.name))
            .map(|h| h.window_store::<K, V>().ok_or_else(|| StreamsError::store(&self.name, "not a window store")))
            .collect()
    }

    /// The value of `key` in the window starting at `window_start`.
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>, StreamsError> {
        for s in self.instances()? {
            if let Some(v) = s.fetch(key, window_start)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The windows of `key` starting in `time_from..=time_to`, as (window start, value).
    pub fn fetch_range(&self, key: &K, time_from: i64, time_to: i64) -> Result<Vec<(i64, V)>, StreamsError> {
        let mut out = Vec::new();
        for s in self.instances()? {
            out.extend(s.fetch_range(key, time_from, time_to)?);
        }
        Ok(out)
    }

    /// Every window starting in `time_from..=time_to`, across the local instances.
    pub fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<(Windowed<K>, V)>, StreamsError> {
        let mut out = Vec::new();
        for s in self.instances()? {
            out.extend(s.fetch_all(time_from, time_to)?);
        }
        Ok(out)
    }
}
