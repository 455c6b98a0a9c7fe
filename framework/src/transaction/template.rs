//! `KafkaTemplate::in_transaction` (Spring's `executeInTransaction`): begin, run the callback, commit on `Ok`,
//! abort on `Err` or panic.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::error::TransactionError;
use crate::codec::Encode;
use crate::listener::BoxError;
use crate::template::KafkaTemplate;

impl<K: Encode, V: Encode> KafkaTemplate<K, V> {
    /// Runs `work` in a producer-only transaction: what it sends through this template (or any template of the
    /// same factory, on the same task) is committed when it returns `Ok`, and aborted — invisible to
    /// `read_committed` consumers — when it returns `Err` or panics (the panic then continues). Concurrent calls
    /// use different producers of the factory's pool. Inside a transactional listener, or another
    /// `in_transaction`, `work` joins the transaction in progress instead of starting one.
    ///
    /// Needs `kafka.producer.transaction_id_prefix`; the prefix must be unique per application instance, since a
    /// producer fences any other with the same `transactional.id`.
    ///
    /// ```no_run
    /// # async fn f(template: spate::KafkaTemplate<String, String>) -> Result<(), spate::TransactionError> {
    /// let written = template
    ///     .in_transaction(|tx| async move {
    ///         tx.send("debits", "acct-1".to_string(), "-10".to_string()).await?;
    ///         tx.send("credits", "acct-2".to_string(), "+10".to_string()).await?;
    ///         Ok(2)
    ///     })
    ///     .await?;
    /// assert_eq!(written, 2);
    /// # Ok(()) }
    /// ```
    pub async fn in_transaction<T, F, Fut>(&self, work: F) -> Result<T, TransactionError>
    where
        F: FnOnce(KafkaTemplate<K, V>) -> Fut,
        Fut: Future<Output = Result<T, BoxError>>,
    {
        let factory = self.producer_factory();
        if !factory.is_transactional() {
            return Err(TransactionError::NotTransactional);
        }
        if self.is_in_transaction() {
            return work(self.clone()).await.map_err(TransactionError::RolledBack);
        }
        let pool = factory.transaction_pool();
        let producer = pool.take(factory).await?;
        producer.begin()?;
        let run = AssertUnwindSafe(work(self.clone())).catch_unwind();
        let outcome = super::scope(factory.id(), producer.shared().clone(), run).await;
        let result = match outcome {
            Ok(Ok(value)) => match producer.commit().await {
                Ok(()) => Ok(value),
                Err(e) => Err(e),
            },
            Ok(Err(e)) => Err(TransactionError::RolledBack(e)),
            Err(panic) => {
                if abort(&producer).await {
                    pool.give_back(producer);
                }
                std::panic::resume_unwind(panic);
            }
        };
        match &result {
            Ok(_) => pool.give_back(producer),
            Err(e) if e.is_fatal() => {
                tracing::error!(transactional_id = producer.transactional_id(), error = %e,
                    "transactional producer failed for good; dropping it from the pool");
            }
            Err(_) => {
                if abort(&producer).await {
                    pool.give_back(producer);
                }
            }
        }
        result
    }

    /// Whether a send from this task would join a transaction in progress (Spring's `inTransaction()`).
    pub fn is_in_transaction(&self) -> bool {
        super::current_producer(self.producer_factory()).is_some()
    }
}

/// Aborts; false when the producer is no longer usable.
async fn abort(producer: &super::producer::TransactionalProducer) -> bool {
    match producer.abort().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(transactional_id = producer.transactional_id(), error = %e, "transaction abort failed");
            !e.is_fatal()
        }
    }
}
