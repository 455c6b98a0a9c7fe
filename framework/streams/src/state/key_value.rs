//! Key-value stores: the byte-level trait every implementation provides, the in-memory one (ordered by key bytes,
//! as Kafka's), and the typed handle processors and interactive queries use.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;
use spate::{Decode, Encode, RecordPart};

use super::{decode, encode_key, encode_value, join_timestamp, split_timestamp, ChangeLogger, KeyValueEntries};
use crate::StreamsError;

/// A key-value store over bytes, ordered by key bytes. Ranges are inclusive at both ends, as Kafka's.
pub trait KeyValueBytesStore: Send {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError>;
    /// Stores `value` under `key`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StreamsError>;
    /// Removes `key`, returning its old value.
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError>;
    /// Entries with `from <= key <= to`, in key order.
    fn range(&self, from: &[u8], to: &[u8]) -> Result<KeyValueEntries, StreamsError>;
    /// All entries in key order.
    fn all(&self) -> Result<KeyValueEntries, StreamsError>;
    /// Number of entries (exact for the built-in stores).
    fn approximate_num_entries(&self) -> Result<u64, StreamsError>;
    /// Makes writes durable (persistent stores).
    fn flush(&mut self) -> Result<(), StreamsError> {
        Ok(())
    }
    /// Whether the store survives a restart on its own (Kafka's `persistent()`).
    fn persistent(&self) -> bool {
        false
    }
}

/// Kafka's `InMemoryKeyValueStore`: a sorted map.
#[derive(Debug, Default)]
pub struct InMemoryKeyValueStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl KeyValueBytesStore for InMemoryKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        Ok(self.map.get(key).cloned())
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StreamsError> {
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        Ok(self.map.remove(key))
    }
    fn range(&self, from: &[u8], to: &[u8]) -> Result<KeyValueEntries, StreamsError> {
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self.map.range(from.to_vec()..=to.to_vec()).map(|(k, v)| (k.clone(), v.clone())).collect())
    }
    fn all(&self) -> Result<KeyValueEntries, StreamsError> {
        Ok(self.map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
    fn approximate_num_entries(&self) -> Result<u64, StreamsError> {
        Ok(self.map.len() as u64)
    }
}

/// A key-value store of one task with its changelog logging.
pub struct KvInner {
    pub(crate) name: String,
    pub(crate) bytes: Box<dyn KeyValueBytesStore>,
    pub(crate) logger: Option<ChangeLogger>,
    /// Values carry an 8-byte timestamp prefix (DSL stores); the changelog gets the plain value and that timestamp.
    pub(crate) timestamped: bool,
    /// The timestamp of the record being processed (for writes through a plain view of a timestamped store).
    pub(crate) clock: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl KvInner {
    pub(crate) fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<Option<Vec<u8>>, StreamsError> {
        let old = match value {
            Some(v) => {
                let old = self.bytes.get(key)?;
                self.bytes.put(key, v)?;
                old
            }
            None => self.bytes.delete(key)?,
        };
        if let Some(logger) = &self.logger {
            match value {
                Some(v) if self.timestamped => match split_timestamp(v) {
                    Some((ts, plain)) => logger.log(key.to_vec(), Some(plain.to_vec()), Some(ts)),
                    None => return Err(StreamsError::store(&self.name, "timestamped value without its timestamp")),
                },
                Some(v) => logger.log(key.to_vec(), Some(v.to_vec()), None),
                None => logger.log(key.to_vec(), None, None),
            }
        }
        Ok(old)
    }

    /// Replays a changelog entry without logging it again.
    pub(crate) fn restore(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<(), StreamsError> {
        match value {
            Some(v) if self.timestamped => self.bytes.put(key, &join_timestamp(timestamp, v)),
            Some(v) => self.bytes.put(key, v),
            None => self.bytes.delete(key).map(|_| ()),
        }
    }
}

/// A typed key-value store (Kafka's `KeyValueStore<K, V>`): a cheap handle, shared by the processors of its task
/// and by interactive queries. Keys and values are stored with their [`spate::Encode`] codec.
///
/// ```
/// use spate_streams::{StreamsBuilder, TopologyTestDriver, StreamsConfig, Materialized};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("words").group_by_key().count_with(Materialized::as_("counts"));
/// let driver = TopologyTestDriver::new(builder.build(), StreamsConfig::new("app")).unwrap();
/// driver.create_input_topic::<String, String>("words").pipe_input("a".to_string(), "x".to_string()).unwrap();
/// let store = driver.get_key_value_store::<String, i64>("counts").unwrap();
/// assert_eq!(store.get(&"a".to_string()).unwrap(), Some(1));
/// ```
pub struct KeyValueStore<K, V> {
    inner: Arc<Mutex<KvInner>>,
    /// A plain view over a timestamped store: reads drop the timestamp, writes stamp the current record's time.
    plain_view: bool,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for KeyValueStore<K, V> {
    fn clone(&self) -> Self {
        KeyValueStore { inner: self.inner.clone(), plain_view: self.plain_view, _types: PhantomData }
    }
}

impl<K: Encode + Decode, V: Encode + Decode> KeyValueStore<K, V> {
    pub(crate) fn new(inner: Arc<Mutex<KvInner>>, plain_view: bool) -> Self {
        KeyValueStore { inner, plain_view, _types: PhantomData }
    }

    /// The store's name.
    pub fn name(&self) -> String {
        self.inner.lock().name.clone()
    }

    fn decode_value(&self, name: &str, bytes: &[u8]) -> Result<V, StreamsError> {
        if self.plain_view {
            let (_, plain) =
                split_timestamp(bytes).ok_or_else(|| StreamsError::store(name, "timestamped value too short"))?;
            decode(name, plain, RecordPart::Value)
        } else {
            decode(name, bytes, RecordPart::Value)
        }
    }

    fn encode_value(&self, inner: &KvInner, value: &V) -> Result<Vec<u8>, StreamsError> {
        let bytes = encode_value(&inner.name, value)?;
        if self.plain_view {
            let now = inner.clock.load(std::sync::atomic::Ordering::Relaxed);
            Ok(join_timestamp(now, &bytes))
        } else {
            Ok(bytes)
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>, StreamsError> {
        let inner = self.inner.lock();
        let k = encode_key(&inner.name, key)?;
        match inner.bytes.get(&k)? {
            Some(bytes) => self.decode_value(&inner.name, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key` (and logs it to the changelog).
    pub fn put(&self, key: &K, value: &V) -> Result<(), StreamsError> {
        let mut inner = self.inner.lock();
        let k = encode_key(&inner.name, key)?;
        let v = self.encode_value(&inner, value)?;
        inner.put(&k, Some(&v)).map(|_| ())
    }

    /// Stores `value` unless `key` has one; returns the existing value.
    pub fn put_if_absent(&self, key: &K, value: &V) -> Result<Option<V>, StreamsError> {
        if let Some(existing) = self.get(key)? {
            return Ok(Some(existing));
        }
        self.put(key, value)?;
        Ok(None)
    }

    /// Removes `key` (logging a tombstone) and returns its old value.
    pub fn delete(&self, key: &K) -> Result<Option<V>, StreamsError> {
        let mut inner = self.inner.lock();
        let k = encode_key(&inner.name, key)?;
        match inner.put(&k, None)? {
            Some(old) => self.decode_value(&inner.name, &old).map(Some),
            None => Ok(None),
        }
    }

    /// Entries with `from <= key <= to` by serialized key order.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, StreamsError> {
        let inner = self.inner.lock();
        let (f, t) = (encode_key(&inner.name, from)?, encode_key(&inner.name, to)?);
        let entries = inner.bytes.range(&f, &t)?;
        self.decode_entries(&inner.name, entries)
    }

    /// All entries in serialized key order.
    pub fn all(&self) -> Result<Vec<(K, V)>, StreamsError> {
        let inner = self.inner.lock();
        let entries = inner.bytes.all()?;
        self.decode_entries(&inner.name, entries)
    }

    fn decode_entries(&self, name: &str, entries: KeyValueEntries) -> Result<Vec<(K, V)>, StreamsError> {
        entries
            .into_iter()
            .map(|(k, v)| Ok((decode(name, &k, RecordPart::Key)?, self.decode_value(name, &v)?)))
            .collect()
    }

    /// Number of entries.
    pub fn approximate_num_entries(&self) -> Result<u64, StreamsError> {
        self.inner.lock().bytes.approximate_num_entries()
    }
}
