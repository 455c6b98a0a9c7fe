//! The consumed record as handlers and error handlers see it: an owned copy of what librdkafka delivered, so it can
//! outlive the poll that produced it (per-key lanes, retries, the recoverer), shared with the records copied next
//! to it (`Chunk`).

use std::sync::Arc;

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Message};

mod copy;
mod headers;
pub(crate) use copy::{body_len, copy_messages, Copier, CopyCache, RawMessage};
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
/// A handle: cloning it is one reference count. The records copied out of one poll share a chunk — a buffer of up to
/// 64 KiB with their keys, values and headers, their topic, and each record's offset, timestamp and place in the
/// buffer — so making, handing out and dropping a record costs one reference count, not one per part. The price:
/// a record (or a `Bytes` of it) kept long after handling keeps its chunk alive; to keep bytes without it, copy
/// them (`Bytes::copy_from_slice`).
#[derive(Clone)]
pub struct Record {
    chunk: Arc<Chunk>,
    index: usize,
}

/// What records point into: the records copied into one buffer, or a record made by hand.
#[derive(Clone)]
pub(crate) struct Chunk {
    buf: Bytes,
    topic: Arc<str>,
    entries: Vec<Entry>,
    /// Each record's headers, in the order of `entries`; empty when no record of the chunk has any.
    headers: Vec<Headers>,
}

/// One record of a chunk.
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: Option<i64>,
    pub(crate) timestamp_type: TimestampType,
    /// Where the key and the value are in the chunk's buffer (`None`: null).
    pub(crate) key: Option<Span>,
    pub(crate) value: Option<Span>,
}

/// A range of a chunk's buffer.
#[derive(Clone, Copy)]
pub(crate) struct Span {
    at: u32,
    len: u32,
}

impl Span {
    /// The span of `range`; `None` when it does not fit a chunk (more than 4 GiB, which Kafka's record sizes rule
    /// out).
    pub(crate) fn of(range: std::ops::Range<usize>) -> Option<Span> {
        Some(Span { at: u32::try_from(range.start).ok()?, len: u32::try_from(range.len()).ok()? })
    }

    fn range(self) -> std::ops::Range<usize> {
        self.at as usize..self.at as usize + self.len as usize
    }
}

static NO_HEADERS: Headers = Headers::new();

impl Chunk {
    /// A chunk of the records in `buf`, all of `topic`.
    pub(crate) fn new(buf: Bytes, topic: Arc<str>, entries: Vec<Entry>, headers: Vec<Headers>) -> Arc<Chunk> {
        Arc::new(Chunk { buf, topic, entries, headers })
    }

    /// The records of a chunk, appended to `out`.
    pub(crate) fn records(chunk: &Arc<Chunk>, out: &mut Vec<Record>) {
        out.extend((0..chunk.entries.len()).map(|index| Record { chunk: chunk.clone(), index }));
    }

    fn bytes(&self, span: Option<Span>) -> Option<&[u8]> {
        span.map(|s| self.buf.get(s.range()).unwrap_or_default())
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn text(b: Option<&[u8]>) -> Option<std::borrow::Cow<'_, str>> {
            b.map(String::from_utf8_lossy)
        }
        f.debug_struct("Record")
            .field("topic", &self.topic())
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .field("timestamp", &self.timestamp())
            .field("key", &text(self.key()))
            .field("value", &text(self.value()))
            .field("headers", self.headers())
            .finish()
    }
}

impl Record {
    /// A record built by hand, for calling handlers in unit tests.
    ///
    /// ```
    /// let r = spate::Record::new("orders", 0, 42).with_key("k").with_value(r#"{"id":1}"#);
    /// assert_eq!(r.offset(), 42);
    /// assert_eq!(r.value(), Some(&br#"{"id":1}"#[..]));
    /// ```
    pub fn new(topic: &str, partition: i32, offset: i64) -> Self {
        let entry = Entry {
            partition,
            offset,
            timestamp: None,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: None,
        };
        Record { chunk: Chunk::new(Bytes::new(), Arc::from(topic), vec![entry], Vec::new()), index: 0 }
    }

    fn entry(&self) -> &Entry {
        &self.chunk.entries[self.index]
    }

    /// This record's chunk to change: a chunk of its own (sharing the buffer), copied if another record holds it.
    fn own_chunk(&mut self) -> &mut Chunk {
        if self.chunk.entries.len() != 1 {
            let c = &self.chunk;
            let headers = c.headers.get(self.index).cloned().into_iter().collect();
            self.chunk = Chunk::new(c.buf.clone(), c.topic.clone(), vec![c.entries[self.index]], headers);
            self.index = 0;
        }
        Arc::make_mut(&mut self.chunk)
    }

    /// Puts `key` and `value` in a buffer of this record's own.
    fn with_bytes(mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        let mut buf = Vec::with_capacity(key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        let mut put = |b: &[u8]| {
            let at = buf.len();
            buf.extend_from_slice(b);
            Span::of(at..buf.len())
        };
        let (key, value) = (key.and_then(&mut put), value.and_then(&mut put));
        let chunk = self.own_chunk();
        chunk.buf = Bytes::from(buf);
        chunk.entries[0].key = key;
        chunk.entries[0].value = value;
        self
    }

    /// Sets the key.
    pub fn with_key(self, key: impl Into<Bytes>) -> Self {
        let (key, value) = (key.into(), self.value_bytes());
        self.with_bytes(Some(&key), value.as_deref())
    }

    /// Sets the value.
    pub fn with_value(self, value: impl Into<Bytes>) -> Self {
        let (key, value) = (self.key_bytes(), value.into());
        self.with_bytes(key.as_deref(), Some(&value))
    }

    /// Sets the headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.own_chunk().headers = vec![headers];
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    pub fn with_timestamp(mut self, millis: i64) -> Self {
        self.own_chunk().entries[0].timestamp = Some(millis);
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
        &self.chunk.topic
    }

    pub(crate) fn topic_arc(&self) -> &Arc<str> {
        &self.chunk.topic
    }

    /// Partition number.
    pub fn partition(&self) -> i32 {
        self.entry().partition
    }

    /// Offset within the partition.
    pub fn offset(&self) -> i64 {
        self.entry().offset
    }

    /// Timestamp in milliseconds since the epoch, when the record has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.entry().timestamp
    }

    /// Whether [`timestamp`](Self::timestamp) is the producer's or the broker's.
    pub fn timestamp_type(&self) -> TimestampType {
        self.entry().timestamp_type
    }

    /// The key bytes; `None` for a null key.
    pub fn key(&self) -> Option<&[u8]> {
        self.chunk.bytes(self.entry().key)
    }

    /// The value bytes; `None` for a null value (a tombstone).
    pub fn value(&self) -> Option<&[u8]> {
        self.chunk.bytes(self.entry().value)
    }

    /// The key as `Bytes` sharing the record's buffer (no copy).
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.entry().key.map(|s| self.chunk.buf.slice(s.range()))
    }

    /// The value as `Bytes` sharing the record's buffer (no copy).
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.entry().value.map(|s| self.chunk.buf.slice(s.range()))
    }

    /// The key, for a decoder that may keep the buffer ([`Decode::decode_shared`](crate::Decode::decode_shared)).
    pub(crate) fn key_part(&self) -> Option<crate::codec::RecordBytes<'_>> {
        self.entry().key.map(|s| crate::codec::RecordBytes::new(&self.chunk.buf, s.range()))
    }

    /// The value, for a decoder that may keep the buffer.
    pub(crate) fn value_part(&self) -> Option<crate::codec::RecordBytes<'_>> {
        self.entry().value.map(|s| crate::codec::RecordBytes::new(&self.chunk.buf, s.range()))
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        self.chunk.headers.get(self.index).unwrap_or(&NO_HEADERS)
    }

    /// `topic-partition` of this record.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic(), self.partition())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three records in one chunk, as the copy step makes them.
    fn chunk_of_three() -> Vec<Record> {
        let entry = |offset: i64, key: Option<Span>, value: Option<Span>| Entry {
            partition: 2,
            offset,
            timestamp: Some(1000 + offset),
            timestamp_type: TimestampType::LogAppendTime,
            key,
            value,
        };
        let mut h = Headers::new();
        h.insert("h", "1");
        let entries = vec![
            entry(7, Span::of(0..1), Span::of(1..3)),
            entry(8, None, Span::of(3..5)),
            entry(9, Span::of(5..6), None),
        ];
        let chunk =
            Chunk::new(Bytes::from_static(b"aAAbBc"), Arc::from("t"), entries, vec![Headers::new(), h, Headers::new()]);
        let mut out = Vec::new();
        Chunk::records(&chunk, &mut out);
        out
    }

    #[test]
    fn records_of_a_chunk_read_their_own_part_of_it() {
        let r = chunk_of_three();
        assert_eq!((r[0].topic(), r[0].partition(), r[0].offset()), ("t", 2, 7));
        assert_eq!((r[0].key(), r[0].value()), (Some(&b"a"[..]), Some(&b"AA"[..])));
        assert_eq!((r[1].key(), r[1].value()), (None, Some(&b"bB"[..])));
        assert_eq!((r[2].key(), r[2].value()), (Some(&b"c"[..]), None));
        assert_eq!(r[1].headers().get_str("h"), Some("1"));
        assert!(r[0].headers().is_empty());
        assert_eq!(r[2].timestamp(), Some(1009));
        assert_eq!(r[2].timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(r[1].value_bytes().unwrap(), "bB");
    }

    #[test]
    fn changing_a_consumed_record_leaves_the_others_of_its_chunk_alone() {
        let r = chunk_of_three();
        let changed = r[1].clone().with_key("new").with_timestamp(5);
        assert_eq!((changed.key(), changed.value()), (Some(&b"new"[..]), Some(&b"bB"[..])));
        assert_eq!((changed.offset(), changed.timestamp()), (8, Some(5)));
        assert_eq!(changed.headers().get_str("h"), Some("1"));
        assert_eq!((r[1].key(), r[1].timestamp()), (None, Some(1008)));
        assert_eq!(r[0].key(), Some(&b"a"[..]));
    }

    #[test]
    fn a_record_made_by_hand_keeps_what_each_builder_step_set() {
        let mut h = Headers::new();
        h.insert("x", "y");
        let r = Record::new("orders", 1, 3).with_value("v").with_key("k").with_headers(h).with_timestamp(9);
        assert_eq!((r.key(), r.value()), (Some(&b"k"[..]), Some(&b"v"[..])));
        assert_eq!((r.topic(), r.partition(), r.offset(), r.timestamp()), ("orders", 1, 3, Some(9)));
        assert_eq!(r.headers().get_str("x"), Some("y"));
        let copy = r.clone().with_value("w");
        assert_eq!((copy.value(), r.value()), (Some(&b"w"[..]), Some(&b"v"[..])));
        assert_eq!(
            format!("{:?}", Record::new("t", 0, 1).with_value("v")),
            r#"Record { topic: "t", partition: 0, offset: 1, timestamp: None, key: None, value: Some("v"), headers: [] }"#
        );
    }
}
