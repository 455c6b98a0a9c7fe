//! The consumed record as handlers and error handlers see it: an owned copy of what librdkafka delivered, so it can
//! outlive the poll that produced it (per-key lanes, retries, the recoverer).

use std::sync::Arc;

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Message};

mod copy;
mod headers;
pub(crate) use copy::{copy_messages, CopyCache, RawMessage};
pub use headers::Headers;

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

/// A consumed record: topic, partition, offset, timestamp, key, value and headers.
///
/// Cheap to clone (the key and value are reference-counted). A consumed record's key, value and headers share a
/// buffer of up to 64 KiB with the records next to it in the same poll (a few allocations per poll instead of
/// several per record); to keep bytes long after handling without keeping that buffer, copy them
/// (`Bytes::copy_from_slice`).
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

    /// Copies a message out of librdkafka's buffer.
    pub(crate) fn from_message(msg: &BorrowedMessage<'_>) -> Self {
        let mut out = Vec::with_capacity(1);
        copy_messages(std::iter::once(RawMessage::of(msg)), &mut copy::CopyCache::default(), &mut out);
        // One message in, one record out.
        out.pop().unwrap_or_else(|| Record::new(msg.topic(), msg.partition(), msg.offset()))
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
