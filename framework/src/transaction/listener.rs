//! Transactions of one listener-container consumer (KIP-447 exactly-once, Spring's EOSMode V2): a producer owned by
//! the consumer, `transactional.id` = `<prefix><group>.<listener-id>.<consumer-index>`, so a restarted instance of
//! the same consumer slot fences its zombie. Each delivery runs in a transaction holding the handler's sends, its
//! reply and the consumed offsets (sent with the consumer's group metadata, so the broker refuses them from a
//! consumer that lost its partitions); a failed delivery aborts. The error handler's decision — and the
//! recoverer it runs once retries are exhausted — runs in a transaction too, committed with the offsets when the
//! records are recovered. A fenced or fatally failed producer stops the container: the consumer publishes
//! [`ContainerEvent::TransactionFailed`] once and stops every consumer of the container as a graceful stop would.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::error::TransactionError;
use super::producer::TransactionalProducer;
use crate::config::ConfigError;
use crate::container::{ContainerContext, ContainerEvent, ContainerSpec, Ordering, Shared};
use crate::error_handler::ErrorDecision;
use crate::listener::ListenerError;
use crate::record::{Record, TopicPartition};

type Consumer_ = StreamConsumer<ContainerContext>;

pub(crate) struct ListenerTransactions {
    producer: TransactionalProducer,
    factory: usize,
    consumer_index: usize,
    shared: Arc<Shared>,
    failed: Mutex<Option<String>>,
    stop_container: Option<watch::Sender<Option<Instant>>>,
    /// Per partition, the next offset this consumer committed. A rebalance that hands a partition straight back
    /// restarts its fetch at the committed offset, which can deliver again records fetched before the rebalance
    /// and handled since; those are skipped, or their outputs would be written twice.
    committed: Mutex<HashMap<(Arc<str>, i32), i64>>,
}

/// `<prefix><group>.<listener-id>.<consumer-index>`.
pub(crate) fn transactional_id(prefix: &str, group: &str, listener_id: &str, index: usize) -> String {
    format!("{prefix}{group}.{listener_id}.{index}")
}

impl ListenerTransactions {
    /// What a transactional container cannot do, refused before any consumer starts.
    pub(crate) fn check(spec: &ContainerSpec) -> Result<(), ConfigError> {
        if !spec.producer.as_ref().is_some_and(|p| p.is_transactional()) {
            return Ok(());
        }
        let refuse = |message: &str| ConfigError::InvalidValue {
            value: "kafka.producer.transaction_id_prefix".into(),
            context: format!("listener `{}`", spec.listener_id),
            message: message.into(),
        };
        if spec.ordering == Ordering::Key && !spec.batch {
            return Err(refuse(
                "ordering = \"key\" handles records in parallel, but a consumer's producer has one transaction at a \
                 time; use partition ordering (and more partitions and concurrency) with transactions",
            ));
        }
        if spec.ack_mode.is_manual() {
            return Err(refuse(
                "manual ack modes do not apply with transactions: the consumed offsets commit with each \
                 transaction",
            ));
        }
        Ok(())
    }

    /// The consumer's transactions, when its cluster is transactional; `Err` (already published and logged) when
    /// the producer cannot be initialized — the consumer must not poll then.
    pub(crate) async fn start(
        spec: &ContainerSpec,
        index: usize,
        shared: &Arc<Shared>,
        stop_container: Option<watch::Sender<Option<Instant>>>,
    ) -> Result<Option<Arc<ListenerTransactions>>, ()> {
        let Some(factory) = spec.producer.as_ref() else { return Ok(None) };
        let Some(prefix) = factory.transaction_id_prefix() else { return Ok(None) };
        let id = transactional_id(prefix, &spec.group_id, &spec.listener_id, index);
        match TransactionalProducer::create(factory, id.clone()).await {
            Ok(producer) => Ok(Some(Arc::new(ListenerTransactions {
                producer,
                factory: factory.id(),
                consumer_index: index,
                shared: shared.clone(),
                failed: Mutex::new(None),
                stop_container,
                committed: Mutex::new(HashMap::new()),
            }))),
            Err(e) => {
                publish_failure(shared, index, &id, &e);
                request_stop(stop_container.as_ref());
                Err(())
            }
        }
    }

    /// Whether this consumer already committed `record` in a transaction (a re-fetch after a rebalance).
    pub(crate) fn already_committed(&self, record: &Record) -> bool {
        let committed = self.committed.lock();
        committed.get(&(record.topic_arc().clone(), record.partition())).is_some_and(|next| record.offset() < *next)
    }

    /// An explicit seek may move back on purpose: records of `partition` are no longer skipped.
    pub(crate) fn forget(&self, partition: &TopicPartition) {
        self.committed.lock().retain(|(t, p), _| !(t.as_ref() == partition.topic && *p == partition.partition));
    }

    /// Begins a transaction. A transaction still open after a failed abort is aborted first; a producer that
    /// cannot begin even then is treated as failed for good rather than retried in a loop.
    async fn begin(&self) -> Result<(), TransactionError> {
        let first = match self.producer.begin() {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if first.is_fatal() {
            self.note(&first);
            return Err(first);
        }
        let _ = self.producer.abort().await;
        let e = match self.producer.begin() {
            Ok(()) => return Ok(()),
            Err(TransactionError::Kafka { transactional_id, operation, error }) => {
                TransactionError::Fatal { transactional_id, operation, error }
            }
            Err(e) => e,
        };
        self.note(&e);
        Err(e)
    }

    /// Whether the producer failed for good; the consumer stops.
    pub(crate) fn failed(&self) -> bool {
        self.failed.lock().is_some()
    }

    fn note(&self, e: &TransactionError) {
        if !e.is_fatal() {
            return;
        }
        let mut failed = self.failed.lock();
        if failed.is_none() {
            *failed = Some(e.to_string());
            publish_failure(&self.shared, self.consumer_index, self.producer.transactional_id(), e);
            request_stop(self.stop_container.as_ref());
        }
    }

    async fn abort(&self) {
        if let Err(e) = self.producer.abort().await {
            tracing::warn!(listener = %self.shared.listener_id, transactional_id = self.producer.transactional_id(),
                error = %e, "transaction abort failed");
            self.note(&e);
        }
    }

    /// Sends the next offsets of `records` (none when empty) and commits.
    async fn commit(&self, records: &[Record], consumer: &Weak<Consumer_>) -> Result<(), TransactionError> {
        let mut next: BTreeMap<(Arc<str>, i32), i64> = BTreeMap::new();
        for r in records {
            let o = next.entry((r.topic_arc().clone(), r.partition())).or_insert(r.offset() + 1);
            *o = (*o).max(r.offset() + 1);
        }
        if !next.is_empty() {
            let mut tpl = TopicPartitionList::with_capacity(next.len());
            for ((t, p), o) in &next {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                    .map_err(|e| TransactionError::RolledBack(e.into()))?;
            }
            let group = consumer.upgrade().and_then(|c| c.group_metadata()).ok_or_else(|| {
                TransactionError::RolledBack("the consumer's group metadata is unavailable (consumer closing)".into())
            })?;
            self.producer.send_offsets(tpl, group).await?;
        }
        self.producer.commit().await?;
        self.committed.lock().extend(next);
        Ok(())
    }

    /// Runs one delivery attempt (`None`: abandoned at shutdown) in a transaction with the offsets of `records`.
    pub(crate) async fn run<F>(
        &self,
        records: &[Record],
        consumer: &Weak<Consumer_>,
        work: F,
    ) -> Option<Result<(), ListenerError>>
    where
        F: Future<Output = Option<Result<(), ListenerError>>>,
    {
        if let Err(e) = self.begin().await {
            return Some(Err(ListenerError::handler(e)));
        }
        match super::scope(self.factory, self.producer.shared().clone(), work).await {
            Some(Ok(())) => match self.commit(records, consumer).await {
                Ok(()) => Some(Ok(())),
                Err(e) => {
                    tracing::warn!(listener = %self.shared.listener_id, error = %e, "transaction commit failed");
                    self.note(&e);
                    if !self.failed() {
                        self.abort().await;
                    }
                    Some(Err(ListenerError::handler(e)))
                }
            },
            other => {
                self.abort().await;
                other
            }
        }
    }

    /// Runs the error handler's decision in a transaction: when it recovers the records (`Skip`), what the
    /// recoverer sent (a dead letter) commits with the records' offsets (`offsets_of`, which may be empty).
    pub(crate) async fn decide<F>(&self, offsets_of: &[Record], consumer: &Weak<Consumer_>, decide: F) -> ErrorDecision
    where
        F: Future<Output = ErrorDecision>,
    {
        if self.begin().await.is_err() {
            return ErrorDecision::Retry(Duration::ZERO);
        }
        let decision = super::scope(self.factory, self.producer.shared().clone(), decide).await;
        match decision {
            ErrorDecision::Skip => match self.commit(offsets_of, consumer).await {
                Ok(()) => ErrorDecision::Skip,
                Err(e) => {
                    tracing::warn!(listener = %self.shared.listener_id, error = %e,
                        "committing the recovery failed; the records will be handled again");
                    self.note(&e);
                    if !self.failed() {
                        self.abort().await;
                    }
                    ErrorDecision::Retry(Duration::ZERO)
                }
            },
            retry => {
                self.abort().await;
                retry
            }
        }
    }
}

/// Stops the container's other consumers too, as a graceful stop would (the first request wins).
fn request_stop(stop: Option<&watch::Sender<Option<Instant>>>) {
    if let Some(stop) = stop {
        stop.send_if_modified(|at| {
            let first = at.is_none();
            if first {
                *at = Some(Instant::now());
            }
            first
        });
    }
}

fn publish_failure(shared: &Shared, consumer: usize, transactional_id: &str, e: &TransactionError) {
    tracing::error!(listener = %shared.listener_id, consumer, transactional_id, error = %e,
        "transactional producer failed for good; stopping the container");
    shared.publish(ContainerEvent::TransactionFailed {
        listener_id: shared.listener_id.to_string(),
        consumer,
        transactional_id: transactional_id.to_string(),
        fenced: e.is_fenced(),
        error: e.to_string(),
    });
}
