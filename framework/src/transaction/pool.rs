//! Producers for [`KafkaTemplate::in_transaction`](crate::KafkaTemplate::in_transaction): one producer has one
//! transaction at a time, so concurrent callers each take an idle producer (or a new one, `transactional.id` =
//! prefix + the next index) and give it back afterwards — Spring's `DefaultKafkaProducerFactory` cache. A fenced
//! or fatally failed producer is not given back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::error::TransactionError;
use super::producer::TransactionalProducer;
use crate::template::ProducerFactory;

#[derive(Default)]
pub(crate) struct ProducerPool {
    idle: Mutex<Vec<Arc<TransactionalProducer>>>,
    next_index: AtomicUsize,
}

impl ProducerPool {
    pub(crate) async fn take(&self, factory: &ProducerFactory) -> Result<Arc<TransactionalProducer>, TransactionError> {
        if let Some(p) = self.idle.lock().pop() {
            return Ok(p);
        }
        let prefix = factory.transaction_id_prefix().ok_or(TransactionError::NotTransactional)?;
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(TransactionalProducer::create(factory, format!("{prefix}{index}")).await?))
    }

    pub(crate) fn give_back(&self, producer: Arc<TransactionalProducer>) {
        self.idle.lock().push(producer);
    }
}
