//! `KafkaTemplate<K, V>`: typed sends over one shared librdkafka producer per configuration
//! ([`ProducerFactory`]), with producer listeners told of every outcome — even of sends whose future was dropped,
//! because they run in librdkafka's delivery callback rather than in the caller's future.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::RwLock;
use rdkafka::client::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::oneshot;

use crate::codec::{Encode, SerializationError};
use crate::config::{ClientProps, ConfigError};
use crate::record::Headers;
use crate::topic::TopicName;

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset assigned by the broker.
    pub offset: i64,
    /// The record's timestamp, when known.
    pub timestamp: Option<i64>,
}

/// A send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The key or value could not be serialized; nothing was sent.
    #[error(transparent)]
    Serialization(#[from] SerializationError),
    /// The broker or client refused or timed out the record.
    #[error("send to `{topic}` failed: {error}")]
    Kafka {
        /// Destination topic.
        topic: String,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// `send_default` without `kafka.template.default_topic`.
    #[error("send_default needs `kafka.template.default_topic` (or KafkaTemplate::with_default_topic)")]
    NoDefaultTopic,
    /// The producer could not be created.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The producer went away before reporting the outcome.
    #[error("the producer was closed before the send completed")]
    Closed,
    /// The factory is transactional (`kafka.producer.transaction_id_prefix`) and the send was made outside a
    /// transaction (Spring refuses it too, unless `allowNonTransactional`).
    #[error(
        "send to `{topic}` outside a transaction on a transactional producer factory: send inside \
         `KafkaTemplate::in_transaction` or a transactional listener, or use a factory without \
         `kafka.producer.transaction_id_prefix`"
    )]
    NotInTransaction {
        /// Destination topic.
        topic: String,
    },
}

/// What a producer listener sees of a record whose send finished.
#[derive(Debug)]
pub struct SentRecord<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition (`-1` when the send failed before one was chosen).
    pub partition: i32,
    /// Offset (`-1` on failure).
    pub offset: i64,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub value: Option<&'a [u8]>,
}

/// Told of every send's outcome (Spring's `ProducerListener`). Runs on librdkafka's delivery thread: keep it
/// short and never block.
///
/// ```
/// struct CountFailures(std::sync::atomic::AtomicUsize);
/// impl spate::ProducerListener for CountFailures {
///     fn on_error(&self, _record: &spate::SentRecord<'_>, _error: &rdkafka::error::KafkaError) {
///         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///     }
/// }
/// ```
pub trait ProducerListener: Send + Sync + 'static {
    /// The record was written.
    fn on_success(&self, _record: &SentRecord<'_>) {}
    /// The record could not be written.
    fn on_error(&self, _record: &SentRecord<'_>, _error: &KafkaError) {}
}

type Listeners = Arc<RwLock<Vec<Arc<dyn ProducerListener>>>>;

/// Routes librdkafka's delivery reports to the waiting future and the producer listeners, and its logs to tracing.
pub(crate) struct SpateProducerContext {
    listeners: Listeners,
    /// Records waiting for room in librdkafka's queue, in the order they were sent. While it is not empty every
    /// new send joins it, so a full queue never reorders records, and a caller that drops its `SendFuture`
    /// (fire and forget) still has its record sent, as with Spring's `KafkaTemplate`.
    overflow: parking_lot::Mutex<Overflow>,
}

#[derive(Default)]
struct Overflow {
    queue: std::collections::VecDeque<(OutgoingRecord, Option<DeliverySender>)>,
    draining: bool,
}

impl ClientContext for SpateProducerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::container::log_rdkafka(level, fac, log_message, "producer");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "producer client error");
    }
}

type DeliverySender = oneshot::Sender<Result<RecordMetadata, KafkaError>>;

impl ProducerContext for SpateProducerContext {
    type DeliveryOpaque = Box<(Option<DeliverySender>, std::time::Instant)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (sender, enqueued) = *opaque;
        match result {
            Ok(m) => crate::observability::template_delivered(m.topic(), true, enqueued),
            Err((_, m)) => crate::observability::template_delivered(m.topic(), false, enqueued),
        }
        let listeners = self.listeners.read();
        let outcome = match result {
            Ok(m) => {
                let sent = SentRecord {
                    topic: m.topic(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key(),
                    value: m.payload(),
                };
                for l in listeners.iter() {
                    l.on_success(&sent);
                }
                Ok(RecordMetadata {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis(),
                })
            }
            Err((e, m)) => {
                let sent = SentRecord {
                    topic: m.topic(),
                    partition: m.partition(),
                    offset: -1,
                    key: m.key(),
                    value: m.payload(),
                };
                for l in listeners.iter() {
                    l.on_error(&sent, e);
                }
                Err(e.clone())
            }
        };
        if let Some(tx) = sender {
            // The caller may have dropped the future; the listeners above have still been told.
            let _ = tx.send(outcome);
        }
    }
}

pub(crate) type SharedProducer = Arc<ThreadedProducer<SpateProducerContext>>;

struct FactoryInner {
    props: ClientProps,
    producer: parking_lot::Mutex<Option<SharedProducer>>,
    listeners: Listeners,
    default_topic: Option<String>,
    /// `kafka.template.observation_enabled`: sends carry a `traceparent`.
    observation: bool,
    /// `kafka.producer.transaction_id_prefix`: when set, every send belongs to a transaction.
    transaction_id_prefix: Option<String>,
    /// Idle transactional producers for `KafkaTemplate::in_transaction`.
    transaction_pool: crate::transaction::ProducerPool,
}

/// Creates and shares one producer per configuration (Spring's `DefaultKafkaProducerFactory`): every
/// [`KafkaTemplate`] made from a factory, whatever its key and value types, sends through the same producer.
#[derive(Clone)]
pub struct ProducerFactory {
    inner: Arc<FactoryInner>,
}

impl std::fmt::Debug for ProducerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerFactory").field("config", &self.inner.props.fingerprint()).finish()
    }
}

impl ProducerFactory {
    pub(crate) fn from_props(mut props: ClientProps, template: &crate::config::TemplateProperties) -> Self {
        // `transactional.id` is a prefix here: each transactional producer appends its own suffix.
        let transaction_id_prefix = props.remove("transactional.id");
        ProducerFactory {
            inner: Arc::new(FactoryInner {
                props,
                producer: parking_lot::Mutex::new(None),
                listeners: Arc::new(RwLock::new(Vec::new())),
                default_topic: template.default_topic.clone(),
                observation: template.observation_enabled,
                transaction_id_prefix,
                transaction_pool: Default::default(),
            }),
        }
    }

    /// The transactional id prefix (`kafka.producer.transaction_id_prefix`), when transactions are on.
    pub fn transaction_id_prefix(&self) -> Option<&str> {
        self.inner.transaction_id_prefix.as_deref()
    }

    /// Whether every send of this factory must belong to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.inner.transaction_id_prefix.is_some()
    }

    /// Identity of the factory, for matching a send to the transaction in progress.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// The factory's librdkafka settings (the reply consumer of a `ReplyingKafkaTemplate` and the dead-letter
    /// recoverer's admin client connect with them).
    pub(crate) fn props(&self) -> &ClientProps {
        &self.inner.props
    }

    pub(crate) fn transaction_pool(&self) -> &crate::transaction::ProducerPool {
        &self.inner.transaction_pool
    }

    /// A new producer with `transactional.id` = `transactional_id` and this factory's other settings and producer
    /// listeners; transactions are not initialized yet.
    pub(crate) fn create_transactional(&self, transactional_id: &str) -> Result<SharedProducer, ConfigError> {
        let mut props = self.inner.props.clone();
        props.set("transactional.id", transactional_id, "kafka.producer.transaction_id_prefix");
        self.create_producer(&props)
    }

    /// A factory for the default cluster of `config`.
    pub fn new(config: &crate::Config) -> Self {
        let cluster = config.kafka().default_cluster();
        Self::from_props(cluster.producer_props("kafka"), &cluster.template)
    }

    /// A factory for a bare `bootstrap.servers` with librdkafka defaults.
    ///
    /// ```no_run
    /// let factory = spate::ProducerFactory::for_bootstrap("localhost:9092");
    /// let template: spate::KafkaTemplate<String, String> = spate::KafkaTemplate::new(&factory);
    /// ```
    pub fn for_bootstrap(bootstrap_servers: &str) -> Self {
        let mut props = ClientProps::default();
        props.set("bootstrap.servers", bootstrap_servers, "code");
        Self::from_props(props, &crate::config::TemplateProperties::default())
    }

    /// Whether two factories are the same one (and so share one producer).
    pub fn is_same(&self, other: &ProducerFactory) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Adds a producer listener told of every send from any template of this factory.
    pub fn add_listener(&self, listener: impl ProducerListener) {
        self.inner.listeners.write().push(Arc::new(listener));
    }

    pub(crate) fn add_listener_arc(&self, listener: Arc<dyn ProducerListener>) {
        self.inner.listeners.write().push(listener);
    }

    /// The shared producer, created on first use.
    fn producer(&self) -> Result<SharedProducer, ConfigError> {
        let mut slot = self.inner.producer.lock();
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let producer = self.create_producer(&self.inner.props)?;
        *slot = Some(producer.clone());
        Ok(producer)
    }

    fn create_producer(&self, props: &ClientProps) -> Result<SharedProducer, ConfigError> {
        let context =
            SpateProducerContext { listeners: self.inner.listeners.clone(), overflow: parking_lot::Mutex::default() };
        let producer = ThreadedProducer::from_config_and_context(&props.client_config(), context).map_err(|e| {
            props.explain(&e).unwrap_or_else(|| ConfigError::InvalidValue {
                value: props.fingerprint(),
                context: "producer configuration".to_string(),
                message: e.to_string(),
            })
        })?;
        Ok(Arc::new(producer))
    }

    /// Creates the producer now, so a configuration error surfaces at start-up rather than at the first send.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.producer().map(|_| ())
    }

    /// Waits until every queued record is sent or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let producer = match self.inner.producer.lock().clone() {
            Some(p) => p,
            None => return Ok(()),
        };
        // Records still waiting for queue room are part of what flush promises to deliver.
        let deadline = tokio::time::Instant::now() + timeout;
        while !producer.context().overflow.lock().queue.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
            }
            tokio::time::sleep(OVERFLOW_RETRY).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // librdkafka's flush blocks the calling thread.
        tokio::task::spawn_blocking(move || producer.flush(left)).await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// Sends already-serialized bytes; on a transactional factory, through the transaction in progress.
    pub(crate) fn send_bytes(&self, mut msg: OutgoingRecord) -> SendFuture {
        if self.inner.observation {
            crate::observability::inject_for_send(&mut msg.headers);
        }
        if self.is_transactional() {
            return match crate::transaction::current_producer(self) {
                Some(p) => send_with(&p, msg),
                None => SendFuture::ready(Err(SendError::NotInTransaction { topic: msg.topic })),
            };
        }
        match self.producer() {
            Ok(p) => send_with(&p, msg),
            Err(e) => SendFuture::ready(Err(SendError::Config(e))),
        }
    }
}

/// Records still waiting for room in the producer's queue (they are not yet in librdkafka, so neither a flush
/// nor a transaction commit covers them).
pub(crate) fn overflow_len(producer: &SharedProducer) -> usize {
    producer.context().overflow.lock().queue.len()
}

/// Sends through one producer, queueing behind records already waiting for room.
pub(crate) fn send_with(producer: &SharedProducer, msg: OutgoingRecord) -> SendFuture {
    let (tx, rx) = oneshot::channel();
    let mut tx = Some(tx);
    let topic = msg.topic.clone();
    // The overflow lock is held across the enqueue attempt so no send can overtake a record already waiting.
    let mut overflow = producer.context().overflow.lock();
    if overflow.queue.is_empty() {
        match enqueue(producer, &msg, &mut tx) {
            Ok(()) => return SendFuture::waiting(topic, rx),
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {}
            Err(error) => {
                crate::observability::template_delivered(&topic, false, std::time::Instant::now());
                return SendFuture::ready(Err(SendError::Kafka { topic, error }));
            }
        }
    }
    // The local queue is full (or records are already waiting): queue this one behind them and let the
    // drainer hand them to librdkafka as deliveries make room, instead of failing the send.
    overflow.queue.push_back((msg, tx));
    if !overflow.draining {
        overflow.draining = true;
        start_drainer(producer.clone());
    }
    SendFuture::waiting(topic, rx)
}

/// How often the drainer retries a full librdkafka queue.
const OVERFLOW_RETRY: Duration = Duration::from_millis(2);

/// Moves waiting records into librdkafka in order, until none is left. Returns whether any remain.
fn drain_overflow(producer: &SharedProducer) -> bool {
    let mut overflow = producer.context().overflow.lock();
    while let Some((msg, mut tx)) = overflow.queue.pop_front() {
        match enqueue(producer, &msg, &mut tx) {
            Ok(()) => {}
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                overflow.queue.push_front((msg, tx));
                return true;
            }
            Err(error) => {
                crate::observability::template_delivered(&msg.topic, false, std::time::Instant::now());
                if let Some(tx) = tx {
                    let _ = tx.send(Err(error));
                }
            }
        }
    }
    overflow.draining = false;
    false
}

/// Drains the overflow on the current tokio runtime, or on a thread of its own when sending from outside one.
fn start_drainer(producer: SharedProducer) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                while drain_overflow(&producer) {
                    tokio::time::sleep(OVERFLOW_RETRY).await;
                }
            });
        }
        Err(_) => {
            let spawned = std::thread::Builder::new().name("spate-producer-overflow".into()).spawn(move || {
                while drain_overflow(&producer) {
                    std::thread::sleep(OVERFLOW_RETRY);
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the producer overflow thread; waiting records stay queued");
            }
        }
    }
}

/// A serialized record on its way out.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
    pub headers: Headers,
}

fn enqueue(
    producer: &ThreadedProducer<SpateProducerContext>,
    msg: &OutgoingRecord,
    tx: &mut Option<DeliverySender>,
) -> Result<(), KafkaError> {
    let mut rec: BaseRecord<'_, [u8], [u8], <SpateProducerContext as ProducerContext>::DeliveryOpaque> =
        BaseRecord::with_opaque_to(&msg.topic, Box::new((tx.take(), std::time::Instant::now())));
    if let Some(k) = &msg.key {
        rec = rec.key(k.as_slice());
    }
    if let Some(v) = &msg.value {
        rec = rec.payload(v.as_slice());
    }
    if let Some(p) = msg.partition {
        rec = rec.partition(p);
    }
    if let Some(t) = msg.timestamp {
        rec = rec.timestamp(t);
    }
    if let Some(h) = msg.headers.to_rdkafka() {
        rec = rec.headers(h);
    }
    match producer.send(rec) {
        Ok(()) => Ok(()),
        Err((e, rec)) => {
            // Take the sender back so a retry can use it.
            *tx = rec.delivery_opaque.0;
            Err(e)
        }
    }
}

async fn await_delivery(
    topic: String,
    rx: oneshot::Receiver<Result<RecordMetadata, KafkaError>>,
) -> Result<RecordMetadata, SendError> {
    match rx.await {
        Ok(Ok(md)) => Ok(md),
        Ok(Err(error)) => Err(SendError::Kafka { topic, error }),
        Err(_) => Err(SendError::Closed),
    }
}

/// The outcome of a send. The record is queued when `send` returns, whether or not this future is awaited; await
/// it for the record's metadata.
#[must_use = "the record is sent anyway; await the future to learn whether it was written"]
pub struct SendFuture {
    inner: BoxFuture<'static, Result<RecordMetadata, SendError>>,
}

impl SendFuture {
    pub(crate) fn ready(r: Result<RecordMetadata, SendError>) -> Self {
        SendFuture { inner: Box::pin(std::future::ready(r)) }
    }

    fn waiting(topic: String, rx: oneshot::Receiver<Result<RecordMetadata, KafkaError>>) -> Self {
        SendFuture { inner: Box::pin(await_delivery(topic, rx)) }
    }
}

impl Future for SendFuture {
    type Output = Result<RecordMetadata, SendError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for SendFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendFuture")
    }
}

/// A record to send with every option: partition, timestamp, headers.
///
/// ```
/// let r = spate::ProducerRecord::new("orders", "hello".to_string())
///     .key("k1".to_string())
///     .partition(0)
///     .timestamp(1_700_000_000_000)
///     .header("source", "web");
/// ```
#[derive(Debug, Clone)]
pub struct ProducerRecord<K, V> {
    topic: String,
    partition: Option<i32>,
    key: Option<K>,
    value: V,
    timestamp: Option<i64>,
    headers: Headers,
}

impl<K, V> ProducerRecord<K, V> {
    /// A record for `topic`.
    pub fn new(topic: impl Into<String>, value: V) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value,
            timestamp: None,
            headers: Headers::new(),
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: K) -> Self {
        self.key = Some(key);
        self
    }

    /// Sends to this partition instead of the partitioner's choice.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    pub fn timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<bytes::Bytes>) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Replaces the headers.
    pub fn headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

/// Sends typed records (Spring's `KafkaTemplate<K, V>`). Cheap to clone; all templates of one
/// [`ProducerFactory`] share its producer.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use spate::{Json, KafkaTemplate, ProducerFactory};
/// #[derive(serde::Serialize)]
/// struct Order { id: u64 }
/// let template: KafkaTemplate<String, Json<Order>> = KafkaTemplate::new(&ProducerFactory::for_bootstrap("localhost:9092"));
/// let md = template.send("orders", "customer-7".to_string(), Json(Order { id: 1 })).await?;
/// println!("written at {}-{}@{}", md.topic, md.partition, md.offset);
/// # Ok(()) }
/// ```
pub struct KafkaTemplate<K, V> {
    factory: ProducerFactory,
    default_topic: Option<String>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for KafkaTemplate<K, V> {
    fn clone(&self) -> Self {
        KafkaTemplate { factory: self.factory.clone(), default_topic: self.default_topic.clone(), _types: PhantomData }
    }
}

impl<K, V> std::fmt::Debug for KafkaTemplate<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTemplate").field("default_topic", &self.default_topic).finish()
    }
}

impl<K: Encode, V: Encode> KafkaTemplate<K, V> {
    /// A template over `factory`'s shared producer.
    pub fn new(factory: &ProducerFactory) -> Self {
        KafkaTemplate {
            factory: factory.clone(),
            default_topic: factory.inner.default_topic.clone(),
            _types: PhantomData,
        }
    }

    /// Sets the topic of [`send_default`](Self::send_default).
    pub fn with_default_topic(mut self, topic: impl Into<String>) -> Self {
        self.default_topic = Some(topic.into());
        self
    }

    /// The factory (and so the producer) this template sends through.
    pub fn producer_factory(&self) -> &ProducerFactory {
        &self.factory
    }

    /// Sends `value` with `key` (or `None`) to `topic`, a name or a [`Topic<K, V>`](crate::Topic) of the same
    /// types.
    pub fn send(&self, topic: impl TopicName<K, V>, key: impl Into<Option<K>>, value: V) -> SendFuture {
        self.send_record(ProducerRecord { key: key.into(), ..ProducerRecord::new(topic.topic_name(), value) })
    }

    /// Sends to one partition.
    pub fn send_to(
        &self,
        topic: impl TopicName<K, V>,
        partition: i32,
        key: impl Into<Option<K>>,
        value: V,
    ) -> SendFuture {
        self.send_record(ProducerRecord {
            key: key.into(),
            partition: Some(partition),
            ..ProducerRecord::new(topic.topic_name(), value)
        })
    }

    /// Sends to the default topic (`kafka.template.default_topic`).
    pub fn send_default(&self, key: impl Into<Option<K>>, value: V) -> SendFuture {
        match &self.default_topic {
            Some(t) => self.send_record(ProducerRecord { key: key.into(), ..ProducerRecord::new(t.clone(), value) }),
            None => SendFuture::ready(Err(SendError::NoDefaultTopic)),
        }
    }

    /// Sends a record with headers, timestamp or partition.
    pub fn send_record(&self, record: ProducerRecord<K, V>) -> SendFuture {
        let key = match record.key.as_ref().map(Encode::encode).transpose() {
            Ok(k) => k.flatten(),
            Err(e) => return SendFuture::ready(Err(e.into())),
        };
        let value = match record.value.encode() {
            Ok(v) => v,
            Err(e) => return SendFuture::ready(Err(e.into())),
        };
        self.factory.send_bytes(OutgoingRecord {
            topic: record.topic,
            partition: record.partition,
            key,
            value,
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }

    /// Waits until every queued record of the shared producer is sent, or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.factory.flush(timeout).await
    }
}
