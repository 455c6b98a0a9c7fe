//! The consumed record as handlers and error handlers see it: an owned copy of what librdkafka delivered, so it can
//! outlive the poll that produced it (per-key lanes, retries, the recoverer).

use std::sync::Arc;

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Message};

mod copy;
pub(crate) use copy::{copy_messages, RawMessage, TopicCache};

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
/// most records carry a `traceparent`); the first change to a shared copy copies the list. No headers, no
/// allocation; the headers of consumed records are views into one list per poll buffer (no allocation per
/// record either).
#[derive(Debug, Clone, Default)]
pub struct Headers {
    list: Option<Arc<Vec<Header>>>,
    // This record's part of `list`: all of it, except for consumed records sharing their poll's list.
    start: usize,
    end: usize,
}

type Header = (HeaderName, Option<Bytes>);

/// A header name: UTF-8 text in a `Bytes`, so consumed records can keep names in their poll's buffer.
#[derive(Clone, PartialEq, Eq)]
struct HeaderName(Bytes);

impl HeaderName {
    fn as_str(&self) -> &str {
        // Only built from `&str`, so always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    fn list(&self) -> &[Header] {
        self.list.as_deref().and_then(|l| l.get(self.start..self.end)).unwrap_or_default()
    }

    fn list_mut(&mut self) -> &mut Vec<Header> {
        let shared_view = self.list.as_ref().is_some_and(|l| self.start != 0 || self.end != l.len());
        if shared_view {
            self.list = Some(Arc::new(self.list().to_vec()));
            self.start = 0;
        }
        let list = Arc::make_mut(self.list.get_or_insert_with(Default::default));
        // Callers push or retain: the view follows the whole list.
        self.end = usize::MAX;
        list
    }

    fn fit_view(&mut self) {
        if self.end == usize::MAX {
            self.end = self.list.as_ref().map_or(0, |l| l.len());
        }
    }

    /// Appends a header (names may repeat).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Bytes>) -> &mut Self {
        self.list_mut().push((HeaderName(Bytes::from(name.into())), Some(value.into())));
        self.fit_view();
        self
    }

    /// Appends a header with a null value.
    pub fn insert_null(&mut self, name: impl Into<String>) -> &mut Self {
        self.list_mut().push((HeaderName(Bytes::from(name.into())), None));
        self.fit_view();
        self
    }

    /// Removes every header with this name (Kafka's `Headers.remove`).
    pub fn remove(&mut self, name: &str) -> &mut Self {
        if self.list().iter().any(|(n, _)| n.0 == name.as_bytes()) {
            self.list_mut().retain(|(n, _)| n.0 != name.as_bytes());
            self.fit_view();
        }
        self
    }

    /// The value of the last header with this name (Kafka's `lastHeader`).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.list().iter().rev().find(|(n, _)| n.0 == name.as_bytes()).and_then(|(_, v)| v.as_deref())
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
        self.list().iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.list().len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.list().is_empty()
    }

    pub(crate) fn to_rdkafka(&self) -> Option<rdkafka::message::OwnedHeaders> {
        if self.is_empty() {
            return None;
        }
        let mut out = rdkafka::message::OwnedHeaders::new_with_capacity(self.len());
        for (k, v) in self.iter() {
            out = out.insert(rdkafka::message::Header { key: k, value: v });
        }
        Some(out)
    }
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
        copy_messages(&[RawMessage::of(msg)], &mut copy::TopicCache::default(), &mut out);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> HeaderName {
        HeaderName(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn a_view_into_a_shared_header_list_shows_only_its_records_headers() {
        let list = Arc::new(vec![
            (name("a"), Some(Bytes::from_static(b"1"))),
            (name("b"), Some(Bytes::from_static(b"2"))),
            (name("c"), None),
        ]);
        let h = Headers { list: Some(list.clone()), start: 1, end: 3 };
        assert_eq!(h.len(), 2);
        assert_eq!(h.get("a"), None);
        assert_eq!(h.get_str("b"), Some("2"));
        assert_eq!(h.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["b", "c"]);
    }

    #[test]
    fn changing_a_view_copies_it_and_leaves_the_shared_list_alone() {
        let list = Arc::new(vec![(name("a"), Some(Bytes::from_static(b"1"))), (name("b"), None)]);
        let mut first = Headers { list: Some(list.clone()), start: 0, end: 1 };
        let second = Headers { list: Some(list.clone()), start: 1, end: 2 };
        first.insert("x", "y");
        assert_eq!(first.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["a", "x"]);
        first.remove("a");
        assert_eq!(first.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["x"]);
        assert_eq!(second.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["b"]);
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn headers_compare_by_content_not_by_representation() {
        let list = Arc::new(vec![(name("a"), Some(Bytes::from_static(b"1"))), (name("b"), None)]);
        let view = Headers { list: Some(list), start: 1, end: 2 };
        let mut owned = Headers::new();
        owned.insert_null("b");
        assert_eq!(view, owned);
        assert_eq!(Headers::new(), Headers { list: Some(Arc::new(Vec::new())), start: 0, end: 0 });
    }
}
