//! Log compaction through the public API: a real LogManager on a temp dir, on both storage backends.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

mod log_support;

use log_support::*;

use std::collections::HashMap;

fn compacted() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        cleanup_policy_compact: true,
        cleanup_policy_delete: false,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

/// Writes `rounds` versions of keys key0..key{keys}; value = "r<round>". Returns the expected latest values.
async fn write_versions(
    log: &UnifiedLog,
    keys: usize,
    rounds: usize,
    compression: Compression,
) -> HashMap<String, String> {
    let mut latest = HashMap::new();
    for round in 0..rounds {
        let names: Vec<String> = (0..keys).map(|k| format!("key{k}")).collect();
        let value = format!("r{round}");
        let kvs: Vec<(&str, Option<&str>)> = names.iter().map(|k| (k.as_str(), Some(value.as_str()))).collect();
        for chunk in kvs.chunks(3) {
            log.append_as_leader(batch_kv(PLAIN, 0, chunk, compression), 1).await.unwrap();
        }
        for k in names {
            latest.insert(k, value.clone());
        }
    }
    latest
}

/// key -> value of the last record per key in the log, and the number of records per key.
async fn latest_per_key(log: &UnifiedLog) -> (HashMap<String, Option<String>>, HashMap<String, usize>) {
    let mut latest = HashMap::new();
    let mut counts = HashMap::new();
    let mut last_offset = -1;
    for (offset, key, value, control) in read_records(log, 0).await {
        assert!(offset > last_offset, "offsets increase");
        last_offset = offset;
        if control {
            continue;
        }
        *counts.entry(key.clone()).or_insert(0) += 1;
        latest.insert(key, value);
    }
    (latest, counts)
}

#[tokio::test]
async fn compaction_keeps_the_newest_value_per_key_across_restarts() {
    for kind in backends() {
        for compression in [Compression::None, Compression::Zstd] {
            let dir = tempfile::tempdir().unwrap();
            let expected;
            let end;
            {
                let manager = open(dir.path(), kind);
                let log = manager.get_or_create_log(&tp(), compacted()).await.unwrap();
                expected = write_versions(&log, 10, 8, compression).await;
                end = log.log_end_offset();
                let segments = log.segment_count();
                let size = log.size_in_bytes();
                assert!(segments > 3, "{segments}");
                let stats = manager.clean_log_now(&tp()).await.unwrap().expect("cleaned");
                assert!(stats.records_kept < stats.records_read, "{stats:?}");
                assert!(log.size_in_bytes() < size);
                assert_eq!(log.log_end_offset(), end);
                let (latest, counts) = latest_per_key(&log).await;
                for (k, v) in &expected {
                    assert_eq!(latest.get(k), Some(&Some(v.clone())), "{kind:?} {compression:?} {k}");
                }
                // Only the active segment may still hold older versions.
                assert!(counts.values().all(|c| *c <= 2), "{counts:?}");
                assert_eq!(manager.cleaner_checkpoint(&tp()), log.segment_base_offsets().last().copied());
                manager.shutdown().await.unwrap();
            }
            assert!(dir.path().join("cleaner-offset-checkpoint").exists());
            let manager = open(dir.path(), kind);
            let log = manager.get_or_create_log(&tp(), compacted()).await.unwrap();
            assert_eq!(log.log_end_offset(), end);
            let (latest, _) = latest_per_key(&log).await;
            for (k, v) in &expected {
                assert_eq!(latest.get(k), Some(&Some(v.clone())), "after restart {k}");
            }
            // Appends continue at the same offset.
            let info =
                log.append_as_leader(batch_kv(PLAIN, 0, &[("key0", Some("new"))], compression), 1).await.unwrap();
            assert_eq!(info.first_offset, end);
            manager.shutdown().await.unwrap();
        }
    }
}

#[tokio::test]
async fn compaction_with_concurrent_appends_keeps_the_newest_value() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), compacted()).await.unwrap();
        write_versions(&log, 20, 3, Compression::None).await;
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                let mut latest = HashMap::new();
                for i in 0..300 {
                    let key = format!("key{}", i % 20);
                    let value = format!("w{i}");
                    log.append_as_leader(batch_kv(PLAIN, 0, &[(&key, Some(&value))], Compression::None), 1)
                        .await
                        .unwrap();
                    latest.insert(key, value);
                    if i % 25 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                latest
            })
        };
        for _ in 0..6 {
            manager.clean_log_now(&tp()).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let expected = writer.await.unwrap();
        manager.clean_log_now(&tp()).await.unwrap();
        let (latest, _) = latest_per_key(&log).await;
        for (k, v) in &expected {
            assert_eq!(latest.get(k), Some(&Some(v.clone())), "{kind:?} {k}");
        }
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn tombstones_are_removed_after_delete_retention_ms() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let config = LogConfig { delete_retention_ms: 300, ..compacted() };
        let log = manager.get_or_create_log(&tp(), config).await.unwrap();
        write_versions(&log, 6, 3, Compression::None).await;
        log.append_as_leader(batch_kv(PLAIN, 0, &[("key1", None), ("key2", None)], Compression::None), 1)
            .await
            .unwrap();
        write_versions(&log, 1, 10, Compression::None).await; // pushes the tombstones out of the active segment
        manager.clean_log_now(&tp()).await.unwrap();
        let (latest, counts) = latest_per_key(&log).await;
        assert_eq!(latest.get("key1"), Some(&None), "{kind:?}: tombstone kept before delete.retention.ms");
        assert_eq!(counts.get("key1"), Some(&1));
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        // Nothing new is dirty, but the delete horizon has passed: the cleaner runs and drops the tombstones.
        assert_eq!(manager.run_cleaner_once().await, 1);
        let (latest, _) = latest_per_key(&log).await;
        assert!(!latest.contains_key("key1") && !latest.contains_key("key2"), "{latest:?}");
        assert_eq!(latest.get("key3"), Some(&Some("r2".to_string())));
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn producer_state_and_aborted_transactions_survive_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path(), StorageBackendKind::Std);
    let log = manager.get_or_create_log(&tp(), compacted()).await.unwrap();
    let idem = Producer { id: 7, epoch: 0, transactional: false };
    let txn = Producer { id: 8, epoch: 0, transactional: true };
    log.append_as_leader(batch_kv(idem, 0, &[("a", Some("1")), ("b", Some("1"))], Compression::None), 1).await.unwrap();
    log.append_as_leader(batch_kv(txn, 0, &[("a", Some("aborted"))], Compression::None), 1).await.unwrap();
    log.append_control_marker(8, 0, false, 0, 1).await.unwrap();
    write_versions(&log, 3, 8, Compression::None).await; // a and b overwritten? no: keys key0..key2
    log.append_as_leader(batch_kv(idem, 2, &[("b", Some("2"))], Compression::None), 1).await.unwrap();
    write_versions(&log, 3, 8, Compression::None).await;
    manager.clean_log_now(&tp()).await.unwrap();
    manager.clean_log_now(&tp()).await.unwrap();
    let (latest, _) = latest_per_key(&log).await;
    assert_eq!(latest.get("a"), Some(&Some("1".to_string())), "the aborted write is gone, the committed one stays");
    assert_eq!(latest.get("b"), Some(&Some("2".to_string())));
    // The idempotent producer's last batch is retained: its retry is still a duplicate, its next batch follows.
    let dup = log.append_as_leader(batch_kv(idem, 2, &[("b", Some("2"))], Compression::None), 1).await.unwrap();
    assert!(dup.duplicate);
    log.append_as_leader(batch_kv(idem, 3, &[("c", Some("1"))], Compression::None), 1).await.unwrap();
    manager.shutdown().await.unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_crash_in_the_middle_of_cleaning_loses_nothing() {
    for kind in backends() {
        let before = tempfile::tempdir().unwrap();
        let expected;
        {
            let manager = open(before.path(), kind);
            let log = manager.get_or_create_log(&tp(), compacted()).await.unwrap();
            expected = write_versions(&log, 10, 8, Compression::None).await;
            manager.shutdown().await.unwrap();
        }
        // Clean a copy, to get the cleaned segments the cleaner writes.
        let after = tempfile::tempdir().unwrap();
        copy_dir(before.path(), after.path());
        let bases_before: Vec<i64>;
        let bases_after: Vec<i64>;
        {
            let manager = open(after.path(), kind);
            let log = manager.get_or_create_log(&tp(), compacted()).await.unwrap();
            bases_before = log.segment_base_offsets();
            manager.clean_log_now(&tp()).await.unwrap().unwrap();
            bases_after = log.segment_base_offsets();
            manager.shutdown().await.unwrap();
        }
        let name = |base: i64, suffix: &str| format!("orders-0/{base:020}{suffix}");
        // Crash states: (a) cleaned files half written; (b) every group renamed to .swap, the first group's
        // sources already renamed .deleted, the rest not; (c) the same with only the .log swapped, index swaps
        // still .cleaned.
        for state in ["cleaned", "swap", "swap-log-only"] {
            let crash = tempfile::tempdir().unwrap();
            copy_dir(before.path(), crash.path());
            let active = *bases_before.last().unwrap();
            for base in bases_after.iter().filter(|b| **b != active) {
                for suffix in [".log", ".index", ".timeindex", ".txnindex"] {
                    let extra = match (state, suffix) {
                        ("cleaned", _) => ".cleaned",
                        ("swap-log-only", s) if s != ".log" => ".cleaned",
                        _ => ".swap",
                    };
                    let src = after.path().join(name(*base, suffix));
                    let mut data = std::fs::read(&src).unwrap();
                    if state == "cleaned" && suffix == ".log" {
                        data.truncate(data.len() / 2);
                    }
                    std::fs::write(crash.path().join(name(*base, &format!("{suffix}{extra}"))), data).unwrap();
                }
            }
            if state != "cleaned" {
                let first = crash.path().join(name(bases_before[0], ".log"));
                std::fs::rename(&first, crash.path().join(name(bases_before[0], ".log.deleted"))).unwrap();
            }
            std::fs::remove_file(crash.path().join(".kafka_cleanshutdown")).unwrap();
            let manager = open(crash.path(), kind);
            let log = manager.get_or_create_log(&tp(), compacted()).await.unwrap();
            let (latest, _) = latest_per_key(&log).await;
            for (k, v) in &expected {
                assert_eq!(latest.get(k), Some(&Some(v.clone())), "{kind:?} {state}: {k}");
            }
            if state == "cleaned" {
                assert_eq!(log.segment_base_offsets(), bases_before);
            } else {
                assert_eq!(log.segment_base_offsets(), bases_after, "{state}");
            }
            let leftovers: Vec<_> = std::fs::read_dir(crash.path().join("orders-0"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned") || n.ends_with(".deleted"))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
            manager.shutdown().await.unwrap();
        }
    }
}

#[tokio::test]
async fn keyless_records_are_refused_on_compacted_topics() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path(), StorageBackendKind::Std);
    let log = manager.get_or_create_log(&tp(), compacted()).await.unwrap();
    let records = [Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: KTimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms(),
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    }];
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .unwrap();
    let err = log.append_as_leader(buf.freeze(), 1).await.unwrap_err();
    assert!(matches!(err, spate_broker::log::LogError::InvalidRecord(_)), "{err:?}");
    manager.shutdown().await.unwrap();
}
