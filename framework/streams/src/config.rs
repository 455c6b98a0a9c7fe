//! Application settings (Kafka's `StreamsConfig`), with Kafka's names and defaults.

use std::path::PathBuf;

/// `processing.guarantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// Records may be processed again after a failure.
    #[default]
    AtLeastOnce,
    /// Outputs, changelogs and consumed offsets commit in one transaction (`exactly_once_v2`).
    ExactlyOnceV2,
}

/// What to do with a record whose key or value cannot be deserialized
/// (`default.deserialization.exception.handler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeserializationHandler {
    /// Stop with an error (Kafka's default, `LogAndFailExceptionHandler`).
    #[default]
    LogAndFail,
    /// Log a warning and skip the record.
    LogAndContinue,
}

/// What to do with a record the producer could not send to the cluster (`default.production.exception.handler`):
/// a refused record (too large, unknown topic...) or a failed delivery report. Serialization failures in sinks
/// always fail. Under `exactly_once_v2` a failed send also makes the transaction fail, so the thread fails whatever
/// the handler says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductionExceptionHandler {
    /// Fail the stream thread (Kafka's `DefaultProductionExceptionHandler`); the uncaught exception handler decides
    /// what follows.
    #[default]
    Fail,
    /// Log a warning, drop the record and go on (a handler returning `CONTINUE`).
    Continue,
}

/// Where a DSL operator keeps its state (Kafka's `Materialized.StoreType`): in memory unless
/// [`Materialized::with_store_type`](crate::Materialized::with_store_type) says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DslStoreType {
    /// In memory, rebuilt from the changelog on start.
    #[default]
    InMemory,
    /// On disk (redb), kept across restarts.
    Persistent,
}

/// Settings of a streams application.
///
/// ```
/// use spate_streams::{ProcessingGuarantee, StreamsConfig};
/// let config = StreamsConfig::new("metrics-app").num_stream_threads(2).processing_guarantee(ProcessingGuarantee::ExactlyOnceV2);
/// assert_eq!(config.application_id, "metrics-app");
/// ```
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group, and the prefix of internal topics.
    pub application_id: String,
    /// `bootstrap.servers` (`127.0.0.1:9092` when unset).
    pub bootstrap_servers: Option<String>,
    /// `num.stream.threads`.
    pub num_stream_threads: usize,
    /// `processing.guarantee`.
    pub processing_guarantee: ProcessingGuarantee,
    /// `state.dir`.
    pub state_dir: PathBuf,
    /// `num.standby.replicas`: how many other instances keep a standby of each stateful task.
    pub num_standby_replicas: u32,
    /// `default.deserialization.exception.handler`.
    pub deserialization_handler: DeserializationHandler,
    /// `default.production.exception.handler`.
    pub production_exception_handler: ProductionExceptionHandler,
    /// `max.task.idle.ms`: how long a task with several input partitions waits for data on a partition that has
    /// none buffered before processing the others out of timestamp order (0, the default: wait only while the
    /// consumer knows the partition has records not fetched yet; -1: never wait).
    pub max_task_idle_ms: i64,
    /// `commit.interval.ms`; `None` is Kafka's default: 30 000 under at-least-once, 100 under exactly-once.
    pub commit_interval_ms: Option<u64>,
    /// Names this instance in the transactional ids of its stream threads
    /// (`<application.id>-<instance id>-<thread index>`); a random UUID when `None`. Give an instance a stable id
    /// so that, restarted after a crash, it fences its previous incarnation and aborts its open transactions at
    /// once instead of after `transaction.timeout.ms`. Two running instances must not share one.
    pub instance_id: Option<String>,
    /// librdkafka properties applied to every client the runtime creates (consumers, producers, admin), e.g.
    /// `session.timeout.ms`; the runtime's own settings (group, isolation, partitioner...) win.
    pub client_properties: Vec<(String, String)>,
    /// `replication.factor` of the internal topics (repartition and changelog topics) the runtime creates.
    pub replication_factor: i32,
}

impl StreamsConfig {
    /// Defaults for `application_id`.
    pub fn new(application_id: impl Into<String>) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            bootstrap_servers: None,
            num_stream_threads: 1,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            state_dir: std::env::temp_dir().join("spate-streams"),
            num_standby_replicas: 0,
            deserialization_handler: DeserializationHandler::LogAndFail,
            production_exception_handler: ProductionExceptionHandler::Fail,
            max_task_idle_ms: 0,
            commit_interval_ms: None,
            instance_id: None,
            client_properties: Vec::new(),
            replication_factor: 1,
        }
    }
    /// `bootstrap.servers`.
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap_servers = Some(servers.into());
        self
    }
    /// `num.stream.threads`.
    pub fn num_stream_threads(mut self, n: usize) -> Self {
        self.num_stream_threads = n.max(1);
        self
    }
    /// `processing.guarantee`.
    pub fn processing_guarantee(mut self, g: ProcessingGuarantee) -> Self {
        self.processing_guarantee = g;
        self
    }
    /// `state.dir`.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }
    /// `num.standby.replicas`.
    pub fn num_standby_replicas(mut self, n: u32) -> Self {
        self.num_standby_replicas = n;
        self
    }
    /// `default.deserialization.exception.handler`.
    pub fn deserialization_handler(mut self, h: DeserializationHandler) -> Self {
        self.deserialization_handler = h;
        self
    }
    /// `default.production.exception.handler`.
    pub fn production_exception_handler(mut self, h: ProductionExceptionHandler) -> Self {
        self.production_exception_handler = h;
        self
    }
    /// `max.task.idle.ms` (see the field).
    pub fn max_task_idle_ms(mut self, ms: i64) -> Self {
        self.max_task_idle_ms = ms;
        self
    }
    /// `commit.interval.ms`.
    pub fn commit_interval_ms(mut self, ms: u64) -> Self {
        self.commit_interval_ms = Some(ms);
        self
    }
    /// The commit interval in effect: the configured one, else Kafka's default for the processing guarantee.
    pub fn effective_commit_interval_ms(&self) -> u64 {
        self.commit_interval_ms.unwrap_or(match self.processing_guarantee {
            ProcessingGuarantee::AtLeastOnce => 30_000,
            ProcessingGuarantee::ExactlyOnceV2 => 100,
        })
    }
    /// See [`instance_id`](Self::instance_id) (the field).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }
    /// `replication.factor` of internal topics.
    pub fn replication_factor(mut self, n: i32) -> Self {
        self.replication_factor = n;
        self
    }
    /// Adds a librdkafka property for every client of the runtime.
    pub fn client_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.client_properties.push((key.into(), value.into()));
        self
    }
}
