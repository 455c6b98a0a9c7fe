//! What can go wrong with a transaction, and which failures end a producer for good: a newer producer with the
//! same `transactional.id` fenced it, or librdkafka raised a fatal error. Such a producer can never commit again;
//! a listener container's consumer stops, an `in_transaction` pool drops the producer.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::ConfigError;
use crate::listener::BoxError;

/// A transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// The factory has no `kafka.producer.transaction_id_prefix`.
    #[error("transactions are off: set `kafka.producer.transaction_id_prefix` to use them")]
    NotTransactional,
    /// A newer producer with the same `transactional.id` took over (a zombie was fenced). Fatal.
    #[error("producer `{transactional_id}` was fenced during {operation} (another instance uses the same transactional.id): {error}")]
    Fenced {
        /// The fenced producer's `transactional.id`.
        transactional_id: String,
        /// What was attempted.
        operation: &'static str,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// librdkafka raised a fatal error: the producer cannot be used any more.
    #[error("fatal error of producer `{transactional_id}` during {operation}: {error}")]
    Fatal {
        /// The producer's `transactional.id`.
        transactional_id: String,
        /// What was attempted.
        operation: &'static str,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// A transaction operation failed; the transaction was (or will be) aborted and the producer can be reused.
    #[error("{operation} of producer `{transactional_id}` failed: {error}")]
    Kafka {
        /// The producer's `transactional.id`.
        transactional_id: String,
        /// What was attempted.
        operation: &'static str,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// The transaction's work returned an error (or the consumer's group metadata was unavailable); it was
    /// rolled back. Nested in another transaction, the outer one decides.
    #[error("transaction rolled back: {0}")]
    RolledBack(BoxError),
    /// The producer could not be created.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl TransactionError {
    /// Whether the producer is finished (fenced or fatally failed).
    pub fn is_fatal(&self) -> bool {
        matches!(self, TransactionError::Fenced { .. } | TransactionError::Fatal { .. })
    }

    /// Whether a newer producer with the same `transactional.id` fenced this one.
    pub fn is_fenced(&self) -> bool {
        matches!(self, TransactionError::Fenced { .. })
    }
}

/// Sorts librdkafka's error into fenced, fatal or abortable.
pub(crate) fn classify(operation: &'static str, transactional_id: &str, error: KafkaError) -> TransactionError {
    let transactional_id = transactional_id.to_string();
    let fenced = matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::FencedInstanceId
        )
    );
    let fatal = matches!(&error, KafkaError::Transaction(e) if e.is_fatal())
        || matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal));
    if fenced {
        TransactionError::Fenced { transactional_id, operation, error }
    } else if fatal {
        TransactionError::Fatal { transactional_id, operation, error }
    } else {
        TransactionError::Kafka { transactional_id, operation, error }
    }
}
