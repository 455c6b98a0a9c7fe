//! Shared set-up for the log-level integration tests: record batches built with kafka-protocol's encoder,
//! a LogManager on a temp dir per storage backend, and reading records back.
#![allow(dead_code, clippy::unwrap_used)]

pub use std::path::Path;
pub use std::sync::Arc;

pub use bytes::{Bytes, BytesMut};
pub use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType as KTimestampType,
};
pub use spate_broker::config::StorageBackendKind;
pub use spate_broker::log::{LogConfig, LogManager, LogManagerOptions, TopicPartition, UnifiedLog};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Producer fields of a test batch.
#[derive(Clone, Copy)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub transactional: bool,
}

pub const PLAIN: Producer = Producer { id: -1, epoch: -1, transactional: false };

/// One batch of (key, value) records from `producer` starting at sequence `seq` (ignored without a producer id).
pub fn batch_kv(producer: Producer, seq: i32, kvs: &[(&str, Option<&str>)], compression: Compression) -> Bytes {
    let ts = now_ms();
    let records: Vec<Record> = kvs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: producer.transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.id,
            producer_epoch: producer.epoch,
            timestamp_type: KTimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch unless offset - sequence stays constant.
            sequence: if producer.id >= 0 { seq + i as i32 } else { i as i32 - 1 },
            timestamp: ts + i as i64,
            key: Some(Bytes::from(k.to_string())),
            value: v.map(|v| Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression }).unwrap();
    buf.freeze()
}

/// `count` records keyed k0.. with value "v".
pub fn batch_n(producer: Producer, seq: i32, count: usize) -> Bytes {
    let keys: Vec<String> = (0..count).map(|i| format!("k{i}")).collect();
    let kvs: Vec<(&str, Option<&str>)> = keys.iter().map(|k| (k.as_str(), Some("v"))).collect();
    batch_kv(producer, seq, &kvs, Compression::None)
}

/// The kinds to run each test on: std always, io_uring when the kernel allows it.
pub fn backends() -> Vec<StorageBackendKind> {
    let mut kinds = vec![StorageBackendKind::Std];
    let dir = tempfile::tempdir().unwrap();
    match LogManager::open(dir.path(), options(StorageBackendKind::IoUring)) {
        Ok(_) => kinds.push(StorageBackendKind::IoUring),
        Err(e) => println!("skipping the io_uring backend: {e}"),
    }
    kinds
}

pub fn options(backend: StorageBackendKind) -> LogManagerOptions {
    LogManagerOptions { backend, max_decompressed_batch_bytes: 64 << 20 }
}

pub fn open(dir: &Path, backend: StorageBackendKind) -> Arc<LogManager> {
    LogManager::open(dir, options(backend)).unwrap()
}

pub fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

/// Every record (offset, key, value, is control) from `from` to the high watermark.
pub async fn read_records(log: &UnifiedLog, from: i64) -> Vec<(i64, String, Option<String>, bool)> {
    let mut next = from.max(log.log_start_offset());
    let mut out = Vec::new();
    while next < log.high_watermark() {
        let mut bytes = log.read(next, 1 << 20, true).await.unwrap();
        if bytes.is_empty() {
            break;
        }
        let mut last = next;
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for r in set.records {
                if r.offset >= next {
                    out.push((
                        r.offset,
                        r.key.map(|k| String::from_utf8_lossy(&k).into_owned()).unwrap_or_default(),
                        r.value.map(|v| String::from_utf8_lossy(&v).into_owned()),
                        r.control,
                    ));
                }
                last = last.max(r.offset);
            }
        }
        // Batch ends may lie past their last record after compaction: step over the whole fetched range.
        let mut raw = log.read(next, 1 << 20, true).await.unwrap();
        let mut end = last + 1;
        while raw.len() >= 61 {
            let base = i64::from_be_bytes(raw[0..8].try_into().unwrap());
            let len = i32::from_be_bytes(raw[8..12].try_into().unwrap()) as usize;
            let delta = i32::from_be_bytes(raw[23..27].try_into().unwrap()) as i64;
            end = end.max(base + delta + 1);
            let _ = raw.split_to(12 + len);
        }
        next = end;
    }
    out
}

pub fn config_default() -> LogConfig {
    LogConfig::default()
}
