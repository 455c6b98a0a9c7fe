//! One partition's log, as Kafka's `UnifiedLog`: an ordered set of segments, the offsets that bound them (log
//! start, log end = high watermark on a single node, recovery point) and the operations the broker needs.
//!
//! Concurrency: appends are serialised by an async mutex held across validation and the write; the segment map
//! and offsets sit behind a short-lived lock that is never held across an await, so reads never wait for a write
//! to reach the disk. A read only sees batches whose write completed (each segment's committed size) and below the
//! high watermark. Each append runs in its own task, so a caller that gives up (a dropped produce request) cannot
//! leave a write on disk that the log's offsets do not know about.
//!
//! Failure: when a write fails (EIO, ENOSPC) the segment file is cut back to its committed size and the end offset
//! does not move, so nothing partial is ever visible; later appends are tried again normally. Only if even the cut
//! fails is the log taken offline for writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::batch_builder::{end_txn_marker_batch, parse_control_key, parse_marker_coordinator_epoch, ControlType};
use super::compression::decompress;
use super::config::LogConfig;
use super::error::LogError;
use super::leader_epoch_cache::LeaderEpochCache;
use super::log_cleaner::{
    clean_segments, cleanable_range, needs_cleaning, remove_cleaning_files, CleanedGroup, CleanerStats, CleanerView,
};
use super::log_validator::{validate_and_assign_offsets, AppendOrigin, ValidatedRecords, ValidationContext};
use super::producer_state::{
    list_snapshots, parse_snapshot, snapshot_file, BatchMetadata, ProducerAppendInfo, ProducerAppendMode,
    ProducerStateManager,
};
use super::record::RecordIter;
use super::record_batch::{BatchIter, CompressionCodec, RecordBatch, BATCH_HEADER_SIZE};
use super::recovery::load_log;
use super::retention::{deletable_prefix, SegmentInfo};
use super::segment::{BatchHeader, LogSegment, RollLimits};
use super::transaction_index::AbortedTxn;
use super::TopicPartition;
use crate::io::Storage;

/// The result of an append, as a produce response needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// The broker's append time for `LogAppendTime` topics, -1 otherwise.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    pub num_records: usize,
    /// True when the batch was a retry of one of the producer's last five batches: nothing was written and the
    /// offsets are those of the original (Kafka answers the produce with them and no error).
    pub duplicate: bool,
}

/// A ListOffsets answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampAndOffset {
    pub timestamp: i64,
    pub offset: i64,
    pub leader_epoch: i32,
}

/// ListOffsets special timestamps.
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;
pub const MAX_TIMESTAMP: i64 = -3;

struct LogState {
    segments: BTreeMap<i64, Arc<LogSegment>>,
    log_start_offset: i64,
    log_end_offset: i64,
    recovery_point: i64,
    unflushed_messages: i64,
    first_unflushed_ms: Option<i64>,
    /// Why writes are refused (after shutdown, deletion, or a write that could not be undone).
    offline: Option<String>,
}

struct LogInner {
    tp: TopicPartition,
    dir: Mutex<PathBuf>,
    storage: Arc<Storage>,
    shard: usize,
    max_decompressed_batch_bytes: usize,
    config: RwLock<LogConfig>,
    append_lock: tokio::sync::Mutex<()>,
    flush_lock: tokio::sync::Mutex<()>,
    state: RwLock<LogState>,
    hw: watch::Sender<i64>,
    epochs: Mutex<LeaderEpochCache>,
    producer_state: Mutex<ProducerStateManager>,
    /// Serialises cleaner runs on this log.
    pub(crate) cleaner_lock: tokio::sync::Mutex<()>,
    /// Latest delete horizon the cleaner stamped (KIP-534): once passed, tombstones can go even if nothing is dirty.
    pub(crate) latest_delete_horizon: Mutex<Option<i64>>,
}

/// One partition's log.
pub struct UnifiedLog {
    inner: Arc<LogInner>,
}

impl std::fmt::Debug for UnifiedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnifiedLog").field("tp", &self.inner.tp).finish()
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Where a log lives and what it shares with the other logs.
pub(crate) struct LogContext {
    pub dir: PathBuf,
    pub tp: TopicPartition,
    pub storage: Arc<Storage>,
    pub shard: usize,
    pub max_decompressed_batch_bytes: usize,
}

impl UnifiedLog {
    /// Loads the log in `ctx.dir` (creating the folder and first segment if needed). Blocking: run it off the
    /// async runtime. `recovery_point` is `None` after a clean shutdown.
    pub(crate) fn open(
        ctx: LogContext,
        config: LogConfig,
        recovery_point: Option<i64>,
        log_start_offset: Option<i64>,
    ) -> Result<UnifiedLog, LogError> {
        let dir = ctx.dir;
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io(&dir, e))?;
        let now = now_ms();
        let loaded = load_log(&dir, config.segment_index_bytes, config.index_interval_bytes, recovery_point, now)
            .map_err(|e| LogError::io(&dir, e))?;
        let mut segments = BTreeMap::new();
        for segment in loaded.segments {
            segments.insert(segment.base_offset(), Arc::new(segment));
        }
        let mut log_end_offset = loaded.log_end_offset;
        if segments.is_empty() {
            let base = log_start_offset.unwrap_or(0).max(0);
            let segment =
                LogSegment::create(&dir, base, config.segment_index_bytes, now).map_err(|e| LogError::io(&dir, e))?;
            segments.insert(base, Arc::new(segment));
            log_end_offset = base;
        }
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let log_start_offset = log_start_offset.unwrap_or(first_base).max(first_base).min(log_end_offset);
        let producer_state = rebuild_producer_state(
            &dir,
            &segments,
            log_end_offset,
            loaded.rebuild_txn_index_from,
            now,
            config.producer_id_expiration_ms,
            ctx.max_decompressed_batch_bytes,
        )
        .map_err(|e| LogError::io(&dir, e))?;
        let mut epochs = LeaderEpochCache::load(&dir);
        if epochs.truncate_from_end(log_end_offset) {
            epochs.persist().map_err(|e| LogError::io(&dir, e))?;
        }
        if loaded.truncated {
            tracing::warn!(topic = %ctx.tp.topic, partition = ctx.tp.partition, log_end_offset, "log recovered with truncation");
        }
        tracing::debug!(
            topic = %ctx.tp.topic, partition = ctx.tp.partition, log_start_offset, log_end_offset,
            segments = segments.len(), clean = recovery_point.is_none(), "loaded log"
        );
        let (hw, _) = watch::channel(log_end_offset);
        Ok(UnifiedLog {
            inner: Arc::new(LogInner {
                tp: ctx.tp,
                dir: Mutex::new(dir),
                storage: ctx.storage,
                shard: ctx.shard,
                max_decompressed_batch_bytes: ctx.max_decompressed_batch_bytes,
                config: RwLock::new(config),
                append_lock: tokio::sync::Mutex::new(()),
                flush_lock: tokio::sync::Mutex::new(()),
                state: RwLock::new(LogState {
                    segments,
                    log_start_offset,
                    log_end_offset,
                    recovery_point: log_end_offset,
                    unflushed_messages: 0,
                    first_unflushed_ms: None,
                    offline: None,
                }),
                hw,
                epochs: Mutex::new(epochs),
                producer_state: Mutex::new(producer_state),
                cleaner_lock: tokio::sync::Mutex::new(()),
                latest_delete_horizon: Mutex::new(None),
            }),
        })
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.inner.tp
    }

    pub fn dir(&self) -> PathBuf {
        self.inner.dir.lock().clone()
    }

    /// Validates and appends one or more batches (the raw `records` of a produce request partition) atomically.
    pub async fn append_as_leader(&self, records: Bytes, leader_epoch: i32) -> Result<LogAppendInfo, LogError> {
        self.append(records, leader_epoch, AppendOrigin::Client).await
    }

    /// Like [`Self::append_as_leader`], for the broker's own batches (`AppendOrigin::Coordinator` may write control
    /// batches, e.g. transaction markers).
    pub async fn append(
        &self,
        records: Bytes,
        leader_epoch: i32,
        origin: AppendOrigin,
    ) -> Result<LogAppendInfo, LogError> {
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.append(records, leader_epoch, origin).await })
            .await
            .map_err(|e| LogError::Offline(format!("{}: append task failed: {e}", self.inner.tp)))?
    }

    /// Whole batches from the one containing `fetch_offset`, up to `max_bytes` (at least one batch when
    /// `min_one_message`), never past the high watermark.
    pub async fn read(&self, fetch_offset: i64, max_bytes: usize, min_one_message: bool) -> Result<Bytes, LogError> {
        self.read_below(fetch_offset, max_bytes, min_one_message, None).await.map(|(bytes, _)| bytes)
    }

    /// A `read_committed` fetch (Kafka's `FetchIsolation.TXN_COMMITTED`): whole batches below the last stable
    /// offset, and the aborted transactions overlapping the returned range (Kafka's `collectAbortedTxns`), which
    /// the client uses to drop aborted records. Empty data when `fetch_offset` is at the LSO.
    pub async fn read_committed(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_message: bool,
    ) -> Result<(Bytes, Vec<AbortedTxn>), LogError> {
        let lso = self.last_stable_offset();
        let (bytes, segments) = self.read_below(fetch_offset, max_bytes, min_one_message, Some(lso)).await?;
        if bytes.is_empty() {
            return Ok((bytes, Vec::new()));
        }
        let mut upper_bound = fetch_offset;
        for (_, batch) in BatchIter::new(&bytes).flatten() {
            upper_bound = upper_bound.max(batch.next_offset());
        }
        let mut aborted = Vec::new();
        for segment in &segments {
            if segment.state().txn_index.collect(fetch_offset, upper_bound, &mut aborted) {
                break;
            }
        }
        Ok((bytes, aborted))
    }

    /// Reads below `limit` (the high watermark when `None`); also returns the segments from the fetched one on.
    async fn read_below(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_message: bool,
        limit: Option<i64>,
    ) -> Result<(Bytes, Vec<Arc<LogSegment>>), LogError> {
        let (hw, segments) = {
            let s = self.inner.state.read();
            if fetch_offset < s.log_start_offset || fetch_offset > s.log_end_offset {
                return Err(LogError::OffsetOutOfRange {
                    offset: fetch_offset,
                    log_start_offset: s.log_start_offset,
                    log_end_offset: s.log_end_offset,
                });
            }
            let floor = s.segments.range(..=fetch_offset).next_back().map(|(k, _)| *k).unwrap_or(i64::MIN);
            (s.log_end_offset, s.segments.range(floor..).map(|(_, v)| v.clone()).collect::<Vec<_>>())
        };
        let hw = limit.map_or(hw, |l| l.min(hw));
        if fetch_offset >= hw {
            return Ok((Bytes::new(), segments));
        }
        run_blocking(move || {
            for (i, segment) in segments.iter().enumerate() {
                match segment.read(fetch_offset, max_bytes, min_one_message, hw) {
                    Ok(Some(bytes)) => return Ok((bytes, segments[i..].to_vec())),
                    Ok(None) => continue,
                    Err(e) => return Err(LogError::io(segment.log_path(), e)),
                }
            }
            Ok((Bytes::new(), Vec::new()))
        })
        .await
    }

    /// Appends a transaction marker for `producer_id` (the transaction coordinator's WriteTxnMarkers): Kafka's
    /// control record, COMMIT when `commit` else ABORT, with the coordinator's epoch. Completes the producer's
    /// open transaction here (moving the last stable offset) and, for an abort, adds it to the aborted
    /// transaction index. Fails with `InvalidProducerEpoch` for an older producer epoch and
    /// `TransactionCoordinatorFenced` for an older coordinator epoch.
    pub async fn append_control_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        leader_epoch: i32,
    ) -> Result<LogAppendInfo, LogError> {
        let batch = end_txn_marker_batch(producer_id, producer_epoch, commit, coordinator_epoch, now_ms());
        self.append(Bytes::from(batch), leader_epoch, AppendOrigin::Coordinator).await
    }

    /// The last stable offset: the first offset of the earliest open transaction, else the high watermark. A
    /// read_committed consumer sees nothing at or after it. It moves only when an append moves the high watermark
    /// too, so [`Self::subscribe`] wakes on every change of either.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.inner.producer_state.lock().first_undecided_offset().map_or(hw, |first| first.min(hw))
    }

    /// Open transactions on this partition: (first offset, producer id), oldest first.
    pub fn ongoing_transactions(&self) -> Vec<(i64, i64)> {
        self.inner.producer_state.lock().ongoing_txns()
    }

    /// Producer ids with state here and their current epoch (DescribeProducers needs more; ask).
    pub fn active_producers(&self) -> Vec<(i64, i16)> {
        self.inner.producer_state.lock().producers().values().map(|e| (e.producer_id, e.producer_epoch)).collect()
    }

    /// Every producer's full state here (DescribeProducers): epoch, last batches, coordinator epoch, last
    /// timestamp and the first offset of its open transaction.
    pub fn producer_entries(&self) -> Vec<super::producer_state::ProducerStateEntry> {
        self.inner.producer_state.lock().producers().values().cloned().collect()
    }

    /// Drops the state of producers idle for `producer.id.expiration.ms` (no open transaction). Returns how many.
    pub fn remove_expired_producers(&self, now_ms: i64) -> usize {
        let expiration = self.inner.config.read().producer_id_expiration_ms;
        self.inner.producer_state.lock().remove_expired_producers(now_ms, expiration)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.state.read().log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.inner.state.read().log_end_offset
    }

    pub fn high_watermark(&self) -> i64 {
        self.inner.state.read().log_end_offset
    }

    /// Offsets at or below which everything was fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.inner.state.read().recovery_point
    }

    /// Watches the high watermark. The last stable offset only moves together with it (a marker is an append),
    /// so read_committed fetchers wait on this channel too and compare with [`Self::last_stable_offset`].
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.hw.subscribe()
    }

    pub fn config(&self) -> LogConfig {
        self.inner.config.read().clone()
    }

    pub fn update_config(&self, config: LogConfig) {
        *self.inner.config.write() = config;
    }

    pub fn size_in_bytes(&self) -> u64 {
        self.inner.state.read().segments.values().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.inner.state.read().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.inner.state.read().segments.keys().copied().collect()
    }

    /// The epoch that wrote `offset` (-1 if unknown).
    pub fn epoch_for_offset(&self, offset: i64) -> i32 {
        self.inner.epochs.lock().epoch_for_offset(offset)
    }

    /// fsyncs every segment holding data after the recovery point, with its indexes, and moves the recovery point
    /// to the log end offset seen at the start.
    pub async fn flush(&self) -> Result<(), LogError> {
        self.inner.flush().await
    }

    /// ListOffsets: -2 earliest, -1 latest, -3 the record with the largest timestamp, else the first record whose
    /// timestamp is >= `timestamp`.
    pub async fn fetch_offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampAndOffset>, LogError> {
        self.fetch_offset_for_timestamp_with_isolation(timestamp, false).await
    }

    /// ListOffsets with `isolation_level`: for read_committed (`true`) `latest` is the last stable offset and
    /// timestamp look-ups only find offsets below it, as Kafka's `fetchOffsetForTimestamp`.
    pub async fn fetch_offset_for_timestamp_with_isolation(
        &self,
        timestamp: i64,
        read_committed: bool,
    ) -> Result<Option<TimestampAndOffset>, LogError> {
        let stable = read_committed.then(|| self.last_stable_offset());
        let (lso, hw, segments) = {
            let s = self.inner.state.read();
            (s.log_start_offset, s.log_end_offset, s.segments.values().cloned().collect::<Vec<_>>())
        };
        let hw = stable.map_or(hw, |stable| stable.min(hw));
        match timestamp {
            EARLIEST_TIMESTAMP => {
                return Ok(Some(TimestampAndOffset {
                    timestamp: -1,
                    offset: lso,
                    leader_epoch: self.epoch_for_offset(lso),
                }))
            }
            LATEST_TIMESTAMP => {
                let epoch = self.inner.epochs.lock().latest_epoch().unwrap_or(-1);
                return Ok(Some(TimestampAndOffset { timestamp: -1, offset: hw, leader_epoch: epoch }));
            }
            t if t < 0 && t != MAX_TIMESTAMP => return Ok(None),
            _ => {}
        }
        let max_decompressed = self.inner.max_decompressed_batch_bytes;
        let found = run_blocking(move || {
            if timestamp == MAX_TIMESTAMP {
                find_max_timestamp(&segments, lso, hw, max_decompressed)
            } else {
                find_by_timestamp(&segments, timestamp, lso, hw, max_decompressed)
            }
        })
        .await?;
        Ok(Some(match found {
            Some((ts, offset)) => {
                TimestampAndOffset { timestamp: ts, offset, leader_epoch: self.epoch_for_offset(offset) }
            }
            None if timestamp == MAX_TIMESTAMP => TimestampAndOffset { timestamp: -1, offset: -1, leader_epoch: -1 },
            None => return Ok(None),
        }))
    }

    /// DeleteRecords: moves the log start offset forward to `offset` (-1 = the high watermark) and deletes the
    /// segments wholly below it. Returns the new log start offset.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let _guard = self.inner.append_lock.lock().await;
        let (lso, hw) = {
            let s = self.inner.state.read();
            (s.log_start_offset, s.log_end_offset)
        };
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(LogError::OffsetOutOfRange { offset, log_start_offset: lso, log_end_offset: hw });
        }
        if target > lso {
            self.inner.state.write().log_start_offset = target;
            tracing::info!(topic = %self.inner.tp.topic, partition = self.inner.tp.partition, log_start_offset = target,
                "log start offset moved by DeleteRecords");
        }
        self.inner.delete_old_segments(now_ms())?;
        Ok(self.log_start_offset())
    }

    /// Applies retention.ms / retention.bytes / log start offset; returns the number of segments deleted.
    pub async fn delete_old_segments(&self) -> Result<usize, LogError> {
        let _guard = self.inner.append_lock.lock().await;
        self.inner.delete_old_segments(now_ms())
    }

    /// Rolls the active segment when it is non-empty and older than segment.ms. Returns whether it rolled.
    pub async fn roll_if_due(&self) -> Result<bool, LogError> {
        let _guard = self.inner.append_lock.lock().await;
        self.inner.check_writable()?;
        let config = self.config();
        let now = now_ms();
        let (active, leo) = {
            let s = self.inner.state.read();
            (s.segments.values().next_back().cloned(), s.log_end_offset)
        };
        let Some(active) = active else { return Ok(false) };
        if active.is_empty()
            || config.segment_ms < 0
            // No batch arrives here to compare record times with: the segment's wall-clock age decides, so a
            // quiet partition still closes its segment (and data with old timestamps does not roll every pass).
            || now.saturating_sub(active.state().created_ms) <= config.segment_ms
        {
            return Ok(false);
        }
        self.inner.roll(leo, &config).await?;
        Ok(true)
    }

    /// True when unflushed data is older than flush.ms.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        let flush_ms = self.inner.config.read().flush_ms;
        let s = self.inner.state.read();
        s.first_unflushed_ms.is_some_and(|first| now_ms.saturating_sub(first) >= flush_ms)
    }

    /// One log cleaner pass (see `log_cleaner.rs`) when `cleanup.policy` has `compact` and the log is dirty enough
    /// (or `force`). `checkpoint` is the `cleaner-offset-checkpoint` entry; returns the new entry and the pass's
    /// statistics when it cleaned. Appends and fetches continue meanwhile; each cleaned group is swapped in under
    /// the append lock for the time of a few renames.
    pub async fn clean(
        &self,
        checkpoint: Option<i64>,
        force: bool,
        map_budget: usize,
    ) -> Result<Option<(i64, CleanerStats)>, LogError> {
        let _cleaning = self.inner.cleaner_lock.lock().await;
        self.inner.check_writable()?;
        let view = self.cleaner_view();
        if !view.config.cleanup_policy_compact {
            return Ok(None);
        }
        let now = now_ms();
        let range = cleanable_range(&view, checkpoint, now);
        if !(needs_cleaning(&view, &range, now) || (force && range.first_uncleanable_offset > view.log_start_offset)) {
            return Ok(None);
        }
        let dir = view.dir.clone();
        let output =
            run_blocking(move || clean_segments(&view, &range, now, map_budget).map_err(|e| LogError::io(&dir, e)))
                .await?;
        let mut swapped = 0;
        let groups = output.groups.len();
        for group in output.groups {
            if self.swap_cleaned_segment(group).await? {
                swapped += 1;
            }
        }
        *self.inner.latest_delete_horizon.lock() = output.pending_delete_horizon;
        tracing::info!(topic = %self.inner.tp.topic, partition = self.inner.tp.partition, groups, swapped,
            first_dirty_offset = output.first_dirty_offset, bytes_read = output.stats.bytes_read,
            bytes_written = output.stats.bytes_written, records_kept = output.stats.records_kept,
            records_read = output.stats.records_read, "cleaned log");
        Ok(Some((output.first_dirty_offset, output.stats)))
    }

    /// What the cleaner needs, taken under the state locks for a moment.
    fn cleaner_view(&self) -> CleanerView {
        let (segments, log_start_offset) = {
            let s = self.inner.state.read();
            (s.segments.values().cloned().collect::<Vec<_>>(), s.log_start_offset)
        };
        let (first_undecided_offset, active_producers) = {
            let ps = self.inner.producer_state.lock();
            (
                ps.first_undecided_offset(),
                ps.producers().values().map(|e| (e.producer_id, (e.last_data_offset(), e.producer_epoch))).collect(),
            )
        };
        CleanerView {
            dir: self.dir(),
            segments,
            log_start_offset,
            first_undecided_offset,
            active_producers,
            config: self.config(),
            pending_delete_horizon: *self.inner.latest_delete_horizon.lock(),
            max_decompressed_batch_bytes: self.inner.max_decompressed_batch_bytes,
        }
    }

    /// Replaces a group's source segments by its cleaned segment (Kafka's `replaceSegments`): sources renamed
    /// `.deleted`, `.swap` files renamed to segment names, then the segment map updated. Returns false (and drops
    /// the cleaned files) when retention or a deletion changed the sources meanwhile.
    async fn swap_cleaned_segment(&self, group: CleanedGroup) -> Result<bool, LogError> {
        let _guard = self.inner.append_lock.lock().await;
        let CleanedGroup { sources, segment } = group;
        let dir = self.dir();
        let base = segment.base_offset();
        let current = {
            let s = self.inner.state.read();
            let active = s.segments.keys().next_back().copied();
            s.offline.is_none()
                && sources.iter().all(|src| {
                    Some(src.base_offset()) != active
                        && s.segments.get(&src.base_offset()).is_some_and(|cur| Arc::ptr_eq(cur, src))
                })
        };
        if !current {
            tracing::info!(topic = %self.inner.tp.topic, partition = self.inner.tp.partition, base_offset = base,
                "segments changed while cleaning; dropping the cleaned segment");
            let dir2 = dir.clone();
            run_blocking(move || {
                remove_cleaning_files(&dir2, base);
                Ok(())
            })
            .await?;
            return Ok(false);
        }
        let sources2 = sources.clone();
        let dir2 = dir.clone();
        run_blocking(move || {
            for src in &sources2 {
                src.rename_for_delete().map_err(|e| LogError::io(src.log_path(), e))?;
            }
            for suffix in super::segment::SEGMENT_SUFFIXES {
                let from =
                    super::segment::segment_file(&dir2, base, &format!("{suffix}{}", super::segment::SWAP_SUFFIX));
                let to = super::segment::segment_file(&dir2, base, suffix);
                std::fs::rename(&from, &to).map_err(|e| LogError::io(&from, e))?;
            }
            super::segment::sync_dir(&dir2).map_err(|e| LogError::io(&dir2, e))
        })
        .await?;
        {
            let mut s = self.inner.state.write();
            for src in &sources {
                s.segments.remove(&src.base_offset());
            }
            s.segments.insert(base, Arc::new(segment));
        }
        let delay = std::time::Duration::from_millis(self.config().file_delete_delay_ms.max(0) as u64);
        for src in sources {
            let (dir, base) = (src.dir(), src.base_offset());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tokio::task::spawn_blocking(move || LogSegment::delete_renamed_files(&dir, base)).await;
            });
        }
        Ok(true)
    }

    /// Stops writes, seals the active segment's time index and flushes everything (shutdown).
    pub async fn close(&self) -> Result<(), LogError> {
        let _guard = self.inner.append_lock.lock().await;
        if let Some(active) = self.inner.state.read().segments.values().next_back() {
            active.seal_time_index();
        }
        let result = self.inner.flush().await;
        self.inner.state.write().offline = Some("log is closed".to_string());
        result?;
        self.inner.take_producer_snapshot().await
    }

    /// Stops writes and reads' future growth for a log about to be deleted; in-flight appends finish first.
    pub(crate) async fn mark_deleted(&self, new_dir: &Path) {
        let _guard = self.inner.append_lock.lock().await;
        let mut s = self.inner.state.write();
        s.offline = Some("log was deleted".to_string());
        for segment in s.segments.values() {
            segment.set_dir(new_dir);
        }
        *self.inner.dir.lock() = new_dir.to_path_buf();
        self.inner.epochs.lock().set_dir(new_dir);
    }
}

impl LogInner {
    fn check_writable(&self) -> Result<(), LogError> {
        match &self.state.read().offline {
            Some(reason) => Err(LogError::Offline(format!("{}: {reason}", self.tp))),
            None => Ok(()),
        }
    }

    fn active_segment(&self) -> Result<Arc<LogSegment>, LogError> {
        self.state
            .read()
            .segments
            .values()
            .next_back()
            .cloned()
            .ok_or_else(|| LogError::Offline(format!("{} has no segment", self.tp)))
    }

    async fn append(&self, records: Bytes, leader_epoch: i32, origin: AppendOrigin) -> Result<LogAppendInfo, LogError> {
        let _guard = self.append_lock.lock().await;
        self.check_writable()?;
        let config = self.config.read().clone();
        let now = now_ms();
        let next_offset = self.state.read().log_end_offset;
        let ctx = ValidationContext {
            config: &config,
            now_ms: now,
            max_decompressed_batch_bytes: self.max_decompressed_batch_bytes,
            origin,
        };
        let validated = validate_and_assign_offsets(records, next_offset, leader_epoch, &ctx)?;
        let producers = match self.analyze_producer_state(&validated, origin)? {
            ProducerAnalysis::Duplicate(original) => {
                let log_start_offset = self.state.read().log_start_offset;
                tracing::debug!(topic = %self.tp.topic, partition = self.tp.partition,
                    first_offset = original.first_offset(), "duplicate batch acknowledged with its original offsets");
                return Ok(LogAppendInfo {
                    first_offset: original.first_offset(),
                    last_offset: original.last_offset,
                    log_append_time: original.timestamp,
                    log_start_offset,
                    num_records: 0,
                    duplicate: true,
                });
            }
            ProducerAnalysis::Updates(updates) => updates,
        };

        let mut active = self.active_segment()?;
        // Kafka's `maxTimestampInMessages`: the incoming data's own time, which segment.ms compares with the
        // segment's first batch.
        let incoming_max_timestamp = validated.batches.iter().map(|b| b.max_timestamp).max().unwrap_or(-1);
        let limits = RollLimits { segment_bytes: config.segment_bytes, segment_ms: config.segment_ms, now_ms: now };
        if active.should_roll(validated.bytes.len() as u64, validated.last_offset, incoming_max_timestamp, limits) {
            self.roll(next_offset, &config).await?;
            active = self.active_segment()?;
        }
        let position = active.size();
        let sync = {
            let s = self.state.read();
            s.unflushed_messages.saturating_add(validated.num_records as i64) >= config.flush_messages
        };
        if let Err(error) =
            self.storage.write_at(self.shard, active.log_file().clone(), position, validated.bytes.clone(), sync).await
        {
            let path = active.log_path();
            tracing::error!(topic = %self.tp.topic, partition = self.tp.partition, path = %path.display(), position,
                %error, "append failed; cutting the segment back to its last complete batch");
            if let Err(cut) = active.log_file().set_len(position) {
                tracing::error!(path = %path.display(), error = %cut, "could not undo a failed write; log goes offline");
                self.state.write().offline = Some(format!("could not undo a failed write: {cut}"));
            }
            return Err(LogError::io(path, error));
        }
        active.on_appended(position, &validated.batches, config.index_interval_bytes);
        let aborted = self.apply_producer_updates(producers, validated.last_offset + 1);
        if !aborted.is_empty() {
            {
                let mut s = active.state();
                for txn in aborted {
                    s.txn_index.append(txn);
                }
            }
            // Written before the offsets move, so no checkpointed recovery point covers a marker whose index
            // entry is not on disk.
            if let Err(error) = self.write_txn_index(&active, sync).await {
                tracing::warn!(topic = %self.tp.topic, partition = self.tp.partition, %error,
                    "could not write the transaction index; it is retried at the next flush");
            }
        }
        if leader_epoch >= 0 {
            let mut epochs = self.epochs.lock();
            if epochs.assign(leader_epoch, validated.first_offset) {
                if let Err(error) = epochs.persist() {
                    tracing::warn!(topic = %self.tp.topic, partition = self.tp.partition, %error,
                        "could not persist the leader epoch checkpoint");
                }
            }
        }
        let log_start_offset = {
            let mut s = self.state.write();
            s.log_end_offset = validated.last_offset + 1;
            if sync {
                s.recovery_point = s.log_end_offset;
                s.unflushed_messages = 0;
                s.first_unflushed_ms = None;
                active.state().flushed_size = position + validated.bytes.len() as u64;
            } else {
                s.unflushed_messages = s.unflushed_messages.saturating_add(validated.num_records as i64);
                s.first_unflushed_ms.get_or_insert(now);
            }
            s.log_start_offset
        };
        self.hw.send_replace(validated.last_offset + 1);
        Ok(LogAppendInfo {
            first_offset: validated.first_offset,
            last_offset: validated.last_offset,
            log_append_time: validated.log_append_time,
            log_start_offset,
            num_records: validated.num_records,
            duplicate: false,
        })
    }

    /// Checks every batch with a producer id against the producer state (without changing it): a duplicate of one
    /// of the producer's last five batches short-circuits; otherwise the per-producer updates to apply once the
    /// write succeeded (Kafka's `analyzeAndValidateProducerState`).
    fn analyze_producer_state(
        &self,
        validated: &ValidatedRecords,
        origin: AppendOrigin,
    ) -> Result<ProducerAnalysis, LogError> {
        let mode = match origin {
            AppendOrigin::Client => ProducerAppendMode::Client,
            AppendOrigin::Coordinator => ProducerAppendMode::Coordinator,
        };
        let state = self.producer_state.lock();
        let mut updates: Vec<ProducerAppendInfo> = Vec::new();
        for vb in &validated.batches {
            let batch = RecordBatch::parse_prefix(&validated.bytes[vb.position..], vb.position)
                .map_err(|e| LogError::CorruptRecord(e.to_string()))?;
            if !batch.has_producer_id() {
                continue;
            }
            let pid = batch.producer_id();
            if mode == ProducerAppendMode::Client {
                let duplicate = state.last_entry(pid).and_then(|e| {
                    e.find_duplicate(batch.producer_epoch(), batch.base_sequence(), batch.last_sequence())
                });
                if let Some(original) = duplicate {
                    return Ok(ProducerAnalysis::Duplicate(original));
                }
            }
            let index = match updates.iter().position(|u| u.producer_id() == pid) {
                Some(i) => i,
                None => {
                    updates.push(state.prepare_update(pid, mode));
                    updates.len() - 1
                }
            };
            append_batch_to_producer(
                &mut updates[index],
                &batch,
                vb.base_offset,
                vb.max_timestamp,
                self.max_decompressed_batch_bytes,
            )?;
        }
        Ok(ProducerAnalysis::Updates(updates))
    }

    /// Applies producer updates after a successful write; returns the aborted transactions to index.
    fn apply_producer_updates(&self, updates: Vec<ProducerAppendInfo>, end_offset: i64) -> Vec<AbortedTxn> {
        let mut state = self.producer_state.lock();
        let mut aborted = Vec::new();
        for mut update in updates {
            let completed = update.take_completed();
            state.update(update);
            for txn in completed {
                let lso = state.last_stable_offset(&txn);
                if txn.is_aborted {
                    aborted.push(AbortedTxn {
                        producer_id: txn.producer_id,
                        first_offset: txn.first_offset,
                        last_offset: txn.last_offset,
                        last_stable_offset: lso,
                    });
                }
                state.complete_txn(&txn);
            }
        }
        state.update_map_end_offset(end_offset);
        aborted
    }

    /// Writes a segment's unwritten transaction index entries.
    async fn write_txn_index(&self, segment: &LogSegment, sync: bool) -> Result<(), LogError> {
        let pending = segment.state().txn_index.pending();
        if let Some((pos, bytes, count)) = pending {
            self.storage
                .write_at(self.shard, segment.txn_index_file().clone(), pos, Bytes::from(bytes), sync)
                .await
                .map_err(|e| LogError::io(segment.log_path().with_extension("txnindex"), e))?;
            segment.state().txn_index.mark_persisted(count);
        }
        Ok(())
    }

    /// Writes the producer state snapshot `<log end offset>.snapshot` (at roll and clean shutdown, as Kafka).
    async fn take_producer_snapshot(&self) -> Result<(), LogError> {
        let (offset, bytes) = {
            let state = self.producer_state.lock();
            (state.map_end_offset(), state.snapshot_bytes())
        };
        let dir = self.dir.lock().clone();
        run_blocking(move || write_snapshot_file(&dir, offset, &bytes).map_err(|e| LogError::io(&dir, e))).await
    }

    /// Closes the active segment (final time index entry, flushed with its indexes) and starts one at `new_base`.
    /// Called with the append lock held.
    async fn roll(&self, new_base: i64, config: &LogConfig) -> Result<(), LogError> {
        let old = self.active_segment()?;
        if old.base_offset() == new_base {
            return Ok(());
        }
        old.seal_time_index();
        {
            let _flush = self.flush_lock.lock().await;
            self.flush_segment(&old).await?;
        }
        self.producer_state.lock().update_map_end_offset(new_base);
        self.take_producer_snapshot().await?;
        let dir = self.dir.lock().clone();
        let index_bytes = config.segment_index_bytes;
        let segment = run_blocking(move || {
            LogSegment::create(&dir, new_base, index_bytes, now_ms()).map_err(|e| LogError::io(&dir, e))
        })
        .await?;
        self.state.write().segments.insert(new_base, Arc::new(segment));
        tracing::info!(topic = %self.tp.topic, partition = self.tp.partition, base_offset = new_base, "rolled new log segment");
        Ok(())
    }

    /// Writes a segment's new index entries and fsyncs its three files (one storage round, coalesced).
    async fn flush_segment(&self, segment: &LogSegment) -> Result<(), LogError> {
        let (index, time_index, size) = {
            let s = segment.state();
            (s.offset_index.pending(), s.time_index.pending(), s.size)
        };
        if let Some((pos, bytes, count)) = index {
            self.storage
                .write_at(self.shard, segment.index_file().clone(), pos, Bytes::from(bytes), false)
                .await
                .map_err(|e| LogError::io(segment.log_path().with_extension("index"), e))?;
            segment.state().offset_index.mark_persisted(count);
        }
        if let Some((pos, bytes, count)) = time_index {
            self.storage
                .write_at(self.shard, segment.time_index_file().clone(), pos, Bytes::from(bytes), false)
                .await
                .map_err(|e| LogError::io(segment.log_path().with_extension("timeindex"), e))?;
            segment.state().time_index.mark_persisted(count);
        }
        self.write_txn_index(segment, false).await?;
        let (a, b, c, d) = futures::join!(
            self.storage.sync(self.shard, segment.log_file().clone()),
            self.storage.sync(self.shard, segment.index_file().clone()),
            self.storage.sync(self.shard, segment.time_index_file().clone()),
            self.storage.sync(self.shard, segment.txn_index_file().clone()),
        );
        a.and(b).and(c).and(d).map_err(|e| LogError::io(segment.log_path(), e))?;
        let mut s = segment.state();
        s.flushed_size = s.flushed_size.max(size);
        Ok(())
    }

    async fn flush(&self) -> Result<(), LogError> {
        let _flush = self.flush_lock.lock().await;
        let (leo, segments) = {
            let s = self.state.read();
            let floor = s.segments.range(..=s.recovery_point).next_back().map(|(k, _)| *k).unwrap_or(i64::MIN);
            (s.log_end_offset, s.segments.range(floor..).map(|(_, v)| v.clone()).collect::<Vec<_>>())
        };
        for segment in &segments {
            let dirty = {
                let s = segment.state();
                s.flushed_size < s.size
                    || s.offset_index.pending().is_some()
                    || s.time_index.pending().is_some()
                    || s.txn_index.pending().is_some()
            };
            if dirty {
                self.flush_segment(segment).await?;
            }
        }
        let mut s = self.state.write();
        if leo > s.recovery_point {
            s.recovery_point = leo;
        }
        if s.log_end_offset == leo {
            s.unflushed_messages = 0;
            s.first_unflushed_ms = None;
        }
        Ok(())
    }

    /// Deletes the closed segments retention or the log start offset allow; moves the log start offset up to the
    /// first remaining segment. Called with the append lock held.
    fn delete_old_segments(&self, now: i64) -> Result<usize, LogError> {
        let mut config = self.config.read().clone();
        if !config.cleanup_policy_delete {
            // cleanup.policy=compact: only the log start offset deletes segments.
            config.retention_ms = -1;
            config.retention_bytes = -1;
        }
        let (infos, segments, lso) = {
            let s = self.state.read();
            let segments: Vec<_> = s.segments.values().cloned().collect();
            let mut infos = Vec::with_capacity(segments.len());
            for (i, seg) in segments.iter().enumerate() {
                let largest = match seg.max_timestamp() {
                    ts if ts >= 0 => ts,
                    _ => modified_ms(seg).unwrap_or(now),
                };
                let next_offset = segments.get(i + 1).map(|n| n.base_offset()).unwrap_or(s.log_end_offset);
                infos.push(SegmentInfo {
                    base_offset: seg.base_offset(),
                    size: seg.size(),
                    largest_timestamp: largest,
                    next_offset,
                });
            }
            (infos, segments, s.log_start_offset)
        };
        let (count, reason) = deletable_prefix(&infos, &config, now, lso);
        if count == 0 {
            return Ok(0);
        }
        let doomed = &segments[..count];
        {
            let mut s = self.state.write();
            for seg in doomed {
                s.segments.remove(&seg.base_offset());
            }
            if let Some(first) = s.segments.keys().next().copied() {
                if first > s.log_start_offset {
                    s.log_start_offset = first;
                }
            }
        }
        let first_base = self.state.read().segments.keys().next().copied();
        if let Some(first_base) = first_base {
            delete_snapshots_below(&self.dir.lock(), first_base);
        }
        let delay = std::time::Duration::from_millis(config.file_delete_delay_ms.max(0) as u64);
        for seg in doomed {
            tracing::info!(topic = %self.tp.topic, partition = self.tp.partition, base_offset = seg.base_offset(),
                size = seg.size(), reason = ?reason, "deleting log segment");
            if let Err(e) = seg.rename_for_delete() {
                tracing::warn!(path = %seg.log_path().display(), error = %e, "could not rename segment for deletion");
            }
            let (dir, base) = (seg.dir(), seg.base_offset());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tokio::task::spawn_blocking(move || LogSegment::delete_renamed_files(&dir, base)).await;
            });
        }
        Ok(count)
    }
}

enum ProducerAnalysis {
    Duplicate(BatchMetadata),
    Updates(Vec<ProducerAppendInfo>),
}

/// The control type and coordinator epoch of a transaction marker batch (`None` for an empty control batch left
/// by the cleaner, or a control record that is not a transaction marker).
fn end_txn_marker(
    batch: &RecordBatch<'_>,
    max_decompressed: usize,
) -> Result<Option<(ControlType, i32, i64)>, LogError> {
    let decompressed;
    let body = match batch.compression() {
        CompressionCodec::None => batch.records_bytes(),
        codec => {
            decompressed = decompress(codec, batch.records_bytes(), max_decompressed)
                .map_err(|e| LogError::CorruptRecord(e.to_string()))?;
            &decompressed[..]
        }
    };
    let Some(record) = RecordIter::new(body).next_view() else { return Ok(None) };
    let record = record.map_err(|e| LogError::InvalidRecord(e.to_string()))?;
    match parse_control_key(record.key) {
        Some(control @ (ControlType::Abort | ControlType::Commit)) => {
            let coordinator_epoch = parse_marker_coordinator_epoch(record.value)
                .ok_or_else(|| LogError::InvalidRecord("transaction marker without a coordinator epoch".to_string()))?;
            Ok(Some((control, coordinator_epoch, batch.base_timestamp().saturating_add(record.timestamp_delta))))
        }
        Some(ControlType::Other(_)) => Ok(None),
        None => Err(LogError::InvalidRecord("control record with an invalid key".to_string())),
    }
}

/// Feeds one batch (offsets assigned) to a producer's pending update.
fn append_batch_to_producer(
    update: &mut ProducerAppendInfo,
    batch: &RecordBatch<'_>,
    base_offset: i64,
    max_timestamp: i64,
    max_decompressed: usize,
) -> Result<(), LogError> {
    let last_offset = base_offset + i64::from(batch.last_offset_delta());
    if batch.is_control() {
        if let Some((control, coordinator_epoch, timestamp)) = end_txn_marker(batch, max_decompressed)? {
            update.append_end_txn_marker(control, coordinator_epoch, batch.producer_epoch(), base_offset, timestamp)?;
        }
        Ok(())
    } else {
        update.append_data_batch(
            batch.producer_epoch(),
            batch.base_sequence(),
            batch.last_sequence(),
            max_timestamp,
            base_offset,
            last_offset,
            batch.is_transactional(),
        )
    }
}

fn write_snapshot_file(dir: &Path, offset: i64, bytes: &[u8]) -> std::io::Result<()> {
    let path = snapshot_file(dir, offset);
    let tmp = path.with_extension("snapshot.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Removes producer snapshots of segments that no longer exist (below the first segment's base offset).
fn delete_snapshots_below(dir: &Path, first_base: i64) {
    if let Ok(snapshots) = list_snapshots(dir) {
        for (offset, path) in snapshots.range(..first_base) {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), offset, error = %e, "could not delete a producer snapshot");
            }
        }
    }
}

/// Rebuilds producer state at load (Kafka's `LogLoader` + `rebuildProducerState`): the latest readable snapshot at
/// or below the replay start, then every batch after it up to the log end offset. The replay starts no later
/// than `rebuild_txn_index_from`, whose segments (and all later ones) get their `.txnindex` rebuilt from the
/// markers they hold. Snapshots beyond the log end (a truncated log) are deleted.
fn rebuild_producer_state(
    dir: &Path,
    segments: &BTreeMap<i64, Arc<LogSegment>>,
    log_end_offset: i64,
    rebuild_txn_index_from: Option<i64>,
    now: i64,
    expiration_ms: i64,
    max_decompressed: usize,
) -> std::io::Result<ProducerStateManager> {
    let first_base = segments.keys().next().copied().unwrap_or(0);
    let mut snapshots = list_snapshots(dir)?;
    let beyond: Vec<i64> = snapshots.range(log_end_offset + 1..).map(|(o, _)| *o).collect();
    for offset in beyond {
        if let Some(path) = snapshots.remove(&offset) {
            tracing::info!(path = %path.display(), "deleting a producer snapshot beyond the log end");
            std::fs::remove_file(&path)?;
        }
    }
    let limit = rebuild_txn_index_from.unwrap_or(log_end_offset).min(log_end_offset);
    let mut state = ProducerStateManager::new();
    state.truncate_fully_and_start_at(first_base);
    for (offset, path) in snapshots.range(..=limit).rev() {
        match std::fs::read(path).map_err(|e| e.to_string()).and_then(|b| parse_snapshot(&b)) {
            Ok(entries) => {
                for entry in entries {
                    let expired = entry.current_txn_first_offset.is_none()
                        && now.saturating_sub(entry.last_timestamp) >= expiration_ms;
                    if !expired {
                        state.load_entry(entry);
                    }
                }
                state.update_map_end_offset((*offset).max(first_base));
                break;
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring an unreadable producer snapshot");
            }
        }
    }
    let replay_from = state.map_end_offset();
    let rebuild_from = rebuild_txn_index_from.unwrap_or(i64::MAX);
    for segment in segments.values() {
        if segment.base_offset() >= rebuild_from {
            segment.state().txn_index = super::transaction_index::TransactionIndex::new();
        }
    }
    let mut replayed = 0usize;
    for segment in segments.values() {
        if segment.next_offset() <= replay_from {
            continue;
        }
        let end = segment.size();
        let mut next = segment.find_position(replay_from, end)?;
        while let Some(header) = next {
            next = segment.read_header(header.position + header.size, end)?;
            if header.base_offset < replay_from {
                continue;
            }
            let mut head = [0u8; BATCH_HEADER_SIZE];
            std::os::unix::fs::FileExt::read_exact_at(segment.log_file().as_ref(), &mut head, header.position)?;
            let Some(view) = RecordBatch::header_only(&head) else { continue };
            if !view.has_producer_id() {
                continue;
            }
            let full;
            let batch = if view.is_control() {
                full = segment.read_batch(&header)?;
                match RecordBatch::parse_prefix(&full, 0) {
                    Ok(b) => b,
                    Err(_) => continue,
                }
            } else {
                view
            };
            let mut update = state.prepare_update(batch.producer_id(), ProducerAppendMode::Replay);
            if let Err(error) = append_batch_to_producer(
                &mut update,
                &batch,
                header.base_offset,
                header.max_timestamp,
                max_decompressed,
            ) {
                tracing::warn!(offset = header.base_offset, %error, "skipping a batch while rebuilding producer state");
                continue;
            }
            let completed = update.take_completed();
            state.update(update);
            for txn in completed {
                let lso = state.last_stable_offset(&txn);
                if txn.is_aborted && segment.base_offset() >= rebuild_from {
                    segment.state().txn_index.append(AbortedTxn {
                        producer_id: txn.producer_id,
                        first_offset: txn.first_offset,
                        last_offset: txn.last_offset,
                        last_stable_offset: lso,
                    });
                }
                state.complete_txn(&txn);
            }
            replayed += 1;
        }
    }
    state.update_map_end_offset(log_end_offset);
    for segment in segments.values() {
        if segment.base_offset() >= rebuild_from {
            let bytes = segment.state().txn_index.to_bytes();
            let file = segment.txn_index_file();
            file.set_len(0)?;
            std::os::unix::fs::FileExt::write_all_at(file.as_ref(), &bytes, 0)?;
            file.sync_all()?;
            segment.state().txn_index.mark_all_persisted();
        }
    }
    state.remove_expired_producers(now, expiration_ms);
    tracing::debug!(dir = %dir.display(), replay_from, replayed, producers = state.producers().len(),
        "rebuilt producer state");
    Ok(state)
}

fn modified_ms(segment: &LogSegment) -> Option<i64> {
    let modified = segment.log_file().metadata().ok()?.modified().ok()?;
    Some(modified.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| LogError::Offline(format!("blocking log task failed: {e}")))?
}

/// (offset, timestamp) of every record of a batch, decompressing if needed.
fn record_timestamps(bytes: &[u8], max_decompressed: usize) -> Result<Vec<(i64, i64)>, String> {
    let batch = RecordBatch::parse_prefix(bytes, 0).map_err(|e| e.to_string())?;
    if batch.is_log_append_time() {
        // Every record of a LogAppendTime batch carries the batch's timestamp.
        return Ok((batch.base_offset()..=batch.last_offset()).map(|o| (o, batch.max_timestamp())).collect());
    }
    let decompressed;
    let body = match batch.compression() {
        CompressionCodec::None => batch.records_bytes(),
        codec => {
            decompressed = decompress(codec, batch.records_bytes(), max_decompressed).map_err(|e| e.to_string())?;
            &decompressed[..]
        }
    };
    RecordIter::new(body)
        .map(|r| {
            r.map(|info| {
                (
                    batch.base_offset() + i64::from(info.offset_delta),
                    batch.base_timestamp().saturating_add(info.timestamp_delta),
                )
            })
            .map_err(|e| e.to_string())
        })
        .collect()
}

fn io_err(segment: &LogSegment, e: std::io::Error) -> LogError {
    LogError::io(segment.log_path(), e)
}

fn batch_records(
    segment: &LogSegment,
    header: &BatchHeader,
    max_decompressed: usize,
) -> Result<Vec<(i64, i64)>, LogError> {
    let bytes = segment.read_batch(header).map_err(|e| io_err(segment, e))?;
    record_timestamps(&bytes, max_decompressed).map_err(|reason| {
        LogError::CorruptRecord(format!(
            "stored batch at {} of {}: {reason}",
            header.position,
            segment.log_path().display()
        ))
    })
}

fn find_by_timestamp(
    segments: &[Arc<LogSegment>],
    target: i64,
    lso: i64,
    hw: i64,
    max_decompressed: usize,
) -> Result<Option<(i64, i64)>, LogError> {
    for segment in segments {
        if segment.max_timestamp() < target || segment.next_offset() <= lso {
            continue;
        }
        let start = {
            let s = segment.state();
            s.time_index.lookup_below(target).map(|(_, o)| o).unwrap_or(segment.base_offset()).max(lso)
        };
        let end = segment.size();
        let Some(mut header) = segment.find_position(start, end).map_err(|e| io_err(segment, e))? else { continue };
        loop {
            if header.base_offset >= hw {
                return Ok(None);
            }
            if header.max_timestamp >= target && header.last_offset >= lso {
                for (offset, ts) in batch_records(segment, &header, max_decompressed)? {
                    if ts >= target && offset >= lso && offset < hw {
                        return Ok(Some((ts, offset)));
                    }
                }
            }
            match segment.read_header(header.position + header.size, end).map_err(|e| io_err(segment, e))? {
                Some(next) => header = next,
                None => break,
            }
        }
    }
    Ok(None)
}

fn find_max_timestamp(
    segments: &[Arc<LogSegment>],
    lso: i64,
    hw: i64,
    max_decompressed: usize,
) -> Result<Option<(i64, i64)>, LogError> {
    let mut best: Option<(&Arc<LogSegment>, i64, i64)> = None;
    for segment in segments {
        let (ts, offset) = {
            let s = segment.state();
            (s.max_timestamp, s.offset_of_max_timestamp)
        };
        if ts >= 0 && best.is_none_or(|(_, best_ts, _)| ts > best_ts) {
            best = Some((segment, ts, offset));
        }
    }
    let Some((segment, max_ts, offset)) = best else { return Ok(None) };
    let end = segment.size();
    let Some(header) = segment.find_position(offset, end).map_err(|e| io_err(segment, e))? else { return Ok(None) };
    for (record_offset, ts) in batch_records(segment, &header, max_decompressed)? {
        if ts == max_ts && record_offset >= lso && record_offset < hw {
            return Ok(Some((ts, record_offset)));
        }
    }
    Ok(Some((max_ts, offset)))
}
