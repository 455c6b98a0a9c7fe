//! Configuration: `spate.toml` / `spate.yaml`, profile files `spate-{profile}.toml`, `SPATE_*` environment
//! variables and values set in code, merged with figment in that order (later wins), as Spring Boot merges
//! `application.yml`, `application-{profile}.yml` and the environment.
//!
//! The `kafka` section is checked strictly: an unknown key or a bad value fails start-up with a message naming the
//! key and the file (or environment variable) it came from. Every other top-level section (`app`, ...) belongs to
//! the application and is read with [`Config::extract`] or through `"${app.key}"` placeholders in listener
//! attributes.
//!
//! ```toml
//! [kafka]
//! bootstrap_servers = "localhost:9092"
//!
//! [kafka.consumer]
//! group_id = "billing"
//! auto_offset_reset = "earliest"
//!
//! [kafka.producer]
//! acks = "all"
//! linger_ms = 5
//!
//! [kafka.listener]
//! concurrency = 3
//! ack_mode = "batch"
//!
//! [kafka.clusters.analytics]          # a second, named cluster
//! bootstrap_servers = "analytics:9092"
//!
//! [app]
//! topic = "orders"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::{Env, Format, Serialized, Toml, Yaml};
use figment::value::Value;
use figment::Figment;
use rdkafka::config::ClientConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::container::{AckMode, Ordering};

/// Configuration failed to load or is invalid. The message always names the key and where its value came from.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// A key is unknown or its value is invalid.
    #[error("invalid configuration key `{key}` (from {origin}): {message}")]
    Invalid {
        /// The dotted key, e.g. `kafka.consumer.group_id`.
        key: String,
        /// Where the value came from: a file path, an environment variable, or code.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A `${key}` placeholder names a key that is not configured and has no `:default`.
    #[error("placeholder `${{{key}}}` in {context} is not configured (add `{key}` to spate.toml, or write `${{{key}:default}}`)")]
    MissingPlaceholder {
        /// The key inside `${...}`.
        key: String,
        /// Which listener attribute used it.
        context: String,
    },
    /// A value (after placeholders) is invalid for the setting it is used for.
    #[error("invalid value `{value}` for {context}: {message}")]
    InvalidValue {
        /// The offending value.
        value: String,
        /// Which setting.
        context: String,
        /// What is wrong.
        message: String,
    },
    /// A listener or template names a cluster that `kafka.clusters` does not define.
    #[error("cluster `{name}` used by {context} is not defined under `kafka.clusters`")]
    UnknownCluster {
        /// The cluster name.
        name: String,
        /// Who used it.
        context: String,
    },
    /// librdkafka refused a client property.
    #[error("librdkafka refused property `{property}` = `{value}` (from configuration key `{key}`): {message}")]
    Client {
        /// The Spate configuration key the property came from.
        key: String,
        /// The librdkafka property name.
        property: String,
        /// The value.
        value: String,
        /// librdkafka's message.
        message: String,
    },
}

/// A librdkafka property value given in configuration; numbers and booleans are accepted and passed as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
}

impl std::fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropertyValue::Bool(b) => write!(f, "{b}"),
            PropertyValue::Int(i) => write!(f, "{i}"),
            PropertyValue::Float(x) => write!(f, "{x}"),
            PropertyValue::Text(s) => f.write_str(s),
        }
    }
}

/// librdkafka properties passed through unchanged (`kafka.properties`, `kafka.consumer.properties`, ...).
pub type Properties = BTreeMap<String, PropertyValue>;

/// `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoOffsetReset {
    /// Start from the oldest record.
    Earliest,
    /// Start from the next record produced.
    Latest,
    /// Fail when no offset is committed.
    None,
}

/// `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// See records of open and aborted transactions.
    ReadUncommitted,
    /// See only committed transactional records.
    ReadCommitted,
}

/// `kafka.consumer`: Spring Boot's `spring.kafka.consumer.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerProperties {
    /// `group.id` for listeners that name no group (`group_id` / `id` attributes win).
    pub group_id: Option<String>,
    /// `client.id` of consumers (listeners add `-{index}`).
    pub client_id: Option<String>,
    /// `auto.offset.reset`; Spate's default is `earliest`.
    pub auto_offset_reset: Option<AutoOffsetReset>,
    /// Most records handed to the listener from one poll (Kafka's `max.poll.records`, default 500): the unit of
    /// a batch listener and of `AckMode::Batch` commits.
    pub max_poll_records: Option<usize>,
    /// `max.poll.interval.ms`.
    pub max_poll_interval_ms: Option<u64>,
    /// `session.timeout.ms`.
    pub session_timeout_ms: Option<u64>,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval_ms: Option<u64>,
    /// `fetch.min.bytes`.
    pub fetch_min_bytes: Option<u64>,
    /// `fetch.wait.max.ms` (Java: `fetch.max.wait.ms`).
    pub fetch_max_wait_ms: Option<u64>,
    /// `isolation.level`.
    pub isolation_level: Option<IsolationLevel>,
    /// Any other librdkafka consumer property.
    pub properties: Properties,
}

/// `acks`: how many replicas must have a record before the send succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Acks {
    /// `0`: do not wait.
    None,
    /// `1`: the leader.
    Leader,
    /// `all` (`-1`): every in-sync replica.
    All,
}

impl<'de> Deserialize<'de> for Acks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = PropertyValue::deserialize(d)?;
        match v.to_string().as_str() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(serde::de::Error::custom(format!("expected one of `0`, `1`, `all`, `-1`; got `{other}`"))),
        }
    }
}

/// `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompressionType {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// `kafka.producer`: Spring Boot's `spring.kafka.producer.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerProperties {
    /// `client.id` of the shared producer.
    pub client_id: Option<String>,
    /// `acks`.
    pub acks: Option<Acks>,
    /// `retries` (librdkafka `message.send.max.retries`).
    pub retries: Option<u32>,
    /// `batch.size` in bytes.
    pub batch_size: Option<u64>,
    /// `linger.ms`.
    pub linger_ms: Option<u64>,
    /// `compression.type`.
    pub compression_type: Option<CompressionType>,
    /// `enable.idempotence`.
    pub enable_idempotence: Option<bool>,
    /// `delivery.timeout.ms`: how long a send may take in total, retries included.
    pub delivery_timeout_ms: Option<u64>,
    /// Turns transactions on (Spring's `transactionIdPrefix`): every producer of the factory is transactional,
    /// with `transactional.id` = this prefix + a suffix (an index for `in_transaction`, the group, listener id and
    /// consumer index for listener containers). Sending outside a transaction is then an error.
    pub transaction_id_prefix: Option<String>,
    /// `transaction.timeout.ms`: how long a transaction may stay open before the coordinator aborts it.
    pub transaction_timeout_ms: Option<u64>,
    /// Any other librdkafka producer property.
    pub properties: Properties,
}

/// `kafka.admin`: Spring Boot's `spring.kafka.admin.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminProperties {
    /// Create or grow the topics declared in code at start-up.
    pub auto_create: bool,
    /// Fail start-up when the broker cannot be reached to create topics (otherwise log and go on).
    pub fail_fast: bool,
    /// Timeout of admin operations.
    pub operation_timeout_ms: u64,
    /// Any other librdkafka property for the admin client.
    pub properties: Properties,
}

impl Default for AdminProperties {
    fn default() -> Self {
        AdminProperties {
            auto_create: true,
            fail_fast: true,
            operation_timeout_ms: 30_000,
            properties: Properties::new(),
        }
    }
}

/// `kafka.template`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateProperties {
    /// Topic of [`KafkaTemplate::send_default`](crate::KafkaTemplate::send_default).
    pub default_topic: Option<String>,
    /// Give every sent record a W3C `traceparent` header (a child of the current trace, or a new trace), so
    /// traces cross from producer to consumer (Spring's `spring.kafka.template.observation-enabled`, which is off
    /// by default there). On by default; off saves the header's 60-odd bytes per record and its parse in every
    /// consumer. A `traceparent` the application set itself is always sent.
    pub observation_enabled: bool,
}

impl Default for TemplateProperties {
    fn default() -> Self {
        TemplateProperties { default_topic: None, observation_enabled: true }
    }
}

/// `kafka.listener`: container defaults (Spring Boot's `spring.kafka.listener.*`); listener attributes win.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerProperties {
    /// Consumers per listener.
    pub concurrency: usize,
    /// When offsets are committed.
    pub ack_mode: AckMode,
    /// Records between commits for `count` / `count_time`.
    pub ack_count: usize,
    /// Milliseconds between commits for `time` / `count_time`.
    pub ack_time_ms: u64,
    /// Publish a `ListenerIdle` event when a consumer received nothing for this long.
    pub idle_event_interval_ms: Option<u64>,
    /// On stop, how long in-flight records may take to finish before they are abandoned (and redelivered).
    pub shutdown_timeout_ms: u64,
    /// Start listeners with the application.
    pub auto_startup: bool,
    /// `partition` (records of a partition in order) or `key` (records of a key in order, keys in parallel).
    pub ordering: Ordering,
    /// With `ordering = "key"`: how many keys are handled at once per consumer.
    pub key_concurrency: usize,
    /// Continue each record's trace from its `traceparent` header, so the handler's span and its sends belong to
    /// the producer's trace (Spring's `spring.kafka.listener.observation-enabled`, which is off by default there).
    /// On by default, like `kafka.template.observation_enabled`. Off, records are handled outside any trace
    /// (`current_trace()` is `None`; a send starts a trace of its own), and a listener that then reads no headers
    /// at all skips their parse (`ListenerDefinition::reads_headers`).
    pub observation_enabled: bool,
}

impl Default for ListenerProperties {
    fn default() -> Self {
        ListenerProperties {
            concurrency: 1,
            ack_mode: AckMode::Batch,
            ack_count: 1,
            ack_time_ms: 5_000,
            idle_event_interval_ms: None,
            shutdown_timeout_ms: 10_000,
            auto_startup: true,
            ordering: Ordering::Partition,
            key_concurrency: 16,
            observation_enabled: true,
        }
    }
}

/// One cluster's connection and client settings (`kafka.*` for the default cluster, `kafka.clusters.<name>.*`
/// for named ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterProperties {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `client.id` of every client of this cluster unless a client section sets its own.
    pub client_id: Option<String>,
    /// librdkafka properties for every client of this cluster (security, timeouts, ...).
    pub properties: Properties,
    /// Consumer settings.
    pub consumer: ConsumerProperties,
    /// Producer settings.
    pub producer: ProducerProperties,
    /// Admin settings.
    pub admin: AdminProperties,
    /// Template settings.
    pub template: TemplateProperties,
}

impl Default for ClusterProperties {
    fn default() -> Self {
        ClusterProperties {
            bootstrap_servers: "localhost:9092".to_string(),
            client_id: None,
            properties: Properties::new(),
            consumer: ConsumerProperties::default(),
            producer: ProducerProperties::default(),
            admin: AdminProperties::default(),
            template: TemplateProperties::default(),
        }
    }
}

/// The `kafka` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaProperties {
    /// `bootstrap.servers` of the default cluster.
    pub bootstrap_servers: String,
    /// `client.id` default.
    pub client_id: Option<String>,
    /// librdkafka properties for every client of the default cluster.
    pub properties: Properties,
    /// Consumer settings.
    pub consumer: ConsumerProperties,
    /// Producer settings.
    pub producer: ProducerProperties,
    /// Admin settings.
    pub admin: AdminProperties,
    /// Template settings.
    pub template: TemplateProperties,
    /// Listener container defaults (shared by all clusters).
    pub listener: ListenerProperties,
    /// Named clusters. They do not inherit the default cluster's settings, so credentials never leak from one
    /// cluster to another.
    pub clusters: BTreeMap<String, ClusterProperties>,
}

impl Default for KafkaProperties {
    fn default() -> Self {
        let c = ClusterProperties::default();
        KafkaProperties {
            bootstrap_servers: c.bootstrap_servers,
            client_id: None,
            properties: Properties::new(),
            consumer: ConsumerProperties::default(),
            producer: ProducerProperties::default(),
            admin: AdminProperties::default(),
            template: TemplateProperties::default(),
            listener: ListenerProperties::default(),
            clusters: BTreeMap::new(),
        }
    }
}

impl KafkaProperties {
    /// The default cluster's settings.
    pub fn default_cluster(&self) -> ClusterProperties {
        ClusterProperties {
            bootstrap_servers: self.bootstrap_servers.clone(),
            client_id: self.client_id.clone(),
            properties: self.properties.clone(),
            consumer: self.consumer.clone(),
            producer: self.producer.clone(),
            admin: self.admin.clone(),
            template: self.template.clone(),
        }
    }

    /// A cluster by name; `None` (or `"default"`) is the default cluster.
    pub fn cluster(&self, name: Option<&str>) -> Option<ClusterProperties> {
        match name {
            None | Some("default") => Some(self.default_cluster()),
            Some(n) => self.clusters.get(n).cloned(),
        }
    }
}

/// librdkafka properties with, for each, the configuration key it came from, so that a property librdkafka
/// refuses is reported under the name the user wrote.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientProps {
    entries: BTreeMap<String, (String, String)>,
}

impl ClientProps {
    pub(crate) fn set(&mut self, property: &str, value: impl ToString, origin: impl Into<String>) {
        self.entries.insert(property.to_string(), (value.to_string(), origin.into()));
    }

    fn set_opt(&mut self, property: &str, value: Option<impl ToString>, origin: String) {
        if let Some(v) = value {
            self.set(property, v, origin);
        }
    }

    fn extend(&mut self, props: &Properties, origin_prefix: &str) {
        for (k, v) in props {
            self.set(k, v, format!("{origin_prefix}.{k}"));
        }
    }

    pub(crate) fn get(&self, property: &str) -> Option<&str> {
        self.entries.get(property).map(|(v, _)| v.as_str())
    }

    /// Properties whose name starts with one of `prefixes`, with their origins.
    pub(crate) fn with_prefixes(&self, prefixes: &[&str]) -> ClientProps {
        let entries = self
            .entries
            .iter()
            .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.clone(), v.clone()));
        ClientProps { entries: entries.collect() }
    }

    /// Removes a property, returning its value.
    pub(crate) fn remove(&mut self, property: &str) -> Option<String> {
        self.entries.remove(property).map(|(v, _)| v)
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, (v, _)) in &self.entries {
            c.set(k, v);
        }
        c
    }

    /// Turns librdkafka's refusal into a [`ConfigError`] naming the configuration key.
    pub(crate) fn explain(&self, err: &rdkafka::error::KafkaError) -> Option<ConfigError> {
        match err {
            rdkafka::error::KafkaError::ClientConfig(_, message, property, value) => {
                let key = self.entries.get(property).map(|(_, o)| o.clone()).unwrap_or_else(|| property.clone());
                Some(ConfigError::Client {
                    key,
                    property: property.clone(),
                    value: value.clone(),
                    message: message.clone(),
                })
            }
            _ => None,
        }
    }

    /// A stable identity of the configuration, for sharing one producer per configuration.
    pub(crate) fn fingerprint(&self) -> String {
        self.entries.iter().map(|(k, (v, _))| format!("{k}={v}\n")).collect()
    }
}

impl ClusterProperties {
    fn common(&self, prefix: &str, client_id: Option<&String>, client_key: &str) -> ClientProps {
        let mut p = ClientProps::default();
        p.set("bootstrap.servers", &self.bootstrap_servers, format!("{prefix}.bootstrap_servers"));
        match client_id {
            Some(id) => p.set("client.id", id, format!("{prefix}.{client_key}.client_id")),
            None => p.set_opt("client.id", self.client_id.as_ref(), format!("{prefix}.client_id")),
        }
        p.extend(&self.properties, &format!("{prefix}.properties"));
        p
    }

    /// librdkafka consumer properties. `prefix` is where this cluster lives in configuration (`kafka` or
    /// `kafka.clusters.<name>`).
    pub(crate) fn consumer_props(&self, prefix: &str) -> ClientProps {
        let c = &self.consumer;
        let mut p = self.common(prefix, c.client_id.as_ref(), "consumer");
        let k = |f: &str| format!("{prefix}.consumer.{f}");
        p.set_opt("group.id", c.group_id.as_ref(), k("group_id"));
        let reset = match c.auto_offset_reset.unwrap_or(AutoOffsetReset::Earliest) {
            AutoOffsetReset::Earliest => "earliest",
            AutoOffsetReset::Latest => "latest",
            AutoOffsetReset::None => "error",
        };
        p.set("auto.offset.reset", reset, k("auto_offset_reset"));
        p.set_opt("max.poll.interval.ms", c.max_poll_interval_ms, k("max_poll_interval_ms"));
        p.set_opt("session.timeout.ms", c.session_timeout_ms, k("session_timeout_ms"));
        p.set_opt("heartbeat.interval.ms", c.heartbeat_interval_ms, k("heartbeat_interval_ms"));
        p.set_opt("fetch.min.bytes", c.fetch_min_bytes, k("fetch_min_bytes"));
        p.set_opt("fetch.wait.max.ms", c.fetch_max_wait_ms, k("fetch_max_wait_ms"));
        // librdkafka (2.4+) stops fetching a partition for fetch.queue.backoff.ms (default 1000) once its local
        // queue is over queued.min.messages. A listener slower than the fetcher drains that queue well within the
        // second and then sits idle: measured, a third of the throughput. The Java consumer fetches again as soon
        // as its buffer has room; a short back-off comes close. `properties` still override it.
        p.set("fetch.queue.backoff.ms", 10, format!("{prefix}.consumer (Spate's default)"));
        if let Some(level) = c.isolation_level {
            let v = match level {
                IsolationLevel::ReadCommitted => "read_committed",
                IsolationLevel::ReadUncommitted => "read_uncommitted",
            };
            p.set("isolation.level", v, k("isolation_level"));
        }
        p.extend(&c.properties, &format!("{prefix}.consumer.properties"));
        p
    }

    /// librdkafka producer properties.
    pub(crate) fn producer_props(&self, prefix: &str) -> ClientProps {
        let c = &self.producer;
        let mut p = self.common(prefix, c.client_id.as_ref(), "producer");
        let k = |f: &str| format!("{prefix}.producer.{f}");
        if let Some(acks) = c.acks {
            let v = match acks {
                Acks::None => "0",
                Acks::Leader => "1",
                Acks::All => "all",
            };
            p.set("acks", v, k("acks"));
        }
        p.set_opt("message.send.max.retries", c.retries, k("retries"));
        p.set_opt("batch.size", c.batch_size, k("batch_size"));
        p.set_opt("linger.ms", c.linger_ms, k("linger_ms"));
        if let Some(ct) = c.compression_type {
            let v = match ct {
                CompressionType::None => "none",
                CompressionType::Gzip => "gzip",
                CompressionType::Snappy => "snappy",
                CompressionType::Lz4 => "lz4",
                CompressionType::Zstd => "zstd",
            };
            p.set("compression.type", v, k("compression_type"));
        }
        p.set_opt("enable.idempotence", c.enable_idempotence, k("enable_idempotence"));
        p.set_opt("delivery.timeout.ms", c.delivery_timeout_ms, k("delivery_timeout_ms"));
        // The prefix travels as `transactional.id`; the producer factory appends each producer's suffix.
        p.set_opt("transactional.id", c.transaction_id_prefix.as_ref(), k("transaction_id_prefix"));
        p.set_opt("transaction.timeout.ms", c.transaction_timeout_ms, k("transaction_timeout_ms"));
        p.extend(&c.properties, &format!("{prefix}.producer.properties"));
        p
    }

    /// librdkafka admin client properties.
    pub(crate) fn admin_props(&self, prefix: &str) -> ClientProps {
        let mut p = self.common(prefix, None, "admin");
        p.extend(&self.admin.properties, &format!("{prefix}.admin.properties"));
        p
    }
}

/// Where a cluster lives in configuration, for naming keys in errors.
pub(crate) fn cluster_prefix(name: Option<&str>) -> String {
    match name {
        None | Some("default") => "kafka".to_string(),
        Some(n) => format!("kafka.clusters.{n}"),
    }
}

/// Loads a [`Config`]: directory, profiles, environment and overrides. [`App`](crate::App) uses one; use it
/// directly to read configuration outside an app.
///
/// ```no_run
/// let config = spate::ConfigLoader::new().profile("dev").set("kafka.bootstrap_servers", "localhost:9092").load()?;
/// assert_eq!(config.kafka().bootstrap_servers, "localhost:9092");
/// # Ok::<(), spate::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConfigLoader {
    dir: Option<PathBuf>,
    profiles: Option<Vec<String>>,
    env: bool,
    overrides: Vec<(String, Value)>,
}

impl Default for ConfigLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigLoader {
    /// Files from `$SPATE_CONFIG_DIR` or the current directory, profiles from `$SPATE_PROFILE` (comma-separated),
    /// and `SPATE_*` environment variables.
    pub fn new() -> Self {
        ConfigLoader { dir: None, profiles: None, env: true, overrides: Vec::new() }
    }

    /// Reads `spate.toml` etc. from `dir` instead.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Activates a profile (`spate-{profile}.toml` / `.yaml`), in addition to those already added; setting any
    /// profile in code replaces `$SPATE_PROFILE`.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profiles.get_or_insert_with(Vec::new).push(profile.into());
        self
    }

    /// Ignores `SPATE_*` environment variables (for tests that must not see the developer's environment).
    pub fn without_env(mut self) -> Self {
        self.env = false;
        self
    }

    /// Sets a key in code, above every other source (like a command-line property in Spring Boot).
    pub fn set(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = Value::serialize(value).unwrap_or_else(|e| Value::from(e.to_string()));
        self.overrides.push((key.into(), value));
        self
    }

    /// Merges every source and checks the `kafka` section.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => std::env::var_os("SPATE_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")),
        };
        let profiles: Vec<String> = match &self.profiles {
            Some(p) => p.clone(),
            None => std::env::var("SPATE_PROFILE")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
        };
        let mut figment = Figment::new()
            .merge(Toml::file(dir.join("spate.toml")))
            .merge(Yaml::file(dir.join("spate.yaml")))
            .merge(Yaml::file(dir.join("spate.yml")));
        for p in &profiles {
            figment = figment
                .merge(Toml::file(dir.join(format!("spate-{p}.toml"))))
                .merge(Yaml::file(dir.join(format!("spate-{p}.yaml"))))
                .merge(Yaml::file(dir.join(format!("spate-{p}.yml"))));
        }
        if self.env {
            figment = figment
                .merge(Env::prefixed("SPATE_").ignore(&["PROFILE", "CONFIG_DIR"]).map(|k| env_key(k.as_str()).into()));
        }
        for (k, v) in &self.overrides {
            figment = figment.merge(Serialized::default(k, v.clone()));
        }
        Config::from_figment(figment)
    }
}

/// `SPATE_KAFKA_CONSUMER_GROUP_ID` -> `kafka.consumer.group_id` (Spring Boot's relaxed binding for the known
/// `kafka` sections); a double underscore is always a dot (`SPATE_APP__TOPIC` -> `app.topic`,
/// `SPATE_KAFKA__CLUSTERS__EU__BOOTSTRAP_SERVERS`).
fn env_key(raw: &str) -> String {
    let k = raw.to_ascii_lowercase();
    if k.contains("__") {
        return k.replace("__", ".");
    }
    if let Some(rest) = k.strip_prefix("kafka_") {
        for section in ["consumer", "producer", "listener", "admin", "template"] {
            if let Some(leaf) = rest.strip_prefix(section).and_then(|r| r.strip_prefix('_')) {
                return format!("kafka.{section}.{leaf}");
            }
        }
        return format!("kafka.{rest}");
    }
    k
}

/// Merged configuration: the checked `kafka` section plus everything else for the application.
#[derive(Debug, Clone)]
pub struct Config {
    figment: Figment,
    kafka: Arc<KafkaProperties>,
}

impl Config {
    /// Loads with [`ConfigLoader::new`].
    pub fn load() -> Result<Config, ConfigError> {
        ConfigLoader::new().load()
    }

    /// Checks and wraps an already built figment.
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let kafka: KafkaProperties = match figment.find_value("kafka") {
            Ok(_) => figment.extract_inner("kafka").map_err(|e| explain(&figment, e))?,
            Err(_) => KafkaProperties::default(),
        };
        Ok(Config { figment, kafka: Arc::new(kafka) })
    }

    /// The `kafka` section.
    pub fn kafka(&self) -> &KafkaProperties {
        &self.kafka
    }

    /// The underlying figment, for anything not covered here.
    pub fn figment(&self) -> &Figment {
        &self.figment
    }

    /// Reads an application section, e.g. `config.extract::<AppSettings>("app")`.
    pub fn extract<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        self.figment.extract_inner(key).map_err(|e| explain(&self.figment, e))
    }

    /// A single value as text, when configured.
    pub fn get_string(&self, key: &str) -> Option<String> {
        match self.figment.find_value(key).ok()? {
            Value::String(_, s) => Some(s),
            Value::Char(_, c) => Some(c.to_string()),
            Value::Bool(_, b) => Some(b.to_string()),
            Value::Num(_, n) => n
                .to_u128()
                .map(|i| i.to_string())
                .or_else(|| n.to_i128().map(|i| i.to_string()))
                .or_else(|| n.to_f64().map(|f| f.to_string())),
            _ => None,
        }
    }

    /// Replaces `${key}` and `${key:default}` in `text` with configured values.
    ///
    /// ```
    /// let config = spate::ConfigLoader::new().without_env().set("app.topic", "orders").load().unwrap();
    /// assert_eq!(config.resolve("${app.topic}-dlt", "test").unwrap(), "orders-dlt");
    /// assert_eq!(config.resolve("${app.missing:fallback}", "test").unwrap(), "fallback");
    /// ```
    pub fn resolve(&self, text: &str, context: &str) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(ConfigError::InvalidValue {
                    value: text.to_string(),
                    context: context.to_string(),
                    message: "`${` without a closing `}`".to_string(),
                });
            };
            let inner = &after[..end];
            let (key, default) = match inner.split_once(':') {
                Some((k, d)) => (k.trim(), Some(d)),
                None => (inner.trim(), None),
            };
            match (self.get_string(key), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(ConfigError::MissingPlaceholder { key: key.to_string(), context: context.to_string() })
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Turns figment's error into one naming the full key and the file or variable it came from.
fn explain(figment: &Figment, err: figment::Error) -> ConfigError {
    // `extract_inner("kafka")` reports paths relative to the section with the section name last.
    let mut key_path = err.path.clone();
    if key_path.last().map(String::as_str) == Some("kafka") {
        key_path.pop();
        key_path.insert(0, "kafka".to_string());
    }
    if let figment::error::Kind::UnknownField(field, _) = &err.kind {
        if key_path.last() != Some(field) {
            key_path.push(field.clone());
        }
    }
    let key = key_path.join(".");
    let origin = match err.metadata.as_ref() {
        Some(m) => match &m.source {
            Some(figment::Source::File(p)) => format!("file {}", p.display()),
            _ if m.name.contains("environment") => {
                env_var_for(&key).map(|v| format!("environment variable {v}")).unwrap_or_else(|| m.name.to_string())
            }
            _ => m.name.to_string(),
        },
        None => figment.find_metadata(&key).map(|m| m.name.to_string()).unwrap_or_else(|| "defaults".to_string()),
    };
    ConfigError::Invalid { key, origin, message: err.kind.to_string() }
}

/// The `SPATE_*` variable that set `key`, if any.
fn env_var_for(key: &str) -> Option<String> {
    std::env::vars().map(|(k, _)| k).filter(|k| k.starts_with("SPATE_")).find(|k| env_key(&k["SPATE_".len()..]) == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_follow_spring_relaxed_binding() {
        assert_eq!(env_key("KAFKA_CONSUMER_GROUP_ID"), "kafka.consumer.group_id");
        assert_eq!(env_key("KAFKA_BOOTSTRAP_SERVERS"), "kafka.bootstrap_servers");
        assert_eq!(env_key("APP__TOPIC_NAME"), "app.topic_name");
        assert_eq!(env_key("KAFKA__CLUSTERS__EU__BOOTSTRAP_SERVERS"), "kafka.clusters.eu.bootstrap_servers");
        assert_eq!(env_key("KAFKA_PRODUCER_TRANSACTION_ID_PREFIX"), "kafka.producer.transaction_id_prefix");
    }

    #[test]
    fn listener_consumers_refetch_soon_after_their_queue_drains_unless_configured() {
        let load = |extra: &[(&str, &str)]| {
            let mut l = ConfigLoader::new().without_env().set("kafka.bootstrap_servers", "localhost:9092");
            for (k, v) in extra {
                l = l.set(*k, *v);
            }
            l.load().expect("config loads")
        };
        let config = load(&[]);
        let props = config.kafka().default_cluster().consumer_props("kafka");
        assert_eq!(props.get("fetch.queue.backoff.ms"), Some("10"));
        let mut own = std::collections::BTreeMap::new();
        own.insert("fetch.queue.backoff.ms", "500");
        let config = ConfigLoader::new()
            .without_env()
            .set("kafka.bootstrap_servers", "localhost:9092")
            .set("kafka.consumer.properties", own)
            .load()
            .expect("config loads");
        let props = config.kafka().default_cluster().consumer_props("kafka");
        assert_eq!(props.get("fetch.queue.backoff.ms"), Some("500"));
    }
}
