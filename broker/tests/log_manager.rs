//! The partition log through its public API: a real LogManager on a temp dir, on both storage backends.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType as KTimestampType,
};
use spate_broker::config::StorageBackendKind;
use spate_broker::log::{LogConfig, LogError, LogManager, LogManagerOptions, TopicPartition, UnifiedLog};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One batch of `count` records with the given first timestamp (each record 1 ms later) and `value_size` bytes each.
fn batch(count: usize, timestamp: i64, value_size: usize) -> Bytes {
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
            sequence: i as i32 - 1,
            timestamp: timestamp + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_size])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .unwrap();
    buf.freeze()
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

fn small_segments() -> LogConfig {
    LogConfig { segment_bytes: 4096, index_interval_bytes: 512, file_delete_delay_ms: 0, ..LogConfig::default() }
}

/// Offsets of every record in `bytes`.
fn offsets(bytes: &Bytes) -> Vec<i64> {
    let mut buf = bytes.clone();
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        out.extend(set.records.iter().map(|r| r.offset));
    }
    out
}

async fn read_all(log: &UnifiedLog) -> Vec<i64> {
    let mut next = log.log_start_offset();
    let mut all = Vec::new();
    while next < log.high_watermark() {
        let bytes = log.read(next, 1 << 20, true).await.unwrap();
        let got = offsets(&bytes);
        assert!(!got.is_empty(), "read at {next} returned nothing");
        all.extend(got.iter().filter(|o| **o >= next));
        next = *got.last().unwrap() + 1;
    }
    all
}

async fn append_n(log: &UnifiedLog, batches: usize, records: usize) {
    for _ in 0..batches {
        log.append_as_leader(batch(records, now_ms(), 100), 1).await.unwrap();
    }
}

#[tokio::test]
async fn append_and_read_round_trip_across_segment_rolls() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), small_segments()).await.unwrap();
        for i in 0..60 {
            let info = log.append_as_leader(batch(3, now_ms(), 100), 1).await.unwrap();
            assert_eq!((info.first_offset, info.last_offset, info.num_records), (i * 3, i * 3 + 2, 3));
            assert_eq!(info.log_append_time, -1);
        }
        assert!(log.segment_count() > 5, "{kind:?}: {} segments", log.segment_count());
        assert_eq!(log.high_watermark(), 180);
        assert_eq!(read_all(&log).await, (0..180).collect::<Vec<_>>());
        // A fetch from the middle of a batch returns that whole batch.
        let mid = log.read(100, 1 << 20, true).await.unwrap();
        assert_eq!(offsets(&mid)[0], 99);
        // Reading at the end is empty; past it is out of range.
        assert!(log.read(180, 1000, true).await.unwrap().is_empty());
        assert!(matches!(log.read(181, 1000, true).await, Err(LogError::OffsetOutOfRange { .. })));
        // Kafka file names.
        assert!(dir.path().join("orders-0/00000000000000000000.log").exists());
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn small_max_bytes_returns_whole_batches_or_one_when_min_one() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), LogConfig::default()).await.unwrap();
        append_n(&log, 3, 2).await;
        let one = log.read(0, 10, true).await.unwrap();
        assert_eq!(offsets(&one), vec![0, 1]);
        assert!(log.read(0, 10, false).await.unwrap().is_empty());
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn restart_after_clean_shutdown_keeps_everything() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        {
            let manager = open(dir.path(), kind);
            let log = manager.get_or_create_log(&tp(), small_segments()).await.unwrap();
            append_n(&log, 30, 2).await;
            manager.shutdown().await.unwrap();
        }
        assert!(dir.path().join(".kafka_cleanshutdown").exists());
        let manager = open(dir.path(), kind);
        assert_eq!(manager.partition_dirs_on_disk(), vec![tp()]);
        let log = manager.get_or_create_log(&tp(), small_segments()).await.unwrap();
        assert_eq!(log.log_end_offset(), 60);
        assert_eq!(read_all(&log).await, (0..60).collect::<Vec<_>>());
        let info = log.append_as_leader(batch(1, now_ms(), 10), 1).await.unwrap();
        assert_eq!(info.first_offset, 60);
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn torn_tail_is_cut_and_appends_resume_at_the_right_offset() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let segment;
        {
            let manager = open(dir.path(), kind);
            let log = manager
                .get_or_create_log(&tp(), LogConfig { flush_messages: 1, ..LogConfig::default() })
                .await
                .unwrap();
            append_n(&log, 10, 2).await;
            segment = dir.path().join("orders-0/00000000000000000000.log");
            // No shutdown: as after kill -9. Then a torn write: half a batch at the end.
            drop(log);
            drop(manager);
        }
        let torn = batch(5, now_ms(), 100);
        let mut data = std::fs::read(&segment).unwrap();
        let good_len = data.len();
        data.extend_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(&segment, &data).unwrap();

        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), LogConfig::default()).await.unwrap();
        assert_eq!(log.log_end_offset(), 20, "{kind:?}");
        assert_eq!(std::fs::metadata(&segment).unwrap().len() as usize, good_len);
        let info = log.append_as_leader(batch(1, now_ms(), 10), 1).await.unwrap();
        assert_eq!(info.first_offset, 20);
        assert_eq!(read_all(&log).await, (0..21).collect::<Vec<_>>());
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn garbage_after_the_last_batch_is_cut_on_unclean_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let manager = open(dir.path(), StorageBackendKind::Std);
        let log = manager.get_or_create_log(&tp(), LogConfig::default()).await.unwrap();
        append_n(&log, 4, 1).await;
    }
    let segment = dir.path().join("orders-0/00000000000000000000.log");
    let mut data = std::fs::read(&segment).unwrap();
    data.extend_from_slice(&[0xAB; 300]);
    std::fs::write(&segment, &data).unwrap();
    let manager = open(dir.path(), StorageBackendKind::Std);
    let log = manager.get_or_create_log(&tp(), LogConfig::default()).await.unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(read_all(&log).await, vec![0, 1, 2, 3]);
}

#[tokio::test]
async fn deleted_index_is_rebuilt() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { index_interval_bytes: 256, ..LogConfig::default() };
        {
            let manager = open(dir.path(), kind);
            let log = manager.get_or_create_log(&tp(), config.clone()).await.unwrap();
            append_n(&log, 40, 2).await;
            manager.shutdown().await.unwrap();
        }
        let index = dir.path().join("orders-0/00000000000000000000.index");
        let before = std::fs::read(&index).unwrap();
        assert!(before.len() >= 16 && before.len() % 8 == 0, "index has {} bytes", before.len());
        std::fs::remove_file(&index).unwrap();
        std::fs::remove_file(dir.path().join("orders-0/00000000000000000000.timeindex")).unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), config).await.unwrap();
        assert_eq!(std::fs::read(&index).unwrap(), before);
        let mid = log.read(51, 1 << 20, true).await.unwrap();
        assert_eq!(offsets(&mid)[0], 50);
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn retention_ms_deletes_whole_closed_segments_and_moves_log_start() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let config = LogConfig { retention_ms: 60_000, ..small_segments() };
        let log = manager.get_or_create_log(&tp(), config).await.unwrap();
        // Old records (10 minutes ago) fill a few segments, then fresh ones.
        for _ in 0..20 {
            log.append_as_leader(batch(3, now_ms() - 600_000, 100), 1).await.unwrap();
        }
        let old_segments = log.segment_count();
        for _ in 0..20 {
            log.append_as_leader(batch(3, now_ms(), 100), 1).await.unwrap();
        }
        assert!(old_segments >= 2);
        let deleted = log.delete_old_segments().await.unwrap();
        assert!(deleted >= old_segments - 1, "{kind:?}: deleted {deleted} of {old_segments} old segments");
        let first = log.segment_base_offsets()[0];
        assert_eq!(log.log_start_offset(), first);
        assert!(first > 0 && first <= 60);
        assert!(matches!(log.read(0, 100, true).await, Err(LogError::OffsetOutOfRange { .. })));
        assert_eq!(log.log_end_offset(), 120);
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn retention_bytes_keeps_the_log_near_the_limit() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let config = LogConfig { retention_bytes: 8192, retention_ms: -1, ..small_segments() };
        let log = manager.get_or_create_log(&tp(), config).await.unwrap();
        append_n(&log, 60, 3).await;
        let before = log.size_in_bytes();
        assert!(before > 16_384);
        assert!(log.delete_old_segments().await.unwrap() > 0);
        let after = log.size_in_bytes();
        assert!((8192..8192 + 4096 + 1024).contains(&after), "{kind:?}: {before} -> {after}");
        assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn segment_ms_rolls_the_active_segment() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let config = LogConfig { segment_ms: 50, ..LogConfig::default() };
        let log = manager.get_or_create_log(&tp(), config).await.unwrap();
        append_n(&log, 1, 1).await;
        assert!(!log.roll_if_due().await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        manager.run_retention_once().await;
        assert_eq!(log.segment_base_offsets(), vec![0, 1], "{kind:?}");
        // An empty active segment does not roll.
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        assert!(!log.roll_if_due().await.unwrap());
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn delete_records_before_moves_log_start_and_drops_segments() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), small_segments()).await.unwrap();
        append_n(&log, 40, 3).await;
        let segments = log.segment_count();
        assert_eq!(log.delete_records_before(50).await.unwrap(), 50);
        assert!(log.segment_count() < segments);
        assert_eq!(log.log_start_offset(), 50);
        let first = log.read(50, 1 << 20, true).await.unwrap();
        assert!(offsets(&first).contains(&50));
        assert!(matches!(log.read(49, 100, true).await, Err(LogError::OffsetOutOfRange { .. })));
        assert!(matches!(log.delete_records_before(121).await, Err(LogError::OffsetOutOfRange { .. })));
        assert_eq!(log.delete_records_before(10).await.unwrap(), 50, "never moves backwards");
        manager.shutdown().await.unwrap();
        // The new log start offset survives a restart.
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), small_segments()).await.unwrap();
        assert_eq!(log.log_start_offset(), 50);
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn offsets_for_timestamps() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), small_segments()).await.unwrap();
        let base = now_ms() - 100_000;
        // Batch i holds records with timestamps base + 10*i, base + 10*i + 1.
        for i in 0..50 {
            log.append_as_leader(batch(2, base + 10 * i, 100), 3).await.unwrap();
        }
        let at = |ts| {
            let log = log.clone();
            async move { log.fetch_offset_for_timestamp(ts).await.unwrap() }
        };
        let hit = at(base + 201).await.unwrap();
        assert_eq!((hit.offset, hit.timestamp, hit.leader_epoch), (41, base + 201, 3));
        let between = at(base + 205).await.unwrap();
        assert_eq!((between.offset, between.timestamp), (42, base + 210));
        assert_eq!(at(base).await.unwrap().offset, 0);
        assert_eq!(at(base + 10_000).await, None);
        assert_eq!(at(-2).await.unwrap().offset, 0);
        assert_eq!(at(-1).await.unwrap().offset, 100);
        let max = at(-3).await.unwrap();
        assert_eq!((max.offset, max.timestamp), (99, base + 491));
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn log_append_time_topic_stamps_batches() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path(), StorageBackendKind::Std);
    let config =
        LogConfig { message_timestamp_type: spate_broker::log::TimestampType::LogAppendTime, ..LogConfig::default() };
    let log = manager.get_or_create_log(&tp(), config).await.unwrap();
    let before = now_ms();
    let info = log.append_as_leader(batch(2, 5, 10), 0).await.unwrap();
    assert!(info.log_append_time >= before);
    let mut bytes = log.read(0, 1 << 20, true).await.unwrap();
    let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
    assert!(sets[0].records.iter().all(|r| r.timestamp_type == KTimestampType::LogAppend));
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_batches_are_refused_and_leave_the_log_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path(), StorageBackendKind::Std);
    let log = manager.get_or_create_log(&tp(), LogConfig::default()).await.unwrap();
    append_n(&log, 1, 1).await;
    let mut corrupt = BytesMut::from(&batch(2, now_ms(), 10)[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(log.append_as_leader(corrupt.freeze(), 0).await, Err(LogError::CorruptRecord(_))));
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.size_in_bytes() as usize, batch(1, 0, 100).len());
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn deleted_log_folder_is_renamed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path(), StorageBackendKind::Std);
    let log = manager.get_or_create_log(&tp(), LogConfig::default()).await.unwrap();
    append_n(&log, 1, 1).await;
    manager.delete_log(&tp()).await.unwrap();
    assert!(manager.get_log(&tp()).is_none());
    assert!(!dir.path().join("orders-0").exists());
    assert!(matches!(log.append_as_leader(batch(1, now_ms(), 1), 0).await, Err(LogError::Offline(_))));
    for _ in 0..50 {
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with("-delete"));
        if leftovers.count() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let recreated = manager.get_or_create_log(&tp(), LogConfig::default()).await.unwrap();
    assert_eq!(recreated.log_end_offset(), 0);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_storage_threads_serve_many_partitions_with_flush_per_message() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = LogManager::open_with_threads(dir.path(), options(kind), 2).unwrap();
        let config = LogConfig { flush_messages: 1, ..LogConfig::default() };
        let mut tasks = Vec::new();
        for p in 0..6 {
            let log = manager.get_or_create_log(&TopicPartition::new("many", p), config.clone()).await.unwrap();
            tasks.push(tokio::spawn(async move {
                for _ in 0..20 {
                    log.append_as_leader(batch(1, now_ms(), 50), 0).await.unwrap();
                }
                log
            }));
        }
        for task in tasks {
            let log = task.await.unwrap();
            assert_eq!(log.log_end_offset(), 20);
            assert_eq!(log.recovery_point(), 20, "flush.messages=1 fsyncs every append");
        }
        manager.shutdown().await.unwrap();
    }
}
