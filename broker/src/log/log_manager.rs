//! Every partition log of one data directory, as Kafka's `LogManager`: the storage backend, opening (and
//! recovering) logs on demand, deleting them, the data-dir checkpoints, and the retention / flush tasks.
//!
//! Data-dir files, as Kafka keeps them: `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint` and the
//! `.kafka_cleanshutdown` marker. The marker is written last at shutdown and removed at open, so a log loaded in a
//! run that did not end with [`LogManager::shutdown`] is recovered from its checkpointed recovery point next time.
//! Checkpoints are written at every flush-check tick (when changed), after deletions, and at shutdown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::checkpoint::{read_checkpoint, write_checkpoint, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT};
use super::config::LogConfig;
use super::error::LogError;
use super::log_cleaner::{CleanerStats, CLEANER_OFFSET_CHECKPOINT, DEFAULT_DEDUPE_BUFFER_BYTES};
use super::segment::sync_dir;
use super::unified_log::{now_ms, LogContext, UnifiedLog};
use super::TopicPartition;
use crate::config::StorageBackendKind;
use crate::io::Storage;

/// Kafka's clean shutdown marker file.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Suffix of a partition folder being deleted (`<topic>-<partition>.<uuid>-delete`).
pub const DELETE_DIR_SUFFIX: &str = "-delete";

/// How the log manager is set up.
#[derive(Debug, Clone)]
pub struct LogManagerOptions {
    pub backend: StorageBackendKind,
    pub max_decompressed_batch_bytes: usize,
}

pub struct LogManager {
    data_dir: PathBuf,
    storage: Arc<Storage>,
    max_decompressed_batch_bytes: usize,
    logs: Mutex<HashMap<TopicPartition, Arc<UnifiedLog>>>,
    /// Serialises log creation so two requests for a new partition do not both create it.
    creating: tokio::sync::Mutex<()>,
    had_clean_shutdown: bool,
    recovery_points: Mutex<HashMap<TopicPartition, i64>>,
    log_start_offsets: Mutex<HashMap<TopicPartition, i64>>,
    /// `cleaner-offset-checkpoint`: first dirty offset of each compacted log.
    cleaner_offsets: Mutex<HashMap<TopicPartition, i64>>,
    dirs_on_disk: Vec<TopicPartition>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    shut_down: Mutex<bool>,
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager").field("data_dir", &self.data_dir).field("backend", &self.storage.name()).finish()
    }
}

/// Parses a partition folder name `<topic>-<partition>`; `None` for anything else (including `-delete` folders).
pub fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(TopicPartition::new(topic, partition.parse().ok()?))
}

impl LogManager {
    /// Opens the data dir (creating it) and starts the storage backend. Does not load logs yet.
    pub fn open(data_dir: &Path, options: LogManagerOptions) -> Result<Arc<LogManager>, LogError> {
        let threads = std::thread::available_parallelism().map(|n| if n.get() >= 4 { 2 } else { 1 }).unwrap_or(1);
        Self::open_with_threads(data_dir, options, threads)
    }

    /// [`Self::open`] with an explicit number of storage threads (1 or 2 make sense).
    pub fn open_with_threads(
        data_dir: &Path,
        options: LogManagerOptions,
        threads: usize,
    ) -> Result<Arc<LogManager>, LogError> {
        std::fs::create_dir_all(data_dir).map_err(|e| LogError::io(data_dir, e))?;
        let storage = Storage::start(options.backend, threads).map_err(|e| LogError::io(data_dir, e))?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let had_clean_shutdown = marker.exists();
        if had_clean_shutdown {
            std::fs::remove_file(&marker).map_err(|e| LogError::io(&marker, e))?;
            sync_dir(data_dir).map_err(|e| LogError::io(data_dir, e))?;
        }
        let mut dirs_on_disk = Vec::new();
        for entry in std::fs::read_dir(data_dir).map_err(|e| LogError::io(data_dir, e))? {
            let entry = entry.map_err(|e| LogError::io(data_dir, e))?;
            if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(DELETE_DIR_SUFFIX) {
                // A deletion interrupted by a crash: finish it.
                let path = entry.path();
                std::thread::spawn(move || {
                    if let Err(e) = std::fs::remove_dir_all(&path) {
                        tracing::warn!(path = %path.display(), error = %e, "could not delete partition folder");
                    }
                });
                continue;
            }
            if let Some(tp) = parse_partition_dir(&name) {
                dirs_on_disk.push(tp);
            }
        }
        dirs_on_disk.sort();
        tracing::info!(data_dir = %data_dir.display(), backend = storage.name(), clean_shutdown = had_clean_shutdown,
            partitions = dirs_on_disk.len(), "log manager opened");
        Ok(Arc::new(LogManager {
            data_dir: data_dir.to_path_buf(),
            storage: Arc::new(storage),
            max_decompressed_batch_bytes: options.max_decompressed_batch_bytes,
            logs: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            had_clean_shutdown,
            recovery_points: Mutex::new(read_checkpoint(&data_dir.join(RECOVERY_POINT_CHECKPOINT))),
            log_start_offsets: Mutex::new(read_checkpoint(&data_dir.join(LOG_START_OFFSET_CHECKPOINT))),
            cleaner_offsets: Mutex::new(read_checkpoint(&data_dir.join(CLEANER_OFFSET_CHECKPOINT))),
            dirs_on_disk,
            tasks: Mutex::new(Vec::new()),
            shut_down: Mutex::new(false),
        }))
    }

    /// "io_uring" or "std".
    pub fn backend_name(&self) -> &'static str {
        self.storage.name()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Partition folders found on disk at open.
    pub fn partition_dirs_on_disk(&self) -> Vec<TopicPartition> {
        self.dirs_on_disk.clone()
    }

    /// Opens an existing log (recovering it if the last shutdown was not clean) or creates it.
    pub async fn get_or_create_log(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<UnifiedLog>, LogError> {
        if let Some(log) = self.get_log(tp) {
            return Ok(log);
        }
        let _creating = self.creating.lock().await;
        if let Some(log) = self.get_log(tp) {
            return Ok(log);
        }
        if *self.shut_down.lock() {
            return Err(LogError::Offline(format!("{tp}: log manager is shut down")));
        }
        let recovery_point = if self.had_clean_shutdown {
            None
        } else {
            // Kafka recovers from 0 when a log has no checkpointed recovery point.
            Some(self.recovery_points.lock().get(tp).copied().unwrap_or(0))
        };
        let log_start_offset = self.log_start_offsets.lock().get(tp).copied();
        let ctx = LogContext {
            dir: self.data_dir.join(tp.to_string()),
            tp: tp.clone(),
            storage: self.storage.clone(),
            shard: shard_for(tp, self.storage.thread_count()),
            max_decompressed_batch_bytes: self.max_decompressed_batch_bytes,
        };
        let log = tokio::task::spawn_blocking(move || UnifiedLog::open(ctx, config, recovery_point, log_start_offset))
            .await
            .map_err(|e| LogError::Offline(format!("{tp}: loading the log failed: {e}")))??;
        let log = Arc::new(log);
        self.logs.lock().insert(tp.clone(), log.clone());
        Ok(log)
    }

    pub fn get_log(&self, tp: &TopicPartition) -> Option<Arc<UnifiedLog>> {
        self.logs.lock().get(tp).cloned()
    }

    pub fn all_logs(&self) -> Vec<Arc<UnifiedLog>> {
        self.logs.lock().values().cloned().collect()
    }

    /// Removes the log: closes it, renames the folder to `<topic>-<partition>.<uuid>-delete` and deletes it in the
    /// background.
    pub async fn delete_log(&self, tp: &TopicPartition) -> Result<(), LogError> {
        let _creating = self.creating.lock().await;
        let log = self.logs.lock().remove(tp);
        let dir = self.data_dir.join(tp.to_string());
        let doomed = self.data_dir.join(format!("{tp}.{}{DELETE_DIR_SUFFIX}", uuid::Uuid::new_v4().simple()));
        if let Some(log) = &log {
            log.mark_deleted(&doomed).await;
        }
        if dir.exists() {
            std::fs::rename(&dir, &doomed).map_err(|e| LogError::io(&dir, e))?;
            sync_dir(&self.data_dir).map_err(|e| LogError::io(&self.data_dir, e))?;
            tokio::task::spawn_blocking(move || {
                if let Err(e) = std::fs::remove_dir_all(&doomed) {
                    tracing::warn!(path = %doomed.display(), error = %e, "could not delete partition folder");
                }
            });
        }
        self.recovery_points.lock().remove(tp);
        self.log_start_offsets.lock().remove(tp);
        let had_cleaner_entry = self.cleaner_offsets.lock().remove(tp).is_some();
        if had_cleaner_entry {
            self.write_cleaner_checkpoint()?;
        }
        self.write_checkpoints()?;
        tracing::info!(topic = %tp.topic, partition = tp.partition, "deleted log");
        Ok(())
    }

    /// Writes both data-dir checkpoints from the loaded logs (keeping entries of logs not loaded in this run).
    pub fn write_checkpoints(&self) -> Result<(), LogError> {
        let logs = self.all_logs();
        let (recovery, starts) = {
            let mut recovery = self.recovery_points.lock();
            let mut starts = self.log_start_offsets.lock();
            for log in &logs {
                recovery.insert(log.topic_partition().clone(), log.recovery_point());
                starts.insert(log.topic_partition().clone(), log.log_start_offset());
            }
            (recovery.clone(), starts.clone())
        };
        write_checkpoint(&self.data_dir, RECOVERY_POINT_CHECKPOINT, &recovery)
            .map_err(|e| LogError::io(&self.data_dir, e))?;
        write_checkpoint(&self.data_dir, LOG_START_OFFSET_CHECKPOINT, &starts)
            .map_err(|e| LogError::io(&self.data_dir, e))
    }

    /// Spawns the retention task (segment.ms rolls, retention.ms / retention.bytes / log start offset deletions)
    /// every `retention_check` and the flush.ms task every `flush_check`.
    pub fn start_background_tasks(self: &Arc<Self>, retention_check: Duration, flush_check: Duration) {
        let weak: Weak<LogManager> = Arc::downgrade(self);
        let retention = tokio::spawn(async move {
            let mut tick = tokio::time::interval(retention_check.max(Duration::from_millis(1)));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(manager) = weak.upgrade() else { return };
                manager.run_retention_once().await;
            }
        });
        let weak: Weak<LogManager> = Arc::downgrade(self);
        let flush = tokio::spawn(async move {
            let mut tick = tokio::time::interval(flush_check.max(Duration::from_millis(1)));
            tick.tick().await;
            let mut last_written: Option<(HashMap<TopicPartition, i64>, HashMap<TopicPartition, i64>)> = None;
            loop {
                tick.tick().await;
                let Some(manager) = weak.upgrade() else { return };
                manager.run_flush_once().await;
                let snapshot = manager.offsets_snapshot();
                if last_written.as_ref() != Some(&snapshot) {
                    match manager.write_checkpoints() {
                        Ok(()) => last_written = Some(snapshot),
                        Err(error) => tracing::warn!(%error, "could not write log checkpoints"),
                    }
                }
            }
        });
        let weak: Weak<LogManager> = Arc::downgrade(self);
        let backoff = retention_check.clamp(Duration::from_millis(1), Duration::from_secs(15));
        let cleaner = tokio::spawn(async move {
            let mut tick = tokio::time::interval(backoff);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(manager) = weak.upgrade() else { return };
                manager.run_cleaner_once().await;
            }
        });
        self.tasks.lock().extend([retention, flush, cleaner]);
    }

    /// One log cleaner pass over every log whose `cleanup.policy` has `compact` (Kafka's cleaner threads pick the
    /// filthiest log; one pass here visits all of them in turn). Returns how many logs were cleaned.
    pub async fn run_cleaner_once(&self) -> usize {
        let mut cleaned = 0;
        for log in self.all_logs() {
            if !log.config().cleanup_policy_compact {
                continue;
            }
            if self.clean_log(&log, false).await.is_some() {
                cleaned += 1;
            }
        }
        cleaned
    }

    /// Cleans one log now, whatever its dirty ratio (as long as it has closed segments); for tests and tools.
    pub async fn clean_log_now(&self, tp: &TopicPartition) -> Result<Option<CleanerStats>, LogError> {
        let log = self.get_log(tp).ok_or_else(|| LogError::Offline(format!("{tp}: no such log")))?;
        let checkpoint = self.cleaner_offsets.lock().get(tp).copied();
        let result = log.clean(checkpoint, true, DEFAULT_DEDUPE_BUFFER_BYTES).await?;
        if let Some((first_dirty, _)) = result {
            self.cleaner_offsets.lock().insert(tp.clone(), first_dirty);
            self.write_cleaner_checkpoint()?;
        }
        Ok(result.map(|(_, stats)| stats))
    }

    async fn clean_log(&self, log: &Arc<UnifiedLog>, force: bool) -> Option<CleanerStats> {
        let tp = log.topic_partition().clone();
        let checkpoint = self.cleaner_offsets.lock().get(&tp).copied();
        match log.clean(checkpoint, force, DEFAULT_DEDUPE_BUFFER_BYTES).await {
            Ok(Some((first_dirty, stats))) => {
                self.cleaner_offsets.lock().insert(tp.clone(), first_dirty);
                if let Err(error) = self.write_cleaner_checkpoint() {
                    tracing::warn!(%error, "could not write the cleaner offset checkpoint");
                }
                Some(stats)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, %error, "log cleaning failed");
                None
            }
        }
    }

    /// The `cleaner-offset-checkpoint` entry of a log (first dirty offset), if it was ever cleaned.
    pub fn cleaner_checkpoint(&self, tp: &TopicPartition) -> Option<i64> {
        self.cleaner_offsets.lock().get(tp).copied()
    }

    fn write_cleaner_checkpoint(&self) -> Result<(), LogError> {
        let entries = self.cleaner_offsets.lock().clone();
        write_checkpoint(&self.data_dir, CLEANER_OFFSET_CHECKPOINT, &entries)
            .map_err(|e| LogError::io(&self.data_dir, e))
    }

    fn offsets_snapshot(&self) -> (HashMap<TopicPartition, i64>, HashMap<TopicPartition, i64>) {
        let logs = self.all_logs();
        (
            logs.iter().map(|l| (l.topic_partition().clone(), l.recovery_point())).collect(),
            logs.iter().map(|l| (l.topic_partition().clone(), l.log_start_offset())).collect(),
        )
    }

    /// One pass of segment.ms rolls and retention over every log.
    pub async fn run_retention_once(&self) {
        for log in self.all_logs() {
            let tp = log.topic_partition().clone();
            if let Err(error) = log.roll_if_due().await {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, %error, "segment.ms roll failed");
            }
            if let Err(error) = log.delete_old_segments().await {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, %error, "retention failed");
            }
            let expired = log.remove_expired_producers(now_ms());
            if expired > 0 {
                tracing::info!(topic = %tp.topic, partition = tp.partition, expired, "expired idle producer ids");
            }
        }
    }

    /// One pass of flush.ms over every log.
    pub async fn run_flush_once(&self) {
        let now = now_ms();
        for log in self.all_logs() {
            if log.flush_due(now) {
                if let Err(error) = log.flush().await {
                    let tp = log.topic_partition();
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, %error, "flush.ms flush failed");
                }
            }
        }
    }

    /// Flushes everything, writes the checkpoints and the clean shutdown marker, stops background tasks and
    /// storage threads. The marker is written only if every log closed cleanly.
    pub async fn shutdown(&self) -> Result<(), LogError> {
        {
            let mut shut_down = self.shut_down.lock();
            if *shut_down {
                return Ok(());
            }
            *shut_down = true;
        }
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        let mut first_error = None;
        for log in self.all_logs() {
            if let Err(error) = log.close().await {
                let tp = log.topic_partition();
                tracing::error!(topic = %tp.topic, partition = tp.partition, %error, "log did not close cleanly");
                first_error.get_or_insert(error);
            }
        }
        if let Err(error) = self.write_checkpoints() {
            first_error.get_or_insert(error);
        }
        if first_error.is_none() {
            let marker = self.data_dir.join(CLEAN_SHUTDOWN_FILE);
            let written =
                std::fs::write(&marker, b"{\"version\":0,\"brokerEpoch\":-1}").and_then(|()| sync_dir(&self.data_dir));
            if let Err(e) = written {
                first_error.get_or_insert(LogError::io(&marker, e));
            }
        }
        self.storage.shutdown();
        tracing::info!(data_dir = %self.data_dir.display(), clean = first_error.is_none(), "log manager shut down");
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

fn shard_for(tp: &TopicPartition, threads: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    tp.hash(&mut hasher);
    (hasher.finish() as usize) % threads.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dir_names_parse_like_kafka() {
        assert_eq!(parse_partition_dir("orders-0"), Some(TopicPartition::new("orders", 0)));
        assert_eq!(parse_partition_dir("my-topic-12"), Some(TopicPartition::new("my-topic", 12)));
        assert_eq!(parse_partition_dir("orders-0.abc-delete"), None);
        assert_eq!(parse_partition_dir("orders"), None);
        assert_eq!(parse_partition_dir("-3"), None);
        assert_eq!(parse_partition_dir("t--1"), Some(TopicPartition::new("t-", 1)));
    }
}
