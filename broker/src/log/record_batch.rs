//! A zero-copy view of one Kafka v2 record batch, the unit the log stores, indexes and serves.
//!
//! The broker never re-encodes a batch: it reads header fields where they lie and patches the few the leader owns
//! (base offset, partition leader epoch and, for `LogAppendTime`, attributes + max timestamp) in place. Layout
//! (big-endian), as in Kafka's `DefaultRecordBatch`:
//!
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordsCount i32 | 61 records...
//! ```
//!
//! The CRC-32C covers bytes 21.. (attributes to the end), which is why base offset and leader epoch can be set
//! without recomputing it, while the `LogAppendTime` rewrite must recompute it (Kafka's
//! `DefaultRecordBatch.setMaxTimestamp` does the same).

/// Bytes before the batch body: base offset and batch length (Kafka's `LOG_OVERHEAD`).
pub const LOG_OVERHEAD: usize = 12;
/// Size of a v2 batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_SIZE: usize = 61;
/// The only batch format this broker stores.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET: usize = 0;
const LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Kafka's `RecordBatch.NO_PRODUCER_ID`, `NO_PRODUCER_EPOCH`, `NO_SEQUENCE`.
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_SEQUENCE: i32 = -1;

/// Attribute bits, for building batches.
pub mod attributes {
    pub const TIMESTAMP_TYPE: i16 = super::TIMESTAMP_TYPE_BIT;
    pub const TRANSACTIONAL: i16 = super::TRANSACTIONAL_BIT;
    pub const CONTROL: i16 = super::CONTROL_BIT;
    pub const DELETE_HORIZON: i16 = super::DELETE_HORIZON_BIT;
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Kafka's `DefaultRecordBatch.decrementSequence`.
pub fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    if sequence < decrement {
        i32::MAX - (decrement - sequence) + 1
    } else {
        sequence - decrement
    }
}

/// The codec in attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionCodec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    /// Ids 5-7 are undefined in Kafka.
    Unknown(u8),
}

/// Why bytes are not a (complete) batch. Recovery truncates at the first of these; produce refuses them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes remain than a header or than the declared batch length.
    #[error("truncated batch at position {position}: need {needed} bytes, {available} available")]
    Truncated { position: usize, needed: usize, available: usize },
    /// `batchLength` is smaller than a v2 header could be.
    #[error("invalid batch length {length} at position {position}")]
    BadLength { position: usize, length: i32 },
}

/// Size of the batch starting at `buf[0]` according to its length field, if at least `LOG_OVERHEAD` bytes exist.
pub fn declared_batch_size(buf: &[u8]) -> Option<i64> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    Some(LOG_OVERHEAD as i64 + i64::from(read_i32(buf, LENGTH)))
}

/// One complete batch: `buf` is exactly `LOG_OVERHEAD + batchLength` bytes.
#[derive(Clone, Copy)]
pub struct RecordBatch<'a> {
    buf: &'a [u8],
}

impl std::fmt::Debug for RecordBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("size", &self.size())
            .field("magic", &self.magic())
            .field("records_count", &self.records_count())
            .finish()
    }
}

impl<'a> RecordBatch<'a> {
    /// Parses the batch at the start of `buf` (which may hold more after it). Only the framing is checked here;
    /// magic, CRC and contents are the validator's (or recovery's) business.
    pub fn parse_prefix(buf: &'a [u8], position: usize) -> Result<RecordBatch<'a>, BatchError> {
        if buf.len() < LOG_OVERHEAD {
            return Err(BatchError::Truncated { position, needed: LOG_OVERHEAD, available: buf.len() });
        }
        let length = read_i32(buf, LENGTH);
        if length < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength { position, length });
        }
        let size = LOG_OVERHEAD + length as usize;
        if buf.len() < size {
            return Err(BatchError::Truncated { position, needed: size, available: buf.len() });
        }
        Ok(RecordBatch { buf: &buf[..size] })
    }

    /// A view of just a batch header (at least `BATCH_HEADER_SIZE` bytes): only header accessors are meaningful.
    pub fn header_only(buf: &'a [u8]) -> Option<RecordBatch<'a>> {
        (buf.len() >= BATCH_HEADER_SIZE).then(|| RecordBatch { buf: &buf[..BATCH_HEADER_SIZE] })
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    pub fn size(&self) -> usize {
        self.buf.len()
    }
    pub fn base_offset(&self) -> i64 {
        read_i64(self.buf, BASE_OFFSET)
    }
    pub fn batch_length(&self) -> i32 {
        read_i32(self.buf, LENGTH)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        read_i32(self.buf, PARTITION_LEADER_EPOCH)
    }
    pub fn magic(&self) -> i8 {
        self.buf[MAGIC] as i8
    }
    pub fn stored_crc(&self) -> u32 {
        u32::from_be_bytes([self.buf[CRC], self.buf[CRC + 1], self.buf[CRC + 2], self.buf[CRC + 3]])
    }
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.buf[ATTRIBUTES..])
    }
    pub fn is_crc_valid(&self) -> bool {
        self.stored_crc() == self.compute_crc()
    }
    pub fn attributes(&self) -> i16 {
        read_i16(self.buf, ATTRIBUTES)
    }
    pub fn compression(&self) -> CompressionCodec {
        match self.attributes() & COMPRESSION_MASK {
            0 => CompressionCodec::None,
            1 => CompressionCodec::Gzip,
            2 => CompressionCodec::Snappy,
            3 => CompressionCodec::Lz4,
            4 => CompressionCodec::Zstd,
            other => CompressionCodec::Unknown(other as u8),
        }
    }
    /// True when the batch's timestamps are log append times (attribute bit 3).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    /// KIP-534: the cleaner stamped a delete horizon (in `baseTimestamp`) on this batch.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes() & DELETE_HORIZON_BIT != 0
    }
    /// The delete horizon when set: tombstones and markers of the batch may be removed after it.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.has_delete_horizon().then(|| self.base_timestamp())
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id() > NO_PRODUCER_ID
    }
    /// The sequence of the batch's last record (Kafka's `lastSequence`, wrapping at `i32::MAX`).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence() == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence(), self.last_offset_delta())
    }
    pub fn last_offset_delta(&self) -> i32 {
        read_i32(self.buf, LAST_OFFSET_DELTA)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset().saturating_add(i64::from(self.last_offset_delta()))
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    pub fn base_timestamp(&self) -> i64 {
        read_i64(self.buf, BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        read_i64(self.buf, MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        read_i64(self.buf, PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        read_i16(self.buf, PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        read_i32(self.buf, BASE_SEQUENCE)
    }
    pub fn records_count(&self) -> i32 {
        read_i32(self.buf, RECORDS_COUNT)
    }
    /// The (possibly compressed) records section.
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.buf[BATCH_HEADER_SIZE..]
    }
}

/// Mutable access to one batch's leader-owned header fields.
pub struct RecordBatchMut<'a> {
    buf: &'a mut [u8],
}

impl<'a> RecordBatchMut<'a> {
    /// `buf` must be exactly one batch, as checked by [`RecordBatch::parse_prefix`].
    pub fn new(buf: &'a mut [u8]) -> Result<RecordBatchMut<'a>, BatchError> {
        let size = RecordBatch::parse_prefix(buf, 0)?.size();
        Ok(RecordBatchMut { buf: &mut buf[..size] })
    }

    pub fn view(&self) -> RecordBatch<'_> {
        RecordBatch { buf: self.buf }
    }

    /// Outside the CRC: no checksum update.
    pub fn set_base_offset(&mut self, offset: i64) {
        self.buf[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&offset.to_be_bytes());
    }

    /// Outside the CRC: no checksum update.
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        self.buf[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    }

    /// Sets the timestamp-type bit and max timestamp, recomputing the CRC because both lie inside it. Like Kafka,
    /// leaves the batch untouched (and its CRC as sent) when nothing changes.
    pub fn set_max_timestamp(&mut self, log_append_time: bool, max_timestamp: i64) {
        let view = self.view();
        if view.is_log_append_time() == log_append_time && view.max_timestamp() == max_timestamp {
            return;
        }
        let mut attributes = view.attributes();
        if log_append_time {
            attributes |= TIMESTAMP_TYPE_BIT;
        } else {
            attributes &= !TIMESTAMP_TYPE_BIT;
        }
        self.buf[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        self.buf[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
        let crc = crc32c::crc32c(&self.buf[ATTRIBUTES..]);
        self.buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Iterates the batches of a buffer (a produce request's records, or bytes read from a segment), yielding each
/// batch with its position. Ends cleanly at the end of the buffer; a torn or malformed tail yields one error and
/// then ends.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, position: 0, failed: false }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(usize, RecordBatch<'a>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        match RecordBatch::parse_prefix(&self.buf[self.position..], self.position) {
            Ok(batch) => {
                let position = self.position;
                self.position += batch.size();
                Some(Ok((position, batch)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

pub(crate) fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

pub(crate) fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

pub(crate) fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

#[cfg(test)]
pub(crate) mod test_support {
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType as KTimestampType,
    };

    /// Encodes `count` records with the given timestamps (one per record) as one batch.
    pub fn batch_with(count: usize, timestamp: i64, compression: Compression) -> BytesMut {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: KTimestampType::Creation,
                offset: i as i64,
                // kafka-protocol starts a new batch unless offset - sequence stays constant.
                sequence: i as i32 - 1,
                timestamp: timestamp + i as i64,
                key: Some(bytes::Bytes::from(format!("key-{i}"))),
                value: Some(bytes::Bytes::from(format!("value-{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression }).unwrap();
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::batch_with;
    use super::*;
    use kafka_protocol::records::Compression;

    #[test]
    fn header_fields_are_read_where_kafka_puts_them() {
        let buf = batch_with(3, 1_000, Compression::None);
        let batch = RecordBatch::parse_prefix(&buf, 0).unwrap();
        assert_eq!(batch.size(), buf.len());
        assert_eq!(batch.base_offset(), 0);
        assert_eq!(batch.magic(), 2);
        assert_eq!(batch.last_offset_delta(), 2);
        assert_eq!(batch.records_count(), 3);
        assert_eq!(batch.base_timestamp(), 1_000);
        assert_eq!(batch.max_timestamp(), 1_002);
        assert_eq!(batch.compression(), CompressionCodec::None);
        assert!(!batch.is_control() && !batch.is_transactional() && !batch.is_log_append_time());
        assert!(batch.is_crc_valid());
    }

    #[test]
    fn base_offset_and_leader_epoch_are_set_without_touching_the_crc() {
        let mut buf = batch_with(2, 5, Compression::None);
        let crc_before = RecordBatch::parse_prefix(&buf, 0).unwrap().stored_crc();
        let mut batch = RecordBatchMut::new(&mut buf).unwrap();
        batch.set_base_offset(1234);
        batch.set_partition_leader_epoch(7);
        let view = batch.view();
        assert_eq!(view.base_offset(), 1234);
        assert_eq!(view.last_offset(), 1235);
        assert_eq!(view.partition_leader_epoch(), 7);
        assert_eq!(view.stored_crc(), crc_before);
        assert!(view.is_crc_valid());
    }

    #[test]
    fn log_append_time_rewrite_recomputes_the_crc() {
        let mut buf = batch_with(2, 5, Compression::None);
        let mut batch = RecordBatchMut::new(&mut buf).unwrap();
        batch.set_max_timestamp(true, 99_999);
        let view = batch.view();
        assert!(view.is_log_append_time());
        assert_eq!(view.max_timestamp(), 99_999);
        assert!(view.is_crc_valid());
    }

    #[test]
    fn iterates_consecutive_batches_with_positions() {
        let mut buf = batch_with(1, 1, Compression::None);
        let first = buf.len();
        buf.extend_from_slice(&batch_with(4, 1, Compression::None));
        let batches: Vec<_> = BatchIter::new(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].0, 0);
        assert_eq!(batches[1].0, first);
        assert_eq!(batches[1].1.records_count(), 4);
    }

    #[test]
    fn torn_tail_yields_truncated_then_stops() {
        let mut buf = batch_with(1, 1, Compression::None);
        let first = buf.len();
        let second = batch_with(4, 1, Compression::None);
        buf.extend_from_slice(&second[..second.len() - 3]);
        let mut iter = BatchIter::new(&buf);
        assert!(iter.next().unwrap().is_ok());
        match iter.next().unwrap() {
            Err(BatchError::Truncated { position, .. }) => assert_eq!(position, first),
            other => panic!("expected truncated, got {other:?}"),
        }
        assert!(iter.next().is_none());
    }

    #[test]
    fn short_length_field_is_bad_length() {
        let mut buf = batch_with(1, 1, Compression::None);
        buf[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(RecordBatch::parse_prefix(&buf, 0), Err(BatchError::BadLength { length: 10, .. })));
    }
}
