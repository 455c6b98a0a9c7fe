//! The partition log, shaped after Apache Kafka's `storage/internals/log`.
//!
//! A partition is a folder `<topic>-<partition>` of segments: `<base offset>.log` holds record batches exactly as
//! they came off the wire (base offset and leader epoch set in place), with a sparse `.index` (relative offset ->
//! file position) and `.timeindex` (timestamp -> relative offset) beside it. [`UnifiedLog`] is one partition;
//! [`LogManager`] owns every log in a data directory and runs retention and time-based flushes.

pub mod batch_builder;
pub mod checkpoint;
pub mod compression;
pub mod config;
pub mod dir_lock;
pub mod error;
pub mod leader_epoch_cache;
pub mod log_cleaner;
pub mod log_manager;
pub mod log_validator;
pub mod offset_index;
pub mod offset_map;
pub mod producer_state;
pub mod record;
pub mod record_batch;
pub mod recovery;
pub mod retention;
pub mod segment;
pub mod time_index;
pub mod transaction_index;
pub mod unified_log;

pub use config::{LogConfig, TimestampType};
pub use error::LogError;
pub use log_manager::{LogManager, LogManagerOptions};
pub use log_validator::AppendOrigin;
pub use transaction_index::AbortedTxn;
pub use unified_log::{LogAppendInfo, TimestampAndOffset, UnifiedLog};

/// A topic name and partition index; formats as Kafka's folder name `topic-partition`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
