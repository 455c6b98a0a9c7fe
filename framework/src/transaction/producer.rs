//! One transactional librdkafka producer: created with its `transactional.id`, initialized (which fences older
//! producers with the same id and aborts what they left open), then begin / send / send offsets / commit or
//! abort. librdkafka's transaction calls block until the coordinator answers, so they run on blocking threads —
//! an in-process broker may need the runtime's threads to answer.

use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::Producer;
use rdkafka::TopicPartitionList;

use super::error::{classify, TransactionError};
use crate::template::{overflow_len, ProducerFactory, SharedProducer};

/// How long one transaction operation may wait for the coordinator (librdkafka's recommendation for
/// `init_transactions` and `commit_transaction`).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct TransactionalProducer {
    // An `Option` only so `Drop` can move it to a thread of its own: destroying a librdkafka client blocks.
    producer: Option<SharedProducer>,
    transactional_id: String,
}

impl TransactionalProducer {
    /// Creates the producer and initializes transactions.
    pub(crate) async fn create(
        factory: &ProducerFactory,
        transactional_id: String,
    ) -> Result<TransactionalProducer, TransactionError> {
        let producer = factory.create_transactional(&transactional_id)?;
        let p = TransactionalProducer { producer: Some(producer.clone()), transactional_id };
        blocking(move || producer.init_transactions(OPERATION_TIMEOUT)).await.map_err(|e| p.error("init", e))?;
        tracing::debug!(transactional_id = %p.transactional_id, "transactional producer initialized");
        Ok(p)
    }

    pub(crate) fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    pub(crate) fn shared(&self) -> &SharedProducer {
        match &self.producer {
            Some(p) => p,
            // Taken only in `Drop`.
            None => unreachable!("transactional producer used after drop"),
        }
    }

    fn error(&self, operation: &'static str, error: KafkaError) -> TransactionError {
        classify(operation, &self.transactional_id, error)
    }

    pub(crate) fn begin(&self) -> Result<(), TransactionError> {
        self.shared().begin_transaction().map_err(|e| self.error("begin", e))
    }

    /// Adds the consumer's next offsets to the transaction; they become the group's committed offsets when it
    /// commits, and only if the consumer still belongs to the same group generation (KIP-447).
    pub(crate) async fn send_offsets(
        &self,
        offsets: TopicPartitionList,
        group: ConsumerGroupMetadata,
    ) -> Result<(), TransactionError> {
        let p = self.shared().clone();
        blocking(move || p.send_offsets_to_transaction(&offsets, &group, OPERATION_TIMEOUT))
            .await
            .map_err(|e| self.error("send_offsets_to_transaction", e))
    }

    /// Commits: flushes every record of the transaction, then writes the commit markers.
    pub(crate) async fn commit(&self) -> Result<(), TransactionError> {
        // Records still waiting for queue room are not in librdkafka yet, so its commit would not wait for them.
        let deadline = tokio::time::Instant::now() + OPERATION_TIMEOUT;
        while overflow_len(self.shared()) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return Err(self.error("commit", KafkaError::Canceled));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let p = self.shared().clone();
        blocking(move || p.commit_transaction(OPERATION_TIMEOUT)).await.map_err(|e| self.error("commit", e))
    }

    pub(crate) async fn abort(&self) -> Result<(), TransactionError> {
        let p = self.shared().clone();
        blocking(move || p.abort_transaction(OPERATION_TIMEOUT)).await.map_err(|e| self.error("abort", e))
    }
}

impl Drop for TransactionalProducer {
    fn drop(&mut self) {
        if let Some(p) = self.producer.take() {
            let _ = std::thread::Builder::new().name("spate-producer-close".into()).spawn(move || drop(p));
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> KafkaResult<T> + Send + 'static) -> KafkaResult<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or(Err(KafkaError::Canceled))
}
