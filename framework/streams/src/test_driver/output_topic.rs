//! `TestOutputTopic`: reads (and removes) what the topology produced to one topic, deserialized.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;

use spate::{Decode, Headers, RecordPart};

use super::driver::DriverState;
use crate::{KeyValue, ProducedRecord, StreamsError};

/// A record read from an output topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord<K, V> {
    /// Key.
    pub key: K,
    /// Value.
    pub value: V,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}

/// An output topic of a [`TopologyTestDriver`](super::TopologyTestDriver).
pub struct TestOutputTopic<K, V> {
    state: Rc<RefCell<DriverState>>,
    topic: String,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: Decode, V: Decode> TestOutputTopic<K, V> {
    pub(crate) fn new(state: Rc<RefCell<DriverState>>, topic: &str) -> Self {
        TestOutputTopic { state, topic: topic.to_owned(), _types: PhantomData }
    }

    fn pop(&self) -> Result<ProducedRecord, StreamsError> {
        self.state
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)
            .and_then(|q| q.pop_front())
            .ok_or_else(|| StreamsError::NoRecord(self.topic.clone()))
    }

    /// Reads the next record.
    pub fn read_record(&self) -> Result<TestRecord<K, V>, StreamsError> {
        let r = self.pop()?;
        let de = |source| StreamsError::Deserialization { node: format!("output topic {}", self.topic), source };
        Ok(TestRecord {
            key: K::decode(r.key.as_deref(), RecordPart::Key).map_err(de)?,
            value: V::decode(r.value.as_deref(), RecordPart::Value).map_err(de)?,
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }

    /// Reads the next value.
    pub fn read_value(&self) -> Result<V, StreamsError> {
        self.read_record().map(|r| r.value)
    }

    /// Reads the next key and value.
    pub fn read_key_value(&self) -> Result<KeyValue<K, V>, StreamsError> {
        self.read_record().map(|r| KeyValue::pair(r.key, r.value))
    }

    /// Reads every record left.
    pub fn read_records_to_list(&self) -> Result<Vec<TestRecord<K, V>>, StreamsError> {
        let mut out = Vec::new();
        while !self.is_empty() {
            out.push(self.read_record()?);
        }
        Ok(out)
    }

    /// Reads every value left.
    pub fn read_values_to_list(&self) -> Result<Vec<V>, StreamsError> {
        Ok(self.read_records_to_list()?.into_iter().map(|r| r.value).collect())
    }

    /// Reads every key and value left.
    pub fn read_key_values_to_list(&self) -> Result<Vec<KeyValue<K, V>>, StreamsError> {
        Ok(self.read_records_to_list()?.into_iter().map(|r| KeyValue::pair(r.key, r.value)).collect())
    }

    /// Reads every record left into a map: the latest value per key (a table's final state).
    pub fn read_key_values_to_map(&self) -> Result<HashMap<K, V>, StreamsError>
    where
        K: Eq + Hash,
    {
        Ok(self.read_records_to_list()?.into_iter().map(|r| (r.key, r.value)).collect())
    }

    /// Whether nothing is left to read.
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }

    /// How many records are left.
    pub fn queue_size(&self) -> usize {
        self.state.borrow().outputs.get(&self.topic).map_or(0, |q| q.len())
    }
}
