//! The per-log settings, named after Apache Kafka's topic configs (`segment.bytes`, `retention.ms`, ...).
//!
//! `cluster::topic_config` turns a topic's string configs into this struct; the log reads only this.

/// Which timestamp a batch carries in the log (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamp is kept (validated against the before/after bounds).
    CreateTime,
    /// The broker overwrites the batch's max timestamp with its append time and sets the timestamp-type bit.
    LogAppendTime,
}

/// Settings of one partition log. Field names follow the Kafka topic config they come from.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment when the active one would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// `segment.index.bytes`: maximum size of an offset or time index file.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of log between two index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete closed segments whose newest record is older than this; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest closed segments while the log is larger than this; -1 means no limit.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest record batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime timestamp may be.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime timestamp may be.
    pub message_timestamp_after_max_ms: i64,
    /// `flush.messages`: fsync after this many records appended since the last fsync (1 = every append).
    pub flush_messages: i64,
    /// `flush.ms`: fsync when the oldest unflushed append is older than this.
    pub flush_ms: i64,
    /// `file.delete.delay.ms`: how long a deleted segment's files linger (renamed `.deleted`) before removal.
    pub file_delete_delay_ms: i64,
    /// `cleanup.policy` contains `compact`: the log cleaner keeps the latest record per key.
    pub cleanup_policy_compact: bool,
    /// `cleanup.policy` contains `delete`: retention.ms / retention.bytes delete old segments.
    pub cleanup_policy_delete: bool,
    /// `delete.retention.ms`: how long a tombstone (and an empty transaction's marker) survives once the cleaner
    /// has seen it (Kafka's delete horizon).
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean when dirty bytes / total cleanable bytes reaches this.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty segment older than this is cleaned whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `producer.id.expiration.ms` (a broker config in Kafka): producer state of an idle producer id is dropped
    /// after this long.
    pub producer_id_expiration_ms: i64,
}

impl Default for LogConfig {
    /// Apache Kafka 4.x defaults.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1024 * 1024 + 12,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 60 * 60 * 1000,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
            cleanup_policy_compact: false,
            cleanup_policy_delete: true,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
        }
    }
}
