//! Application settings (Kafka's `StreamsConfig`), with Kafka's names and defaults where part A uses them.

use std::path::PathBuf;

/// `processing.guarantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// Records may be processed again after a failure.
    #[default]
    AtLeastOnce,
    /// Outputs, changelogs and consumed offsets commit in one transaction (part B).
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
    /// `bootstrap.servers` (part B).
    pub bootstrap_servers: Option<String>,
    /// `num.stream.threads` (part B).
    pub num_stream_threads: usize,
    /// `processing.guarantee`.
    pub processing_guarantee: ProcessingGuarantee,
    /// `state.dir`.
    pub state_dir: PathBuf,
    /// `num.standby.replicas` (part B).
    pub num_standby_replicas: u32,
    /// `default.deserialization.exception.handler`.
    pub deserialization_handler: DeserializationHandler,
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
}
