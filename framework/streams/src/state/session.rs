//! Session stores: one aggregate per (key, session window `[start, end]`), found by overlap (Kafka's
//! `SessionStore`), kept for a retention period measured by the latest session end seen.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;
use spate::{Decode, Encode, RecordPart};

use super::{decode, encode_key, encode_value, ChangeLogger, SessionEntries};
use crate::{StreamsError, Window, Windowed};

/// A session store over bytes.
pub trait SessionBytesStore: Send {
    /// `key`'s sessions with `end >= earliest_session_end` and `start <= latest_session_start`, by end time.
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<Vec<(Window, Vec<u8>)>, StreamsError>;
    /// Stores (`Some`) or removes (`None`) the session `window` of `key`.
    fn put(&mut self, key: &[u8], window: Window, value: Option<&[u8]>) -> Result<(), StreamsError>;
    /// Every live session of every key.
    fn all(&self) -> Result<SessionEntries, StreamsError>;
    /// Makes writes durable (persistent stores).
    fn flush(&mut self) -> Result<(), StreamsError> {
        Ok(())
    }
}

/// Kafka's `InMemorySessionStore`.
#[derive(Debug)]
pub struct InMemorySessionStore {
    map: BTreeMap<(Vec<u8>, i64, i64), Vec<u8>>,
    retention: i64,
    observed_stream_time: i64,
    expired_before: i64,
}

impl InMemorySessionStore {
    /// A store keeping sessions whose end is within `retention_ms` of the latest end seen.
    pub fn new(retention_ms: i64) -> Self {
        InMemorySessionStore {
            map: BTreeMap::new(),
            retention: retention_ms,
            observed_stream_time: i64::MIN,
            expired_before: i64::MIN,
        }
    }
    fn min_live_end(&self) -> i64 {
        self.observed_stream_time.saturating_sub(self.retention).saturating_add(1)
    }
}

impl SessionBytesStore for InMemorySessionStore {
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<Vec<(Window, Vec<u8>)>, StreamsError> {
        let from = earliest_session_end.max(self.min_live_end());
        Ok(self
            .map
            .range((key.to_vec(), from, i64::MIN)..=(key.to_vec(), i64::MAX, i64::MAX))
            .filter(|((_, _, start), _)| *start <= latest_session_start)
            .map(|((_, end, start), v)| (Window::new(*start, *end), v.clone()))
            .collect())
    }

    fn put(&mut self, key: &[u8], window: Window, value: Option<&[u8]>) -> Result<(), StreamsError> {
        match value {
            Some(v) => {
                self.observed_stream_time = self.observed_stream_time.max(window.end);
                if window.end < self.min_live_end() {
                    return Ok(());
                }
                self.map.insert((key.to_vec(), window.end, window.start), v.to_vec());
                let min_live = self.min_live_end();
                if min_live > self.expired_before {
                    self.map.retain(|(_, end, _), _| *end >= min_live);
                    self.expired_before = min_live;
                }
            }
            None => {
                self.map.remove(&(key.to_vec(), window.end, window.start));
            }
        }
        Ok(())
    }

    fn all(&self) -> Result<SessionEntries, StreamsError> {
        let min_live = self.min_live_end();
        Ok(self
            .map
            .iter()
            .filter(|((_, end, _), _)| *end >= min_live)
            .map(|((k, end, start), v)| (k.clone(), Window::new(*start, *end), v.clone()))
            .collect())
    }
}

/// A session store of one task with its changelog logging.
pub struct SessionInner {
    pub(crate) name: String,
    pub(crate) bytes: Box<dyn SessionBytesStore>,
    pub(crate) logger: Option<ChangeLogger>,
}

impl SessionInner {
    /// Changelog key: key bytes, session end, session start (Kafka's `SessionKeySchema`).
    fn changelog_key(key: &[u8], window: Window) -> Vec<u8> {
        let mut k = key.to_vec();
        k.extend_from_slice(&window.end.to_be_bytes());
        k.extend_from_slice(&window.start.to_be_bytes());
        k
    }

    pub(crate) fn put(&mut self, key: &[u8], window: Window, value: Option<&[u8]>) -> Result<(), StreamsError> {
        self.bytes.put(key, window, value)?;
        if let Some(logger) = &self.logger {
            logger.log(Self::changelog_key(key, window), value.map(<[u8]>::to_vec), Some(window.end));
        }
        Ok(())
    }

    pub(crate) fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StreamsError> {
        if key.len() < 16 {
            return Err(StreamsError::store(&self.name, "changelog key shorter than its session suffix"));
        }
        let (k, suffix) = key.split_at(key.len() - 16);
        let bad = |_| StreamsError::store(&self.name, "bad session changelog key");
        let end = i64::from_be_bytes(suffix[..8].try_into().map_err(bad)?);
        let start = i64::from_be_bytes(suffix[8..].try_into().map_err(bad)?);
        self.bytes.put(k, Window::new(start, end), value)
    }
}

/// A typed session store (Kafka's `SessionStore<K, V>`).
pub struct SessionStore<K, V> {
    inner: Arc<Mutex<SessionInner>>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for SessionStore<K, V> {
    fn clone(&self) -> Self {
        SessionStore { inner: self.inner.clone(), _types: PhantomData }
    }
}

impl<K: Encode + Decode + Clone, V: Encode + Decode> SessionStore<K, V> {
    pub(crate) fn new(inner: Arc<Mutex<SessionInner>>) -> Self {
        SessionStore { inner, _types: PhantomData }
    }

    /// `key`'s sessions ending at or after `earliest_session_end` and starting at or before `latest_session_start`.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>, StreamsError> {
        let inner = self.inner.lock();
        let k = encode_key(&inner.name, key)?;
        inner
            .bytes
            .find_sessions(&k, earliest_session_end, latest_session_start)?
            .into_iter()
            .map(|(w, v)| Ok((Windowed::new(key.clone(), w), decode(&inner.name, &v, RecordPart::Value)?)))
            .collect()
    }

    /// All sessions of `key`.
    pub fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>, StreamsError> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// Stores the aggregate of a session.
    pub fn put(&self, session: &Windowed<K>, value: &V) -> Result<(), StreamsError> {
        let mut inner = self.inner.lock();
        let k = encode_key(&inner.name, &session.key)?;
        let v = encode_value(&inner.name, value)?;
        inner.put(&k, session.window, Some(&v))
    }

    /// Removes a session.
    pub fn remove(&self, session: &Windowed<K>) -> Result<(), StreamsError> {
        let mut inner = self.inner.lock();
        let k = encode_key(&inner.name, &session.key)?;
        inner.put(&k, session.window, None)
    }

    /// Every live session.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>, StreamsError> {
        let inner = self.inner.lock();
        inner
            .bytes
            .all()?
            .into_iter()
            .map(|(k, w, v)| {
                Ok((
                    Windowed::new(decode(&inner.name, &k, RecordPart::Key)?, w),
                    decode(&inner.name, &v, RecordPart::Value)?,
                ))
            })
            .collect()
    }
}
