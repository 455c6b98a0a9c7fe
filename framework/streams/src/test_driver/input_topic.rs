//! `TestInputTopic`: serializes keys and values with their codec and pipes them into the driver.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

use spate::{Encode, Headers};

use super::driver::DriverState;
use crate::{ConsumedRecord, KeyValue, StreamsError};

type EncodedPair = (Option<Vec<u8>>, Option<Vec<u8>>);

/// An input topic of a [`TopologyTestDriver`](super::TopologyTestDriver).
pub struct TestInputTopic<K, V> {
    state: Rc<RefCell<DriverState>>,
    topic: String,
    current_time: Cell<i64>,
    auto_advance: i64,
    _types: PhantomData<fn(K, V)>,
}

impl<K: Encode, V: Encode> TestInputTopic<K, V> {
    pub(crate) fn new(state: Rc<RefCell<DriverState>>, topic: &str, start: i64, auto_advance: Duration) -> Self {
        TestInputTopic {
            state,
            topic: topic.to_owned(),
            current_time: Cell::new(start),
            auto_advance: i64::try_from(auto_advance.as_millis()).unwrap_or(i64::MAX),
            _types: PhantomData,
        }
    }

    fn next_time(&self) -> i64 {
        let t = self.current_time.get();
        self.current_time.set(t.saturating_add(self.auto_advance));
        t
    }

    /// Moves this topic's time forward for records piped without a timestamp.
    pub fn advance_time(&self, advance: Duration) {
        let ms = i64::try_from(advance.as_millis()).unwrap_or(i64::MAX);
        self.current_time.set(self.current_time.get().saturating_add(ms));
    }

    fn send(
        &self,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(), StreamsError> {
        let record =
            ConsumedRecord { topic: self.topic.clone(), partition: 0, offset: 0, timestamp, key, value, headers };
        self.state.borrow_mut().pipe(record)
    }

    fn encode_kv(&self, key: &K, value: &V) -> Result<EncodedPair, StreamsError> {
        let node = format!("input topic {}", self.topic);
        let k = key.encode().map_err(|source| StreamsError::Serialization { node: node.clone(), source })?;
        let v = value.encode().map_err(|source| StreamsError::Serialization { node, source })?;
        Ok((k, v))
    }

    /// Pipes `key`/`value` at the topic's current time.
    pub fn pipe_input(&self, key: K, value: V) -> Result<(), StreamsError> {
        let (k, v) = self.encode_kv(&key, &value)?;
        let ts = self.next_time();
        self.send(k, v, ts, Headers::new())
    }

    /// Pipes `key`/`value` with an explicit timestamp (ms).
    pub fn pipe_input_with_timestamp(&self, key: K, value: V, timestamp: i64) -> Result<(), StreamsError> {
        let (k, v) = self.encode_kv(&key, &value)?;
        self.send(k, v, timestamp, Headers::new())
    }

    /// Pipes `key`/`value` with a timestamp and headers.
    pub fn pipe_input_with_headers(
        &self,
        key: K,
        value: V,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(), StreamsError> {
        let (k, v) = self.encode_kv(&key, &value)?;
        self.send(k, v, timestamp, headers)
    }

    /// Pipes a record with a null key.
    pub fn pipe_value(&self, value: V) -> Result<(), StreamsError> {
        let v = value.encode().map_err(|source| StreamsError::Serialization { node: self.topic.clone(), source })?;
        let ts = self.next_time();
        self.send(None, v, ts, Headers::new())
    }

    /// Pipes a record with a null value (a tombstone, for tables).
    pub fn pipe_tombstone(&self, key: K, timestamp: i64) -> Result<(), StreamsError> {
        let k = key.encode().map_err(|source| StreamsError::Serialization { node: self.topic.clone(), source })?;
        self.send(k, None, timestamp, Headers::new())
    }

    /// Pipes each pair at the topic's advancing time.
    pub fn pipe_key_value_list(&self, records: Vec<KeyValue<K, V>>) -> Result<(), StreamsError> {
        records.into_iter().try_for_each(|kv| self.pipe_input(kv.key, kv.value))
    }
}
