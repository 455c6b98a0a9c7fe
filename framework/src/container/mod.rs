//! Listener containers (Spring's `ConcurrentMessageListenerContainer`): `concurrency` consumers of one group,
//! each on its own task, feeding a listener service, committing offsets by [`AckMode`], with pause/resume, seek,
//! rebalance hooks, idle events and graceful stop.
//!
//! Files: `worker.rs` is one consumer's poll–handle–commit loop, `context.rs` the librdkafka callbacks
//! (rebalance, commit, logs), `offsets.rs` which offsets may be committed, `registry.rs` the run-time registry.

mod batch_queue;
mod context;
mod offsets;
pub(crate) mod poll;
mod registry;
mod worker;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use registry::ListenerEndpointRegistry;

pub(crate) use context::{ConsumerState, ContainerContext, Shared};
pub(crate) use offsets::OffsetTracker;

use crate::config::{ClientProps, ConfigError};
use crate::error_handler::ErrorHandler;
use crate::listener::{ListenerService, RecordFilter, StateMap};
use crate::record::TopicPartition;
use crate::template::ProducerFactory;

/// When a container commits offsets (Spring's `ContainerProperties.AckMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// After each record.
    #[serde(alias = "RECORD")]
    Record,
    /// After all records of a poll were handled (the default).
    #[default]
    #[serde(alias = "BATCH")]
    Batch,
    /// When `ack_time` has passed since the last commit.
    #[serde(alias = "TIME")]
    Time,
    /// When `ack_count` records were handled since the last commit.
    #[serde(alias = "COUNT")]
    Count,
    /// `Time` or `Count`, whichever comes first.
    #[serde(alias = "COUNT_TIME")]
    CountTime,
    /// The handler acknowledges with [`Ack`]; acknowledged offsets are committed after the poll's records.
    #[serde(alias = "MANUAL")]
    Manual,
    /// The handler acknowledges with [`Ack`]; each acknowledgment is committed at once.
    #[serde(alias = "MANUAL_IMMEDIATE")]
    ManualImmediate,
}

impl AckMode {
    /// Whether the handler acknowledges itself.
    pub fn is_manual(self) -> bool {
        matches!(self, AckMode::Manual | AckMode::ManualImmediate)
    }
}

/// What a container keeps in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// Records of a partition are handled one after another (Kafka's guarantee; the default).
    #[default]
    Partition,
    /// Records of one key are handled in order, different keys in parallel (up to `key_concurrency` per
    /// consumer); only contiguous completed offsets are committed. Records without a key are ordered by
    /// partition.
    Key,
}

/// Where to move a partition's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekPosition {
    /// The oldest record.
    Beginning,
    /// After the newest record.
    End,
    /// This offset.
    Offset(i64),
    /// The first record at or after this timestamp (ms since the epoch).
    Timestamp(i64),
}

/// Initial positions chosen in [`RebalanceListener::on_partitions_assigned`] (Spring's `ConsumerSeekAware`).
#[derive(Debug, Default)]
pub struct InitialPositions {
    pub(crate) seeks: Vec<(TopicPartition, SeekPosition)>,
}

impl InitialPositions {
    /// Starts `partition` at `position` instead of its committed offset.
    pub fn seek(&mut self, partition: TopicPartition, position: SeekPosition) {
        self.seeks.push((partition, position));
    }
}

/// Told of partition assignment changes (Spring's `ConsumerAwareRebalanceListener`). Runs on the consumer's task
/// inside librdkafka's callback: keep it short.
///
/// ```
/// use spate::{InitialPositions, RebalanceListener, SeekPosition, TopicPartition};
/// struct Replay;
/// impl RebalanceListener for Replay {
///     fn on_partitions_assigned(&self, partitions: &[TopicPartition], positions: &mut InitialPositions) {
///         for p in partitions {
///             positions.seek(p.clone(), SeekPosition::Beginning);
///         }
///     }
/// }
/// ```
pub trait RebalanceListener: Send + Sync + 'static {
    /// Partitions were assigned; `positions` may move their starting points.
    fn on_partitions_assigned(&self, _partitions: &[TopicPartition], _positions: &mut InitialPositions) {}
    /// Partitions are being revoked; offsets of handled records were committed just before.
    fn on_partitions_revoked(&self, _partitions: &[TopicPartition]) {}
    /// Partitions were lost (the group moved on without this consumer); nothing could be committed.
    fn on_partitions_lost(&self, _partitions: &[TopicPartition]) {}
}

/// Something that happened in a container (Spring's `ListenerContainer*Event`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEvent {
    /// A consumer started polling.
    ConsumerStarted {
        /// Listener id.
        listener_id: String,
        /// Consumer index within the container.
        consumer: usize,
    },
    /// A consumer stopped and left the group.
    ConsumerStopped {
        /// Listener id.
        listener_id: String,
        /// Consumer index.
        consumer: usize,
    },
    /// Partitions were assigned to a consumer.
    PartitionsAssigned {
        /// Listener id.
        listener_id: String,
        /// Consumer index.
        consumer: usize,
        /// The new partitions.
        partitions: Vec<TopicPartition>,
    },
    /// Partitions were revoked from a consumer.
    PartitionsRevoked {
        /// Listener id.
        listener_id: String,
        /// Consumer index.
        consumer: usize,
        /// The revoked partitions.
        partitions: Vec<TopicPartition>,
    },
    /// A consumer received nothing for `idle_event_interval`.
    ListenerIdle {
        /// Listener id.
        listener_id: String,
        /// Consumer index.
        consumer: usize,
        /// Time since the last record.
        idle_for: Duration,
    },
    /// A consumer paused partitions.
    ConsumerPaused {
        /// Listener id.
        listener_id: String,
        /// Consumer index.
        consumer: usize,
        /// Paused partitions.
        partitions: Vec<TopicPartition>,
    },
    /// A consumer resumed partitions.
    ConsumerResumed {
        /// Listener id.
        listener_id: String,
        /// Consumer index.
        consumer: usize,
        /// Resumed partitions.
        partitions: Vec<TopicPartition>,
    },
    /// A transactional consumer's producer was fenced (a newer instance of the same consumer slot took over) or
    /// failed fatally: rather than retry a producer that can never commit, every consumer of the container stops
    /// as in a graceful stop (each publishes `ConsumerStopped`; call `stop()` before starting the container again).
    /// Spring: `ConsumerStoppedEvent` with reason `FENCED`.
    TransactionFailed {
        /// Listener id.
        listener_id: String,
        /// Consumer index.
        consumer: usize,
        /// The producer's `transactional.id`.
        transactional_id: String,
        /// Whether it was fenced by another producer with the same `transactional.id`.
        fenced: bool,
        /// The error.
        error: String,
    },
}

/// A container operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The consumer could not be created.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// librdkafka refused an operation.
    #[error("{operation} failed: {error}")]
    Kafka {
        /// What was attempted.
        operation: &'static str,
        /// The error.
        error: KafkaError,
    },
    /// No consumer of the container owns the partition.
    #[error("partition {0} is not assigned to this container")]
    NotAssigned(TopicPartition),
    /// The container is not running.
    #[error("container `{0}` is not running")]
    NotRunning(String),
    /// No container has this id.
    #[error("no listener container with id `{0}`")]
    UnknownId(String),
}

/// Acknowledges records in manual ack modes (Spring's `Acknowledgment`). Covers the record of a record listener
/// or all records of a batch. Records never acknowledged are never committed, so they are redelivered after a
/// restart or rebalance.
///
/// ```
/// async fn handle(body: String, ack: spate::Ack) {
///     println!("{body}");
///     ack.acknowledge();
/// }
/// ```
#[derive(Clone)]
pub struct Ack {
    inner: Arc<AckInner>,
}

struct AckInner {
    positions: Vec<(Arc<str>, i32, i64)>,
    tracker: Arc<Mutex<OffsetTracker>>,
    // Weak, so an Ack kept by the application cannot keep a stopped consumer open.
    immediate: Option<Weak<StreamConsumer<ContainerContext>>>,
    done: AtomicBool,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("records", &self.inner.positions.len())
            .field("acknowledged", &self.is_acknowledged())
            .finish()
    }
}

impl Ack {
    pub(crate) fn new(
        positions: Vec<(Arc<str>, i32, i64)>,
        tracker: Arc<Mutex<OffsetTracker>>,
        immediate: Option<Weak<StreamConsumer<ContainerContext>>>,
    ) -> Self {
        Ack { inner: Arc::new(AckInner { positions, tracker, immediate, done: AtomicBool::new(false) }) }
    }

    /// Marks the records handled; they are committed after the poll (`MANUAL`) or now (`MANUAL_IMMEDIATE`).
    /// Calling it again does nothing.
    pub fn acknowledge(&self) {
        if self.inner.done.swap(true, AtomicOrdering::AcqRel) {
            return;
        }
        let commits = {
            let mut t = self.inner.tracker.lock();
            for (topic, p, o) in &self.inner.positions {
                t.complete(topic, *p, *o);
            }
            if self.inner.immediate.is_some() {
                t.take_commits()
            } else {
                Vec::new()
            }
        };
        if let Some(consumer) = self.inner.immediate.as_ref().and_then(Weak::upgrade) {
            worker::commit(&consumer, &self.inner.tracker, commits, rdkafka::consumer::CommitMode::Async);
        }
    }

    /// Whether [`acknowledge`](Self::acknowledge) was called.
    pub fn is_acknowledged(&self) -> bool {
        self.inner.done.load(AtomicOrdering::Acquire)
    }
}

/// Everything a container needs, resolved from the listener definition and configuration.
#[derive(Clone)]
pub(crate) struct ContainerSpec {
    pub listener_id: Arc<str>,
    pub group_id: Arc<str>,
    pub subscription: ResolvedSubscription,
    pub concurrency: usize,
    pub auto_startup: bool,
    pub batch: bool,
    pub ack_mode: AckMode,
    pub ack_count: usize,
    pub ack_time: Duration,
    pub max_poll_records: usize,
    pub idle_interval: Option<Duration>,
    pub shutdown_timeout: Duration,
    pub ordering: Ordering,
    pub key_concurrency: usize,
    pub client_id_prefix: Option<String>,
    pub consumer_props: ClientProps,
    pub filter: Option<RecordFilter>,
    pub error_handler: Arc<dyn ErrorHandler>,
    pub rebalance_listener: Option<Arc<dyn RebalanceListener>>,
    pub service: ListenerService,
    pub state: Arc<StateMap>,
    pub producer: Option<ProducerFactory>,
    pub send_to: Option<String>,
    /// Retry-topic containers: how long until a record is due; the partition is held meanwhile.
    pub due_gate: Option<DueGate>,
    /// Trace each record's handling, continuing its `traceparent` (`kafka.listener.observation_enabled`); off, the
    /// handling has no trace context.
    pub observation: bool,
    /// Ask librdkafka for each record's headers (false: something proved that nothing reads them).
    pub read_headers: bool,
}

/// How long until a record is due (`None`: now).
pub(crate) type DueGate = fn(&crate::record::Record) -> Option<Duration>;

#[derive(Debug, Clone)]
pub(crate) enum ResolvedSubscription {
    Topics(Vec<String>),
    Pattern(String),
    Partitions(Vec<(TopicPartition, Option<SeekPosition>)>),
}

pub(crate) enum Command {
    /// Pause state changed: pause or resume partitions to match.
    Reconcile,
    Seek {
        partition: TopicPartition,
        position: SeekPosition,
        reply: oneshot::Sender<Result<bool, KafkaError>>,
    },
}

struct Running {
    stop: watch::Sender<Option<Instant>>,
    // Extra references, so that aborting a task never drops (and so closes, blocking) a consumer on a runtime
    // thread. Released before the tasks' own references on a normal stop.
    consumers: Vec<Arc<StreamConsumer<ContainerContext>>>,
    workers: Vec<(mpsc::UnboundedSender<Command>, JoinHandle<()>)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Dropped without stop (the application was dropped, a test panicked): closing a consumer blocks until the
        // broker answers, so never do it on a runtime thread.
        let consumers = std::mem::take(&mut self.consumers);
        if !consumers.is_empty() {
            let _ = std::thread::Builder::new().name("spate-consumer-close".into()).spawn(move || drop(consumers));
        }
    }
}

struct ContainerInner {
    spec: ContainerSpec,
    shared: Arc<Shared>,
    running: tokio::sync::Mutex<Option<Running>>,
    // Mirrors `running` for the synchronous accessors.
    is_running: AtomicBool,
    states: Mutex<Vec<Arc<ConsumerState>>>,
}

/// A running (or stoppable, restartable) listener container. Cheap to clone; all clones control the same
/// container.
#[derive(Clone)]
pub struct ListenerContainer {
    inner: Arc<ContainerInner>,
}

impl std::fmt::Debug for ListenerContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerContainer")
            .field("id", &self.id())
            .field("running", &self.is_running())
            .field("concurrency", &self.inner.spec.concurrency)
            .finish()
    }
}

impl ListenerContainer {
    pub(crate) fn new(spec: ContainerSpec, events: broadcast::Sender<ContainerEvent>) -> Self {
        let shared = Arc::new(Shared {
            listener_id: spec.listener_id.clone(),
            paused: AtomicBool::new(false),
            paused_partitions: Mutex::new(BTreeSet::new()),
            events,
            rebalance_listener: spec.rebalance_listener.clone(),
            per_key: spec.ordering == Ordering::Key,
            shutdown_timeout: spec.shutdown_timeout,
        });
        ListenerContainer {
            inner: Arc::new(ContainerInner {
                spec,
                shared,
                running: tokio::sync::Mutex::new(None),
                is_running: AtomicBool::new(false),
                states: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The listener id.
    pub fn id(&self) -> &str {
        &self.inner.spec.listener_id
    }

    /// The consumer group.
    pub fn group_id(&self) -> &str {
        &self.inner.spec.group_id
    }

    /// Consumers when running.
    pub fn concurrency(&self) -> usize {
        self.inner.spec.concurrency
    }

    /// Whether it starts with the application.
    pub fn auto_startup(&self) -> bool {
        self.inner.spec.auto_startup
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.inner.is_running.load(AtomicOrdering::Acquire)
    }

    /// Consumers of the running container whose task ended on its own (0 when stopped, or while starting or
    /// stopping); the health endpoint reports such a container as failed.
    pub fn failed_consumers(&self) -> usize {
        match self.inner.running.try_lock() {
            Ok(r) => r.as_ref().map_or(0, |r| r.workers.iter().filter(|(_, j)| j.is_finished()).count()),
            Err(_) => 0,
        }
    }

    /// Creates the consumers and starts polling. Starting a running container does nothing.
    pub async fn start(&self) -> Result<(), ContainerError> {
        let mut running = self.inner.running.lock().await;
        if running.is_some() {
            return Ok(());
        }
        let spec = &self.inner.spec;
        crate::transaction::ListenerTransactions::check(spec)?;
        let (stop_tx, stop_rx) = watch::channel(None);
        let mut workers = Vec::new();
        let mut states = Vec::new();
        let mut consumers = Vec::new();
        let mut refs = Vec::new();
        for index in 0..spec.concurrency {
            let state = Arc::new(ConsumerState::new(index, self.inner.shared.clone()));
            let consumer = self.create_consumer(index, state.clone())?;
            let queue = batch_queue::BatchQueue::new(consumer.clone(), state.forward.clone(), spec.read_headers);
            consumers.push((index, state, consumer, queue));
        }
        // Subscribe only once every consumer exists, so a configuration error leaves nothing half-started.
        for (index, state, consumer, queue) in consumers {
            self.subscribe(index, &consumer)?;
            refs.push(consumer.clone());
            let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
            let w = worker::Worker::new(spec.clone(), index, consumer, queue, state.clone(), stop_rx.clone(), cmd_rx)
                .stopping_container_with(stop_tx.clone());
            let join = tokio::spawn(w.run());
            workers.push((cmd_tx, join));
            states.push(state);
        }
        *self.inner.states.lock() = states;
        *running = Some(Running { stop: stop_tx, consumers: refs, workers });
        self.inner.is_running.store(true, AtomicOrdering::Release);
        tracing::info!(listener = %spec.listener_id, group = %spec.group_id, concurrency = spec.concurrency,
            "listener container started");
        Ok(())
    }

    fn create_consumer(
        &self,
        index: usize,
        state: Arc<ConsumerState>,
    ) -> Result<Arc<StreamConsumer<ContainerContext>>, ContainerError> {
        let spec = &self.inner.spec;
        let mut props = spec.consumer_props.clone();
        let client_id = match (&spec.client_id_prefix, props.get("client.id")) {
            (Some(prefix), _) => format!("{prefix}-{index}"),
            (None, Some(id)) => format!("{id}-{index}"),
            (None, None) => format!("{}-{index}", spec.listener_id),
        };
        props.set("client.id", client_id, "client_id_prefix");
        let context = ContainerContext::new(state);
        let consumer: StreamConsumer<ContainerContext> =
            StreamConsumer::from_config_and_context(&props.client_config(), context).map_err(|e| {
                ContainerError::Config(props.explain(&e).unwrap_or_else(|| ConfigError::InvalidValue {
                    value: props.fingerprint(),
                    context: format!("consumer of listener `{}`", spec.listener_id),
                    message: e.to_string(),
                }))
            })?;
        Ok(Arc::new(consumer))
    }

    fn subscribe(&self, index: usize, consumer: &StreamConsumer<ContainerContext>) -> Result<(), ContainerError> {
        let spec = &self.inner.spec;
        match &spec.subscription {
            ResolvedSubscription::Topics(topics) => {
                let t: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer.subscribe(&t).map_err(|error| ContainerError::Kafka { operation: "subscribe", error })
            }
            ResolvedSubscription::Pattern(p) => {
                // librdkafka treats a subscription starting with `^` as a regular expression.
                let p = if p.starts_with('^') { p.clone() } else { format!("^{p}") };
                consumer.subscribe(&[&p]).map_err(|error| ContainerError::Kafka { operation: "subscribe", error })
            }
            ResolvedSubscription::Partitions(parts) => {
                // Partitions are spread over the consumers round-robin, as Spring does.
                let mine: Vec<_> =
                    parts.iter().enumerate().filter(|(i, _)| i % spec.concurrency == index).map(|(_, p)| p).collect();
                let mut tpl = rdkafka::TopicPartitionList::new();
                for (tp, pos) in &mine {
                    let offset = match pos {
                        None => rdkafka::Offset::Stored,
                        Some(SeekPosition::Beginning) => rdkafka::Offset::Beginning,
                        Some(SeekPosition::End) => rdkafka::Offset::End,
                        Some(SeekPosition::Offset(o)) if *o < 0 => rdkafka::Offset::OffsetTail(-*o),
                        Some(SeekPosition::Offset(o)) => rdkafka::Offset::Offset(*o),
                        Some(SeekPosition::Timestamp(_)) => rdkafka::Offset::Stored,
                    };
                    tpl.add_partition_offset(&tp.topic, tp.partition, offset)
                        .map_err(|error| ContainerError::Kafka { operation: "assign", error })?;
                }
                let owned: Vec<TopicPartition> = mine.iter().map(|(tp, _)| tp.clone()).collect();
                consumer.context().state.forward.forward(consumer.client().native_ptr(), &owned);
                consumer.assign(&tpl).map_err(|error| ContainerError::Kafka { operation: "assign", error })?;
                consumer.context().state.manually_assigned(&owned);
                Ok(())
            }
        }
    }

    /// Stops polling, lets in-flight records finish (up to the shutdown timeout), commits, and leaves the group.
    /// Stopping a stopped container does nothing.
    pub async fn stop(&self) {
        let Some(running) = self.inner.running.lock().await.take() else {
            return;
        };
        let mut running = running;
        let _ = running.stop.send(Some(Instant::now()));
        running.consumers.clear();
        let workers = std::mem::take(&mut running.workers);
        for (_, join) in workers {
            if let Err(e) = join.await {
                tracing::error!(listener = %self.id(), error = %e, "consumer task failed");
            }
        }
        drop(running);
        self.inner.is_running.store(false, AtomicOrdering::Release);
        tracing::info!(listener = %self.id(), "listener container stopped");
    }

    /// Aborts the consumer tasks without finishing in-flight records or committing — what a crash does. For
    /// tests of at-least-once delivery.
    #[doc(hidden)]
    pub async fn abort_for_tests(&self) {
        let Some(running) = self.inner.running.lock().await.take() else {
            return;
        };
        let mut running = running;
        for (_, join) in std::mem::take(&mut running.workers) {
            join.abort();
            let _ = join.await;
        }
        // The consumers close off the runtime (an in-process broker may need its threads to answer).
        let consumers = std::mem::take(&mut running.consumers);
        let _ = tokio::task::spawn_blocking(move || drop(consumers)).await;
        self.inner.is_running.store(false, AtomicOrdering::Release);
    }

    async fn broadcast(&self, make: impl Fn() -> Command) -> Result<(), ContainerError> {
        let running = self.inner.running.lock().await;
        let Some(r) = running.as_ref() else {
            return Err(ContainerError::NotRunning(self.id().to_string()));
        };
        for (tx, _) in &r.workers {
            let _ = tx.send(make());
        }
        Ok(())
    }

    /// Pauses every partition of the container (takes effect before the next poll; records already fetched
    /// are still handled). The pause survives rebalances.
    pub async fn pause(&self) -> Result<(), ContainerError> {
        self.inner.shared.paused.store(true, AtomicOrdering::Release);
        self.broadcast(|| Command::Reconcile).await
    }

    /// Resumes the container (partitions paused one by one stay paused).
    pub async fn resume(&self) -> Result<(), ContainerError> {
        self.inner.shared.paused.store(false, AtomicOrdering::Release);
        self.broadcast(|| Command::Reconcile).await
    }

    /// Whether [`pause`](Self::pause) is in effect.
    pub fn is_paused(&self) -> bool {
        self.inner.shared.paused.load(AtomicOrdering::Acquire)
    }

    /// Pauses one partition.
    pub async fn pause_partition(&self, partition: TopicPartition) -> Result<(), ContainerError> {
        self.inner.shared.paused_partitions.lock().insert(partition);
        self.broadcast(|| Command::Reconcile).await
    }

    /// Resumes one partition.
    pub async fn resume_partition(&self, partition: &TopicPartition) -> Result<(), ContainerError> {
        self.inner.shared.paused_partitions.lock().remove(partition);
        self.broadcast(|| Command::Reconcile).await
    }

    /// Whether a partition is paused (by itself or with the container).
    pub fn is_partition_paused(&self, partition: &TopicPartition) -> bool {
        self.is_paused() || self.inner.shared.paused_partitions.lock().contains(partition)
    }

    /// Moves a partition's position; the next record handled from it is the one at `position`.
    pub async fn seek(&self, partition: TopicPartition, position: SeekPosition) -> Result<(), ContainerError> {
        let mut replies = Vec::new();
        {
            let running = self.inner.running.lock().await;
            let Some(r) = running.as_ref() else {
                return Err(ContainerError::NotRunning(self.id().to_string()));
            };
            for (tx, _) in &r.workers {
                let (reply, rx) = oneshot::channel();
                let _ = tx.send(Command::Seek { partition: partition.clone(), position, reply });
                replies.push(rx);
            }
        }
        let mut owned = false;
        for rx in replies {
            match rx.await {
                Ok(Ok(true)) => owned = true,
                Ok(Ok(false)) | Err(_) => {}
                Ok(Err(error)) => return Err(ContainerError::Kafka { operation: "seek", error }),
            }
        }
        if owned {
            Ok(())
        } else {
            Err(ContainerError::NotAssigned(partition))
        }
    }

    /// Seeks a partition to its oldest record.
    pub async fn seek_to_beginning(&self, partition: TopicPartition) -> Result<(), ContainerError> {
        self.seek(partition, SeekPosition::Beginning).await
    }

    /// Seeks a partition past its newest record.
    pub async fn seek_to_end(&self, partition: TopicPartition) -> Result<(), ContainerError> {
        self.seek(partition, SeekPosition::End).await
    }

    /// Seeks a partition to the first record at or after `timestamp_ms`.
    pub async fn seek_to_timestamp(&self, partition: TopicPartition, timestamp_ms: i64) -> Result<(), ContainerError> {
        self.seek(partition, SeekPosition::Timestamp(timestamp_ms)).await
    }

    /// Partitions currently assigned to the container's consumers.
    pub fn assigned_partitions(&self) -> BTreeSet<TopicPartition> {
        let states = self.inner.states.lock();
        let mut out = BTreeSet::new();
        if self.is_running() {
            for s in states.iter() {
                out.extend(s.assigned.lock().iter().cloned());
            }
        }
        out
    }

    /// Subscribes to this container's events (and those of every other container of the same registry).
    pub fn events(&self) -> broadcast::Receiver<ContainerEvent> {
        self.inner.shared.events.subscribe()
    }
}

/// librdkafka's log lines, at the matching tracing level.
pub(crate) fn log_rdkafka(level: RDKafkaLogLevel, fac: &str, message: &str, client: &'static str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", client, fac, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", client, fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", client, fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", client, fac, "{message}"),
    }
}
