//! Log compaction, as Kafka's `LogCleaner` / `Cleaner` / `LogCleanerManager`.
//!
//! For a log with `cleanup.policy` containing `compact`:
//! 1. **What is cleanable** ([`cleanable_range`]): the dirty section starts at the `cleaner-offset-checkpoint`
//!    entry (the end of the last cleaning, else the log start) and ends at the first uncleanable offset: the active
//!    segment, the first open transaction (LSO) and the first segment younger than `min.compaction.lag.ms`,
//!    rounded down to a segment boundary. Only closed segments are ever cleaned.
//! 2. **Whether to clean** ([`needs_cleaning`]): dirty bytes / (clean + dirty bytes) >= `min.cleanable.dirty.ratio`,
//!    or a dirty segment older than `max.compaction.lag.ms`, or a delete horizon stamped earlier has passed
//!    (KIP-534: tombstones can then go even with nothing dirty).
//! 3. **Offset map**: key -> last offset over the dirty segments, skipping control batches and records of aborted
//!    transactions; the map stops at a segment boundary when its memory budget is reached.
//! 4. **Cleaning** ([`clean_segments`]): every segment from the log start to the end of the map, in groups that fit
//!    one segment, is rewritten: a record is kept when it is the latest for its key; a tombstone (null value) is
//!    kept until the batch's delete horizon (`delete.retention.ms` after the cleaning that first saw it) has passed;
//!    records of aborted transactions are removed; a transaction marker is kept while records of its transaction
//!    may remain, then until its own delete horizon; the last batch of every active producer is kept (empty if
//!    need be) so its sequence and epoch survive. A batch whose records all survive is copied as is; otherwise the
//!    kept records are re-encoded into one batch with the source's base offset, last offset delta, producer
//!    id/epoch, base sequence, codec and timestamps (Kafka's `MemoryRecords.filterTo`).
//! 5. **Swap** (`UnifiedLog::swap_cleaned_segment`): a group is written as `.cleaned` files, fsynced, renamed to
//!    `.swap` (indexes first, `.log` last), then under the append lock for a moment the sources are renamed
//!    `.deleted` and the swap files take the segment names. Recovery finishes a swap a crash interrupted (see
//!    `recovery.rs`), so no step loses data.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch_builder::{encode_batch, parse_control_key, ControlType, NewBatch, NewRecord};
use super::compression::decompress;
use super::config::LogConfig;
use super::offset_map::OffsetMap;
use super::record::RecordIter;
use super::record_batch::{CompressionCodec, RecordBatch};
use super::recovery::scan_segment;
use super::segment::{
    segment_file, sync_dir, LogSegment, SegmentFiles, CLEANED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SEGMENT_SUFFIXES,
    SWAP_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX,
};
use super::transaction_index::{AbortedTxn, TransactionIndex};

/// Kafka's data-dir file of the first dirty offset per compacted partition.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";
/// Memory budget of one cleaning's offset map (Kafka: `log.cleaner.dedupe.buffer.size`, 128 MiB shared).
pub const DEFAULT_DEDUPE_BUFFER_BYTES: usize = 64 << 20;

/// What the cleaner needs of a log, taken in one short lock.
#[derive(Debug, Clone)]
pub struct CleanerView {
    pub dir: PathBuf,
    /// All segments, oldest first; the last is the active one.
    pub segments: Vec<Arc<LogSegment>>,
    pub log_start_offset: i64,
    /// First offset of the earliest open transaction.
    pub first_undecided_offset: Option<i64>,
    /// Producer id -> (last data offset, epoch), Kafka's `lastRecordsOfActiveProducers`.
    pub active_producers: HashMap<i64, (Option<i64>, i16)>,
    pub config: LogConfig,
    pub pending_delete_horizon: Option<i64>,
    pub max_decompressed_batch_bytes: usize,
}

/// The cleanable part of a log (Kafka's `LogToClean`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanableRange {
    pub first_dirty_offset: i64,
    /// A segment base offset: segments below it may be cleaned.
    pub first_uncleanable_offset: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// The oldest first timestamp of a dirty segment (for `max.compaction.lag.ms`), -1 if unknown.
    pub first_dirty_timestamp: i64,
}

impl CleanableRange {
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }
}

/// Kafka's `LogCleanerManager.cleanableOffsets`, rounded to segment boundaries.
pub fn cleanable_range(view: &CleanerView, checkpoint: Option<i64>, now: i64) -> CleanableRange {
    let segs = &view.segments;
    let active_base = segs.last().map_or(0, |s| s.base_offset());
    let first_base = segs.first().map_or(0, |s| s.base_offset());
    let log_start = view.log_start_offset.max(first_base);
    let first_dirty = match checkpoint {
        Some(offset) if offset >= log_start && offset <= active_base => offset,
        _ => log_start,
    };
    // The segment containing an offset (its base).
    let containing =
        |offset: i64| segs.iter().rev().find(|s| s.base_offset() <= offset).map_or(first_base, |s| s.base_offset());
    let mut uncleanable = active_base;
    if let Some(first_open) = view.first_undecided_offset {
        uncleanable = uncleanable.min(containing(first_open));
    }
    if view.config.min_compaction_lag_ms > 0 {
        let horizon = now.saturating_sub(view.config.min_compaction_lag_ms);
        if let Some(young) =
            segs.iter().find(|s| s.base_offset() >= containing(first_dirty) && s.max_timestamp() > horizon)
        {
            uncleanable = uncleanable.min(young.base_offset());
        }
    }
    let first_dirty = first_dirty.min(uncleanable);
    let dirty_from = containing(first_dirty);
    let mut clean_bytes = 0;
    let mut dirty_bytes = 0;
    let mut first_dirty_timestamp = -1;
    for (i, seg) in segs.iter().enumerate() {
        let next_base = segs.get(i + 1).map_or(i64::MAX, |s| s.base_offset());
        if next_base > uncleanable {
            break;
        }
        if seg.base_offset() < dirty_from {
            clean_bytes += seg.size();
        } else {
            dirty_bytes += seg.size();
            if first_dirty_timestamp < 0 {
                first_dirty_timestamp = seg.state().first_data_ms();
            }
        }
    }
    CleanableRange {
        first_dirty_offset: dirty_from,
        first_uncleanable_offset: uncleanable,
        clean_bytes,
        dirty_bytes,
        first_dirty_timestamp,
    }
}

/// Whether the log should be cleaned now (Kafka's dirty ratio, `max.compaction.lag.ms`, KIP-534 delete horizon).
pub fn needs_cleaning(view: &CleanerView, range: &CleanableRange, now: i64) -> bool {
    if !view.config.cleanup_policy_compact
        || range.first_uncleanable_offset <= view.segments.first().map_or(0, |s| s.base_offset())
    {
        return false;
    }
    let dirty = range.dirty_bytes > 0;
    let ratio_reached = dirty && range.dirty_ratio() >= view.config.min_cleanable_dirty_ratio;
    let lag_exceeded = dirty
        && view.config.max_compaction_lag_ms < i64::MAX
        && range.first_dirty_timestamp >= 0
        && now.saturating_sub(range.first_dirty_timestamp) > view.config.max_compaction_lag_ms;
    let horizon_passed = view.pending_delete_horizon.is_some_and(|h| h <= now);
    ratio_reached || lag_exceeded || horizon_passed
}

/// A cleaned group, written and renamed to `.swap`, ready to replace `sources`.
#[derive(Debug)]
pub struct CleanedGroup {
    pub sources: Vec<Arc<LogSegment>>,
    pub segment: LogSegment,
}

/// The outcome of one cleaning.
#[derive(Debug, Default)]
pub struct CleanOutput {
    pub groups: Vec<CleanedGroup>,
    /// The new `cleaner-offset-checkpoint` entry: the end of the mapped dirty section.
    pub first_dirty_offset: i64,
    /// The earliest delete horizon of a kept batch still holding tombstones or markers.
    pub pending_delete_horizon: Option<i64>,
    pub stats: CleanerStats,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanerStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_kept: u64,
    pub map_entries: usize,
}

/// Kafka's `CleanedTransactionMetadata`: which batches belong to aborted transactions and when markers can go.
struct TxnTracker {
    aborted: VecDeque<AbortedTxn>,
    ongoing_aborted: HashMap<i64, (AbortedTxn, Option<i64>)>,
    ongoing_committed: HashSet<i64>,
    cleaned_index: Vec<AbortedTxn>,
}

impl TxnTracker {
    fn new(mut aborted: Vec<AbortedTxn>) -> Self {
        aborted.sort_by_key(|t| t.first_offset);
        TxnTracker {
            aborted: aborted.into(),
            ongoing_aborted: HashMap::new(),
            ongoing_committed: HashSet::new(),
            cleaned_index: Vec::new(),
        }
    }

    fn consume_aborted_up_to(&mut self, offset: i64) {
        while self.aborted.front().is_some_and(|t| t.first_offset <= offset) {
            if let Some(txn) = self.aborted.pop_front() {
                self.ongoing_aborted.entry(txn.producer_id).or_insert((txn, None));
            }
        }
    }

    /// True when the marker batch may be discarded (its transaction has no records left).
    fn on_control_batch(&mut self, batch: &RecordBatch<'_>, control: Option<ControlType>) -> bool {
        self.consume_aborted_up_to(batch.last_offset());
        let pid = batch.producer_id();
        match control {
            Some(ControlType::Abort) => match self.ongoing_aborted.remove(&pid) {
                Some((txn, Some(_))) => {
                    // Records of the transaction were seen (and removed) in this pass: keep the marker once more.
                    self.cleaned_index.push(txn);
                    false
                }
                _ => true,
            },
            Some(ControlType::Commit) => !self.ongoing_committed.remove(&pid),
            Some(ControlType::Other(_)) => false,
            // An empty control batch was cleaned before.
            None => true,
        }
    }

    /// True when the data batch belongs to an aborted transaction.
    fn on_data_batch(&mut self, batch: &RecordBatch<'_>) -> bool {
        self.consume_aborted_up_to(batch.last_offset());
        if !batch.is_transactional() {
            return false;
        }
        match self.ongoing_aborted.get_mut(&batch.producer_id()) {
            Some((_, last_seen)) => {
                *last_seen = Some(batch.last_offset());
                true
            }
            None => {
                self.ongoing_committed.insert(batch.producer_id());
                false
            }
        }
    }
}

/// Iterates the whole batches of a segment up to its committed size.
struct SegmentBatches<'a> {
    segment: &'a LogSegment,
    pos: u64,
    end: u64,
}

impl SegmentBatches<'_> {
    fn next_batch(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(header) = self.segment.read_header(self.pos, self.end)? else { return Ok(None) };
        self.pos += header.size;
        self.segment.read_batch(&header).map(Some)
    }
}

fn batches(segment: &LogSegment) -> SegmentBatches<'_> {
    SegmentBatches { segment, pos: 0, end: segment.size() }
}

fn body_of<'b>(batch: &RecordBatch<'b>, max: usize, scratch: &'b mut Vec<u8>) -> io::Result<&'b [u8]> {
    match batch.compression() {
        CompressionCodec::None => Ok(batch.records_bytes()),
        codec => {
            *scratch = decompress(codec, batch.records_bytes(), max)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            Ok(&scratch[..])
        }
    }
}

fn control_type(batch: &RecordBatch<'_>, max: usize) -> io::Result<Option<ControlType>> {
    let mut scratch = Vec::new();
    let body = body_of(batch, max, &mut scratch)?;
    Ok(match RecordIter::new(body).next_view() {
        Some(Ok(record)) => parse_control_key(record.key),
        _ => None,
    })
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Adds the keys of one dirty segment to the map.
fn map_segment(
    segment: &LogSegment,
    tracker: &mut TxnTracker,
    map: &mut OffsetMap,
    max: usize,
    stats: &mut CleanerStats,
) -> io::Result<()> {
    let mut iter = batches(segment);
    while let Some(bytes) = iter.next_batch()? {
        let batch = RecordBatch::parse_prefix(&bytes, 0).map_err(invalid)?;
        stats.bytes_read += bytes.len() as u64;
        if batch.is_control() {
            let control = control_type(&batch, max)?;
            tracker.on_control_batch(&batch, control);
            continue;
        }
        if tracker.on_data_batch(&batch) {
            continue;
        }
        let mut scratch = Vec::new();
        let body = body_of(&batch, max, &mut scratch)?;
        let mut records = RecordIter::new(body);
        while let Some(record) = records.next_view() {
            let record = record.map_err(invalid)?;
            if let Some(key) = record.key {
                map.put(key, batch.base_offset() + i64::from(record.offset_delta));
            }
        }
    }
    Ok(())
}

/// Groups consecutive segments so that each group fits one segment (Kafka's `groupSegmentsBySize`).
fn group_by_size(segments: &[Arc<LogSegment>], next_offsets: &[i64], config: &LogConfig) -> Vec<Vec<usize>> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let mut group = vec![i];
        let mut size = segments[i].size();
        let base = segments[i].base_offset();
        let mut j = i + 1;
        while j < segments.len() {
            let next_size = size + segments[j].size();
            let index_entries = next_size / config.index_interval_bytes.max(1) + 2;
            if next_size > config.segment_bytes.min(u64::from(u32::MAX))
                || index_entries * 12 > config.segment_index_bytes
                || next_offsets[j] - 1 - base > i64::from(u32::MAX)
            {
                break;
            }
            size = next_size;
            group.push(j);
            j += 1;
        }
        groups.push(group);
        i = j;
    }
    groups
}

/// What happens to one batch (Kafka's `BatchRetention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchRetention {
    Delete,
    DeleteEmpty,
    RetainEmpty,
}

struct GroupCleaner<'a> {
    view: &'a CleanerView,
    map: &'a OffsetMap,
    map_end: i64,
    now: i64,
    tracker: TxnTracker,
    pending_horizon: Option<i64>,
}

impl GroupCleaner<'_> {
    /// Filters one batch; returns the bytes to write (possibly the batch itself).
    fn filter_batch(&mut self, bytes: &[u8], stats: &mut CleanerStats) -> io::Result<Option<Vec<u8>>> {
        let max = self.view.max_decompressed_batch_bytes;
        let batch = RecordBatch::parse_prefix(bytes, 0).map_err(invalid)?;
        let horizon = batch.delete_horizon_ms();
        let control = if batch.is_control() { control_type(&batch, max)? } else { None };
        let can_discard = if batch.is_control() {
            self.tracker.on_control_batch(&batch, control)
        } else {
            self.tracker.on_data_batch(&batch)
        };
        let discard_records =
            if batch.is_control() { can_discard && horizon.is_some_and(|h| h <= self.now) } else { can_discard };
        let last_of_producer = batch.has_producer_id()
            && self.view.active_producers.get(&batch.producer_id()).is_some_and(|(last_data, epoch)| match last_data {
                Some(offset) => batch.last_offset() == *offset,
                None => batch.is_control() && batch.producer_epoch() == *epoch,
            });
        let retention = if last_of_producer {
            BatchRetention::RetainEmpty
        } else if discard_records {
            BatchRetention::Delete
        } else {
            BatchRetention::DeleteEmpty
        };
        if retention == BatchRetention::Delete {
            return Ok(None);
        }
        let marker_for_empty_txn = can_discard && batch.is_control();

        let mut scratch = Vec::new();
        let body = body_of(&batch, max, &mut scratch)?;
        let log_append_time = batch.is_log_append_time();
        let mut kept: Vec<NewRecord<'_>> = Vec::new();
        let mut all_kept = true;
        let mut tombstones = false;
        let mut records = RecordIter::new(body);
        while let Some(record) = records.next_view() {
            let record = record.map_err(invalid)?;
            stats.records_read += 1;
            let offset = batch.base_offset() + i64::from(record.offset_delta);
            let keep = if discard_records {
                false
            } else if batch.is_control() || offset > self.map_end {
                true
            } else {
                match record.key {
                    Some(key) => {
                        let latest = offset >= self.map.get(key);
                        let keep_delete = horizon.is_none_or(|h| self.now < h);
                        latest && (record.value.is_some() || keep_delete)
                    }
                    None => false,
                }
            };
            if !keep {
                all_kept = false;
                continue;
            }
            if record.value.is_none() && !batch.is_control() {
                tombstones = true;
            }
            let timestamp = if log_append_time {
                batch.max_timestamp()
            } else {
                batch.base_timestamp().saturating_add(record.timestamp_delta)
            };
            kept.push(NewRecord {
                offset_delta: record.offset_delta,
                timestamp,
                key: record.key,
                value: record.value,
                raw_headers: record.raw_headers,
            });
        }
        stats.records_kept += kept.len() as u64;
        let needs_horizon = (tombstones || marker_for_empty_txn) && horizon.is_none();
        let new_horizon =
            if needs_horizon { Some(self.now.saturating_add(self.view.config.delete_retention_ms)) } else { horizon };
        if !kept.is_empty() && (tombstones || batch.is_control()) {
            if let Some(h) = new_horizon {
                self.pending_horizon = Some(self.pending_horizon.map_or(h, |p| p.min(h)));
            }
        }
        if kept.is_empty() {
            if retention != BatchRetention::RetainEmpty {
                return Ok(None);
            }
            let spec = NewBatch {
                base_offset: batch.base_offset(),
                partition_leader_epoch: batch.partition_leader_epoch(),
                codec: CompressionCodec::None,
                log_append_time,
                transactional: batch.is_transactional(),
                control: batch.is_control(),
                delete_horizon_ms: None,
                last_offset_delta: batch.last_offset_delta(),
                max_timestamp: Some(batch.max_timestamp()),
                producer_id: batch.producer_id(),
                producer_epoch: batch.producer_epoch(),
                base_sequence: batch.base_sequence(),
            };
            return encode_batch(&spec, &[]).map(Some);
        }
        if all_kept && !needs_horizon {
            return Ok(Some(bytes.to_vec()));
        }
        let spec = NewBatch {
            base_offset: batch.base_offset(),
            partition_leader_epoch: batch.partition_leader_epoch(),
            codec: batch.compression(),
            log_append_time,
            transactional: batch.is_transactional(),
            control: batch.is_control(),
            delete_horizon_ms: new_horizon,
            last_offset_delta: batch.last_offset_delta(),
            max_timestamp: if log_append_time { Some(batch.max_timestamp()) } else { None },
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            base_sequence: batch.base_sequence(),
        };
        encode_batch(&spec, &kept).map(Some)
    }
}

fn cleaned_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    segment_file(dir, base, &format!("{suffix}{CLEANED_SUFFIX}"))
}

/// Removes a group's `.cleaned` and `.swap` files (an abandoned cleaning).
pub fn remove_cleaning_files(dir: &Path, base: i64) {
    for suffix in SEGMENT_SUFFIXES {
        for extra in [CLEANED_SUFFIX, SWAP_SUFFIX] {
            let _ = std::fs::remove_file(segment_file(dir, base, &format!("{suffix}{extra}")));
        }
    }
}

fn open_new(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)
}

/// Writes one cleaned group as `.cleaned` files, builds its indexes, fsyncs and renames everything to `.swap`.
fn write_group(
    cleaner: &mut GroupCleaner<'_>,
    sources: &[Arc<LogSegment>],
    stats: &mut CleanerStats,
) -> io::Result<LogSegment> {
    let view = cleaner.view;
    let dir = &view.dir;
    let base = sources[0].base_offset();
    let log_file = open_new(&cleaned_path(dir, base, LOG_SUFFIX))?;
    {
        let mut out = BufWriter::with_capacity(1 << 20, &log_file);
        for source in sources {
            let mut iter = batches(source);
            while let Some(bytes) = iter.next_batch()? {
                stats.bytes_read += bytes.len() as u64;
                if let Some(kept) = cleaner.filter_batch(&bytes, stats)? {
                    stats.bytes_written += kept.len() as u64;
                    out.write_all(&kept)?;
                }
            }
        }
        out.flush()?;
    }
    log_file.sync_all()?;
    let config = &view.config;
    let outcome =
        scan_segment(&log_file, base, base, config.segment_index_bytes, config.index_interval_bytes, cleaner.now)?;
    if let Some(reason) = outcome.reason {
        return Err(invalid(format!("cleaned segment {base} does not validate: {reason}")));
    }
    let mut state = outcome.state;
    if state.max_timestamp >= 0 {
        let (ts, offset) = (state.max_timestamp, state.offset_of_max_timestamp);
        state.time_index.maybe_append(ts, offset, true);
    }
    let first = sources[0].base_offset();
    let last = sources.last().map_or(first, |s| s.next_offset());
    state.txn_index = TransactionIndex::from_entries(
        cleaner
            .tracker
            .cleaned_index
            .iter()
            .filter(|t| t.last_offset >= first && t.last_offset < last)
            .copied()
            .collect(),
    );
    let index_file = open_new(&cleaned_path(dir, base, INDEX_SUFFIX))?;
    let time_index_file = open_new(&cleaned_path(dir, base, TIME_INDEX_SUFFIX))?;
    let txn_index_file = open_new(&cleaned_path(dir, base, TXN_INDEX_SUFFIX))?;
    for (file, bytes) in [
        (&index_file, state.offset_index.to_bytes()),
        (&time_index_file, state.time_index.to_bytes()),
        (&txn_index_file, state.txn_index.to_bytes()),
    ] {
        file.write_all_at(&bytes, 0)?;
        file.sync_all()?;
    }
    state.offset_index.mark_all_persisted();
    state.time_index.mark_all_persisted();
    state.txn_index.mark_all_persisted();
    state.flushed_size = state.size;
    // The .log is renamed last: a `.log.swap` means every file of the group is complete.
    for suffix in SEGMENT_SUFFIXES {
        std::fs::rename(cleaned_path(dir, base, suffix), segment_file(dir, base, &format!("{suffix}{SWAP_SUFFIX}")))?;
    }
    sync_dir(dir)?;
    let files = SegmentFiles {
        log: log_file,
        index: index_file,
        time_index: time_index_file,
        txn_index: txn_index_file,
        txn_index_existed: true,
    };
    Ok(LogSegment::from_parts(dir, base, files, state))
}

/// One cleaning (Kafka's `Cleaner.doClean`): builds the offset map over the dirty section and writes every group of
/// segments below its end as `.swap` files. Blocking; run it off the async runtime.
pub fn clean_segments(
    view: &CleanerView,
    range: &CleanableRange,
    now: i64,
    map_budget: usize,
) -> io::Result<CleanOutput> {
    let max = view.max_decompressed_batch_bytes;
    let mut stats = CleanerStats::default();
    let all_aborted: Vec<AbortedTxn> =
        view.segments.iter().flat_map(|s| s.state().txn_index.entries().to_vec()).collect();
    let closed: Vec<&Arc<LogSegment>> = view
        .segments
        .iter()
        .enumerate()
        .filter(|(i, _)| view.segments.get(i + 1).is_some_and(|n| n.base_offset() <= range.first_uncleanable_offset))
        .map(|(_, s)| s)
        .collect();

    let mut map = OffsetMap::new(map_budget);
    let mut map_tracker = TxnTracker::new(all_aborted.clone());
    let mut end = range.first_uncleanable_offset;
    let mut mapped_any = false;
    for segment in closed.iter().filter(|s| s.base_offset() >= range.first_dirty_offset) {
        if mapped_any && map.is_full() {
            end = segment.base_offset();
            break;
        }
        map_segment(segment, &mut map_tracker, &mut map, max, &mut stats)?;
        mapped_any = true;
    }
    stats.map_entries = map.len();

    let to_clean: Vec<Arc<LogSegment>> = view
        .segments
        .iter()
        .enumerate()
        .filter(|(i, _)| view.segments.get(i + 1).is_some_and(|n| n.base_offset() <= end))
        .map(|(_, s)| s.clone())
        .collect();
    let next_offsets: Vec<i64> =
        (0..to_clean.len()).map(|i| to_clean.get(i + 1).map_or(end, |n| n.base_offset())).collect();
    let mut output = CleanOutput { first_dirty_offset: end, ..CleanOutput::default() };
    for group in group_by_size(&to_clean, &next_offsets, &view.config) {
        let sources: Vec<Arc<LogSegment>> = group.iter().map(|i| to_clean[*i].clone()).collect();
        let first = sources[0].base_offset();
        let last = next_offsets[group[group.len() - 1]];
        let aborted = all_aborted.iter().filter(|t| t.last_offset >= first && t.first_offset < last).copied().collect();
        let mut cleaner = GroupCleaner {
            view,
            map: &map,
            map_end: end - 1,
            now,
            tracker: TxnTracker::new(aborted),
            pending_horizon: None,
        };
        match write_group(&mut cleaner, &sources, &mut stats) {
            Ok(segment) => {
                if let Some(h) = cleaner.pending_horizon {
                    output.pending_delete_horizon = Some(output.pending_delete_horizon.map_or(h, |p| p.min(h)));
                }
                output.groups.push(CleanedGroup { sources, segment });
            }
            Err(e) => {
                remove_cleaning_files(&view.dir, first);
                for done in &output.groups {
                    remove_cleaning_files(&view.dir, done.segment.base_offset());
                }
                return Err(e);
            }
        }
    }
    output.stats = stats;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: last + 1 }
    }

    #[test]
    fn tracker_discards_aborted_batches_and_keeps_their_marker_once() {
        use crate::log::batch_builder::end_txn_marker_batch;
        let mut tracker = TxnTracker::new(vec![txn(7, 0, 2)]);
        let data = crate::log::batch_builder::encode_batch(
            &NewBatch {
                base_offset: 0,
                partition_leader_epoch: 0,
                codec: CompressionCodec::None,
                log_append_time: false,
                transactional: true,
                control: false,
                delete_horizon_ms: None,
                last_offset_delta: 1,
                max_timestamp: None,
                producer_id: 7,
                producer_epoch: 0,
                base_sequence: 0,
            },
            &[NewRecord { offset_delta: 0, timestamp: 1, key: Some(b"k"), value: Some(b"v"), raw_headers: &[] }],
        )
        .unwrap();
        let batch = RecordBatch::parse_prefix(&data, 0).unwrap();
        assert!(tracker.on_data_batch(&batch));
        let mut marker = end_txn_marker_batch(7, 0, false, 0, 5);
        marker[0..8].copy_from_slice(&2i64.to_be_bytes());
        let marker = RecordBatch::parse_prefix(&marker, 0).unwrap();
        assert!(!tracker.on_control_batch(&marker, Some(ControlType::Abort)), "records were seen: keep marker");
        assert_eq!(tracker.cleaned_index.len(), 1);
        // Next pass: no records of the transaction left, the marker may go.
        let mut tracker = TxnTracker::new(vec![txn(7, 0, 2)]);
        assert!(tracker.on_control_batch(&marker, Some(ControlType::Abort)));
    }
}
