//! Encoding v2 record batches on the broker side: transaction markers (Kafka's control records) and the batches
//! the log cleaner rewrites from the records it keeps (Kafka's `MemoryRecordsBuilder` as used by
//! `MemoryRecords.filterTo`).
//!
//! Control record layout (Kafka's `ControlRecordType` / `EndTransactionMarker`): key = version i16 (0) + type i16
//! (0 = ABORT, 1 = COMMIT); value = version i16 (0) + coordinator epoch i32. The batch has the transactional and
//! control attribute bits, the producer's id and epoch, and base sequence -1.

use std::io;

use super::compression::compress;
use super::record_batch::{attributes, CompressionCodec, NO_SEQUENCE};

/// One record to encode. `timestamp` is absolute; the builder computes deltas.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub offset_delta: i32,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// Header count varint and headers, exactly as encoded in the source record.
    pub raw_headers: &'a [u8],
}

/// The header fields of a batch to encode.
#[derive(Debug, Clone, Copy)]
pub struct NewBatch {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub codec: CompressionCodec,
    pub log_append_time: bool,
    pub transactional: bool,
    pub control: bool,
    /// KIP-534 delete horizon: stored as the base timestamp with the delete-horizon attribute bit.
    pub delete_horizon_ms: Option<i64>,
    /// Kept from the source batch so the producer's last sequence survives compaction.
    pub last_offset_delta: i32,
    /// The max timestamp to store; `None` computes it from the records.
    pub max_timestamp: Option<i64>,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn encode_record(out: &mut Vec<u8>, record: &NewRecord<'_>, base_timestamp: i64) {
    let mut body = Vec::with_capacity(
        16 + record.key.map_or(0, <[u8]>::len) + record.value.map_or(0, <[u8]>::len) + record.raw_headers.len(),
    );
    body.push(0); // attributes: unused in v2
    put_varint(&mut body, record.timestamp.wrapping_sub(base_timestamp));
    put_varint(&mut body, i64::from(record.offset_delta));
    for field in [record.key, record.value] {
        match field {
            Some(bytes) => {
                put_varint(&mut body, bytes.len() as i64);
                body.extend_from_slice(bytes);
            }
            None => put_varint(&mut body, -1),
        }
    }
    if record.raw_headers.is_empty() {
        body.push(0);
    } else {
        body.extend_from_slice(record.raw_headers);
    }
    put_varint(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// Encodes one v2 batch. An empty `records` gives Kafka's empty batch header (`DefaultRecordBatch.writeEmptyHeader`),
/// which the cleaner keeps to preserve a producer's last sequence.
pub fn encode_batch(spec: &NewBatch, records: &[NewRecord<'_>]) -> io::Result<Vec<u8>> {
    let computed_max = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    let max_timestamp = spec.max_timestamp.unwrap_or(computed_max);
    let base_timestamp = match (spec.delete_horizon_ms, records.first()) {
        (Some(horizon), _) => horizon,
        (None, Some(first)) => first.timestamp,
        (None, None) => -1,
    };
    let codec = if records.is_empty() { CompressionCodec::None } else { spec.codec };
    let mut attrs: i16 = match codec {
        CompressionCodec::None => 0,
        CompressionCodec::Gzip => 1,
        CompressionCodec::Snappy => 2,
        CompressionCodec::Lz4 => 3,
        CompressionCodec::Zstd => 4,
        CompressionCodec::Unknown(id) => i16::from(id & 0x07),
    };
    if spec.log_append_time {
        attrs |= attributes::TIMESTAMP_TYPE;
    }
    if spec.transactional {
        attrs |= attributes::TRANSACTIONAL;
    }
    if spec.control {
        attrs |= attributes::CONTROL;
    }
    if spec.delete_horizon_ms.is_some() {
        attrs |= attributes::DELETE_HORIZON;
    }
    let mut raw = Vec::new();
    for record in records {
        encode_record(&mut raw, record, base_timestamp);
    }
    let body = if codec == CompressionCodec::None { raw } else { compress(codec, &raw)? };

    let mut out = Vec::with_capacity(61 + body.len());
    out.extend_from_slice(&spec.base_offset.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // length, patched below
    out.extend_from_slice(&spec.partition_leader_epoch.to_be_bytes());
    out.push(2); // magic
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
    out.extend_from_slice(&attrs.to_be_bytes());
    out.extend_from_slice(&spec.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&spec.producer_id.to_be_bytes());
    out.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    out.extend_from_slice(&spec.base_sequence.to_be_bytes());
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
    let length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Kafka's `ControlRecordType` ids of transaction markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
    /// Any other control record (e.g. KRaft's leader change); not a transaction marker.
    Other(i16),
}

/// Reads the control type from a control record's key.
pub fn parse_control_key(key: Option<&[u8]>) -> Option<ControlType> {
    let key = key?;
    if key.len() < 4 {
        return None;
    }
    Some(match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        other => ControlType::Other(other),
    })
}

/// Reads the coordinator epoch from an end-transaction marker's value.
pub fn parse_marker_coordinator_epoch(value: Option<&[u8]>) -> Option<i32> {
    let value = value?;
    if value.len() < 6 {
        return None;
    }
    Some(i32::from_be_bytes([value[2], value[3], value[4], value[5]]))
}

/// Encodes a COMMIT or ABORT marker batch for `producer_id`/`producer_epoch` (base offset 0, set on append).
pub fn end_txn_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let key = [0u8, 0, 0, u8::from(commit)];
    let mut value = vec![0u8, 0];
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let spec = NewBatch {
        base_offset: 0,
        partition_leader_epoch: -1,
        codec: CompressionCodec::None,
        log_append_time: false,
        transactional: true,
        control: true,
        delete_horizon_ms: None,
        last_offset_delta: 0,
        max_timestamp: None,
        producer_id,
        producer_epoch,
        base_sequence: NO_SEQUENCE,
    };
    let record = NewRecord { offset_delta: 0, timestamp, key: Some(&key), value: Some(&value), raw_headers: &[0] };
    // Encoding without compression cannot fail.
    encode_batch(&spec, &[record]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::compression::decompress;
    use crate::log::record::RecordIter;
    use crate::log::record_batch::RecordBatch;
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn marker_batch_decodes_as_kafka_control_record() {
        let buf = end_txn_marker_batch(42, 3, true, 7, 1_000);
        let batch = RecordBatch::parse_prefix(&buf, 0).unwrap();
        assert!(batch.is_control() && batch.is_transactional() && batch.is_crc_valid());
        assert_eq!((batch.producer_id(), batch.producer_epoch(), batch.base_sequence()), (42, 3, -1));
        let record = RecordIter::new(batch.records_bytes()).next_view().unwrap().unwrap();
        assert_eq!(parse_control_key(record.key), Some(ControlType::Commit));
        assert_eq!(parse_marker_coordinator_epoch(record.value), Some(7));
        let mut bytes = Bytes::from(buf);
        let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        assert!(sets[0].records[0].control);
    }

    #[test]
    fn rebuilt_batch_keeps_offsets_sequences_and_codec() {
        for codec in [
            CompressionCodec::None,
            CompressionCodec::Gzip,
            CompressionCodec::Snappy,
            CompressionCodec::Lz4,
            CompressionCodec::Zstd,
        ] {
            let spec = NewBatch {
                base_offset: 100,
                partition_leader_epoch: 3,
                codec,
                log_append_time: false,
                transactional: false,
                control: false,
                delete_horizon_ms: Some(5_000),
                last_offset_delta: 9,
                max_timestamp: None,
                producer_id: 7,
                producer_epoch: 1,
                base_sequence: 20,
            };
            let records = [
                NewRecord { offset_delta: 2, timestamp: 1_000, key: Some(b"a"), value: None, raw_headers: &[0] },
                NewRecord { offset_delta: 7, timestamp: 1_005, key: Some(b"b"), value: Some(b"v"), raw_headers: &[] },
            ];
            let buf = encode_batch(&spec, &records).unwrap();
            let batch = RecordBatch::parse_prefix(&buf, 0).unwrap();
            assert!(batch.is_crc_valid());
            assert_eq!(batch.compression(), codec);
            assert_eq!((batch.base_offset(), batch.last_offset(), batch.records_count()), (100, 109, 2));
            assert_eq!((batch.last_sequence(), batch.max_timestamp()), (29, 1_005));
            assert_eq!(batch.delete_horizon_ms(), Some(5_000));
            let body = decompress(codec, batch.records_bytes(), 1 << 20).unwrap();
            let mut iter = RecordIter::new(&body);
            let first = iter.next_view().unwrap().unwrap();
            assert_eq!((first.offset_delta, batch.base_timestamp() + first.timestamp_delta), (2, 1_000));
            assert_eq!(first.value, None);
            let second = iter.next_view().unwrap().unwrap();
            assert_eq!((second.key, second.value), (Some(&b"b"[..]), Some(&b"v"[..])));
            let mut bytes = Bytes::from(buf);
            let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
            assert_eq!(sets[0].records.len(), 2, "{codec:?}");
            assert_eq!(sets[0].records[1].offset, 107);
        }
    }

    #[test]
    fn empty_batch_keeps_the_producer_range() {
        let spec = NewBatch {
            base_offset: 10,
            partition_leader_epoch: 0,
            codec: CompressionCodec::Zstd,
            log_append_time: false,
            transactional: true,
            control: false,
            delete_horizon_ms: None,
            last_offset_delta: 4,
            max_timestamp: Some(77),
            producer_id: 5,
            producer_epoch: 0,
            base_sequence: 0,
        };
        let buf = encode_batch(&spec, &[]).unwrap();
        let batch = RecordBatch::parse_prefix(&buf, 0).unwrap();
        assert_eq!((batch.records_count(), batch.last_offset(), batch.last_sequence()), (0, 14, 4));
        assert_eq!(batch.compression(), CompressionCodec::None);
        assert!(batch.is_crc_valid());
    }
}
