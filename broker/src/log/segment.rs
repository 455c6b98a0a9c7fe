//! One segment of a partition log, as Kafka's `LogSegment`: `<base offset>.log` with its `.index` and
//! `.timeindex`, named by the 20-digit zero-padded base offset (`00000000000000000000.log`).
//!
//! The segment knows which of its bytes are *committed* (`size`): whole batches whose write completed. Readers
//! never look past it, and a failed or torn write beyond it is cut off (here at run time, by recovery after a
//! crash). Writes themselves go through the storage backend (`crate::io`); reads use `pread` directly.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use super::log_validator::ValidatedBatch;
use super::offset_index::OffsetIndex;
use super::record_batch::{read_i32, read_i64, BATCH_HEADER_SIZE, LOG_OVERHEAD};
use super::time_index::TimeIndex;
use super::transaction_index::TransactionIndex;

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
pub const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Every file a segment has, in the order they are renamed.
pub const SEGMENT_SUFFIXES: [&str; 4] = [INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX, LOG_SUFFIX];
/// Appended to a segment's file names when retention removes it, before the files are deleted.
pub const DELETED_SUFFIX: &str = ".deleted";
/// A segment being written by the log cleaner.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// A cleaned segment, complete and fsynced, about to replace the segments it was cleaned from.
pub const SWAP_SUFFIX: &str = ".swap";

/// `dir/<20-digit base offset><suffix>`, Kafka's segment file naming.
pub fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// Batch header fields needed to walk a segment without reading record data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub position: u64,
    pub base_offset: i64,
    pub size: u64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// Mutable bookkeeping of a segment, guarded by one short-lived lock.
#[derive(Debug)]
pub struct SegmentState {
    /// Bytes of whole, completely written batches.
    pub size: u64,
    /// One past the last offset in the segment (the base offset when empty).
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    pub bytes_since_last_index_entry: u64,
    /// Largest batch max timestamp in the segment, -1 when none.
    pub max_timestamp: i64,
    /// Last offset of the batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// The first batch's max timestamp (Kafka's `rollingBasedTimestamp`), `None` while the segment is empty or
    /// its first batch carries no timestamp. A record timestamp, not a clock reading: `segment.ms` is measured
    /// from it against the incoming batch's timestamp, never against the wall clock.
    pub rolling_based_ms: Option<i64>,
    /// Wall-clock time the segment was created or loaded (Kafka's `created`): `segment.ms` is measured from it
    /// when there is no `rolling_based_ms`.
    pub created_ms: i64,
    /// The segment's data reached the disk up to here (fsynced).
    pub flushed_size: u64,
    /// Aborted transactions whose ABORT marker is in this segment (`.txnindex`).
    pub txn_index: TransactionIndex,
}

impl SegmentState {
    /// How far `segment.ms` has run for this segment when a batch whose largest timestamp is
    /// `incoming_max_timestamp` arrives (Kafka's `timeWaitedForRoll`). Record timestamps are compared with record
    /// timestamps: producers may set any time (event time from last year is common), and comparing it with the
    /// wall clock would roll a new segment for every append, each holding four open files.
    pub fn time_waited_for_roll(&self, now_ms: i64, incoming_max_timestamp: i64) -> i64 {
        match self.rolling_based_ms {
            Some(first) => incoming_max_timestamp.saturating_sub(first),
            None => now_ms.saturating_sub(self.created_ms),
        }
    }

    /// The first batch's timestamp, else the creation time: when the segment's data started to arrive.
    pub fn first_data_ms(&self) -> i64 {
        self.rolling_based_ms.unwrap_or(self.created_ms)
    }
}

/// The topic limits and clock a roll decision is made with.
#[derive(Debug, Clone, Copy)]
pub struct RollLimits {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub now_ms: i64,
}

pub struct LogSegment {
    base_offset: i64,
    dir: Mutex<PathBuf>,
    log_file: Arc<File>,
    index_file: Arc<File>,
    time_index_file: Arc<File>,
    txn_index_file: Arc<File>,
    state: Mutex<SegmentState>,
}

/// The open files of a segment; `txn_index_existed` is false when the `.txnindex` had to be created.
pub struct SegmentFiles {
    pub log: File,
    pub index: File,
    pub time_index: File,
    pub txn_index: File,
    pub txn_index_existed: bool,
}

impl std::fmt::Debug for LogSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSegment").field("base_offset", &self.base_offset).field("size", &self.size()).finish()
    }
}

fn open_rw(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(create).truncate(false).open(path)
}

impl LogSegment {
    /// Creates an empty segment (or empties a stray one with the same name).
    pub fn create(dir: &Path, base_offset: i64, index_max_bytes: u64, now_ms: i64) -> io::Result<LogSegment> {
        let log_file = open_rw(&segment_file(dir, base_offset, LOG_SUFFIX), true)?;
        log_file.set_len(0)?;
        let index_file = open_rw(&segment_file(dir, base_offset, INDEX_SUFFIX), true)?;
        index_file.set_len(0)?;
        let time_index_file = open_rw(&segment_file(dir, base_offset, TIME_INDEX_SUFFIX), true)?;
        time_index_file.set_len(0)?;
        let txn_index_file = open_rw(&segment_file(dir, base_offset, TXN_INDEX_SUFFIX), true)?;
        txn_index_file.set_len(0)?;
        sync_dir(dir)?;
        let files = SegmentFiles {
            log: log_file,
            index: index_file,
            time_index: time_index_file,
            txn_index: txn_index_file,
            txn_index_existed: true,
        };
        Ok(LogSegment::from_parts(
            dir,
            base_offset,
            files,
            SegmentState {
                size: 0,
                next_offset: base_offset,
                offset_index: OffsetIndex::new(base_offset, index_max_bytes),
                time_index: TimeIndex::new(base_offset, index_max_bytes),
                bytes_since_last_index_entry: 0,
                max_timestamp: -1,
                offset_of_max_timestamp: base_offset,
                rolling_based_ms: None,
                created_ms: now_ms,
                flushed_size: 0,
                txn_index: TransactionIndex::new(),
            },
        ))
    }

    /// Opens an existing segment's files (creating missing index files empty); `state` comes from loading or
    /// recovery.
    pub fn open_files(dir: &Path, base_offset: i64) -> io::Result<SegmentFiles> {
        let txn_path = segment_file(dir, base_offset, TXN_INDEX_SUFFIX);
        let txn_index_existed = txn_path.exists();
        Ok(SegmentFiles {
            log: open_rw(&segment_file(dir, base_offset, LOG_SUFFIX), false)?,
            index: open_rw(&segment_file(dir, base_offset, INDEX_SUFFIX), true)?,
            time_index: open_rw(&segment_file(dir, base_offset, TIME_INDEX_SUFFIX), true)?,
            txn_index: open_rw(&txn_path, true)?,
            txn_index_existed,
        })
    }

    pub fn from_parts(dir: &Path, base_offset: i64, files: SegmentFiles, state: SegmentState) -> LogSegment {
        LogSegment {
            base_offset,
            dir: Mutex::new(dir.to_path_buf()),
            log_file: Arc::new(files.log),
            index_file: Arc::new(files.index),
            time_index_file: Arc::new(files.time_index),
            txn_index_file: Arc::new(files.txn_index),
            state: Mutex::new(state),
        }
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn log_file(&self) -> &Arc<File> {
        &self.log_file
    }
    pub fn index_file(&self) -> &Arc<File> {
        &self.index_file
    }
    pub fn time_index_file(&self) -> &Arc<File> {
        &self.time_index_file
    }
    pub fn txn_index_file(&self) -> &Arc<File> {
        &self.txn_index_file
    }
    pub fn log_path(&self) -> PathBuf {
        segment_file(&self.dir.lock(), self.base_offset, LOG_SUFFIX)
    }
    pub fn state(&self) -> parking_lot::MutexGuard<'_, SegmentState> {
        self.state.lock()
    }
    pub fn size(&self) -> u64 {
        self.state.lock().size
    }
    pub fn next_offset(&self) -> i64 {
        self.state.lock().next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.state.lock().max_timestamp
    }
    pub fn is_empty(&self) -> bool {
        self.state.lock().size == 0
    }

    /// Records batches just written at `position`: sizes, offsets, timestamps and sparse index entries, exactly as
    /// Kafka's `LogSegment.append` places them (offset entry = batch's last offset -> batch's position).
    pub fn on_appended(&self, position: u64, batches: &[ValidatedBatch], index_interval_bytes: u64) {
        let mut s = self.state.lock();
        let mut pos = position;
        for b in batches {
            if s.size == 0 && pos == 0 && b.max_timestamp >= 0 {
                s.rolling_based_ms = Some(b.max_timestamp);
            }
            if b.max_timestamp > s.max_timestamp {
                s.max_timestamp = b.max_timestamp;
                s.offset_of_max_timestamp = b.last_offset;
            }
            if s.bytes_since_last_index_entry > index_interval_bytes {
                s.offset_index.append(b.last_offset, pos as u32);
                let (ts, off) = (s.max_timestamp, s.offset_of_max_timestamp);
                s.time_index.maybe_append(ts, off, false);
                s.bytes_since_last_index_entry = 0;
            }
            pos += b.size as u64;
            s.bytes_since_last_index_entry += b.size as u64;
            s.next_offset = b.last_offset + 1;
        }
        s.size = pos;
    }

    /// Kafka's `onBecomeInactiveSegment` / close: records the max timestamp in the time index so it is known
    /// after a restart.
    pub fn seal_time_index(&self) {
        let mut s = self.state.lock();
        if s.max_timestamp >= 0 {
            let (ts, off) = (s.max_timestamp, s.offset_of_max_timestamp);
            s.time_index.maybe_append(ts, off, true);
        }
    }

    /// True when appending `incoming` bytes whose last offset is `last_offset` and largest timestamp
    /// `incoming_max_timestamp` must go to a new segment (Kafka's `LogSegment.shouldRoll`).
    pub fn should_roll(
        &self,
        incoming: u64,
        last_offset: i64,
        incoming_max_timestamp: i64,
        limits: RollLimits,
    ) -> bool {
        let s = self.state.lock();
        if s.size == 0 {
            return false;
        }
        s.size.saturating_add(incoming) > limits.segment_bytes
            || (limits.segment_ms >= 0
                && s.time_waited_for_roll(limits.now_ms, incoming_max_timestamp) > limits.segment_ms)
            || s.offset_index.is_full()
            || s.time_index.is_full()
            || last_offset.saturating_sub(self.base_offset) > i64::from(u32::MAX)
            || s.size.saturating_add(incoming) > u64::from(u32::MAX)
    }

    /// Reads the header of the batch at `position`, if a whole header lies before `end`.
    pub fn read_header(&self, position: u64, end: u64) -> io::Result<Option<BatchHeader>> {
        read_header_at(&self.log_file, position, end)
    }

    /// Position of the first batch whose last offset is >= `target`, scanning from the offset index's hint, within
    /// the committed bytes `end`.
    pub fn find_position(&self, target: i64, end: u64) -> io::Result<Option<BatchHeader>> {
        let (_, start) = self.state.lock().offset_index.lookup(target);
        let mut pos = u64::from(start);
        while let Some(h) = self.read_header(pos, end)? {
            if h.last_offset >= target {
                return Ok(Some(h));
            }
            pos += h.size;
        }
        Ok(None)
    }

    /// Reads whole batches starting at the one containing `fetch_offset`: up to `max_bytes`, at least one batch
    /// when `min_one`, and none whose base offset is at or past `limit_offset` (the high watermark).
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one: bool,
        limit_offset: i64,
    ) -> io::Result<Option<Bytes>> {
        let end = self.size();
        let Some(first) = self.find_position(fetch_offset, end)? else { return Ok(None) };
        if first.base_offset >= limit_offset {
            return Ok(Some(Bytes::new()));
        }
        let mut total = 0u64;
        let mut pos = first.position;
        while let Some(h) = self.read_header(pos, end)? {
            if h.base_offset >= limit_offset {
                break;
            }
            if total + h.size > max_bytes as u64 && !(total == 0 && min_one) {
                break;
            }
            total += h.size;
            pos += h.size;
        }
        let mut buf = BytesMut::zeroed(total as usize);
        self.log_file.read_exact_at(&mut buf, first.position)?;
        Ok(Some(buf.freeze()))
    }

    /// Reads exactly the batch described by `header`.
    pub fn read_batch(&self, header: &BatchHeader) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; header.size as usize];
        self.log_file.read_exact_at(&mut buf, header.position)?;
        Ok(buf)
    }

    /// Renames the segment's files to `<name>.deleted`; open handles keep working for readers still using them.
    pub fn rename_for_delete(&self) -> io::Result<()> {
        let dir = self.dir.lock().clone();
        for suffix in SEGMENT_SUFFIXES {
            let from = segment_file(&dir, self.base_offset, suffix);
            let to = segment_file(&dir, self.base_offset, &format!("{suffix}{DELETED_SUFFIX}"));
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Removes the `.deleted` files.
    pub fn delete_renamed_files(dir: &Path, base_offset: i64) {
        for suffix in SEGMENT_SUFFIXES {
            let path = segment_file(dir, base_offset, &format!("{suffix}{DELETED_SUFFIX}"));
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete segment file");
                }
            }
        }
    }

    /// Points the segment at its partition folder's new location (after the folder was renamed for deletion).
    pub fn set_dir(&self, dir: &Path) {
        *self.dir.lock() = dir.to_path_buf();
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.lock().clone()
    }
}

/// Reads one batch header at `position` of `file` if a whole header lies before `end`.
pub fn read_header_at(file: &File, position: u64, end: u64) -> io::Result<Option<BatchHeader>> {
    if position + BATCH_HEADER_SIZE as u64 > end {
        return Ok(None);
    }
    let mut h = [0u8; BATCH_HEADER_SIZE];
    file.read_exact_at(&mut h, position)?;
    let length = read_i32(&h, 8);
    let size = LOG_OVERHEAD as u64 + u64::try_from(length).unwrap_or(0);
    if length < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32 || position + size > end {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("committed batch at position {position} has invalid length {length}"),
        ));
    }
    let base_offset = read_i64(&h, 0);
    Ok(Some(BatchHeader {
        position,
        base_offset,
        size,
        last_offset: base_offset + i64::from(read_i32(&h, 23)),
        max_timestamp: read_i64(&h, 35),
    }))
}

/// fsyncs a directory so that file creations and renames in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::test_support::batch_with;
    use crate::log::record_batch::RecordBatchMut;
    use kafka_protocol::records::Compression;

    /// Writes `n` single-record batches directly and registers them, as UnifiedLog does after a write.
    fn fill(seg: &LogSegment, n: i64, interval: u64) -> Vec<u64> {
        let mut positions = Vec::new();
        for i in 0..n {
            let mut b = batch_with(1, 1000 + i, Compression::None);
            let offset = seg.base_offset() + i;
            RecordBatchMut::new(&mut b).unwrap().set_base_offset(offset);
            let pos = seg.size();
            seg.log_file().write_all_at(&b, pos).unwrap();
            let vb = ValidatedBatch {
                position: 0,
                size: b.len(),
                base_offset: offset,
                last_offset: offset,
                max_timestamp: 1000 + i,
            };
            seg.on_appended(pos, &[vb], interval);
            positions.push(pos);
        }
        positions
    }

    #[test]
    fn files_use_kafka_twenty_digit_names() {
        let dir = tempfile::tempdir().unwrap();
        LogSegment::create(dir.path(), 42, 1024, 0).unwrap();
        for name in ["00000000000000000042.log", "00000000000000000042.index", "00000000000000000042.timeindex"] {
            assert!(dir.path().join(name).exists(), "{name}");
        }
    }

    #[test]
    fn sparse_index_and_positions_follow_interval() {
        let dir = tempfile::tempdir().unwrap();
        let seg = LogSegment::create(dir.path(), 100, 1 << 20, 0).unwrap();
        let positions = fill(&seg, 50, 200);
        let s = seg.state();
        assert!(s.offset_index.len() > 5 && s.offset_index.len() < 50, "{}", s.offset_index.len());
        assert_eq!(s.next_offset, 150);
        assert_eq!(s.max_timestamp, 1049);
        drop(s);
        for target in [100, 117, 149] {
            let h = seg.find_position(target, seg.size()).unwrap().unwrap();
            assert_eq!(h.base_offset, target);
            assert_eq!(h.position, positions[(target - 100) as usize]);
        }
        assert!(seg.find_position(150, seg.size()).unwrap().is_none());
    }

    #[test]
    fn read_returns_whole_batches_within_limits() {
        let dir = tempfile::tempdir().unwrap();
        let seg = LogSegment::create(dir.path(), 0, 1 << 20, 0).unwrap();
        let positions = fill(&seg, 10, 4096);
        let batch_size = (positions[1] - positions[0]) as usize;
        let data = seg.read(3, batch_size * 2 + 5, false, i64::MAX).unwrap().unwrap();
        assert_eq!(data.len(), batch_size * 2);
        let data = seg.read(3, 1, false, i64::MAX).unwrap().unwrap();
        assert!(data.is_empty());
        let data = seg.read(3, 1, true, i64::MAX).unwrap().unwrap();
        assert_eq!(data.len(), batch_size);
        let data = seg.read(3, usize::MAX / 2, false, 5).unwrap().unwrap();
        assert_eq!(data.len(), batch_size * 2);
    }

    #[test]
    fn rolls_on_size_time_and_offset_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let seg = LogSegment::create(dir.path(), 0, 1 << 20, 0).unwrap();
        let limits = |segment_bytes, segment_ms, now_ms| RollLimits { segment_bytes, segment_ms, now_ms };
        assert!(!seg.should_roll(10_000, 0, 5, limits(100, 10, 1_000_000)), "empty segments never roll");
        fill(&seg, 1, 4096);
        let first = seg.state().rolling_based_ms.unwrap();
        assert!(seg.should_roll(10_000, 1, first, limits(100, i64::MAX, 0)));
        assert!(seg.should_roll(1, 1, first + 11, limits(1 << 30, 10, 0)));
        assert!(!seg.should_roll(1, 1, first + 5, limits(1 << 30, 10, 0)));
        assert!(seg.should_roll(1, i64::from(u32::MAX) + 1, first, limits(1 << 30, i64::MAX, 0)));
    }

    #[test]
    fn segment_ms_compares_record_times_not_the_wall_clock() {
        let dir = tempfile::tempdir().unwrap();
        let seg = LogSegment::create(dir.path(), 0, 1 << 20, 0).unwrap();
        fill(&seg, 1, 4096);
        let first = seg.state().rolling_based_ms.unwrap();
        let week = 7 * 24 * 3600 * 1000;
        // Event time from long ago, appended today: the records span nothing, so no roll.
        let far_future_clock = first + 400 * 24 * 3600 * 1000;
        assert!(!seg.should_roll(
            1,
            1,
            first,
            RollLimits { segment_bytes: 1 << 30, segment_ms: week, now_ms: far_future_clock }
        ));
        assert!(seg.should_roll(
            1,
            1,
            first + week + 1,
            RollLimits { segment_bytes: 1 << 30, segment_ms: week, now_ms: 0 }
        ));
    }

    #[test]
    fn segment_ms_counts_from_creation_until_a_batch_has_a_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let seg = LogSegment::create(dir.path(), 0, 1 << 20, 1_000).unwrap();
        assert_eq!(seg.state().time_waited_for_roll(1_500, -1), 500);
    }
}
