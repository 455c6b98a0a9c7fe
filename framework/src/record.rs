//! The consumed record as handlers and error handlers see it: an owned copy of what librdkafka delivered, so it can
//! outlive the poll that produced it (per-key lanes, retries, the recoverer).

use std::sync::Arc;

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Headers as _, Message};

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// `TopicPartition::new("orders", 0)`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Whether a record's timestamp was set by the producer or by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// `CreateTime`: set by the producer.
    CreateTime,
    /// `LogAppendTime`: set by the broker when appended.
    LogAppendTime,
}

/// Record headers, in order; a name may repeat, as in Kafka.
///
/// ```
/// let mut h = spate::Headers::new();
/// h.insert("traceparent", "00-abc-def-01");
/// assert_eq!(h.get_str("traceparent"), Some("00-abc-def-01"));
/// ```
///
/// Cloning is a reference-count increment (the container hands a record to the handler once per attempt, and
/// most records carry a `traceparent`); the first change to a shared copy copies the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Arc<Vec<(String, Option<Bytes>)>>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Appends a header (names may repeat).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Bytes>) -> &mut Self {
        Arc::make_mut(&mut self.0).push((name.into(), Some(value.into())));
        self
    }

    /// Appends a header with a null value.
    pub fn insert_null(&mut self, name: impl Into<String>) -> &mut Self {
        Arc::make_mut(&mut self.0).push((name.into(), None));
        self
    }

    /// Removes every header with this name (Kafka's `Headers.remove`).
    pub fn remove(&mut self, name: &str) -> &mut Self {
        if self.0.iter().any(|(n, _)| n == name) {
            Arc::make_mut(&mut self.0).retain(|(n, _)| n != name);
        }
        self
    }

    /// The value of the last header with this name (Kafka's `lastHeader`).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    /// [`get`](Self::get) as a 4-byte big-endian integer, as Kafka's Java serializers and Spring write partitions;
    /// `None` when absent or not 4 bytes.
    pub fn get_i32(&self, name: &str) -> Option<i32> {
        self.get(name).and_then(|v| <[u8; 4]>::try_from(v).ok()).map(i32::from_be_bytes)
    }

    /// [`get`](Self::get) as an 8-byte big-endian integer (offsets, timestamps); `None` when absent or not 8 bytes.
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| <[u8; 8]>::try_from(v).ok()).map(i64::from_be_bytes)
    }

    /// [`get`](Self::get) as UTF-8; `None` when absent or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn to_rdkafka(&self) -> Option<rdkafka::message::OwnedHeaders> {
        if self.0.is_empty() {
            return None;
        }
        let mut out = rdkafka::message::OwnedHeaders::new_with_capacity(self.0.len());
        for (k, v) in self.0.iter() {
            out = out.insert(rdkafka::message::Header { key: k, value: v.as_deref() });
        }
        Some(out)
    }
}

/// A consumed record: topic, partition, offset, timestamp, key, value and headers.
///
/// Cheap to clone (the key and value are reference-counted).
#[derive(Debug, Clone)]
pub struct Record {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    timestamp_type: TimestampType,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Headers,
}

impl Record {
    /// A record built by hand, for calling handlers in unit tests.
    ///
    /// ```
    /// let r = spate::Record::new("orders", 0, 42).with_key("k").with_value(r#"{"id":1}"#);
    /// assert_eq!(r.offset(), 42);
    /// ```
    pub fn new(topic: &str, partition: i32, offset: i64) -> Self {
        Record {
            topic: Arc::from(topic),
            partition,
            offset,
            timestamp: None,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: None,
            headers: Headers::new(),
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn with_value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sets the headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    pub fn with_timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }

    /// Copies a message out of librdkafka's buffer. `topic` is passed in so consecutive records of a topic share
    /// one allocation.
    pub(crate) fn from_message(msg: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        let (timestamp, timestamp_type) = match msg.timestamp() {
            rdkafka::Timestamp::NotAvailable => (None, TimestampType::CreateTime),
            rdkafka::Timestamp::CreateTime(t) => (Some(t), TimestampType::CreateTime),
            rdkafka::Timestamp::LogAppendTime(t) => (Some(t), TimestampType::LogAppendTime),
        };
        let headers = match msg.headers() {
            None => Headers::new(),
            Some(h) => {
                Headers(Arc::new(h.iter().map(|h| (h.key.to_string(), h.value.map(Bytes::copy_from_slice))).collect()))
            }
        };
        Record {
            topic,
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp,
            timestamp_type,
            key: msg.key().map(Bytes::copy_from_slice),
            value: msg.payload().map(Bytes::copy_from_slice),
            headers,
        }
    }

    /// Topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn topic_arc(&self) -> &Arc<str> {
        &self.topic
    }

    /// Partition number.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Offset within the partition.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Timestamp in milliseconds since the epoch, when the record has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// Whether [`timestamp`](Self::timestamp) is the producer's or the broker's.
    pub fn timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }

    /// The key bytes; `None` for a null key.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The value bytes; `None` for a null value (a tombstone).
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// `topic-partition` of this record.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.as_ref(), self.partition)
    }
}
