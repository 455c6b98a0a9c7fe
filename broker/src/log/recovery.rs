//! Loading a partition folder at start-up, and recovering what an unclean shutdown left behind (Kafka's
//! `LogLoader` + `LogSegment.recover`).
//!
//! Rules:
//! - Leftovers of interrupted operations (`.deleted`, `.cleaned`, `.swap` files) and index files without a `.log`
//!   are deleted.
//! - After a clean shutdown every segment is trusted: indexes are loaded and sanity-checked, and only the bytes
//!   after the last offset-index entry are walked to find the segment's end.
//! - After an unclean shutdown every segment holding offsets at or after the recovery point (all of them when there
//!   is no checkpoint) is re-validated batch by batch from its start: framing, magic 2, CRC-32C, offsets
//!   increasing. The segment is truncated at the first batch that fails, and every later segment is deleted, as
//!   Kafka does; its indexes are rebuilt from the surviving batches.
//! - A segment whose index is missing or fails its sanity check is recovered the same way, whatever the shutdown.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::offset_index::OffsetIndex;
use super::record_batch::{RecordBatch, BATCH_HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2};
use super::segment::{
    read_header_at, segment_file, sync_dir, LogSegment, SegmentState, CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX,
    LOG_SUFFIX, SEGMENT_SUFFIXES, SWAP_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX,
};
use super::time_index::TimeIndex;
use super::transaction_index::TransactionIndex;

/// Read-ahead of the recovery scanner.
const SCAN_CHUNK: usize = 8 << 20;

/// The segments of a loaded log, oldest first, and its end offset.
pub struct LoadedLog {
    pub segments: Vec<LogSegment>,
    pub log_end_offset: i64,
    /// True when any segment was truncated or deleted by recovery.
    pub truncated: bool,
    /// Base offset of the first segment whose `.txnindex` must be rebuilt from the log (the segment was
    /// re-validated by recovery, or its transaction index was missing or corrupt).
    pub rebuild_txn_index_from: Option<i64>,
}

/// What recovery found in one segment.
pub(crate) struct ScanOutcome {
    pub state: SegmentState,
    pub valid_bytes: u64,
    pub file_len: u64,
    pub reason: Option<String>,
}

/// Loads (and when needed recovers) the log in `dir`. `recovery_point` is `None` after a clean shutdown, else the
/// offset from which data may not have reached the disk (0 when unknown).
pub fn load_log(
    dir: &Path,
    index_max_bytes: u64,
    index_interval_bytes: u64,
    recovery_point: Option<i64>,
    now_ms: i64,
) -> io::Result<LoadedLog> {
    complete_interrupted_swaps(dir)?;
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(DELETED_SUFFIX) || name.ends_with(CLEANED_SUFFIX) || name.ends_with(SWAP_SUFFIX) {
            tracing::info!(dir = %dir.display(), file = %name, "deleting leftover file");
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        if let Some(stem) = name.strip_suffix(LOG_SUFFIX) {
            if let Ok(base) = stem.parse::<i64>() {
                bases.push(base);
            }
        } else if let Some(stem) = name
            .strip_suffix(INDEX_SUFFIX)
            .or_else(|| name.strip_suffix(TIME_INDEX_SUFFIX))
            .or_else(|| name.strip_suffix(TXN_INDEX_SUFFIX))
        {
            if let Ok(base) = stem.parse::<i64>() {
                index_files.push((base, entry.path()));
            }
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            tracing::info!(file = %path.display(), "deleting index file without a log segment");
            let _ = std::fs::remove_file(path);
        }
    }

    let mut segments: Vec<LogSegment> = Vec::new();
    let mut truncated = false;
    let mut rebuild_txn_index_from: Option<i64> = None;
    let mut expected_next: Option<i64> = None;
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let needs_recovery = match recovery_point {
            None => false,
            Some(rp) => next_base.is_none_or(|nb| nb > rp),
        };
        let files = LogSegment::open_files(dir, base)?;
        let (log_file, index_file, time_index_file) = (&files.log, &files.index, &files.time_index);
        let txn_index = if files.txn_index_existed {
            match read_all(&files.txn_index).map(|b| TransactionIndex::from_bytes(&b)) {
                Ok(Ok(index)) => Some(index),
                Ok(Err(e)) => {
                    tracing::warn!(segment = %segment_file(dir, base, LOG_SUFFIX).display(), error = %e,
                        "transaction index is corrupt; rebuilding it");
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            tracing::info!(segment = %segment_file(dir, base, LOG_SUFFIX).display(),
                "transaction index is missing; rebuilding it");
            None
        };
        let txn_index = match txn_index {
            Some(index) => index,
            None => {
                rebuild_txn_index_from.get_or_insert(base);
                TransactionIndex::new()
            }
        };
        let loaded = if needs_recovery {
            None
        } else {
            match load_trusted(
                log_file,
                index_file,
                time_index_file,
                base,
                index_max_bytes,
                index_interval_bytes,
                now_ms,
            ) {
                Ok(state) => Some(state),
                Err(reason) => {
                    tracing::warn!(segment = %segment_file(dir, base, LOG_SUFFIX).display(), %reason,
                        "index missing or invalid; rebuilding it by recovering the segment");
                    None
                }
            }
        };
        let state = match loaded {
            Some(state) => state,
            None => {
                rebuild_txn_index_from.get_or_insert(base);
                let outcome = scan_segment(
                    log_file,
                    base,
                    expected_next.unwrap_or(base).max(base),
                    index_max_bytes,
                    index_interval_bytes,
                    now_ms,
                )?;
                if let Some(reason) = &outcome.reason {
                    tracing::warn!(
                        segment = %segment_file(dir, base, LOG_SUFFIX).display(),
                        position = outcome.valid_bytes,
                        truncated_bytes = outcome.file_len - outcome.valid_bytes,
                        %reason,
                        "found invalid batch; truncating the log segment there"
                    );
                    log_file.set_len(outcome.valid_bytes)?;
                    truncated = true;
                }
                log_file.sync_all()?;
                write_index_file(index_file, &outcome.state.offset_index.to_bytes())?;
                write_index_file(time_index_file, &outcome.state.time_index.to_bytes())?;
                let mut state = outcome.state;
                state.offset_index.mark_all_persisted();
                state.time_index.mark_all_persisted();
                state.flushed_size = state.size;
                state.txn_index = txn_index;
                state.txn_index.mark_all_persisted();
                let cut = outcome.reason.is_some();
                let segment = LogSegment::from_parts(dir, base, files, state);
                expected_next = Some(segment.next_offset());
                segments.push(segment);
                if cut {
                    for &later in &bases[i + 1..] {
                        tracing::warn!(segment = %segment_file(dir, later, LOG_SUFFIX).display(),
                            "deleting segment after a truncated one");
                        for suffix in SEGMENT_SUFFIXES {
                            let _ = std::fs::remove_file(segment_file(dir, later, suffix));
                        }
                    }
                    sync_dir(dir)?;
                    break;
                }
                continue;
            }
        };
        let mut state = state;
        state.txn_index = txn_index;
        let segment = LogSegment::from_parts(dir, base, files, state);
        expected_next = Some(segment.next_offset());
        segments.push(segment);
    }

    // A segment emptied by recovery that is not the first is useless; Kafka would keep it, harmlessly. So do we.
    let log_end_offset = segments.last().map(|s| s.next_offset()).unwrap_or(0);
    Ok(LoadedLog { segments, log_end_offset, truncated, rebuild_txn_index_from })
}

/// Finishes a log cleaner swap that a crash interrupted (Kafka's `LogLoader` swap handling). The cleaner renames a
/// cleaned segment's files `.cleaned` -> `.swap` (indexes first, the `.log` last) only once they are complete and
/// fsynced, so a `<base>.log.swap` is a whole replacement for the segments in its offset range: those are deleted
/// and the swap files take their names. Index `.swap` files without a `.log.swap` belong to a swap that never
/// started and are removed with the other leftovers.
fn complete_interrupted_swaps(dir: &Path) -> io::Result<()> {
    let log_swap_suffix = format!("{LOG_SUFFIX}{SWAP_SUFFIX}");
    let mut swaps = Vec::new();
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(&log_swap_suffix).and_then(|stem| stem.parse::<i64>().ok()) {
            swaps.push(base);
        } else if let Some(base) = name.strip_suffix(LOG_SUFFIX).and_then(|stem| stem.parse::<i64>().ok()) {
            bases.push(base);
        }
    }
    swaps.sort_unstable();
    for swap_base in swaps {
        let swap_path = segment_file(dir, swap_base, &log_swap_suffix);
        let file = File::open(&swap_path)?;
        let len = file.metadata()?.len();
        let mut pos = 0u64;
        let mut last_offset = swap_base;
        while let Ok(Some(h)) = read_header_at(&file, pos, len) {
            last_offset = last_offset.max(h.last_offset);
            pos += h.size;
        }
        for &base in bases.iter().filter(|b| **b >= swap_base && **b <= last_offset) {
            tracing::info!(dir = %dir.display(), base_offset = base, swap = swap_base,
                "deleting a segment replaced by an interrupted cleaner swap");
            for suffix in SEGMENT_SUFFIXES {
                let _ = std::fs::remove_file(segment_file(dir, base, suffix));
            }
        }
        for suffix in SEGMENT_SUFFIXES {
            let from = segment_file(dir, swap_base, &format!("{suffix}{SWAP_SUFFIX}"));
            if from.exists() {
                std::fs::rename(&from, segment_file(dir, swap_base, suffix))?;
            }
        }
        tracing::info!(dir = %dir.display(), base_offset = swap_base, last_offset, "completed an interrupted cleaner swap");
        sync_dir(dir)?;
    }
    Ok(())
}

fn write_index_file(file: &File, bytes: &[u8]) -> io::Result<()> {
    file.set_len(0)?;
    file.write_all_at(bytes, 0)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_all()
}

/// Loads a segment trusted to be intact: its indexes from their files (sanity-checked) and its end from the
/// batches after the last index entry.
fn load_trusted(
    log_file: &File,
    index_file: &File,
    time_index_file: &File,
    base: i64,
    index_max_bytes: u64,
    index_interval_bytes: u64,
    now_ms: i64,
) -> Result<SegmentState, String> {
    let log_len = log_file.metadata().map_err(|e| e.to_string())?.len();
    let index_bytes = read_all(index_file).map_err(|e| e.to_string())?;
    if index_bytes.is_empty() && log_len > index_interval_bytes.saturating_mul(2) + BATCH_HEADER_SIZE as u64 * 4 {
        // An empty index for a segment this large means the file was lost, not that it was never needed.
        return Err("offset index is empty for a non-trivial segment".to_string());
    }
    let offset_index =
        OffsetIndex::from_bytes(base, index_max_bytes, &index_bytes, log_len.max(1)).map_err(|e| e.to_string())?;
    let mut pos = offset_index.last_entry().map(|(_, p)| u64::from(p)).unwrap_or(0);
    let mut next_offset = offset_index.last_entry().map(|(o, _)| o).unwrap_or(base);
    let mut tail_max = (-1i64, base);
    let mut first_ts = None;
    if log_len > 0 {
        if let Ok(Some(h)) = read_header_at(log_file, 0, log_len) {
            first_ts = Some(h.max_timestamp);
        }
    }
    let index_pos = pos;
    while pos < log_len {
        match read_header_at(log_file, pos, log_len) {
            Ok(Some(h)) if h.base_offset >= base => {
                if h.max_timestamp > tail_max.0 {
                    tail_max = (h.max_timestamp, h.last_offset);
                }
                next_offset = h.last_offset + 1;
                pos += h.size;
            }
            Ok(_) => return Err(format!("torn batch at position {pos}")),
            Err(e) => return Err(e.to_string()),
        }
    }
    let time_bytes = read_all(time_index_file).map_err(|e| e.to_string())?;
    let time_index =
        TimeIndex::from_bytes(base, index_max_bytes, &time_bytes, next_offset).map_err(|e| e.to_string())?;
    let (mut max_timestamp, mut offset_of_max) = time_index.last_entry().unwrap_or((-1, base));
    if tail_max.0 > max_timestamp {
        (max_timestamp, offset_of_max) = tail_max;
    }
    Ok(SegmentState {
        size: log_len,
        next_offset,
        offset_index,
        time_index,
        bytes_since_last_index_entry: log_len - index_pos,
        max_timestamp,
        offset_of_max_timestamp: offset_of_max,
        rolling_based_ms: first_ts.filter(|t| *t >= 0),
        created_ms: now_ms,
        flushed_size: log_len,
        txn_index: TransactionIndex::new(),
    })
}

fn read_all(file: &File) -> io::Result<Vec<u8>> {
    let len = file.metadata()?.len() as usize;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// Walks every batch of a segment, validating it and rebuilding both indexes; stops at the first invalid batch.
pub(crate) fn scan_segment(
    log_file: &File,
    base: i64,
    first_expected_offset: i64,
    index_max_bytes: u64,
    index_interval_bytes: u64,
    now_ms: i64,
) -> io::Result<ScanOutcome> {
    let file_len = log_file.metadata()?.len();
    let mut state = SegmentState {
        size: 0,
        next_offset: base,
        offset_index: OffsetIndex::new(base, index_max_bytes),
        time_index: TimeIndex::new(base, index_max_bytes),
        bytes_since_last_index_entry: 0,
        max_timestamp: -1,
        offset_of_max_timestamp: base,
        rolling_based_ms: None,
        created_ms: now_ms,
        flushed_size: 0,
        txn_index: TransactionIndex::new(),
    };
    let mut reader = ChunkReader { file: log_file, file_len, buf: Vec::new(), buf_start: 0 };
    let mut pos = 0u64;
    let mut expected = first_expected_offset;
    let reason = loop {
        if pos >= file_len {
            break None;
        }
        let Some(prefix) = reader.get(pos, LOG_OVERHEAD)? else {
            break Some(format!("{} trailing bytes are shorter than a batch header", file_len - pos));
        };
        let length = i32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
        if length < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32 {
            break Some(format!("invalid batch length {length}"));
        }
        let size = LOG_OVERHEAD + length as usize;
        let Some(bytes) = reader.get(pos, size)? else {
            break Some(format!("batch of {size} bytes is cut short by the end of the file"));
        };
        let batch = match RecordBatch::parse_prefix(bytes, pos as usize) {
            Ok(b) => b,
            Err(e) => break Some(e.to_string()),
        };
        if batch.magic() != MAGIC_V2 {
            break Some(format!("magic {} is not 2", batch.magic()));
        }
        if !batch.is_crc_valid() {
            break Some(format!(
                "crc mismatch: stored {:#010x}, computed {:#010x}",
                batch.stored_crc(),
                batch.compute_crc()
            ));
        }
        let (first, last) = (batch.base_offset(), batch.last_offset());
        if first < expected || last < first || last - base > i64::from(u32::MAX) {
            break Some(format!("offsets [{first}, {last}] do not follow {}", expected - 1));
        }
        if state.size == 0 && batch.max_timestamp() >= 0 {
            state.rolling_based_ms = Some(batch.max_timestamp());
        }
        if batch.max_timestamp() > state.max_timestamp {
            state.max_timestamp = batch.max_timestamp();
            state.offset_of_max_timestamp = last;
        }
        if state.bytes_since_last_index_entry > index_interval_bytes {
            state.offset_index.append(last, pos as u32);
            let (ts, off) = (state.max_timestamp, state.offset_of_max_timestamp);
            state.time_index.maybe_append(ts, off, false);
            state.bytes_since_last_index_entry = 0;
        }
        state.bytes_since_last_index_entry += size as u64;
        pos += size as u64;
        state.size = pos;
        state.next_offset = last + 1;
        expected = last + 1;
    };
    Ok(ScanOutcome { valid_bytes: state.size, state, file_len, reason })
}

/// Sequential reader with a large read-ahead, so recovery does not issue one `pread` per batch.
struct ChunkReader<'a> {
    file: &'a File,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl ChunkReader<'_> {
    /// `len` bytes at `pos`, or `None` if the file ends first.
    fn get(&mut self, pos: u64, len: usize) -> io::Result<Option<&[u8]>> {
        if pos.saturating_add(len as u64) > self.file_len {
            return Ok(None);
        }
        let within = pos >= self.buf_start && pos + len as u64 <= self.buf_start + self.buf.len() as u64;
        if !within {
            let want = len.max(SCAN_CHUNK).min((self.file_len - pos) as usize);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let start = (pos - self.buf_start) as usize;
        Ok(Some(&self.buf[start..start + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::test_support::batch_with;
    use crate::log::record_batch::RecordBatchMut;
    use kafka_protocol::records::Compression;

    /// Writes `n` batches of 3 records into a fresh segment file at `base` and returns the file length after each.
    fn write_segment(dir: &Path, base: i64, n: i64) -> Vec<u64> {
        let mut data = Vec::new();
        let mut ends = Vec::new();
        for i in 0..n {
            let mut b = batch_with(3, 10_000 + i, Compression::None);
            RecordBatchMut::new(&mut b).unwrap().set_base_offset(base + 3 * i);
            data.extend_from_slice(&b);
            ends.push(data.len() as u64);
        }
        std::fs::write(segment_file(dir, base, LOG_SUFFIX), &data).unwrap();
        ends
    }

    #[test]
    fn unclean_load_truncates_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let ends = write_segment(dir.path(), 0, 10);
        let path = segment_file(dir.path(), 0, LOG_SUFFIX);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(ends[9] - 7).unwrap();
        let loaded = load_log(dir.path(), 1 << 20, 100, Some(0), 0).unwrap();
        assert!(loaded.truncated);
        assert_eq!(loaded.log_end_offset, 27);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), ends[8]);
    }

    #[test]
    fn unclean_load_truncates_at_corrupt_batch_and_drops_later_segments() {
        let dir = tempfile::tempdir().unwrap();
        let ends = write_segment(dir.path(), 0, 10);
        write_segment(dir.path(), 30, 2);
        let path = segment_file(dir.path(), 0, LOG_SUFFIX);
        let mut bytes = std::fs::read(&path).unwrap();
        let in_batch_5 = ends[4] as usize + 70;
        bytes[in_batch_5] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let loaded = load_log(dir.path(), 1 << 20, 100, Some(0), 0).unwrap();
        assert_eq!(loaded.segments.len(), 1);
        assert_eq!(loaded.log_end_offset, 15);
        assert!(!segment_file(dir.path(), 30, LOG_SUFFIX).exists());
    }

    #[test]
    fn segments_before_the_recovery_point_are_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let ends = write_segment(dir.path(), 0, 10);
        write_segment(dir.path(), 30, 2);
        // Build valid indexes for the first segment, then corrupt a batch in it: with a recovery point in the
        // second segment it is not re-validated (as in Kafka).
        load_log(dir.path(), 1 << 20, 100, Some(0), 0).unwrap();
        let path = segment_file(dir.path(), 0, LOG_SUFFIX);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[ends[4] as usize + 70] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let loaded = load_log(dir.path(), 1 << 20, 100, Some(33), 0).unwrap();
        assert!(!loaded.truncated);
        assert_eq!(loaded.log_end_offset, 36);
    }

    #[test]
    fn missing_index_is_rebuilt_even_after_clean_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 0, 50);
        let first = load_log(dir.path(), 1 << 20, 200, Some(0), 0).unwrap();
        let entries = first.segments[0].state().offset_index.len();
        assert!(entries > 2);
        drop(first);
        std::fs::remove_file(segment_file(dir.path(), 0, INDEX_SUFFIX)).unwrap();
        let loaded = load_log(dir.path(), 1 << 20, 200, None, 0).unwrap();
        assert_eq!(loaded.segments[0].state().offset_index.len(), entries);
        assert_eq!(std::fs::metadata(segment_file(dir.path(), 0, INDEX_SUFFIX)).unwrap().len() as usize, entries * 8);
        assert_eq!(loaded.log_end_offset, 150);
    }

    #[test]
    fn clean_load_finds_end_and_max_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 0, 20);
        load_log(dir.path(), 1 << 20, 100, Some(0), 0).unwrap();
        let loaded = load_log(dir.path(), 1 << 20, 100, None, 0).unwrap();
        assert_eq!(loaded.log_end_offset, 60);
        assert_eq!(loaded.segments[0].max_timestamp(), 10_019 + 2);
    }
}
