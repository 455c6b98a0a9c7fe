//! Why a log operation failed, with the context an operator needs and the Kafka error a client expects.

use std::path::PathBuf;

/// Errors from the partition log. Each maps to the Kafka error code a client expects (see
/// `protocol::errors`).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A batch failed validation: bad magic, CRC mismatch, inconsistent counts or lengths (CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    CorruptRecord(String),
    /// A batch is larger than `max.message.bytes` (MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes is larger than max.message.bytes={max}")]
    RecordTooLarge { size: usize, max: usize },
    /// A record's timestamp is outside `message.timestamp.before.max.ms` / `after.max.ms` (INVALID_TIMESTAMP).
    #[error("invalid timestamp {timestamp}: {reason}")]
    InvalidTimestamp { timestamp: i64, reason: String },
    /// A batch is well-formed but not acceptable here, e.g. a control batch from a client (INVALID_RECORD).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A read or offset look-up outside `[log_start_offset, log_end_offset]` (OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, log_end_offset: i64 },
    /// An idempotent batch does not follow the producer's last sequence, or a new epoch does not start at 0
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    /// A batch or marker carries an older producer epoch than the log has seen (INVALID_PRODUCER_EPOCH).
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// A non-transactional write while the producer has a transaction open here, or the reverse
    /// (INVALID_TXN_STATE).
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A transaction marker from an older coordinator epoch than the last marker (TRANSACTION_COORDINATOR_FENCED).
    #[error("transaction coordinator fenced: {0}")]
    TransactionCoordinatorFenced(String),
    /// The disk failed or is full (KAFKA_STORAGE_ERROR). The log refuses further writes until reopened.
    #[error("storage error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The log was taken offline after an earlier storage error, or deleted (KAFKA_STORAGE_ERROR).
    #[error("log {0} is offline")]
    Offline(String),
    /// Another broker holds the data directory's `.lock`.
    #[error(
        "data directory {} is in use by another broker (its .lock is held); stop that broker or choose another \
         --data-dir",
        dir.display()
    )]
    DataDirLocked { dir: PathBuf },
}

impl LogError {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io { path: path.into(), source }
    }
}
