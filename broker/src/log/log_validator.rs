//! Validation of produced batches and offset assignment, as Kafka's `LogValidator` does it for magic v2.
//!
//! Batches are stored exactly as received except for the fields the leader owns: base offset and partition leader
//! epoch (outside the CRC) and, for `LogAppendTime` topics or when the producer's max timestamp disagrees with its
//! records, attributes + max timestamp (inside the CRC, which is then recomputed, as Kafka's
//! `DefaultRecordBatch.setMaxTimestamp` does). Nothing is ever re-encoded, so a batch that Kafka would rewrite
//! (non-consecutive inner offsets) is refused instead.
//!
//! Error mapping follows Kafka: framing, magic, CRC and undecodable compressed data are `CorruptRecord`
//! (CORRUPT_MESSAGE); structurally valid but inconsistent batches (count vs `lastOffsetDelta`, non-zero base
//! offset from a client, control batches from a client, malformed records) are `InvalidRecord` (INVALID_RECORD,
//! Kafka's `InvalidRecordException`); size limits are `RecordTooLarge`; timestamps are `InvalidTimestamp`.

use bytes::{Bytes, BytesMut};

use super::compression::{decompress, DecompressError};
use super::config::{LogConfig, TimestampType};
use super::error::LogError;
use super::record::RecordIter;
use super::record_batch::{BatchIter, CompressionCodec, RecordBatch, RecordBatchMut, MAGIC_V2};

/// Who is appending: clients may not write control batches; the broker itself (transaction markers) may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    /// The broker's own coordinators (e.g. transaction markers).
    Coordinator,
}

/// Everything validation depends on besides the bytes.
#[derive(Debug, Clone)]
pub struct ValidationContext<'a> {
    pub config: &'a LogConfig,
    pub now_ms: i64,
    pub max_decompressed_batch_bytes: usize,
    pub origin: AppendOrigin,
}

/// One validated batch, after offset assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedBatch {
    /// Position inside [`ValidatedRecords::bytes`].
    pub position: usize,
    pub size: usize,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp as stored (append time for `LogAppendTime`).
    pub max_timestamp: i64,
}

/// The outcome of validating one append: the bytes to write and what the indexes and the caller need.
#[derive(Debug, Clone)]
pub struct ValidatedRecords {
    pub bytes: Bytes,
    pub batches: Vec<ValidatedBatch>,
    pub first_offset: i64,
    pub last_offset: i64,
    pub num_records: usize,
    /// The broker's append time for `LogAppendTime`, else -1.
    pub log_append_time: i64,
}

struct BatchFacts {
    records: i64,
    max_timestamp: i64,
}

/// Validates `records` (the raw records of one produce partition) and assigns offsets from `next_offset`.
pub fn validate_and_assign_offsets(
    records: Bytes,
    next_offset: i64,
    leader_epoch: i32,
    ctx: &ValidationContext<'_>,
) -> Result<ValidatedRecords, LogError> {
    if records.is_empty() {
        return Err(LogError::InvalidRecord("produce request carries no record batch".to_string()));
    }
    if records.len() as u64 > ctx.config.segment_bytes {
        return Err(LogError::RecordTooLarge { size: records.len(), max: ctx.config.segment_bytes as usize });
    }
    let mut facts = Vec::new();
    let mut first_compressed = None;
    for item in BatchIter::new(&records) {
        let (position, batch) = item.map_err(|e| LogError::CorruptRecord(e.to_string()))?;
        if let Some(compressed) = first_compressed {
            // Kafka keeps a compressed produce to one batch ("Compressed outer record has more than one batch").
            if compressed || batch.compression() != CompressionCodec::None {
                return Err(LogError::InvalidRecord(
                    "compressed record batches must be sent one per partition".to_string(),
                ));
            }
        }
        first_compressed = Some(batch.compression() != CompressionCodec::None);
        facts.push(validate_batch(&batch, position, ctx)?);
    }

    let log_append = ctx.config.message_timestamp_type == TimestampType::LogAppendTime;
    let mut buf: BytesMut = records.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    let mut batches = Vec::with_capacity(facts.len());
    let mut offset = next_offset;
    let mut position = 0usize;
    for fact in &facts {
        let mut batch =
            RecordBatchMut::new(&mut buf[position..]).map_err(|e| LogError::CorruptRecord(e.to_string()))?;
        batch.set_base_offset(offset);
        batch.set_partition_leader_epoch(leader_epoch);
        let max_timestamp = if log_append { ctx.now_ms } else { fact.max_timestamp };
        batch.set_max_timestamp(log_append, max_timestamp);
        let size = batch.view().size();
        batches.push(ValidatedBatch {
            position,
            size,
            base_offset: offset,
            last_offset: offset + fact.records - 1,
            max_timestamp,
        });
        offset += fact.records;
        position += size;
    }
    Ok(ValidatedRecords {
        bytes: buf.freeze(),
        first_offset: next_offset,
        last_offset: offset - 1,
        num_records: (offset - next_offset) as usize,
        batches,
        log_append_time: if log_append { ctx.now_ms } else { -1 },
    })
}

fn validate_batch(
    batch: &RecordBatch<'_>,
    position: usize,
    ctx: &ValidationContext<'_>,
) -> Result<BatchFacts, LogError> {
    if batch.magic() != MAGIC_V2 {
        // Kafka 4 refuses v0/v1 produce requests outright; the log stores only v2.
        return Err(LogError::CorruptRecord(format!(
            "batch at position {position} has magic {}; only magic 2 is supported",
            batch.magic()
        )));
    }
    if batch.size() > ctx.config.max_message_bytes {
        return Err(LogError::RecordTooLarge { size: batch.size(), max: ctx.config.max_message_bytes });
    }
    if !batch.is_crc_valid() {
        return Err(LogError::CorruptRecord(format!(
            "batch at position {position}: stored crc {:#010x} but computed {:#010x}",
            batch.stored_crc(),
            batch.compute_crc()
        )));
    }
    if ctx.origin == AppendOrigin::Client && batch.base_offset() != 0 {
        return Err(LogError::InvalidRecord(format!(
            "the base offset of a produced batch must be 0, but it is {}",
            batch.base_offset()
        )));
    }
    let count = batch.records_count();
    let count_from_offsets = i64::from(batch.last_offset_delta()) + 1;
    if count_from_offsets <= 0 {
        return Err(LogError::InvalidRecord(format!("invalid lastOffsetDelta {}", batch.last_offset_delta())));
    }
    if count <= 0 {
        return Err(LogError::InvalidRecord(format!("invalid record count {count}")));
    }
    if i64::from(count) != count_from_offsets {
        return Err(LogError::InvalidRecord(format!(
            "inconsistent batch: lastOffsetDelta {} but {count} records",
            batch.last_offset_delta()
        )));
    }
    if batch.is_control() && ctx.origin == AppendOrigin::Client {
        return Err(LogError::InvalidRecord("clients may not write control batches".to_string()));
    }
    if ctx.origin == AppendOrigin::Client && batch.producer_id() >= 0 && batch.base_sequence() < 0 {
        return Err(LogError::InvalidRecord(format!(
            "invalid sequence {} for producer id {}",
            batch.base_sequence(),
            batch.producer_id()
        )));
    }
    if batch.is_transactional() && batch.producer_id() < 0 {
        return Err(LogError::InvalidRecord("a transactional batch must carry a producer id".to_string()));
    }
    if batch.is_log_append_time() && ctx.origin == AppendOrigin::Client {
        return Err(LogError::InvalidTimestamp {
            timestamp: batch.max_timestamp(),
            reason: "producers may not set the timestamp type to LogAppendTime".to_string(),
        });
    }

    let decompressed;
    let body: &[u8] = match batch.compression() {
        CompressionCodec::None => batch.records_bytes(),
        codec => {
            decompressed =
                decompress(codec, batch.records_bytes(), ctx.max_decompressed_batch_bytes).map_err(|e| match e {
                    DecompressError::TooLarge { limit } => {
                        LogError::RecordTooLarge { size: limit.saturating_add(1), max: limit }
                    }
                    DecompressError::Corrupt { .. } => {
                        LogError::CorruptRecord(format!("batch at position {position}: {e}"))
                    }
                })?;
            &decompressed
        }
    };

    let check_timestamps = ctx.config.message_timestamp_type == TimestampType::CreateTime;
    let compacted = ctx.config.cleanup_policy_compact && !batch.is_control();
    let earliest = ctx.now_ms.saturating_sub(ctx.config.message_timestamp_before_max_ms);
    let latest = ctx.now_ms.saturating_add(ctx.config.message_timestamp_after_max_ms);
    let mut records = RecordIter::new(body);
    let mut seen: i64 = 0;
    let mut max_timestamp = -1i64;
    for record in records.by_ref() {
        let record = record.map_err(|e| LogError::InvalidRecord(format!("batch at position {position}: {e}")))?;
        if i64::from(record.offset_delta) != seen {
            return Err(LogError::InvalidRecord(format!(
                "record {seen} has offset delta {}; deltas must run 0..{}",
                record.offset_delta,
                count - 1
            )));
        }
        seen += 1;
        if seen > i64::from(count) {
            break;
        }
        if compacted && !record.has_key {
            // Kafka's LogValidator: "Compacted topic cannot accept message without key".
            return Err(LogError::InvalidRecord(format!(
                "batch at position {position}: compacted topic cannot accept message without key"
            )));
        }
        let timestamp = batch.base_timestamp().saturating_add(record.timestamp_delta);
        if check_timestamps && timestamp != -1 && (timestamp < earliest || timestamp > latest) {
            return Err(LogError::InvalidTimestamp {
                timestamp,
                reason: format!(
                    "outside [now - message.timestamp.before.max.ms, now + message.timestamp.after.max.ms] = [{earliest}, {latest}]"
                ),
            });
        }
        max_timestamp = max_timestamp.max(timestamp);
    }
    if seen != i64::from(count) {
        return Err(LogError::InvalidRecord(format!("batch declares {count} records but holds {seen}")));
    }
    if records.remaining() != 0 {
        return Err(LogError::InvalidRecord(format!(
            "{} bytes remain after the last of {count} records",
            records.remaining()
        )));
    }
    Ok(BatchFacts { records: i64::from(count), max_timestamp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::test_support::batch_with;
    use kafka_protocol::records::Compression;

    const NOW: i64 = 1_700_000_000_000;

    fn ctx(config: &LogConfig) -> ValidationContext<'_> {
        ValidationContext { config, now_ms: NOW, max_decompressed_batch_bytes: 1 << 20, origin: AppendOrigin::Client }
    }

    fn validate(buf: BytesMut, config: &LogConfig) -> Result<ValidatedRecords, LogError> {
        validate_and_assign_offsets(buf.freeze(), 100, 5, &ctx(config))
    }

    fn recrc(buf: &mut [u8]) {
        let crc = crc32c::crc32c(&buf[21..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn assigns_offsets_and_epoch_in_place() {
        let mut buf = batch_with(3, NOW, Compression::None);
        let first_len = buf.len();
        buf.extend_from_slice(&batch_with(2, NOW, Compression::None));
        let original = buf.clone();
        let v = validate(buf, &LogConfig::default()).unwrap();
        assert_eq!((v.first_offset, v.last_offset, v.num_records), (100, 104, 5));
        assert_eq!(v.batches[1].base_offset, 103);
        assert_eq!(v.log_append_time, -1);
        let b = RecordBatch::parse_prefix(&v.bytes, 0).unwrap();
        assert_eq!(b.base_offset(), 100);
        assert_eq!(b.partition_leader_epoch(), 5);
        assert!(b.is_crc_valid());
        // Everything from the magic byte on is untouched.
        assert_eq!(&v.bytes[16..first_len], &original[16..first_len]);
        assert_eq!(&v.bytes[first_len + 16..], &original[first_len + 16..]);
    }

    #[test]
    fn every_compression_codec_validates() {
        for c in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let v = validate(batch_with(10, NOW, c), &LogConfig::default()).unwrap();
            assert_eq!(v.num_records, 10, "{c:?}");
        }
    }

    #[test]
    fn log_append_time_overwrites_max_timestamp_and_keeps_crc_valid() {
        let config = LogConfig { message_timestamp_type: TimestampType::LogAppendTime, ..LogConfig::default() };
        let v = validate(batch_with(2, 5, Compression::None), &config).unwrap();
        let b = RecordBatch::parse_prefix(&v.bytes, 0).unwrap();
        assert!(b.is_log_append_time());
        assert_eq!(b.max_timestamp(), NOW);
        assert_eq!(v.log_append_time, NOW);
        assert!(b.is_crc_valid());
    }

    #[test]
    fn bad_crc_is_corrupt() {
        let mut buf = batch_with(2, NOW, Compression::None);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        assert!(matches!(validate(buf, &LogConfig::default()), Err(LogError::CorruptRecord(_))));
    }

    #[test]
    fn bad_magic_is_corrupt() {
        let mut buf = batch_with(2, NOW, Compression::None);
        buf[16] = 1;
        assert!(matches!(validate(buf, &LogConfig::default()), Err(LogError::CorruptRecord(_))));
    }

    #[test]
    fn truncated_batch_is_corrupt() {
        let buf = batch_with(2, NOW, Compression::None);
        let short = BytesMut::from(&buf[..buf.len() - 1]);
        assert!(matches!(validate(short, &LogConfig::default()), Err(LogError::CorruptRecord(_))));
        let header_only = BytesMut::from(&buf[..8]);
        assert!(matches!(validate(header_only, &LogConfig::default()), Err(LogError::CorruptRecord(_))));
    }

    #[test]
    fn record_count_mismatch_is_invalid() {
        let mut buf = batch_with(3, NOW, Compression::None);
        buf[57..61].copy_from_slice(&2i32.to_be_bytes());
        recrc(&mut buf);
        assert!(matches!(validate(buf, &LogConfig::default()), Err(LogError::InvalidRecord(_))));
    }

    #[test]
    fn huge_declared_count_with_few_records_is_invalid_without_allocating() {
        let mut buf = batch_with(3, NOW, Compression::None);
        buf[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        buf[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        recrc(&mut buf);
        assert!(matches!(validate(buf, &LogConfig::default()), Err(LogError::InvalidRecord(_))));
    }

    #[test]
    fn malformed_record_is_invalid() {
        let mut buf = batch_with(1, NOW, Compression::None);
        // First record's length varint: claim far more than is present.
        buf[61] = 0x7e;
        recrc(&mut buf);
        assert!(matches!(validate(buf, &LogConfig::default()), Err(LogError::InvalidRecord(_))));
    }

    #[test]
    fn oversized_batch_is_too_large() {
        let config = LogConfig { max_message_bytes: 100, ..LogConfig::default() };
        let err = validate(batch_with(10, NOW, Compression::None), &config).unwrap_err();
        assert!(matches!(err, LogError::RecordTooLarge { max: 100, .. }), "{err:?}");
    }

    #[test]
    fn compression_bomb_is_refused() {
        use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType as T};
        let big = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: T::Creation,
            offset: 0,
            sequence: -1,
            timestamp: NOW,
            key: None,
            value: Some(Bytes::from(vec![0u8; 4 << 20])),
            headers: Default::default(),
        };
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            [&big],
            &RecordEncodeOptions { version: 2, compression: Compression::Zstd },
        )
        .unwrap();
        assert!(buf.len() < 64 * 1024);
        let err = validate(buf, &LogConfig::default()).unwrap_err();
        assert!(matches!(err, LogError::RecordTooLarge { max, .. } if max == 1 << 20), "{err:?}");
    }

    #[test]
    fn timestamps_out_of_range_are_invalid() {
        let config = LogConfig {
            message_timestamp_before_max_ms: 1000,
            message_timestamp_after_max_ms: 1000,
            ..LogConfig::default()
        };
        assert!(matches!(
            validate(batch_with(1, NOW - 5000, Compression::None), &config),
            Err(LogError::InvalidTimestamp { .. })
        ));
        assert!(matches!(
            validate(batch_with(1, NOW + 5000, Compression::None), &config),
            Err(LogError::InvalidTimestamp { .. })
        ));
        assert!(validate(batch_with(1, NOW + 500, Compression::None), &config).is_ok());
    }

    #[test]
    fn control_batch_from_client_is_invalid_but_allowed_for_coordinator() {
        let mut buf = batch_with(1, NOW, Compression::None);
        let attrs = i16::from_be_bytes([buf[21], buf[22]]) | 0x20;
        buf[21..23].copy_from_slice(&attrs.to_be_bytes());
        recrc(&mut buf);
        let config = LogConfig::default();
        assert!(matches!(validate(buf.clone(), &config), Err(LogError::InvalidRecord(_))));
        let coordinator = ValidationContext { origin: AppendOrigin::Coordinator, ..ctx(&config) };
        assert!(validate_and_assign_offsets(buf.freeze(), 0, 0, &coordinator).is_ok());
    }

    #[test]
    fn non_zero_base_offset_from_client_is_invalid() {
        let mut buf = batch_with(1, NOW, Compression::None);
        buf[0..8].copy_from_slice(&7i64.to_be_bytes());
        assert!(matches!(validate(buf, &LogConfig::default()), Err(LogError::InvalidRecord(_))));
    }

    #[test]
    fn empty_records_are_invalid() {
        assert!(matches!(validate(BytesMut::new(), &LogConfig::default()), Err(LogError::InvalidRecord(_))));
    }
}
