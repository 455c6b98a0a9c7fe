//! Window stores: values per (key, window start), kept for a retention period measured in stream time (Kafka's
//! `WindowStore`). With duplicates retained (stream-stream join buffers) every put is kept.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;
use spate::{Decode, Encode, RecordPart};

use super::{decode, encode_key, encode_value, join_timestamp, split_timestamp, ChangeLogger, WindowEntries};
use crate::{StreamsError, Window, Windowed};

/// A window store over bytes.
pub trait WindowBytesStore: Send {
    /// Stores `value` for `key` in the window starting at `window_start`; `None` removes it (not with duplicates).
    fn put(&mut self, key: &[u8], window_start: i64, value: Option<&[u8]>) -> Result<(), StreamsError>;
    /// The value of `key` in the window starting at `window_start`.
    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StreamsError>;
    /// `key`'s values in windows starting in `[time_from, time_to]`, by start time.
    fn fetch_range(&self, key: &[u8], time_from: i64, time_to: i64) -> Result<Vec<(i64, Vec<u8>)>, StreamsError>;
    /// All keys' values in windows starting in `[time_from, time_to]`.
    fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<WindowEntries, StreamsError>;
    /// Every live entry.
    fn all(&self) -> Result<WindowEntries, StreamsError>;
    /// Makes writes durable (persistent stores).
    fn flush(&mut self) -> Result<(), StreamsError> {
        Ok(())
    }
}

/// Kafka's `InMemoryWindowStore`: windows older than the retention period (by the latest start seen) are dropped,
/// and puts into them are ignored.
#[derive(Debug)]
pub struct InMemoryWindowStore {
    map: BTreeMap<(Vec<u8>, i64, u32), Vec<u8>>,
    retention: i64,
    retain_duplicates: bool,
    seq: u32,
    observed_stream_time: i64,
    expired_before: i64,
}

impl InMemoryWindowStore {
    /// A store keeping windows for `retention_ms`.
    pub fn new(retention_ms: i64, retain_duplicates: bool) -> Self {
        InMemoryWindowStore {
            map: BTreeMap::new(),
            retention: retention_ms,
            retain_duplicates,
            seq: 0,
            observed_stream_time: i64::MIN,
            expired_before: i64::MIN,
        }
    }

    fn min_live_time(&self) -> i64 {
        self.observed_stream_time.saturating_sub(self.retention).saturating_add(1)
    }
}

impl WindowBytesStore for InMemoryWindowStore {
    fn put(&mut self, key: &[u8], window_start: i64, value: Option<&[u8]>) -> Result<(), StreamsError> {
        self.observed_stream_time = self.observed_stream_time.max(window_start);
        let min_live = self.min_live_time();
        if window_start < min_live {
            tracing::debug!(window_start, "skipping a write to an expired window");
            return Ok(());
        }
        if min_live > self.expired_before {
            // Only when stream time moved: dropping expired windows walks the whole map.
            self.map.retain(|(_, start, _), _| *start >= min_live);
            self.expired_before = min_live;
        }
        match value {
            Some(v) if self.retain_duplicates => {
                self.seq = self.seq.wrapping_add(1);
                self.map.insert((key.to_vec(), window_start, self.seq), v.to_vec());
            }
            Some(v) => {
                self.map.insert((key.to_vec(), window_start, 0), v.to_vec());
            }
            None => {
                self.map.remove(&(key.to_vec(), window_start, 0));
            }
        }
        Ok(())
    }

    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StreamsError> {
        if window_start < self.min_live_time() {
            return Ok(None);
        }
        Ok(self
            .map
            .range((key.to_vec(), window_start, 0)..=(key.to_vec(), window_start, u32::MAX))
            .next()
            .map(|(_, v)| v.clone()))
    }

    fn fetch_range(&self, key: &[u8], time_from: i64, time_to: i64) -> Result<Vec<(i64, Vec<u8>)>, StreamsError> {
        let from = time_from.max(self.min_live_time());
        if from > time_to {
            return Ok(Vec::new());
        }
        Ok(self
            .map
            .range((key.to_vec(), from, 0)..=(key.to_vec(), time_to, u32::MAX))
            .map(|((_, start, _), v)| (*start, v.clone()))
            .collect())
    }

    fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<WindowEntries, StreamsError> {
        let from = time_from.max(self.min_live_time());
        Ok(self
            .map
            .iter()
            .filter(|((_, start, _), _)| *start >= from && *start <= time_to)
            .map(|((k, start, _), v)| (k.clone(), *start, v.clone()))
            .collect())
    }

    fn all(&self) -> Result<WindowEntries, StreamsError> {
        self.fetch_all(i64::MIN, i64::MAX)
    }
}

/// A window store of one task with its changelog logging.
pub struct WindowInner {
    pub(crate) name: String,
    pub(crate) bytes: Box<dyn WindowBytesStore>,
    pub(crate) logger: Option<ChangeLogger>,
    pub(crate) timestamped: bool,
    pub(crate) window_size: i64,
    pub(crate) seq: u32,
    /// The timestamp of the record being processed (for writes through a plain view of a timestamped store).
    pub(crate) clock: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl WindowInner {
    /// Changelog key: key bytes, window start, sequence number (Kafka's `WindowKeySchema`).
    fn changelog_key(&mut self, key: &[u8], start: i64) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut k = key.to_vec();
        k.extend_from_slice(&start.to_be_bytes());
        k.extend_from_slice(&self.seq.to_be_bytes());
        k
    }

    pub(crate) fn put(&mut self, key: &[u8], start: i64, value: Option<&[u8]>) -> Result<(), StreamsError> {
        self.bytes.put(key, start, value)?;
        if let Some(logger) = self.logger.clone() {
            let ck = self.changelog_key(key, start);
            match value {
                Some(v) if self.timestamped => match split_timestamp(v) {
                    Some((ts, plain)) => logger.log(ck, Some(plain.to_vec()), Some(ts)),
                    None => return Err(StreamsError::store(&self.name, "timestamped value without its timestamp")),
                },
                Some(v) => logger.log(ck, Some(v.to_vec()), None),
                None => logger.log(ck, None, None),
            }
        }
        Ok(())
    }

    pub(crate) fn restore(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<(), StreamsError> {
        if key.len() < 12 {
            return Err(StreamsError::store(&self.name, "changelog key shorter than its window suffix"));
        }
        let (k, suffix) = key.split_at(key.len() - 12);
        let start = i64::from_be_bytes(suffix[..8].try_into().map_err(|_| StreamsError::store(&self.name, "bad key"))?);
        match value {
            Some(v) if self.timestamped => self.bytes.put(k, start, Some(&join_timestamp(timestamp, v))),
            other => self.bytes.put(k, start, other),
        }
    }
}

/// A typed window store (Kafka's `WindowStore<K, V>`).
pub struct WindowStore<K, V> {
    inner: Arc<Mutex<WindowInner>>,
    plain_view: bool,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for WindowStore<K, V> {
    fn clone(&self) -> Self {
        WindowStore { inner: self.inner.clone(), plain_view: self.plain_view, _types: PhantomData }
    }
}

impl<K: Encode + Decode, V: Encode + Decode> WindowStore<K, V> {
    pub(crate) fn new(inner: Arc<Mutex<WindowInner>>, plain_view: bool) -> Self {
        WindowStore { inner, plain_view, _types: PhantomData }
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

    /// Stores `value` for `key` in the window starting at `window_start`.
    pub fn put(&self, key: &K, value: &V, window_start: i64) -> Result<(), StreamsError> {
        let mut inner = self.inner.lock();
        let k = encode_key(&inner.name, key)?;
        let mut v = encode_value(&inner.name, value)?;
        if self.plain_view {
            let now = inner.clock.load(std::sync::atomic::Ordering::Relaxed);
            v = join_timestamp(now, &v);
        }
        inner.put(&k, window_start, Some(&v))
    }

    /// Removes `key`'s value in the window starting at `window_start`.
    pub fn remove(&self, key: &K, window_start: i64) -> Result<(), StreamsError> {
        let mut inner = self.inner.lock();
        let k = encode_key(&inner.name, key)?;
        inner.put(&k, window_start, None)
    }

    /// `key`'s value in the window starting at `window_start`.
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>, StreamsError> {
        let inner = self.inner.lock();
        let k = encode_key(&inner.name, key)?;
        inner.bytes.fetch(&k, window_start)?.map(|v| self.decode_value(&inner.name, &v)).transpose()
    }

    /// `key`'s values in windows starting in `[time_from, time_to]`, as (window start, value).
    pub fn fetch_range(&self, key: &K, time_from: i64, time_to: i64) -> Result<Vec<(i64, V)>, StreamsError> {
        let inner = self.inner.lock();
        let k = encode_key(&inner.name, key)?;
        inner
            .bytes
            .fetch_range(&k, time_from, time_to)?
            .into_iter()
            .map(|(start, v)| Ok((start, self.decode_value(&inner.name, &v)?)))
            .collect()
    }

    /// Every key's values in windows starting in `[time_from, time_to]`.
    pub fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<(Windowed<K>, V)>, StreamsError> {
        let inner = self.inner.lock();
        let size = inner.window_size;
        inner
            .bytes
            .fetch_all(time_from, time_to)?
            .into_iter()
            .map(|(k, start, v)| {
                let key = decode(&inner.name, &k, RecordPart::Key)?;
                Ok((
                    Windowed::new(key, Window::new(start, start.saturating_add(size))),
                    self.decode_value(&inner.name, &v)?,
                ))
            })
            .collect()
    }

    /// Every live entry.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>, StreamsError> {
        self.fetch_all(i64::MIN, i64::MAX)
    }
}
