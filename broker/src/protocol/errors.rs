//! The Kafka error code a client expects for each broker-side failure.

use kafka_protocol::ResponseError;

use crate::cluster::MetadataError;
use crate::log::LogError;

/// Kafka's error for a failed log operation.
pub fn log_error_code(e: &LogError) -> ResponseError {
    match e {
        LogError::CorruptRecord(_) => ResponseError::CorruptMessage,
        LogError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
        LogError::InvalidRecord(_) => ResponseError::InvalidRecord,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        LogError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        LogError::TransactionCoordinatorFenced(_) => ResponseError::TransactionCoordinatorFenced,
        LogError::Io { .. } | LogError::Offline(_) | LogError::DataDirLocked { .. } => ResponseError::KafkaStorageError,
    }
}

/// Kafka's error for a failed topic operation.
pub fn metadata_error_code(e: &MetadataError) -> ResponseError {
    match e {
        MetadataError::InvalidTopic(_) => ResponseError::InvalidTopicException,
        MetadataError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        MetadataError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        MetadataError::InvalidConfig(_) => ResponseError::InvalidConfig,
        MetadataError::InvalidRequest(_) => ResponseError::InvalidRequest,
        MetadataError::Log(e) => log_error_code(e),
        MetadataError::Persist { .. } => ResponseError::KafkaStorageError,
    }
}
