//! The records of `__transaction_state`, byte for byte as Apache Kafka writes them (Kafka's
//! `transaction-coordinator` message specs `TransactionLogKey` v0 and `TransactionLogValue` v0/v1), so Kafka's
//! tools (`kafka-dump-log --transaction-log-decoder`) read a Spate data dir and the other way round.
//!
//! Key v0: int16 version, string transactional id. Value v0: int16 version, producer id, producer epoch,
//! timeout, status (the state's id), nullable array of (topic, [partition]) — null for `Empty` —, last update
//! and start timestamps. Spate writes v0, as Kafka does until `transaction.version` 1 is enabled, and reads v1
//! (flexible; its tagged fields PreviousProducerId, NextProducerId and ClientTransactionVersion are skipped,
//! they only matter to transactions V2). A tombstone removes an expired transactional id.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::offsets_topic::{put_string, Reader, RecordFormatError};
use super::transaction_metadata::TxnState;

/// Name of the internal topic, as in Kafka.
pub const TOPIC: &str = "__transaction_state";
/// Kafka's `transaction.state.log.segment.bytes` default.
pub const SEGMENT_BYTES: &str = "104857600";

/// What one value of `__transaction_state` says about a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub txn_last_update_timestamp: i64,
    pub txn_start_timestamp: i64,
}

pub fn key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    put_string(&mut b, transactional_id);
    b.freeze()
}

/// `TransactionLogValue` v0.
pub fn value(v: &TxnLogValue) -> Bytes {
    let mut b = BytesMut::with_capacity(48 + v.partitions.len() * 24);
    b.put_i16(0);
    b.put_i64(v.producer_id);
    b.put_i16(v.producer_epoch);
    b.put_i32(v.txn_timeout_ms);
    b.put_i8(v.state.id());
    if v.state == TxnState::Empty {
        b.put_i32(-1);
    } else {
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (t, p) in &v.partitions {
            match topics.last_mut() {
                Some((last, ps)) if *last == t.as_str() => ps.push(*p),
                _ => topics.push((t.as_str(), vec![*p])),
            }
        }
        b.put_i32(topics.len() as i32);
        for (t, ps) in topics {
            put_string(&mut b, t);
            b.put_i32(ps.len() as i32);
            for p in ps {
                b.put_i32(p);
            }
        }
    }
    b.put_i64(v.txn_last_update_timestamp);
    b.put_i64(v.txn_start_timestamp);
    b.freeze()
}

/// The transactional id of a key; `None` for a key version this broker does not know (skipped, as Kafka does).
pub fn decode_key(bytes: &[u8]) -> Result<Option<String>, RecordFormatError> {
    let mut r = Reader::new(bytes, false);
    match r.i16("key version")? {
        0 => Ok(Some(r.string("transactional_id")?)),
        _ => Ok(None),
    }
}

pub fn decode_value(bytes: &[u8]) -> Result<TxnLogValue, RecordFormatError> {
    let version = Reader::new(bytes, false).i16("value version")?;
    if !(0..=1).contains(&version) {
        return Err(RecordFormatError::UnsupportedVersion { what: "TransactionLogValue", version });
    }
    let flexible = version >= 1;
    let mut r = Reader::new(&bytes[2..], flexible);
    let producer_id = r.i64("producer_id")?;
    let producer_epoch = r.i16("producer_epoch")?;
    let txn_timeout_ms = r.i32("transaction_timeout_ms")?;
    let status = r.i8("transaction_status")?;
    let state = TxnState::from_id(status)
        .ok_or(RecordFormatError::UnsupportedVersion { what: "transaction status", version: i16::from(status) })?;
    let mut partitions = BTreeSet::new();
    if let Some(n) = r.nullable_array_len("transaction_partitions")? {
        for _ in 0..n {
            let topic = r.string("topic")?;
            let count = r.array_len("partition_ids")?;
            for _ in 0..count {
                partitions.insert((topic.clone(), r.i32("partition_id")?));
            }
            r.skip_tagged_fields()?;
        }
    }
    let txn_last_update_timestamp = r.i64("transaction_last_update_timestamp_ms")?;
    let txn_start_timestamp = r.i64("transaction_start_timestamp_ms")?;
    r.skip_tagged_fields()?;
    if state == TxnState::Empty {
        partitions.clear();
    }
    Ok(TxnLogValue {
        producer_id,
        producer_epoch,
        txn_timeout_ms,
        state,
        partitions,
        txn_last_update_timestamp,
        txn_start_timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(state: TxnState) -> TxnLogValue {
        TxnLogValue {
            producer_id: 4001,
            producer_epoch: 7,
            txn_timeout_ms: 60_000,
            state,
            partitions: if state == TxnState::Empty {
                BTreeSet::new()
            } else {
                BTreeSet::from([("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)])
            },
            txn_last_update_timestamp: 1_700_000_000_123,
            txn_start_timestamp: 1_700_000_000_000,
        }
    }

    #[test]
    fn key_is_kafkas_version_0() {
        assert_eq!(&key("tx")[..], &[0, 0, 0, 2, b't', b'x']);
        assert_eq!(decode_key(&key("tx")).unwrap().as_deref(), Some("tx"));
        assert_eq!(decode_key(&[0, 9, 0, 0]).unwrap(), None);
    }

    #[test]
    fn value_round_trips_in_every_state() {
        for state in [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ] {
            let v = sample(state);
            assert_eq!(decode_value(&value(&v)).unwrap(), v, "{state:?}");
        }
    }

    #[test]
    fn value_v0_layout_matches_kafka() {
        let v = sample(TxnState::Empty);
        let bytes = value(&v);
        // version, pid, epoch, timeout, status, null partitions (-1), two timestamps.
        assert_eq!(bytes.len(), 2 + 8 + 2 + 4 + 1 + 4 + 8 + 8);
        assert_eq!(&bytes[17..21], &(-1i32).to_be_bytes());
    }

    #[test]
    fn flexible_value_v1_is_read() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i64(9);
        b.put_i16(3);
        b.put_i32(1000);
        b.put_i8(TxnState::Ongoing.id());
        b.put_u8(2); // compact array of 1
        b.put_u8(2); // compact string "t"
        b.put_slice(b"t");
        b.put_u8(2); // one partition id
        b.put_i32(5);
        b.put_u8(0); // partition schema tagged fields
        b.put_i64(11);
        b.put_i64(10);
        b.put_u8(1); // one tagged field: ClientTransactionVersion
        b.put_u8(2);
        b.put_u8(2);
        b.put_i16(0);
        let v = decode_value(&b).unwrap();
        assert_eq!(v.producer_id, 9);
        assert_eq!(v.state, TxnState::Ongoing);
        assert_eq!(v.partitions, BTreeSet::from([("t".to_string(), 5)]));
        assert_eq!((v.txn_last_update_timestamp, v.txn_start_timestamp), (11, 10));
    }

    #[test]
    fn truncated_value_is_an_error() {
        let bytes = value(&sample(TxnState::Ongoing));
        for cut in 0..bytes.len() {
            assert!(decode_value(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
