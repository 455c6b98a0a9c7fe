//! Request/reply over Kafka (Spring's `ReplyingKafkaTemplate` and `@SendTo`): a request carries a random
//! `kafka_correlationId` and the `kafka_replyTopic` (and `kafka_replyPartition`) to answer on; a `#[send_to]`
//! listener replies there with the same correlation id; the requester's own reply consumer hands each reply to the
//! caller waiting for that id.
//!
//! The reply consumer is *assigned* the reply topic's partitions (or the one reply partition), starting at their
//! end when the template starts; it never joins a consumer group, so many requesters never rebalance each other,
//! and it commits nothing (a restarted requester has no pending requests to answer anyway). Its `group.id` is
//! unique and unused.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{Consumer, DefaultConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{oneshot, Notify};

use crate::codec::{Decode, DeserializationError, Encode, RecordPart};
use crate::config::ConfigError;
use crate::kafka_headers::{CORRELATION_ID, REPLY_PARTITION, REPLY_TOPIC};
use crate::record::{Headers, Record};
use crate::template::{KafkaTemplate, ProducerRecord, SendError};

/// Where a `#[send_to]` reply goes, and the headers it carries.
pub(crate) struct ReplyDestination {
    pub topic: String,
    pub partition: Option<i32>,
    pub headers: Headers,
}

/// The incoming record's `kafka_replyTopic` wins over the listener's static `#[send_to]` topic, as in Spring; its
/// `kafka_replyPartition` picks the partition and its `kafka_correlationId` is copied onto the reply. `None`: no
/// reply topic at all.
pub(crate) fn reply_destination(send_to: Option<&str>, incoming: Option<&Headers>) -> Option<ReplyDestination> {
    let requested = incoming.and_then(|h| h.get_str(REPLY_TOPIC)).filter(|t| !t.is_empty());
    let topic = requested.or(send_to)?.to_string();
    let mut headers = Headers::new();
    let mut partition = None;
    if let Some(h) = incoming {
        if let Some(id) = h.get(CORRELATION_ID) {
            headers.insert(CORRELATION_ID, bytes::Bytes::copy_from_slice(id));
        }
        // The partition belongs to the requested topic, not to the static one.
        if requested.is_some() {
            partition = h.get_i32(REPLY_PARTITION);
        }
    }
    Some(ReplyDestination { topic, partition, headers })
}

/// A request/reply exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The request could not be sent.
    #[error("sending the request failed: {0}")]
    Send(#[from] SendError),
    /// No reply arrived in time; the request is forgotten, and a reply arriving later is logged and dropped.
    #[error("no reply on `{reply_topic}` within {timeout:?} (correlation id {correlation_id})")]
    Timeout {
        /// The reply topic.
        reply_topic: String,
        /// How long the caller waited.
        timeout: Duration,
        /// The request's correlation id, hex.
        correlation_id: String,
    },
    /// The reply's value could not be deserialized.
    #[error("the reply could not be deserialized: {0}")]
    Deserialization(#[from] DeserializationError),
    /// The reply consumer could not be created or positioned.
    #[error("reply consumer: {operation} failed: {error}")]
    Kafka {
        /// What was attempted.
        operation: &'static str,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// The reply consumer's configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The template was dropped before the reply arrived.
    #[error("the replying template was closed")]
    Closed,
}

type Pending = Mutex<HashMap<[u8; 16], oneshot::Sender<Record>>>;

struct Inner {
    reply_topic: String,
    reply_partition: Option<i32>,
    pending: Pending,
    unmatched: AtomicU64,
    shared_reply_topic: bool,
    shutdown: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The reader closes the consumer on a thread of its own (closing blocks on the broker).
        self.shutdown.notify_one();
    }
}

/// Sends requests and waits for their replies (Spring's `ReplyingKafkaTemplate<K, V, R>`). Cheap to clone; all
/// clones share one reply consumer, which stops when the last clone is dropped.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use spate::{KafkaTemplate, ProducerFactory, ProducerRecord, ReplyingKafkaTemplate};
/// let template: KafkaTemplate<String, String> = KafkaTemplate::new(&ProducerFactory::for_bootstrap("localhost:9092"));
/// let replying: ReplyingKafkaTemplate<String, String, String> =
///     ReplyingKafkaTemplate::builder(template, "prices-replies").start().await?;
/// let price = replying.send_and_receive(ProducerRecord::new("prices", "ACME".to_string()), Duration::from_secs(5)).await?;
/// println!("ACME costs {price}");
/// # Ok(()) }
/// ```
pub struct ReplyingKafkaTemplate<K, V, R> {
    template: KafkaTemplate<K, V>,
    inner: Arc<Inner>,
    _reply: PhantomData<fn() -> R>,
}

impl<K, V, R> Clone for ReplyingKafkaTemplate<K, V, R> {
    fn clone(&self) -> Self {
        ReplyingKafkaTemplate { template: self.template.clone(), inner: self.inner.clone(), _reply: PhantomData }
    }
}

impl<K, V, R> std::fmt::Debug for ReplyingKafkaTemplate<K, V, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyingKafkaTemplate")
            .field("reply_topic", &self.inner.reply_topic)
            .field("reply_partition", &self.inner.reply_partition)
            .field("pending", &self.inner.pending.lock().len())
            .finish()
    }
}

/// Configures a [`ReplyingKafkaTemplate`].
#[derive(Debug)]
pub struct ReplyingKafkaTemplateBuilder<K, V, R> {
    template: KafkaTemplate<K, V>,
    reply_topic: String,
    reply_partition: Option<i32>,
    shared_reply_topic: bool,
    properties: Vec<(String, String)>,
    _reply: PhantomData<fn() -> R>,
}

impl<K: Encode, V: Encode, R: Decode> ReplyingKafkaTemplateBuilder<K, V, R> {
    /// Reads replies from this partition only, and asks repliers for it (`kafka_replyPartition`): lets several
    /// requesters share one reply topic, one partition each.
    pub fn reply_partition(mut self, partition: i32) -> Self {
        self.reply_partition = Some(partition);
        self
    }

    /// Other requesters read the same reply topic (Spring's `sharedReplyTopic`): replies for them are expected,
    /// so they are logged at DEBUG rather than WARN.
    pub fn shared_reply_topic(mut self, shared: bool) -> Self {
        self.shared_reply_topic = shared;
        self
    }

    /// Sets a librdkafka property of the reply consumer (it otherwise takes the producer factory's
    /// `bootstrap.servers` and security settings).
    pub fn consumer_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Creates the reply consumer, positions it at the end of the reply partitions — every reply written after
    /// this returns is seen — and starts reading.
    pub async fn start(self) -> Result<ReplyingKafkaTemplate<K, V, R>, ReplyError> {
        let mut props = self.template.producer_factory().props().with_prefixes(&[
            "bootstrap.servers",
            "security.",
            "sasl.",
            "ssl.",
        ]);
        props.set("group.id", format!("spate-replies-{}", uuid::Uuid::new_v4()), "ReplyingKafkaTemplate");
        props.set("enable.auto.commit", "false", "ReplyingKafkaTemplate");
        props.set("enable.partition.eof", "false", "ReplyingKafkaTemplate");
        props.set("fetch.wait.max.ms", "50", "ReplyingKafkaTemplate");
        for (k, v) in &self.properties {
            props.set(k, v, "ReplyingKafkaTemplateBuilder::consumer_property");
        }
        let consumer: StreamConsumer<DefaultConsumerContext> =
            StreamConsumer::from_config_and_context(&props.client_config(), DefaultConsumerContext).map_err(|e| {
                props.explain(&e).map(ReplyError::Config).unwrap_or(ReplyError::Kafka { operation: "create", error: e })
            })?;
        let consumer = Arc::new(consumer);
        let (topic, only) = (self.reply_topic.clone(), self.reply_partition);
        let c = consumer.clone();
        // Metadata and watermarks are broker round trips that block.
        let positioned = tokio::task::spawn_blocking(move || -> Result<(), ReplyError> {
            let timeout = Duration::from_secs(30);
            let partitions: Vec<i32> = match only {
                Some(p) => vec![p],
                None => {
                    let md = c
                        .fetch_metadata(Some(&topic), timeout)
                        .map_err(|error| ReplyError::Kafka { operation: "reply topic metadata", error })?;
                    md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect()
                }
            };
            if partitions.is_empty() {
                return Err(ReplyError::Kafka {
                    operation: "reply topic metadata",
                    error: KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition),
                });
            }
            let mut tpl = TopicPartitionList::new();
            for p in partitions {
                let (_, high) = c
                    .fetch_watermarks(&topic, p, timeout)
                    .map_err(|error| ReplyError::Kafka { operation: "reply partition end offset", error })?;
                tpl.add_partition_offset(&topic, p, Offset::Offset(high))
                    .map_err(|error| ReplyError::Kafka { operation: "assign", error })?;
            }
            c.assign(&tpl).map_err(|error| ReplyError::Kafka { operation: "assign", error })
        })
        .await
        .unwrap_or(Err(ReplyError::Closed));
        if let Err(e) = positioned {
            close_off_runtime(consumer);
            return Err(e);
        }
        let inner = Arc::new(Inner {
            reply_topic: self.reply_topic,
            reply_partition: self.reply_partition,
            pending: Mutex::new(HashMap::new()),
            unmatched: AtomicU64::new(0),
            shared_reply_topic: self.shared_reply_topic,
            shutdown: Arc::new(Notify::new()),
        });
        tokio::spawn(read_replies(consumer, Arc::downgrade(&inner), inner.shutdown.clone()));
        Ok(ReplyingKafkaTemplate { template: self.template, inner, _reply: PhantomData })
    }
}

/// Hands each reply to the request waiting for its correlation id, until the template is dropped.
async fn read_replies(
    consumer: Arc<StreamConsumer<DefaultConsumerContext>>,
    inner: std::sync::Weak<Inner>,
    shutdown: Arc<Notify>,
) {
    {
        let mut stream = consumer.stream();
        loop {
            let msg = tokio::select! {
                _ = shutdown.notified() => break,
                m = stream.next() => m,
            };
            let record = match msg {
                Some(Ok(m)) => Record::from_message(&m),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "reply consumer poll error");
                    continue;
                }
                None => break,
            };
            let Some(inner) = inner.upgrade() else { break };
            inner.deliver(record);
        }
    }
    close_off_runtime(consumer);
}

fn close_off_runtime(consumer: Arc<StreamConsumer<DefaultConsumerContext>>) {
    let _ = std::thread::Builder::new().name("spate-reply-consumer-close".into()).spawn(move || drop(consumer));
}

impl Inner {
    fn deliver(&self, record: Record) {
        let id = record.headers().get(CORRELATION_ID).and_then(|c| <[u8; 16]>::try_from(c).ok());
        let waiter = id.and_then(|id| self.pending.lock().remove(&id));
        let unmatched = match waiter {
            // The caller may have given up in between; then the reply is as late as one with no waiter.
            Some(tx) => tx.send(record).err(),
            None => Some(record),
        };
        if let Some(r) = unmatched {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            let correlation_id = r.headers().get(CORRELATION_ID).map(hex).unwrap_or_else(|| "none".into());
            if self.shared_reply_topic {
                tracing::debug!(
                    topic = r.topic(),
                    partition = r.partition(),
                    offset = r.offset(),
                    correlation_id,
                    "reply for no pending request of this template; dropped"
                );
            } else {
                tracing::warn!(
                    topic = r.topic(),
                    partition = r.partition(),
                    offset = r.offset(),
                    correlation_id,
                    "reply for no pending request (late, or not ours); dropped"
                );
            }
        }
    }
}

/// Removes a pending request however its wait ends (reply, timeout, or the caller dropping the future).
struct PendingGuard<'a> {
    pending: &'a Pending,
    id: [u8; 16],
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.id);
    }
}

impl<K: Encode, V: Encode, R: Decode> ReplyingKafkaTemplate<K, V, R> {
    /// A builder sending requests through `template` and reading replies from `reply_topic`.
    pub fn builder(
        template: KafkaTemplate<K, V>,
        reply_topic: impl Into<String>,
    ) -> ReplyingKafkaTemplateBuilder<K, V, R> {
        ReplyingKafkaTemplateBuilder {
            template,
            reply_topic: reply_topic.into(),
            reply_partition: None,
            shared_reply_topic: false,
            properties: Vec::new(),
            _reply: PhantomData,
        }
    }

    /// Sends `record` with a new `kafka_correlationId` and this template's `kafka_replyTopic` (and
    /// `kafka_replyPartition`), then waits up to `timeout` for the reply and deserializes its value.
    pub async fn send_and_receive(&self, record: ProducerRecord<K, V>, timeout: Duration) -> Result<R, ReplyError> {
        let reply = self.send_and_receive_record(record, timeout).await?;
        Ok(R::decode(reply.value(), RecordPart::Value)?)
    }

    /// Like [`send_and_receive`](Self::send_and_receive), returning the whole reply record (key, headers,
    /// coordinates).
    pub async fn send_and_receive_record(
        &self,
        record: ProducerRecord<K, V>,
        timeout: Duration,
    ) -> Result<Record, ReplyError> {
        let id = *uuid::Uuid::new_v4().as_bytes();
        let (tx, rx) = oneshot::channel();
        self.inner.pending.lock().insert(id, tx);
        let _guard = PendingGuard { pending: &self.inner.pending, id };
        let mut record = record
            .header(CORRELATION_ID, bytes::Bytes::copy_from_slice(&id))
            .header(REPLY_TOPIC, self.inner.reply_topic.clone());
        if let Some(p) = self.inner.reply_partition {
            record = record.header(REPLY_PARTITION, p.to_be_bytes().to_vec());
        }
        // The wait starts with the send: the timeout bounds the whole exchange.
        let exchange = async {
            self.template.send_record(record).await?;
            rx.await.map_err(|_| ReplyError::Closed)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ReplyError::Timeout {
                reply_topic: self.inner.reply_topic.clone(),
                timeout,
                correlation_id: hex(&id),
            }),
        }
    }

    /// The reply topic.
    pub fn reply_topic(&self) -> &str {
        &self.inner.reply_topic
    }

    /// Requests waiting for a reply.
    pub fn pending_requests(&self) -> usize {
        self.inner.pending.lock().len()
    }

    /// Replies received that matched no pending request (late, or for another requester) and were dropped.
    pub fn unmatched_replies(&self) -> u64 {
        self.inner.unmatched.load(Ordering::Relaxed)
    }

    /// The template requests are sent with.
    pub fn template(&self) -> &KafkaTemplate<K, V> {
        &self.template
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_topic_header_wins_over_send_to_and_carries_partition_and_correlation() {
        let mut h = Headers::new();
        h.insert(REPLY_TOPIC, "replies");
        h.insert(REPLY_PARTITION, 3i32.to_be_bytes().to_vec());
        h.insert(CORRELATION_ID, vec![7u8; 16]);
        let d = reply_destination(Some("static"), Some(&h)).unwrap();
        assert_eq!(d.topic, "replies");
        assert_eq!(d.partition, Some(3));
        assert_eq!(d.headers.get(CORRELATION_ID), Some(&[7u8; 16][..]));
    }

    #[test]
    fn static_send_to_is_used_without_reply_topic_header_and_ignores_reply_partition() {
        let mut h = Headers::new();
        h.insert(REPLY_PARTITION, 3i32.to_be_bytes().to_vec());
        let d = reply_destination(Some("static"), Some(&h)).unwrap();
        assert_eq!((d.topic.as_str(), d.partition), ("static", None));
        assert!(reply_destination(None, Some(&h)).is_none());
    }
}
