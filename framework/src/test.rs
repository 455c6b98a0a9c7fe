//! Test support (feature `test-support`): the bundled broker in-process on a free port, like Spring's
//! `@EmbeddedKafka`, with helpers to create topics, produce, consume, read committed offsets and wait for
//! partition assignment.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tempfile::TempDir;

use crate::admin::{AdminError, KafkaAdmin, TopicBuilder};
use crate::config::ConfigError;
use crate::container::ListenerContainer;
use crate::record::{Headers, Record};
use crate::template::{ProducerFactory, ProducerRecord, RecordMetadata, SendError};
use crate::{App, KafkaTemplate};

/// A test-support operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The broker failed to start or stop.
    #[error("embedded broker: {0}")]
    Broker(String),
    /// Admin operation failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Client configuration failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Producing failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// Consuming failed.
    #[error("consume: {0}")]
    Consume(#[from] rdkafka::error::KafkaError),
    /// A wait timed out.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

/// The bundled broker, in-process, on a free port, with its data in a temporary directory.
///
/// ```no_run
/// # async fn f() -> Result<(), spate::test::TestError> {
/// let broker = spate::test::EmbeddedBroker::builder().topic("orders", 3).start().await?;
/// broker.produce("orders", Some("k"), "hello").await?;
/// let records = broker.consume("orders", 1, std::time::Duration::from_secs(10)).await?;
/// assert_eq!(records[0].value().unwrap(), b"hello");
/// # Ok(()) }
/// ```
pub struct EmbeddedBroker {
    broker: Option<spate_broker::Broker>,
    _dir: TempDir,
    bootstrap: String,
    producer: ProducerFactory,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker").field("bootstrap", &self.bootstrap).finish()
    }
}

/// Changes a broker's settings before it starts.
type ConfigureBroker = Box<dyn FnOnce(&mut spate_broker::BrokerConfig) + Send>;

/// Configures an [`EmbeddedBroker`] before it starts.
#[derive(Default)]
pub struct EmbeddedBrokerBuilder {
    topics: Vec<(String, i32)>,
    configure: Option<ConfigureBroker>,
}

impl std::fmt::Debug for EmbeddedBrokerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBrokerBuilder").field("topics", &self.topics).finish_non_exhaustive()
    }
}

impl EmbeddedBrokerBuilder {
    /// Creates a topic at start.
    pub fn topic(mut self, name: impl Into<String>, partitions: i32) -> Self {
        self.topics.push((name.into(), partitions));
        self
    }

    /// Changes the broker's settings before it starts (`@EmbeddedKafka(brokerProperties = ...)`); the test
    /// defaults are [`BrokerConfig::for_tests`](spate_broker::BrokerConfig::for_tests)'.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), spate::test::TestError> {
    /// // Members joining within a second form the group's first generation together.
    /// let broker = spate::test::EmbeddedBroker::builder()
    ///     .broker_config(|c| c.group_initial_rebalance_delay_ms = 1000)
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn broker_config(mut self, f: impl FnOnce(&mut spate_broker::BrokerConfig) + Send + 'static) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// Starts the broker and creates the topics.
    pub async fn start(self) -> Result<EmbeddedBroker, TestError> {
        let b = EmbeddedBroker::start_with(self.configure).await?;
        for (t, p) in &self.topics {
            b.create_topic(t, *p).await?;
        }
        Ok(b)
    }
}

impl EmbeddedBroker {
    /// A builder.
    pub fn builder() -> EmbeddedBrokerBuilder {
        EmbeddedBrokerBuilder::default()
    }

    /// Starts a broker with no topics (topics are auto-created on first use, with one partition).
    pub async fn start() -> Result<Self, TestError> {
        Self::start_with(None).await
    }

    async fn start_with(configure: Option<ConfigureBroker>) -> Result<Self, TestError> {
        let dir = tempfile::tempdir().map_err(|e| TestError::Broker(e.to_string()))?;
        let mut config = spate_broker::BrokerConfig::for_tests(dir.path());
        if let Some(configure) = configure {
            configure(&mut config);
        }
        let broker = spate_broker::Broker::start(config).await.map_err(|e| TestError::Broker(e.to_string()))?;
        let bootstrap = broker.bootstrap_servers();
        let producer = ProducerFactory::for_bootstrap(&bootstrap);
        Ok(EmbeddedBroker { broker: Some(broker), _dir: dir, bootstrap, producer })
    }

    /// `host:port` to give clients.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// An [`App`] pointed at this broker, ignoring the environment and discovering no listeners (add the ones
    /// under test with [`App::listener`]). Consumers start from the earliest offset and their group settles
    /// quickly.
    pub fn app(&self) -> App {
        App::new()
            .without_env()
            .config_dir(self._dir.path())
            .discover_listeners(false)
            .set("kafka.bootstrap_servers", &self.bootstrap)
            .set("kafka.consumer.session_timeout_ms", 6000)
            .set("kafka.consumer.heartbeat_interval_ms", 500)
            .set("kafka.consumer.fetch_max_wait_ms", 50)
            .set("kafka.listener.shutdown_timeout_ms", 5000)
    }

    /// An admin client.
    pub fn admin(&self) -> Result<KafkaAdmin, TestError> {
        Ok(KafkaAdmin::for_bootstrap(&self.bootstrap)?)
    }

    /// Creates a topic.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<(), TestError> {
        self.admin()?.create_topics(&[TopicBuilder::name(name).partitions(partitions).build()]).await?;
        Ok(())
    }

    /// A template sharing this broker's test producer.
    pub fn template<K: crate::Encode, V: crate::Encode>(&self) -> KafkaTemplate<K, V> {
        KafkaTemplate::new(&self.producer)
    }

    /// Produces one record with a string key and raw value.
    pub async fn produce(
        &self,
        topic: &str,
        key: Option<&str>,
        value: impl Into<Vec<u8>>,
    ) -> Result<RecordMetadata, TestError> {
        let t: KafkaTemplate<String, Vec<u8>> = self.template();
        Ok(t.send(topic, key.map(str::to_string), value.into()).await?)
    }

    /// Produces one record to a partition, with headers.
    pub async fn produce_to(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&str>,
        value: impl Into<Vec<u8>>,
        headers: Headers,
    ) -> Result<RecordMetadata, TestError> {
        let t: KafkaTemplate<String, Vec<u8>> = self.template();
        let mut r = ProducerRecord::new(topic, value.into()).partition(partition).headers(headers);
        if let Some(k) = key {
            r = r.key(k.to_string());
        }
        Ok(t.send_record(r).await?)
    }

    /// Produces a JSON value.
    pub async fn produce_json<T: serde::Serialize>(
        &self,
        topic: &str,
        key: Option<&str>,
        value: &T,
    ) -> Result<RecordMetadata, TestError> {
        let bytes = serde_json::to_vec(value).map_err(|e| {
            SendError::Serialization(crate::SerializationError { type_name: "json", message: e.to_string() })
        })?;
        self.produce(topic, key, bytes).await
    }

    /// Reads `count` records of `topic` from the beginning (all partitions), without committing.
    pub async fn consume(&self, topic: &str, count: usize, timeout: Duration) -> Result<Vec<Record>, TestError> {
        let bootstrap = self.bootstrap.clone();
        let topic = topic.to_string();
        // A BaseConsumer polls synchronously: keep it off the runtime's threads.
        tokio::task::spawn_blocking(move || -> Result<Vec<Record>, TestError> {
            let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "spate-test-reader")
                .set("enable.auto.commit", "false")
                .create()?;
            let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            let mut tpl = TopicPartitionList::new();
            for t in md.topics() {
                for p in t.partitions() {
                    tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
                }
            }
            consumer.assign(&tpl)?;
            let deadline = Instant::now() + timeout;
            let mut out = Vec::new();
            while out.len() < count {
                if Instant::now() > deadline {
                    return Err(TestError::Timeout(timeout, format!("{count} records on {topic} (got {})", out.len())));
                }
                if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                    let m = m?;
                    out.push(Record::from_message(&m));
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| TestError::Broker(e.to_string()))?
    }

    /// The offset committed by `group` for a partition, if any.
    pub async fn committed_offset(&self, group: &str, topic: &str, partition: i32) -> Result<Option<i64>, TestError> {
        let bootstrap = self.bootstrap.clone();
        let (group, topic) = (group.to_string(), topic.to_string());
        tokio::task::spawn_blocking(move || -> Result<Option<i64>, TestError> {
            let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, partition);
            let c = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
            Ok(c.find_partition(&topic, partition).and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            }))
        })
        .await
        .map_err(|e| TestError::Broker(e.to_string()))?
    }

    /// Stops the broker cleanly.
    pub async fn shutdown(mut self) -> Result<(), TestError> {
        if let Some(b) = self.broker.take() {
            b.shutdown().await.map_err(|e| TestError::Broker(e.to_string()))?;
        }
        Ok(())
    }
}

/// Waits until a container's consumers together own `partitions` partitions (Spring's
/// `ContainerTestUtils.waitForAssignment`).
pub async fn wait_for_assignment(
    container: &ListenerContainer,
    partitions: usize,
    timeout: Duration,
) -> Result<(), TestError> {
    wait_until(timeout, &format!("{partitions} partitions assigned to `{}`", container.id()), || {
        container.assigned_partitions().len() == partitions
    })
    .await
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Result<(), TestError> {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() > deadline {
            return Err(TestError::Timeout(timeout, what.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
