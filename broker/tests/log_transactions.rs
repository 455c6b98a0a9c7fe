//! Transactions in the log through the public API: markers, last stable offset, aborted transaction index and
//! read_committed reads, on a real LogManager on both storage backends.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

mod log_support;

use log_support::*;

use spate_broker::log::{AbortedTxn, LogError};

const T1: Producer = Producer { id: 1, epoch: 0, transactional: true };
const T2: Producer = Producer { id: 2, epoch: 0, transactional: true };

/// T1: [0,1] committed; T2: [2,3] + [5] aborted; plain [4]; markers at 6 (T1 commit) and 7 (T2 abort).
async fn committed_and_aborted(log: &UnifiedLog) {
    log.append_as_leader(batch_n(T1, 0, 2), 1).await.unwrap();
    assert_eq!(log.last_stable_offset(), 0);
    log.append_as_leader(batch_n(T2, 0, 2), 1).await.unwrap();
    log.append_as_leader(batch_n(PLAIN, 0, 1), 1).await.unwrap();
    log.append_as_leader(batch_n(T2, 2, 1), 1).await.unwrap();
    assert_eq!(log.last_stable_offset(), 0);
    assert_eq!(log.ongoing_transactions(), vec![(0, 1), (2, 2)]);
    let commit = log.append_control_marker(1, 0, true, 0, 1).await.unwrap();
    assert_eq!(commit.first_offset, 6);
    assert_eq!(log.last_stable_offset(), 2);
    let abort = log.append_control_marker(2, 0, false, 0, 1).await.unwrap();
    assert_eq!(abort.first_offset, 7);
    assert_eq!(log.last_stable_offset(), 8);
    assert_eq!(log.high_watermark(), 8);
}

fn aborted_t2() -> Vec<AbortedTxn> {
    vec![AbortedTxn { producer_id: 2, first_offset: 2, last_offset: 7, last_stable_offset: 8 }]
}

#[tokio::test]
async fn last_stable_offset_follows_open_transactions_and_read_committed_stops_there() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), config_default()).await.unwrap();
        log.append_as_leader(batch_n(PLAIN, 0, 2), 1).await.unwrap();
        log.append_as_leader(batch_n(T1, 0, 3), 1).await.unwrap();
        log.append_as_leader(batch_n(PLAIN, 0, 1), 1).await.unwrap();
        assert_eq!((log.last_stable_offset(), log.high_watermark()), (2, 6), "{kind:?}");
        let (data, aborted) = log.read_committed(0, 1 << 20, true).await.unwrap();
        let mut data2 = data.clone();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut data2).unwrap();
        assert_eq!(sets.iter().map(|s| s.records.len()).sum::<usize>(), 2);
        assert!(aborted.is_empty());
        assert!(log.read_committed(2, 1 << 20, true).await.unwrap().0.is_empty());
        // ListOffsets latest: the LSO for read_committed, the high watermark otherwise.
        let latest = log.fetch_offset_for_timestamp_with_isolation(-1, true).await.unwrap().unwrap();
        assert_eq!(latest.offset, 2);
        assert_eq!(log.fetch_offset_for_timestamp(-1).await.unwrap().unwrap().offset, 6);
        // Timestamp look-ups for read_committed find nothing at or past the LSO.
        assert!(log.fetch_offset_for_timestamp_with_isolation(now_ms() - 60_000, true).await.unwrap().is_some());
        let mut rx = log.subscribe();
        rx.borrow_and_update();
        log.append_control_marker(1, 0, true, 0, 1).await.unwrap();
        assert!(rx.has_changed().unwrap(), "a marker wakes waiting fetches");
        assert_eq!(log.last_stable_offset(), 7);
        let (data, aborted) = log.read_committed(2, 1 << 20, true).await.unwrap();
        assert!(!data.is_empty() && aborted.is_empty());
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn read_committed_returns_the_aborted_transactions_in_range() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), config_default()).await.unwrap();
        committed_and_aborted(&log).await;
        let (_, aborted) = log.read_committed(0, 1 << 20, true).await.unwrap();
        assert_eq!(aborted, aborted_t2(), "{kind:?}");
        // A fetch of the first batch only (ends before T2 starts) gets none.
        let (one, aborted) = log.read_committed(0, 10, true).await.unwrap();
        assert!(!one.is_empty());
        assert!(aborted.is_empty(), "{aborted:?}");
        // Kafka's .txnindex: one 34-byte entry.
        let index = std::fs::read(dir.path().join("orders-0/00000000000000000000.txnindex")).unwrap();
        assert_eq!(index.len(), 34);
        assert_eq!(&index[2..10], &2i64.to_be_bytes());
        // Markers are control records in the log.
        let records = read_records(&log, 0).await;
        assert_eq!(records.iter().filter(|r| r.3).map(|r| r.0).collect::<Vec<_>>(), vec![6, 7]);
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn markers_are_fenced_by_producer_and_coordinator_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path(), StorageBackendKind::Std);
    let log = manager.get_or_create_log(&tp(), config_default()).await.unwrap();
    let bumped = Producer { epoch: 3, ..T1 };
    log.append_as_leader(batch_n(bumped, 0, 1), 1).await.unwrap();
    log.append_control_marker(1, 3, true, 5, 1).await.unwrap();
    let err = log.append_control_marker(1, 2, false, 5, 1).await.unwrap_err();
    assert!(matches!(err, LogError::InvalidProducerEpoch(_)), "{err:?}");
    let err = log.append_control_marker(1, 3, false, 4, 1).await.unwrap_err();
    assert!(matches!(err, LogError::TransactionCoordinatorFenced(_)), "{err:?}");
    // Non-transactional data while a transaction is open is refused.
    log.append_as_leader(batch_n(bumped, 1, 1), 1).await.unwrap();
    let err = log.append_as_leader(batch_n(Producer { transactional: false, ..bumped }, 2, 1), 1).await.unwrap_err();
    assert!(matches!(err, LogError::InvalidTxnState(_)), "{err:?}");
    // Clients may not write markers themselves.
    assert_eq!(log.log_end_offset(), 3);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn transaction_index_is_rebuilt_after_deleting_it() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        {
            let manager = open(dir.path(), kind);
            let log = manager.get_or_create_log(&tp(), config_default()).await.unwrap();
            committed_and_aborted(&log).await;
            manager.shutdown().await.unwrap();
        }
        let index = dir.path().join("orders-0/00000000000000000000.txnindex");
        std::fs::remove_file(&index).unwrap();
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), config_default()).await.unwrap();
        let (_, aborted) = log.read_committed(0, 1 << 20, true).await.unwrap();
        assert_eq!(aborted, aborted_t2(), "{kind:?}");
        assert_eq!(std::fs::read(&index).unwrap().len(), 34);
        manager.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn open_transactions_and_aborted_index_survive_unclean_restarts() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        {
            let manager = open(dir.path(), kind);
            let config = LogConfig { flush_messages: 1, segment_bytes: 300, ..LogConfig::default() };
            let log = manager.get_or_create_log(&tp(), config).await.unwrap();
            committed_and_aborted(&log).await;
            log.append_as_leader(batch_n(PLAIN, 0, 1), 1).await.unwrap();
            log.append_as_leader(batch_n(Producer { id: 3, epoch: 0, transactional: true }, 0, 2), 1).await.unwrap();
            assert_eq!(log.last_stable_offset(), 9);
            assert!(log.segment_count() > 2, "{}", log.segment_count());
            // kill -9: no shutdown.
        }
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), config_default()).await.unwrap();
        assert_eq!((log.last_stable_offset(), log.high_watermark()), (9, 11), "{kind:?}");
        let (_, aborted) = log.read_committed(0, 1 << 20, true).await.unwrap();
        assert_eq!(aborted, aborted_t2());
        log.append_control_marker(3, 0, false, 0, 1).await.unwrap();
        assert_eq!(log.last_stable_offset(), 12);
        let (_, aborted) = log.read_committed(9, 1 << 20, true).await.unwrap();
        assert_eq!(aborted.iter().map(|a| (a.producer_id, a.first_offset)).collect::<Vec<_>>(), vec![(3, 9)]);
        manager.shutdown().await.unwrap();
        // And after a clean restart too.
        let manager = open(dir.path(), kind);
        let log = manager.get_or_create_log(&tp(), config_default()).await.unwrap();
        assert_eq!(log.last_stable_offset(), 12);
        let (_, aborted) = log.read_committed(0, 1 << 20, true).await.unwrap();
        assert_eq!(aborted, aborted_t2());
        let (_, aborted) = log.read_committed(9, 1 << 20, true).await.unwrap();
        assert_eq!(aborted.iter().map(|a| (a.producer_id, a.first_offset)).collect::<Vec<_>>(), vec![(3, 9)]);
        manager.shutdown().await.unwrap();
    }
}
