//! Broker settings. Names follow Apache Kafka's broker configs with dots turned into underscores
//! (`log.retention.ms` -> `log_retention_ms`), so a Kafka operator recognises every one; `listen` and `data_dir`
//! are the two a newcomer sets. Unknown keys are refused when loaded from a file or the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::log::{LogConfig, TimestampType};

/// Which storage backend the log uses for segment I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackendKind {
    /// io_uring when the kernel allows it, otherwise the portable backend.
    #[default]
    Auto,
    /// io_uring only; start-up fails if it is unavailable.
    IoUring,
    /// Portable `std::fs` backend.
    Std,
}

/// Everything a broker needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address to listen on (`listeners`). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Extra addresses to listen on, e.g. `[::1]:9092` so that `localhost` works for clients that resolve it to
    /// IPv6 first. Failure to bind one of these is logged, not fatal.
    pub extra_listen: Vec<SocketAddr>,
    /// `advertised.listeners`: the `host:port` clients are told to connect to. Defaults to the bound address.
    pub advertised_listener: Option<String>,
    /// `log.dirs`: where partitions, topic metadata and committed offsets are kept.
    pub data_dir: PathBuf,
    /// `node.id`.
    pub node_id: i32,
    /// Cluster id reported in Metadata; generated and persisted in the data dir when absent.
    pub cluster_id: Option<String>,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of an auto-created topic, or of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`; a single node accepts 1 (or -1).
    pub default_replication_factor: i16,
    /// `socket.request.max.bytes`: largest request frame accepted; a larger one closes the connection.
    pub socket_request_max_bytes: usize,
    /// `connections.max.idle.ms`: close a connection that sent nothing for this long.
    pub connections_max_idle_ms: u64,
    /// Requests read ahead of the one being answered on one connection (`queued.max.requests` per connection).
    pub max_in_flight_requests_per_connection: usize,
    /// `max.connections`.
    pub max_connections: usize,
    /// Largest decompressed size accepted for one compressed batch, so a small batch cannot expand to gigabytes.
    pub max_decompressed_batch_bytes: usize,
    /// Storage backend for segment I/O.
    pub storage_backend: StorageBackendKind,
    /// fsync every produce request before answering it (group-committed across partitions). Off by default,
    /// as in Kafka, which relies on replication rather than fsync.
    pub flush_every_produce: bool,
    /// `log.segment.bytes`.
    pub log_segment_bytes: u64,
    /// `log.roll.ms`.
    pub log_roll_ms: i64,
    /// `log.retention.ms`.
    pub log_retention_ms: i64,
    /// `log.retention.bytes`.
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
    /// `log.flush.interval.messages`.
    pub log_flush_interval_messages: i64,
    /// `log.flush.interval.ms`.
    pub log_flush_interval_ms: i64,
    /// `log.flush.scheduler.interval.ms`: how often `flush.ms` is checked.
    pub log_flush_scheduler_interval_ms: u64,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: u64,
    /// `log.index.size.max.bytes`.
    pub log_index_size_max_bytes: u64,
    /// `log.segment.delete.delay.ms`.
    pub log_segment_delete_delay_ms: i64,
    /// `message.max.bytes`: the broker default for `max.message.bytes`.
    pub message_max_bytes: usize,
    /// `log.message.timestamp.type`: `CreateTime` or `LogAppendTime`.
    pub log_message_timestamp_type: String,
    /// `log.message.timestamp.before.max.ms`.
    pub log_message_timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms`.
    pub log_message_timestamp_after_max_ms: i64,
    /// `log.cleanup.policy`: `delete`, `compact` or `compact,delete`.
    pub log_cleanup_policy: String,
    /// `log.cleaner.delete.retention.ms`: how long tombstones survive compaction.
    pub log_cleaner_delete_retention_ms: i64,
    /// `log.cleaner.min.cleanable.ratio`.
    pub log_cleaner_min_cleanable_ratio: f64,
    /// `log.cleaner.min.compaction.lag.ms`.
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms`.
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// `producer.id.expiration.ms`: forget an idle idempotent producer's state after this long.
    pub producer_id_expiration_ms: i64,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u64,
    /// `offsets.retention.minutes`.
    pub offsets_retention_minutes: u64,
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: a transactional id idle (no transaction) this long is removed.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state` when it is created.
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often timed-out transactions are
    /// looked for and aborted.
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often expired transactional ids are
    /// looked for.
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let log = LogConfig::default();
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            extra_listen: Vec::new(),
            advertised_listener: None,
            data_dir: PathBuf::from("./spate-data"),
            node_id: 1,
            cluster_id: None,
            auto_create_topics_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            socket_request_max_bytes: 100 * 1024 * 1024,
            connections_max_idle_ms: 600_000,
            max_in_flight_requests_per_connection: 100,
            max_connections: 10_000,
            max_decompressed_batch_bytes: 64 * 1024 * 1024,
            storage_backend: StorageBackendKind::Auto,
            flush_every_produce: false,
            log_segment_bytes: log.segment_bytes,
            log_roll_ms: log.segment_ms,
            log_retention_ms: log.retention_ms,
            log_retention_bytes: log.retention_bytes,
            log_retention_check_interval_ms: 300_000,
            log_flush_interval_messages: log.flush_messages,
            log_flush_interval_ms: log.flush_ms,
            log_flush_scheduler_interval_ms: 1_000,
            log_index_interval_bytes: log.index_interval_bytes,
            log_index_size_max_bytes: log.segment_index_bytes,
            log_segment_delete_delay_ms: log.file_delete_delay_ms,
            message_max_bytes: log.max_message_bytes,
            log_message_timestamp_type: "CreateTime".to_string(),
            log_message_timestamp_before_max_ms: log.message_timestamp_before_max_ms,
            log_message_timestamp_after_max_ms: log.message_timestamp_after_max_ms,
            log_cleanup_policy: "delete".to_string(),
            log_cleaner_delete_retention_ms: log.delete_retention_ms,
            log_cleaner_min_cleanable_ratio: log.min_cleanable_dirty_ratio,
            log_cleaner_min_compaction_lag_ms: log.min_compaction_lag_ms,
            log_cleaner_max_compaction_lag_ms: log.max_compaction_lag_ms,
            producer_id_expiration_ms: log.producer_id_expiration_ms,
            group_initial_rebalance_delay_ms: 3_000,
            offsets_retention_minutes: 7 * 24 * 60,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            transaction_state_log_num_partitions: 50,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transaction_remove_expired_transaction_cleanup_interval_ms: 3_600_000,
        }
    }
}

impl BrokerConfig {
    /// A broker for tests: a free port on 127.0.0.1, data in `data_dir`, no initial rebalance delay, and the
    /// storage backend taken from `SPATE_STORAGE_BACKEND` (`auto`, `io_uring`, `std`) so CI can run every test
    /// on both backends.
    pub fn for_tests(data_dir: &Path) -> Self {
        let storage_backend = match std::env::var("SPATE_STORAGE_BACKEND").as_deref() {
            Ok("std") => StorageBackendKind::Std,
            Ok("io_uring") => StorageBackendKind::IoUring,
            _ => StorageBackendKind::Auto,
        };
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_path_buf(),
            group_initial_rebalance_delay_ms: 0,
            storage_backend,
            ..BrokerConfig::default()
        }
    }

    /// The log settings a topic gets when it sets no config of its own.
    pub fn default_log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.log_segment_bytes,
            segment_ms: self.log_roll_ms,
            segment_index_bytes: self.log_index_size_max_bytes,
            index_interval_bytes: self.log_index_interval_bytes,
            retention_ms: self.log_retention_ms,
            retention_bytes: self.log_retention_bytes,
            max_message_bytes: self.message_max_bytes,
            message_timestamp_type: if self.log_message_timestamp_type == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            message_timestamp_before_max_ms: self.log_message_timestamp_before_max_ms,
            message_timestamp_after_max_ms: self.log_message_timestamp_after_max_ms,
            flush_messages: if self.flush_every_produce { 1 } else { self.log_flush_interval_messages },
            flush_ms: self.log_flush_interval_ms,
            file_delete_delay_ms: self.log_segment_delete_delay_ms,
            cleanup_policy_compact: self.log_cleanup_policy.split(',').any(|p| p.trim() == "compact"),
            cleanup_policy_delete: self.log_cleanup_policy.split(',').any(|p| p.trim() == "delete"),
            delete_retention_ms: self.log_cleaner_delete_retention_ms,
            min_cleanable_dirty_ratio: self.log_cleaner_min_cleanable_ratio,
            min_compaction_lag_ms: self.log_cleaner_min_compaction_lag_ms,
            max_compaction_lag_ms: self.log_cleaner_max_compaction_lag_ms,
            producer_id_expiration_ms: self.producer_id_expiration_ms,
        }
    }
}
