//! Idempotent producers through the public log API: a real LogManager on a temp dir, on both storage backends.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

mod log_support;

use log_support::*;

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
