//! The record as processors see it (Kafka's `api.Record`): key, value, timestamp and headers, immutable-by-builder,
//! plus the context of the consumed record it came from (topic, partition, offset).

use spate::Headers;

/// Types that flow through a topology as keys or values: cloned when forwarded to several children.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// A record inside a topology.
///
/// ```
/// use spate_streams::Record;
/// let r = Record::new("host-1".to_string(), 42i64, 1_000).with_value(43i64);
/// assert_eq!((r.key().as_str(), *r.value(), r.timestamp()), ("host-1", 43, 1_000));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    key: K,
    value: V,
    timestamp: i64,
    headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record { key, value, timestamp, headers: Headers::new() }
    }
    /// The key.
    pub fn key(&self) -> &K {
        &self.key
    }
    /// The value.
    pub fn value(&self) -> &V {
        &self.value
    }
    /// Event time in milliseconds since the epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
    /// Mutable headers.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
    /// The same record with another key (of any type).
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record { key, value: self.value, timestamp: self.timestamp, headers: self.headers }
    }
    /// The same record with another value (of any type).
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record { key: self.key, value, timestamp: self.timestamp, headers: self.headers }
    }
    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
    /// The same record with other headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
    /// Key and value, by value.
    pub fn into_key_value(self) -> (K, V) {
        (self.key, self.value)
    }
}

/// Where the record being processed was consumed from (Kafka's `RecordMetadata` / `ProcessorContext.topic()` ...).
/// Absent during a punctuation.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordContext {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The consumed record's timestamp.
    pub timestamp: i64,
    /// The consumed record's headers.
    pub headers: Headers,
}

/// A key and a value, as read from a test output topic or a store range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyValue<K, V> {
    /// Key.
    pub key: K,
    /// Value.
    pub value: V,
}

impl<K, V> KeyValue<K, V> {
    /// `KeyValue::pair(k, v)`, as in Kafka.
    pub fn pair(key: K, value: V) -> Self {
        KeyValue { key, value }
    }
}

/// A consumed record in bytes, as the runtime (a consumer, or the test driver) hands it to a task.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumedRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// Key bytes; `None` is null.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is null (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Headers,
}

/// A record a task wants produced: a sink's output, a repartition record, or a changelog entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducedRecord {
    /// Destination topic (full name: internal topics carry the application id prefix).
    pub topic: String,
    /// Explicit partition (changelogs: the task's partition); `None` lets the producer's partitioner choose.
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}
