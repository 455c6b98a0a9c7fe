//! Transactions (Spring's `KafkaTransactionManager` with a `transactionIdPrefix`): setting
//! `kafka.producer.transaction_id_prefix` makes every producer of a [`ProducerFactory`] transactional.
//!
//! - [`KafkaTemplate::in_transaction`](crate::KafkaTemplate::in_transaction) runs producer-only transactions on a
//!   pool of producers (`transactional.id` = prefix + index), so concurrent callers do not wait for each other.
//! - A listener container on a transactional cluster runs each delivery (a record, or a batch) in a transaction on
//!   a producer owned by that consumer (`transactional.id` = `<prefix><group>.<listener-id>.<consumer-index>`):
//!   what the handler sends, its `#[send_to]` reply and the consumed offsets commit together (KIP-447).
//!
//! Sends find the transaction in progress through a tokio task-local set around the work, so a
//! [`KafkaTemplate`](crate::KafkaTemplate) taken from state or an extractor joins it without being passed a
//! transaction. Files: `error.rs` (the error type and which errors are fatal), `producer.rs` (one transactional
//! librdkafka producer), `pool.rs` (producers for `in_transaction`), `template.rs` (`in_transaction`),
//! `listener.rs` (transactions of a listener container's consumer).

mod error;
mod listener;
mod pool;
mod producer;
mod template;

use std::future::Future;

pub use error::TransactionError;
pub(crate) use listener::ListenerTransactions;
pub(crate) use pool::ProducerPool;

use crate::template::{ProducerFactory, SharedProducer};

/// The transaction the current task's sends belong to.
#[derive(Clone)]
struct Current {
    factory: usize,
    producer: SharedProducer,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// The producer of the transaction in progress on this task, if it belongs to `factory`.
pub(crate) fn current_producer(factory: &ProducerFactory) -> Option<SharedProducer> {
    CURRENT.try_with(|c| (c.factory == factory.id()).then(|| c.producer.clone())).ok().flatten()
}

/// Runs `work` with its sends on `factory` routed to `producer`'s transaction.
async fn scope<F: Future>(factory: usize, producer: SharedProducer, work: F) -> F::Output {
    CURRENT.scope(Current { factory, producer }, work).await
}

#[cfg(test)]
mod tests {
    use super::listener::transactional_id;
    use crate::{ConfigLoader, ProducerFactory};

    #[test]
    fn transaction_id_prefix_makes_the_factory_transactional() {
        let config = ConfigLoader::new()
            .without_env()
            .set("kafka.producer.transaction_id_prefix", "billing-")
            .set("kafka.producer.transaction_timeout_ms", 30000)
            .load()
            .unwrap();
        let factory = ProducerFactory::new(&config);
        assert_eq!(factory.transaction_id_prefix(), Some("billing-"));
        assert!(factory.is_transactional());
        // The prefix is not a producer's transactional.id: each producer appends its own suffix.
        assert_eq!(factory.props().get("transactional.id"), None);
        assert_eq!(factory.props().get("transaction.timeout.ms"), Some("30000"));
        let plain = ProducerFactory::new(&ConfigLoader::new().without_env().load().unwrap());
        assert!(!plain.is_transactional());
    }

    #[test]
    fn listener_transactional_ids_name_group_listener_and_consumer() {
        assert_eq!(transactional_id("tx-", "billing", "bill", 2), "tx-billing.bill.2");
    }
}
