//! Idempotent producers through the public log API: a real LogManager on a temp dir, on both storage backends.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType as KTimestampType,
};
use spate_broker::config::StorageBackendKind;
use spate_broker::log::{LogConfig, LogManager, LogManagerOptions, TopicPartition, UnifiedLog};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Producer fields of a test batch.
#[derive(Clone, Copy)]
struct Producer {
    id: i64,
    epoch: i16,
    transactional: bool,
}

const PLAIN: Producer = Producer { id: -1, epoch: -1, transactional: false };

/// One batch of (key, value) records from `producer` starting at sequence `seq` (ignored without a producer id).
fn batch_kv(producer: Producer, seq: i32, kvs: &[(&str, Option<&str>)], compression: Compression) -> Bytes {
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
fn batch_n(producer: Producer, seq: i32, count: usize) -> Bytes {
    let keys: Vec<String> = (0..count).map(|i| format!("k{i}")).collect();
    let kvs: Vec<(&str, Option<&str>)> = keys.iter().map(|k| (k.as_str(), Some("v"))).collect();
    batch_kv(producer, seq, &kvs, Compression::None)
}

/// The kinds to run each test on: std always, io_uring when the kernel allows it.
fn backends() -> Vec<StorageBackendKind> {
    let mut kinds = vec![StorageBackendKind::Std];
    let dir = tempfile::tempdir().unwrap();
    match LogManager::open(dir.path(), options(StorageBackendKind::IoUring)) {
        Ok(_) => kinds.push(StorageBackendKind::IoUring),
        Err(e) => println!("skipping the io_uring backend: {e}"),
    }
    kinds
}

fn options(backend: StorageBackendKind) -> LogManagerOptions {
    LogManagerOptions { backend, max_decompressed_batch_bytes: 64 << 20 }
}

fn open(dir: &Path, backend: StorageBackendKind) -> Arc<LogManager> {
    LogManager::open(dir, options(backend)).unwrap()
}

fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

/// Every record (offset, key, value, is control) from `from` to the high watermark.
async fn read_records(log: &UnifiedLog, from: i64) -> Vec<(i64, String, Option<String>, bool)> {
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

fn config_default() -> LogConfig {
    LogConfig::default()
}

use spate_broker::log::LogError;

const P1: Producer = Producer { id: 1000, epoch: 0, transactional: false };

#[tokio::test]
async fn duplicates_are_acknowledged_with_original_offsets_and_not_written() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), config_default()).await.unwrap();
        let first = batch_n(P1, 0, 3);
        let info = log.append_as_leader(first.clone(), 1).await.unwrap();
        assert_eq!((info.first_offset, info.last_offset, info.duplicate), (0, 2, false));
        log.append_as_leader(batch_n(P1, 3, 2), 1).await.unwrap();
        log.append_as_leader(batch_n(PLAIN, 0, 1), 1).await.unwrap();
        let size = log.size_in_bytes();
        // A retry of the first batch (same epoch and sequence range): original offsets, nothing written.
        let dup = log.append_as_leader(first, 1).await.unwrap();
        assert!(dup.duplicate, "{kind:?}");
        assert_eq!((dup.first_offset, dup.last_offset), (0, 2));
        let dup2 = log.append_as_leader(batch_n(P1, 3, 2), 1).await.unwrap();
        assert_eq!((dup2.first_offset, dup2.last_offset, dup2.duplicate), (3, 4, true));
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(log.size_in_bytes(), size);
        assert_eq!(read_records(&log, 0).await.len(), 6);
        // The producer continues where it was.
        let next = log.append_as_leader(batch_n(P1, 5, 1), 1).await.unwrap();
        assert_eq!((next.first_offset, next.duplicate), (6, false));
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn gaps_and_stale_epochs_are_refused_without_writing() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), config_default()).await.unwrap();
        log.append_as_leader(batch_n(P1, 0, 2), 1).await.unwrap();
        let err = log.append_as_leader(batch_n(P1, 5, 1), 1).await.unwrap_err();
        assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{kind:?}: {err:?}");
        // A batch overlapping the last one without matching it exactly is out of order too.
        let err = log.append_as_leader(batch_n(P1, 1, 2), 1).await.unwrap_err();
        assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{err:?}");
        assert_eq!(log.log_end_offset(), 2);
        // Epoch bump: must start at sequence 0.
        let bumped = Producer { epoch: 1, ..P1 };
        let err = log.append_as_leader(batch_n(bumped, 2, 1), 1).await.unwrap_err();
        assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{err:?}");
        log.append_as_leader(batch_n(bumped, 0, 1), 1).await.unwrap();
        // The old epoch is fenced.
        let err = log.append_as_leader(batch_n(P1, 2, 1), 1).await.unwrap_err();
        assert!(matches!(err, LogError::InvalidProducerEpoch(_)), "{err:?}");
        // Requests are all-or-nothing: a good batch followed by a gap writes nothing.
        let mut two = bytes::BytesMut::from(&batch_n(bumped, 1, 1)[..]);
        two.extend_from_slice(&batch_n(bumped, 7, 1));
        let err = log.append_as_leader(two.freeze(), 1).await.unwrap_err();
        assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{err:?}");
        assert_eq!(log.log_end_offset(), 3);
        log.append_as_leader(batch_n(bumped, 1, 1), 1).await.unwrap();
        // An unknown producer id may start at any sequence (KIP-360: the log never says UNKNOWN_PRODUCER_ID).
        let other = Producer { id: 2000, epoch: 4, transactional: false };
        log.append_as_leader(batch_n(other, 42, 1), 1).await.unwrap();
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn sequences_wrap_at_i32_max() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path(), StorageBackendKind::Std);
    let log = manager.get_or_create_log(&tp(), config_default()).await.unwrap();
    log.append_as_leader(batch_n(P1, i32::MAX - 1, 2), 1).await.unwrap();
    let err = log.append_as_leader(batch_n(P1, 1, 1), 1).await.unwrap_err();
    assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{err:?}");
    log.append_as_leader(batch_n(P1, 0, 1), 1).await.unwrap();
    manager.shutdown().await.unwrap();
}

/// Appends enough idempotent batches to roll a few segments; returns the first batch (for a later retry).
async fn fill(log: &UnifiedLog, batches: i32) -> Bytes {
    let first = batch_n(P1, 0, 4);
    log.append_as_leader(first.clone(), 1).await.unwrap();
    for i in 1..batches {
        log.append_as_leader(batch_n(P1, i * 4, 4), 1).await.unwrap();
    }
    first
}

fn small() -> LogConfig {
    LogConfig { segment_bytes: 400, file_delete_delay_ms: 0, ..LogConfig::default() }
}

#[tokio::test]
async fn deduplication_survives_a_clean_restart() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let last;
        {
            let manager = open(dir.path(), kind);
            let log = manager.get_or_create_log(&tp(), small()).await.unwrap();
            fill(&log, 20).await;
            last = batch_n(P1, 19 * 4, 4);
            assert!(log.segment_count() > 2);
            manager.shutdown().await.unwrap();
        }
        // Kafka's snapshot files: one per roll and one at shutdown (at the log end offset).
        assert!(dir.path().join("orders-0/00000000000000000080.snapshot").exists());
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), small()).await.unwrap();
        let dup = log.append_as_leader(last, 1).await.unwrap();
        assert_eq!((dup.first_offset, dup.duplicate), (76, true), "{kind:?}");
        let err = log.append_as_leader(batch_n(P1, 90, 1), 1).await.unwrap_err();
        assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{err:?}");
        assert_eq!(log.append_as_leader(batch_n(P1, 80, 1), 1).await.unwrap().first_offset, 80);
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn deduplication_survives_an_unclean_restart_by_replaying_after_the_snapshot() {
    for kind in backends() {
        for delete_snapshots in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            {
                let manager = open(dir.path(), kind);
                let config = LogConfig { flush_messages: 1, ..small() };
                let log = manager.get_or_create_log(&tp(), config).await.unwrap();
                fill(&log, 20).await;
                // No shutdown: as after kill -9.
            }
            assert!(!dir.path().join(".kafka_cleanshutdown").exists());
            if delete_snapshots {
                for entry in std::fs::read_dir(dir.path().join("orders-0")).unwrap() {
                    let path = entry.unwrap().path();
                    if path.extension().is_some_and(|e| e == "snapshot") {
                        std::fs::remove_file(path).unwrap();
                    }
                }
            }
            let manager = open(dir.path(), kind);
            let log = manager.get_or_create_log(&tp(), small()).await.unwrap();
            assert_eq!(log.log_end_offset(), 80);
            // The last five batches are known again (the ones after the last snapshot were replayed).
            for i in 15..20 {
                let dup = log.append_as_leader(batch_n(P1, i * 4, 4), 1).await.unwrap();
                assert_eq!((dup.first_offset, dup.duplicate), (i64::from(i) * 4, true), "{kind:?} {delete_snapshots}");
            }
            let err = log.append_as_leader(batch_n(P1, 81, 1), 1).await.unwrap_err();
            assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{err:?}");
            assert_eq!(log.log_end_offset(), 80);
            manager.shutdown().await.unwrap();
        }
    }
}

#[tokio::test]
async fn idle_producers_expire_after_producer_id_expiration_ms() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path(), StorageBackendKind::Std);
    let config = LogConfig { producer_id_expiration_ms: 50, ..LogConfig::default() };
    let log = manager.get_or_create_log(&tp(), config).await.unwrap();
    log.append_as_leader(batch_n(P1, 0, 1), 1).await.unwrap();
    assert_eq!(log.active_producers(), vec![(1000, 0)]);
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    assert_eq!(log.remove_expired_producers(now_ms()), 1);
    // Forgotten: any sequence is accepted again.
    log.append_as_leader(batch_n(P1, 17, 1), 1).await.unwrap();
    manager.shutdown().await.unwrap();
}
