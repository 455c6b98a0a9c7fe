//! Copying consumed messages out of librdkafka's buffers into [`Record`]s.
//!
//! Messages are read in place through [`RawMessage`], a view of librdkafka's `rd_kafka_message_t`, because the
//! container takes them from two places: rdkafka's `BorrowedMessage` (one per consumer poll) and its own batch
//! queue (many per call, as raw pointers; see `container/batch_queue.rs`).

use std::borrow::Cow;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use rdkafka::bindings as rd;
use rdkafka::message::BorrowedMessage;

use super::headers::HeaderList;
use super::{Chunk, Entry, Headers, Record, Span, TimestampType};

/// The most bytes of consumed records that share one buffer: keeping one record's bytes alive keeps at most this
/// much memory alive with them (a record larger than this gets a buffer of its own).
const SHARED_BUFFER: usize = 64 * 1024;

/// A message as librdkafka delivered it, borrowed for as long as librdkafka keeps it.
#[derive(Clone, Copy)]
pub(crate) struct RawMessage<'a>(&'a rd::rd_kafka_message_t);

impl<'a> RawMessage<'a> {
    /// The message behind rdkafka's borrowed message.
    pub(crate) fn of(m: &'a BorrowedMessage<'_>) -> Self {
        // SAFETY: a `BorrowedMessage` holds a valid message until it is dropped, which `'a` outlives not.
        RawMessage(unsafe { &*m.ptr() })
    }

    /// # Safety
    /// `ptr` is null or a message returned by librdkafka that is not destroyed while `'a` lasts.
    pub(crate) unsafe fn from_ptr(ptr: *const rd::rd_kafka_message_t) -> Option<Self> {
        // SAFETY: the caller's promise.
        unsafe { ptr.as_ref() }.map(RawMessage)
    }

    /// librdkafka's error for a message that reports a consumer error instead of a record.
    pub(crate) fn error(self) -> rd::rd_kafka_resp_err_t {
        self.0.err
    }

    /// The topic, with any bytes that are not UTF-8 replaced.
    pub(crate) fn topic(self) -> Cow<'a, str> {
        if self.0.rkt.is_null() {
            return Cow::Borrowed("");
        }
        // SAFETY: a message holds a reference to its topic handle, whose name is NUL-terminated.
        unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(self.0.rkt)) }.to_string_lossy()
    }

    pub(crate) fn partition(self) -> i32 {
        self.0.partition
    }

    pub(crate) fn offset(self) -> i64 {
        self.0.offset
    }

    fn bytes(ptr: *const std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
        // SAFETY: librdkafka's key and payload pointers address `len` bytes owned by the message.
        (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
    }

    pub(crate) fn key(self) -> Option<&'a [u8]> {
        Self::bytes(self.0.key, self.0.key_len)
    }

    pub(crate) fn payload(self) -> Option<&'a [u8]> {
        Self::bytes(self.0.payload, self.0.len)
    }

    fn timestamp(self) -> (Option<i64>, TimestampType) {
        use rd::rd_kafka_timestamp_type_t as Kind;
        let mut kind = Kind::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a valid message; `kind` is written before return.
        let millis = unsafe { rd::rd_kafka_message_timestamp(self.0, &mut kind) };
        match kind {
            Kind::RD_KAFKA_TIMESTAMP_CREATE_TIME => (Some(millis), TimestampType::CreateTime),
            Kind::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => (Some(millis), TimestampType::LogAppendTime),
            _ => (None, TimestampType::CreateTime),
        }
    }

    /// The headers, as (name, value) pairs in order. librdkafka parses them on every call for a message without
    /// headers (an allocation and a free each time), so a copy asks once per message.
    fn headers(self) -> RawHeaders<'a> {
        let mut list = std::ptr::null_mut();
        // SAFETY: a valid message; the parsed list belongs to the message.
        let err = unsafe { rd::rd_kafka_message_headers(self.0, &mut list) };
        let list = if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR { list } else { std::ptr::null_mut() };
        RawHeaders { list, index: 0, _message: PhantomData }
    }
}

#[derive(Clone, Copy)]
struct RawHeaders<'a> {
    list: *const rd::rd_kafka_headers_t,
    index: usize,
    _message: PhantomData<&'a ()>,
}

impl RawHeaders<'_> {
    const NONE: Self = RawHeaders { list: std::ptr::null(), index: 0, _message: PhantomData };
}

impl<'a> Iterator for RawHeaders<'a> {
    type Item = (Cow<'a, [u8]>, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.list.is_null() {
            return None;
        }
        let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0usize);
        // SAFETY: a valid header list; out of range answers an error and writes nothing.
        let err = unsafe { rd::rd_kafka_header_get_all(self.list, self.index, &mut name, &mut value, &mut size) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            return None;
        }
        self.index += 1;
        // SAFETY: librdkafka keeps header names NUL-terminated.
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        // Header names are text in Kafka; a client that sent other bytes gets them replaced rather than a
        // crashed consumer (rdkafka's own header iterator panics on them).
        let name = match std::str::from_utf8(name) {
            Ok(_) => Cow::Borrowed(name),
            Err(_) => Cow::Owned(String::from_utf8_lossy(name).into_owned().into_bytes()),
        };
        Some((name, RawMessage::bytes(value, size)))
    }
}

/// What copying keeps from one poll to the next: the topic name of the previous message, so records of a topic
/// share one `Arc<str>` (within one poll a topic is recognised by its librdkafka handle; across polls by its name,
/// as a handle may be freed and its address reused), and the spare shared buffers.
#[derive(Default)]
pub(crate) struct CopyCache {
    handle: usize,
    name: Option<Arc<str>>,
    buffers: Arc<BufferPool>,
    /// Scratch: the header entries of each record of the chunk being filled.
    header_ranges: Vec<(usize, usize)>,
    /// Records get no headers: their listener proved it reads none (`ListenerDefinition::reads_headers`), and
    /// librdkafka's parse, which allocates even for a record without headers, is skipped.
    skip_headers: bool,
}

/// Shared buffers given back when their last record is dropped. Freeing a 64 KiB block makes glibc's allocator
/// consolidate its free lists (it does for every free of 64 KiB or more), which cost a listener of records
/// with headers two percent of its time; reused, a buffer is allocated once.
#[derive(Default)]
struct BufferPool(parking_lot::Mutex<Vec<Vec<u8>>>);

/// Spare buffers kept per consumer: a poll of 500 records of 1 KiB fills eight.
const SPARE_BUFFERS: usize = 16;

impl BufferPool {
    /// A buffer for `size` bytes: a pooled full-size one for a buffer nearly full, else one of exactly `size`
    /// (a small poll's records, possibly kept long by the application, then pin no more than they need).
    fn take(&self, size: usize) -> Vec<u8> {
        if size <= SHARED_BUFFER / 2 || size > SHARED_BUFFER {
            return Vec::with_capacity(size);
        }
        self.0.lock().pop().unwrap_or_else(|| Vec::with_capacity(SHARED_BUFFER))
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        if buf.capacity() != SHARED_BUFFER {
            return;
        }
        let mut spare = self.0.lock();
        if spare.len() < SPARE_BUFFERS {
            buf.clear();
            spare.push(buf);
        }
    }
}

/// A shared buffer's bytes, given back to its pool when the last `Bytes` of it is dropped.
struct PooledBuffer {
    data: Vec<u8>,
    pool: std::sync::Weak<BufferPool>,
}

impl AsRef<[u8]> for PooledBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give_back(std::mem::take(&mut self.data));
        }
    }
}

impl CopyCache {
    /// A cache for a consumer whose records get their headers (`read_headers`) or none.
    pub(crate) fn new(read_headers: bool) -> Self {
        CopyCache { skip_headers: !read_headers, ..CopyCache::default() }
    }

    /// The topic of `m`, as the `Arc` its records share.
    fn topic(&mut self, m: RawMessage<'_>) -> &Arc<str> {
        let handle = m.0.rkt as usize;
        let known =
            self.name.as_ref().is_some_and(|name| (handle != 0 && handle == self.handle) || name.as_ref() == m.topic());
        if !known {
            self.name = Some(Arc::from(m.topic().as_ref()));
        }
        self.handle = handle;
        self.name.get_or_insert_with(|| Arc::from(m.topic().as_ref()))
    }
}

/// Key and value bytes of a message (its headers are not known before librdkafka parses them).
pub(crate) fn body_len(m: RawMessage<'_>) -> usize {
    m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len)
}

fn message_bytes(m: RawMessage<'_>, headers: RawHeaders<'_>) -> usize {
    let headers: usize = headers.map(|(n, v)| n.len() + v.map_or(0, <[u8]>::len)).sum();
    body_len(m) + headers
}

/// The chunk being filled: a buffer, the records in it (of one topic), and their headers.
#[derive(Default)]
struct Filling {
    buf: Vec<u8>,
    topic: Option<Arc<str>>,
    entries: Vec<Entry>,
    headers: HeaderList,
}

impl Filling {
    /// Whether a message of `topic` with `n` bytes goes in this chunk.
    fn takes(&self, topic: &Arc<str>, n: usize) -> bool {
        self.buf.len() + n <= self.buf.capacity() && self.topic.as_ref().is_some_and(|t| Arc::ptr_eq(t, topic))
    }

    fn copy(&mut self, bytes: &[u8]) -> Option<Span> {
        let at = self.buf.len();
        self.buf.extend_from_slice(bytes);
        Span::of(at..self.buf.len())
    }
}

/// Copies the messages of one poll out of librdkafka's buffers into records. Keys, values and headers of
/// consecutive messages of a topic are copied into one chunk (`Chunk`) of up to [`SHARED_BUFFER`] bytes, so a
/// poll costs a few allocations, and a record one reference count, instead of several each.
///
/// One pass, a message at a time ([`push`](Self::push)), so the caller can destroy each message as soon as it is
/// copied; each message's headers are asked for once (librdkafka parses a message without headers again on
/// every call); nothing is allocated per poll but the chunks, and scratch space lives in the [`CopyCache`].
/// Allocations of a kilobyte or more are not only slow: with small blocks freed (librdkafka frees several per
/// message), each makes glibc's allocator consolidate its free lists.
pub(crate) struct Copier<'c> {
    cache: &'c mut CopyCache,
    out: &'c mut Vec<Record>,
    filling: Filling,
    /// Key and value bytes of the messages still to come: sizes the buffers.
    remaining: usize,
}

impl<'c> Copier<'c> {
    /// A copy of `count` messages with `body_bytes` of keys and values in all ([`body_len`]), appending to `out`.
    pub(crate) fn new(cache: &'c mut CopyCache, out: &'c mut Vec<Record>, count: usize, body_bytes: usize) -> Self {
        // Handles are only trusted within one poll.
        cache.handle = 0;
        out.reserve(count);
        Copier { cache, out, filling: Filling::default(), remaining: body_bytes }
    }

    /// Copies one message; nothing of it is read afterwards.
    pub(crate) fn push(&mut self, m: RawMessage<'_>) {
        let h = if self.cache.skip_headers { RawHeaders::NONE } else { m.headers() };
        let n = message_bytes(m, h);
        self.remaining = self.remaining.saturating_sub(body_len(m));
        let topic = self.cache.topic(m);
        if !self.filling.takes(topic, n) {
            let topic = topic.clone();
            share(self.cache, std::mem::take(&mut self.filling), self.out);
            // Sized for the rest of the poll, up to a shared buffer; a larger message gets one of its own.
            self.filling.buf = self.cache.buffers.take((n + self.remaining).min(SHARED_BUFFER).max(n));
            self.filling.topic = Some(topic);
        }
        let filling = &mut self.filling;
        let (timestamp, timestamp_type) = m.timestamp();
        let key = m.key().and_then(|k| filling.copy(k));
        let value = m.payload().and_then(|v| filling.copy(v));
        let first_header = filling.headers.len();
        for (name, value) in h {
            let at = filling.buf.len();
            filling.buf.extend_from_slice(&name);
            let name = at..filling.buf.len();
            let value = value.map(|v| {
                let at = filling.buf.len();
                filling.buf.extend_from_slice(v);
                at..filling.buf.len()
            });
            filling.headers.push_shared(name, value);
        }
        self.cache.header_ranges.push((first_header, filling.headers.len()));
        filling.entries.push(Entry {
            partition: m.partition(),
            offset: m.offset(),
            timestamp,
            timestamp_type,
            key,
            value,
        });
    }

    /// Makes the records of the last chunk.
    pub(crate) fn finish(self) {
        share(self.cache, self.filling, self.out);
    }
}

/// Copies messages still held by the caller (see [`Copier`]), appending records to `out`.
pub(crate) fn copy_messages<'a, I>(msgs: I, cache: &mut CopyCache, out: &mut Vec<Record>)
where
    I: Iterator<Item = RawMessage<'a>> + Clone,
{
    let (count, bytes) = msgs.clone().fold((0, 0), |(n, bytes), m| (n + 1, bytes + body_len(m)));
    let mut copier = Copier::new(cache, out, count, bytes);
    for m in msgs {
        copier.push(m);
    }
    copier.finish();
}

/// Makes a filled chunk's records, appended to `out`.
fn share(cache: &mut CopyCache, filling: Filling, out: &mut Vec<Record>) {
    let ranges = std::mem::take(&mut cache.header_ranges);
    let Filling { buf, topic, entries, headers } = filling;
    if let (Some(topic), false) = (topic, entries.is_empty()) {
        let buf = match buf.capacity() {
            SHARED_BUFFER => Bytes::from_owner(PooledBuffer { data: buf, pool: Arc::downgrade(&cache.buffers) }),
            _ => Bytes::from(buf),
        };
        let views = match headers.len() {
            0 => Vec::new(),
            _ => {
                let list = Arc::new(headers.with_buffer(buf.clone()));
                ranges
                    .iter()
                    .map(|&(from, to)| if from < to { Headers::view(list.clone(), from, to) } else { Headers::new() })
                    .collect()
            }
        };
        Chunk::records(&Chunk::new(buf, topic, entries, views), out);
    }
    cache.header_ranges = ranges;
    cache.header_ranges.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled(pool: &Arc<BufferPool>, size: usize) -> Bytes {
        let mut data = pool.take(size);
        data.resize(size, 7);
        Bytes::from_owner(PooledBuffer { data, pool: Arc::downgrade(pool) })
    }

    #[test]
    fn a_nearly_full_buffer_is_reused_once_its_last_bytes_are_dropped() {
        let pool = Arc::new(BufferPool::default());
        let first = pooled(&pool, SHARED_BUFFER - 10);
        let slice = first.slice(0..5);
        let address = first.as_ptr();
        drop(first);
        assert!(pool.0.lock().is_empty(), "a slice still holds the buffer");
        drop(slice);
        assert_eq!(pool.0.lock().len(), 1);
        let again = pool.take(SHARED_BUFFER);
        assert_eq!(again.as_ptr(), address);
        assert!(again.is_empty());
    }

    #[test]
    fn small_and_oversized_buffers_are_exact_and_never_pooled() {
        let pool = Arc::new(BufferPool::default());
        assert_eq!(pool.take(100).capacity(), 100);
        assert_eq!(pool.take(SHARED_BUFFER + 1).capacity(), SHARED_BUFFER + 1);
        pool.give_back(Vec::with_capacity(100));
        assert!(pool.0.lock().is_empty());
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_spare_buffers() {
        let pool = Arc::new(BufferPool::default());
        let held: Vec<Bytes> = (0..SPARE_BUFFERS + 4).map(|_| pooled(&pool, SHARED_BUFFER)).collect();
        drop(held);
        assert_eq!(pool.0.lock().len(), SPARE_BUFFERS);
    }

    #[test]
    fn a_buffer_outliving_its_pool_is_freed() {
        let pool = Arc::new(BufferPool::default());
        let kept = pooled(&pool, SHARED_BUFFER);
        drop(pool);
        assert_eq!(kept.len(), SHARED_BUFFER);
        drop(kept);
    }
}
