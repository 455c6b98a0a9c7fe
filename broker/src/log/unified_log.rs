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

use super::compression::decompress;
use super::config::LogConfig;
use super::error::LogError;
use super::leader_epoch_cache::LeaderEpochCache;
use super::log_validator::{validate_and_assign_offsets, AppendOrigin, ValidationContext};
use super::record::RecordIter;
use super::record_batch::{CompressionCodec, RecordBatch};
use super::recovery::load_log;
use super::retention::{deletable_prefix, SegmentInfo};
use super::segment::{BatchHeader, LogSegment};
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
        let mut epochs = LeaderEpochCache::load(&dir);
        if epochs.truncate_from_end(log_end_offset) {
            epochs.persist().map_err(|e| LogError::io(&dir, e))?;
        }
        if loaded.truncated {
            tracing::warn!(topic = %ctx.tp.topic, partition = ctx.tp.partition, log_end_offset, "log recovered with truncation");
        }
        tracing::info!(
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
        if fetch_offset >= hw {
            return Ok(Bytes::new());
        }
        run_blocking(move || {
            for segment in segments {
                match segment.read(fetch_offset, max_bytes, min_one_message, hw) {
                    Ok(Some(bytes)) => return Ok(bytes),
                    Ok(None) => continue,
                    Err(e) => return Err(LogError::io(segment.log_path(), e)),
                }
            }
            Ok(Bytes::new())
        })
        .await
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
        let (lso, hw, segments) = {
            let s = self.inner.state.read();
            (s.log_start_offset, s.log_end_offset, s.segments.values().cloned().collect::<Vec<_>>())
        };
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
            || now.saturating_sub(active.state().rolling_based_ms) <= config.segment_ms
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

    /// Stops writes, seals the active segment's time index and flushes everything (shutdown).
    pub async fn close(&self) -> Result<(), LogError> {
        let _guard = self.inner.append_lock.lock().await;
        if let Some(active) = self.inner.state.read().segments.values().next_back() {
            active.seal_time_index();
        }
        let result = self.inner.flush().await;
        self.inner.state.write().offline = Some("log is closed".to_string());
        result
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

        let mut active = self.active_segment()?;
        if active.should_roll(
            validated.bytes.len() as u64,
            validated.last_offset,
            config.segment_bytes,
            config.segment_ms,
            now,
        ) {
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
        })
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
        let (a, b, c) = futures::join!(
            self.storage.sync(self.shard, segment.log_file().clone()),
            self.storage.sync(self.shard, segment.index_file().clone()),
            self.storage.sync(self.shard, segment.time_index_file().clone()),
        );
        a.and(b).and(c).map_err(|e| LogError::io(segment.log_path(), e))?;
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
                s.flushed_size < s.size || s.offset_index.pending().is_some() || s.time_index.pending().is_some()
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
        let config = self.config.read().clone();
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
