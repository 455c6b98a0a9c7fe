//! A full disk: appends fail with `LogError::Io`, nothing partial becomes visible, earlier data stays readable,
//! and appends work again once space is freed. Uses a real 2 MiB tmpfs (`mount -t tmpfs -o size=2m`), which needs
//! root; where mounting is refused the test prints why and passes without running.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType as KTimestampType,
};
use spate_broker::config::StorageBackendKind;
use spate_broker::log::{LogConfig, LogError, LogManager, LogManagerOptions, TopicPartition};

struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount() -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount refused: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { path: dir.path().to_path_buf(), _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn batch(value_size: usize) -> Bytes {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: KTimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now,
        key: None,
        value: Some(Bytes::from(vec![7u8; value_size])),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .unwrap();
    buf.freeze()
}

async fn run(kind: StorageBackendKind, root: &Path) {
    let data = root.join(format!("{kind:?}"));
    let filler = root.join(format!("filler-{kind:?}"));
    // Take 700 KiB now so there is something to free later.
    std::fs::write(&filler, vec![0u8; 700 * 1024]).unwrap();
    let manager =
        LogManager::open(&data, LogManagerOptions { backend: kind, max_decompressed_batch_bytes: 1 << 20 }).unwrap();
    let tp = TopicPartition::new("full", 0);
    let config = LogConfig { segment_bytes: 64 << 20, flush_messages: 1, ..LogConfig::default() };
    let log = manager.get_or_create_log(&tp, config).await.unwrap();

    let mut appended = 0i64;
    let error = loop {
        match log.append_as_leader(batch(60 * 1024), 0).await {
            Ok(info) => {
                assert_eq!(info.first_offset, appended);
                appended += 1;
                assert!(appended < 100, "the 2 MiB tmpfs never filled up");
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(error, LogError::Io { .. }), "{kind:?}: {error:?}");
    assert!(appended > 0);
    assert_eq!(log.log_end_offset(), appended, "a failed append must not move the end offset");
    let segment = data.join("full-0/00000000000000000000.log");
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), log.size_in_bytes(), "partial write was cut off");

    // Everything acknowledged is still readable.
    let mut bytes = log.read(0, 16 << 20, true).await.unwrap();
    let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
    assert_eq!(sets.len() as i64, appended);

    // Still full: fails again, cleanly.
    assert!(matches!(log.append_as_leader(batch(60 * 1024), 0).await, Err(LogError::Io { .. })));

    std::fs::remove_file(&filler).unwrap();
    let info = log.append_as_leader(batch(60 * 1024), 0).await.unwrap();
    assert_eq!(info.first_offset, appended);
    manager.delete_log(&tp).await.unwrap();
    manager.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn full_disk_fails_appends_cleanly_and_recovers_when_space_is_freed() {
    let tmpfs = match Tmpfs::mount() {
        Ok(t) => t,
        Err(reason) => {
            println!("skipping disk-full test: {reason}");
            return;
        }
    };
    run(StorageBackendKind::Std, &tmpfs.path).await;
    match io_uring_available() {
        Ok(()) => run(StorageBackendKind::IoUring, &tmpfs.path).await,
        Err(e) => println!("skipping the io_uring backend: {e}"),
    }
}

fn io_uring_available() -> Result<(), String> {
    spate_broker::io::uring::probe().map_err(|e| e.to_string())
}
