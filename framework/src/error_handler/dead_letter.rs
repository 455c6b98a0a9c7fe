//! Dead-letter publishing (Spring's `DeadLetterPublishingRecoverer`): the failed record, as it was consumed (raw
//! key, value and headers), goes to `<topic>-dlt` on the same partition with `kafka_dlt-*` headers saying where it
//! came from and why it failed. The publish is awaited; a failed publish fails the recovery, so the record is
//! retried rather than lost.
//!
//! [`publish_dead_letter`] is the reusable step (record + error + destination → delivered), also used by
//! non-blocking retries for their final dead-letter step.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::classify::{error_chain, type_name_of, variant_name};
use super::recoverer::ConsumerRecordRecoverer;
use crate::admin::{AdminError, KafkaAdmin, TopicBuilder};
use crate::config::ConfigError;
use crate::kafka_headers as kh;
use crate::listener::{BoxError, ListenerError};
use crate::record::{Headers, Record, TimestampType};
use crate::template::{OutgoingRecord, ProducerFactory, RecordMetadata, SendError};

/// The default dead-letter topic suffix, as Spring's retry topics (`RetryTopicConstants.DEFAULT_DLT_SUFFIX`).
pub const DEFAULT_DLT_SUFFIX: &str = "-dlt";

/// Where a dead letter goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DltDestination {
    /// Topic.
    pub topic: String,
    /// Partition; `None` lets the producer's partitioner choose.
    pub partition: Option<i32>,
}

impl DltDestination {
    /// The default: `<topic>-dlt`, same partition.
    pub fn default_for(record: &Record) -> Self {
        DltDestination { topic: format!("{}{DEFAULT_DLT_SUFFIX}", record.topic()), partition: Some(record.partition()) }
    }
}

/// Why a record could not be dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// No producer factory was given and the listener has none.
    #[error("no producer to publish dead letters with (give DeadLetterPublishingRecoverer a producer factory)")]
    NoProducer,
    /// The publish failed or was not acknowledged.
    #[error("publishing the dead letter of {source_topic}-{partition}@{offset} failed: {error}")]
    Send {
        /// Topic of the failed record.
        source_topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// The send error.
        #[source]
        error: Box<SendError>,
    },
    /// The dead-letter topic could not be checked or created.
    #[error("preparing dead-letter topic `{topic}` failed: {error}")]
    Topic {
        /// The dead-letter topic.
        topic: String,
        /// The admin error.
        #[source]
        error: Box<AdminError>,
    },
    /// The admin client could not be created.
    #[error(transparent)]
    Config(#[from] Box<ConfigError>),
}

/// The headers of a dead letter: the record's original headers (minus any `kafka_dlt-*` headers of an earlier
/// dead-lettering, which are replaced) followed by the `kafka_dlt-*` headers of
/// [`kafka_headers`](crate::kafka_headers).
pub fn dead_letter_headers(record: &Record, error: &ListenerError, group_id: Option<&str>) -> Headers {
    failure_headers(record, error, group_id, false)
}

/// [`dead_letter_headers`], or, with `keep_original` and a record that already carries
/// `kafka_dlt-original-*` headers (it came from a retry topic), those kept as they are, so that after several
/// hops they still name the topic the record was first consumed from. Exception headers are always replaced.
pub(crate) fn failure_headers(
    record: &Record,
    error: &ListenerError,
    group_id: Option<&str>,
    keep_original: bool,
) -> Headers {
    const ORIGINAL: [&str; 6] = [
        kh::DLT_ORIGINAL_TOPIC,
        kh::DLT_ORIGINAL_PARTITION,
        kh::DLT_ORIGINAL_OFFSET,
        kh::DLT_ORIGINAL_TIMESTAMP,
        kh::DLT_ORIGINAL_TIMESTAMP_TYPE,
        kh::DLT_ORIGINAL_CONSUMER_GROUP,
    ];
    let keep_original = keep_original && record.headers().get(kh::DLT_ORIGINAL_TOPIC).is_some();
    const OURS: [&str; 10] = [
        kh::DLT_ORIGINAL_TOPIC,
        kh::DLT_ORIGINAL_PARTITION,
        kh::DLT_ORIGINAL_OFFSET,
        kh::DLT_ORIGINAL_TIMESTAMP,
        kh::DLT_ORIGINAL_TIMESTAMP_TYPE,
        kh::DLT_ORIGINAL_CONSUMER_GROUP,
        kh::DLT_EXCEPTION_FQCN,
        kh::DLT_EXCEPTION_CAUSE_FQCN,
        kh::DLT_EXCEPTION_MESSAGE,
        kh::DLT_EXCEPTION_STACKTRACE,
    ];
    let mut h = Headers::new();
    for (name, value) in record.headers().iter() {
        if OURS.contains(&name) && !(keep_original && ORIGINAL.contains(&name)) {
            continue;
        }
        match value {
            Some(v) => h.insert(name, bytes::Bytes::copy_from_slice(v)),
            None => h.insert_null(name),
        };
    }
    if !keep_original {
        h.insert(kh::DLT_ORIGINAL_TOPIC, record.topic().to_string());
        h.insert(kh::DLT_ORIGINAL_PARTITION, record.partition().to_be_bytes().to_vec());
        h.insert(kh::DLT_ORIGINAL_OFFSET, record.offset().to_be_bytes().to_vec());
        if let Some(ts) = record.timestamp() {
            h.insert(kh::DLT_ORIGINAL_TIMESTAMP, ts.to_be_bytes().to_vec());
        }
        let ts_type = match record.timestamp_type() {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        h.insert(kh::DLT_ORIGINAL_TIMESTAMP_TYPE, ts_type);
        if let Some(g) = group_id {
            h.insert(kh::DLT_ORIGINAL_CONSUMER_GROUP, g.to_string());
        }
    }
    h.insert(kh::DLT_EXCEPTION_FQCN, variant_name(error));
    let mut chain = error_chain(error);
    let first = chain.next();
    if let Some(name) = first.and_then(type_name_of) {
        h.insert(kh::DLT_EXCEPTION_CAUSE_FQCN, name);
    }
    // The message is the failure's own (the handler's error), not the ListenerError wrapper's prefix.
    let message = match first {
        Some(e) => e.to_string(),
        None => error.to_string(),
    };
    h.insert(kh::DLT_EXCEPTION_MESSAGE, message);
    let mut trace = error.to_string();
    for e in error_chain(error).skip(1) {
        trace.push_str("\ncaused by: ");
        trace.push_str(&e.to_string());
    }
    h.insert(kh::DLT_EXCEPTION_STACKTRACE, trace);
    h
}

/// Publishes `record` (raw key and value, original headers, plus the `kafka_dlt-*` headers) to `destination` and
/// waits until the broker acknowledges it.
pub async fn publish_dead_letter(
    producer: &ProducerFactory,
    record: &Record,
    error: &ListenerError,
    group_id: Option<&str>,
    destination: &DltDestination,
) -> Result<RecordMetadata, DeadLetterError> {
    let out = OutgoingRecord {
        topic: destination.topic.clone(),
        partition: destination.partition.filter(|p| *p >= 0),
        key: record.key().map(|k| k.to_vec()),
        value: record.value().map(|v| v.to_vec()),
        timestamp: None,
        headers: dead_letter_headers(record, error, group_id),
    };
    producer.send_bytes(out).await.map_err(|error| DeadLetterError::Send {
        source_topic: record.topic().to_string(),
        partition: record.partition(),
        offset: record.offset(),
        error: Box::new(error),
    })
}

/// Creates `dlt_topic` if it does not exist, with as many partitions as `source_topic` (at least 1) and the
/// broker's default replication factor.
pub async fn ensure_dead_letter_topic(
    admin: &KafkaAdmin,
    source_topic: &str,
    dlt_topic: &str,
) -> Result<(), DeadLetterError> {
    let topic_err = |error| DeadLetterError::Topic { topic: dlt_topic.to_string(), error: Box::new(error) };
    let existing = admin.describe_topics(&[source_topic, dlt_topic]).await.map_err(topic_err)?;
    if existing.contains_key(dlt_topic) {
        return Ok(());
    }
    let partitions = existing.get(source_topic).copied().unwrap_or(1).max(1);
    let spec = TopicBuilder::name(dlt_topic).partitions(partitions).replicas(-1).build();
    let created = admin.create_topics(&[spec]).await.map_err(topic_err)?;
    if !created.is_empty() {
        tracing::info!(topic = dlt_topic, partitions, "created dead-letter topic");
    }
    Ok(())
}

type Resolver = dyn Fn(&Record, &ListenerError) -> DltDestination + Send + Sync;

/// Publishes failed records to a dead-letter topic (Spring's `DeadLetterPublishingRecoverer`).
///
/// By default the destination is `<topic>-dlt`, same partition, published with the listener cluster's producer;
/// the topic is created when missing, with the source topic's partition count (so "same partition" exists).
///
/// ```no_run
/// use std::time::Duration;
/// use spate::{DeadLetterPublishingRecoverer, DefaultErrorHandler, ExponentialBackOff};
/// let handler = DefaultErrorHandler::new()
///     .back_off(ExponentialBackOff::new(Duration::from_millis(200), 2.0).max_retries(4))
///     .recoverer(DeadLetterPublishingRecoverer::new());
/// // Or somewhere else: errors of each topic into one shared topic, partition chosen by the producer.
/// let shared = DeadLetterPublishingRecoverer::new()
///     .destination_resolver(|_record, _error| ("all-failures".to_string(), None));
/// # let _ = (handler, shared);
/// ```
pub struct DeadLetterPublishingRecoverer {
    producer: Option<ProducerFactory>,
    admin: Mutex<Option<Arc<KafkaAdmin>>>,
    resolver: Option<Arc<Resolver>>,
    create_topics: bool,
    ready_topics: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for DeadLetterPublishingRecoverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterPublishingRecoverer")
            .field("create_topics", &self.create_topics)
            .field("custom_destination", &self.resolver.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for DeadLetterPublishingRecoverer {
    fn default() -> Self {
        Self::new()
    }
}

impl DeadLetterPublishingRecoverer {
    /// `<topic>-dlt`, same partition, through the listener's producer; creates missing topics.
    pub fn new() -> Self {
        DeadLetterPublishingRecoverer {
            producer: None,
            admin: Mutex::new(None),
            resolver: None,
            create_topics: true,
            ready_topics: Mutex::new(HashSet::new()),
        }
    }

    /// Publishes with this producer factory instead of the listener cluster's.
    pub fn producer_factory(mut self, factory: ProducerFactory) -> Self {
        self.producer = Some(factory);
        self
    }

    /// Checks and creates dead-letter topics with this admin client (default: one made from the producer's
    /// connection settings).
    pub fn admin(self, admin: KafkaAdmin) -> Self {
        *self.admin.lock() = Some(Arc::new(admin));
        self
    }

    /// Chooses the destination per record: a topic and a partition (`None`, or a negative number, lets the
    /// producer choose).
    pub fn destination_resolver<P>(
        mut self,
        f: impl Fn(&Record, &ListenerError) -> (String, P) + Send + Sync + 'static,
    ) -> Self
    where
        P: Into<Option<i32>>,
    {
        self.resolver = Some(Arc::new(move |r, e| {
            let (topic, partition) = f(r, e);
            DltDestination { topic, partition: partition.into().filter(|p| *p >= 0) }
        }));
        self
    }

    /// Whether to create missing dead-letter topics (default true).
    pub fn create_topics(mut self, create: bool) -> Self {
        self.create_topics = create;
        self
    }

    fn admin_for(&self, producer: &ProducerFactory) -> Result<Arc<KafkaAdmin>, DeadLetterError> {
        let mut slot = self.admin.lock();
        if let Some(a) = slot.as_ref() {
            return Ok(a.clone());
        }
        let admin = Arc::new(KafkaAdmin::from_props(producer.props(), Duration::from_secs(30)).map_err(Box::new)?);
        *slot = Some(admin.clone());
        Ok(admin)
    }

    async fn publish(&self, record: &Record, error: &ListenerError) -> Result<(), DeadLetterError> {
        let current = super::current_listener();
        let producer = match (&self.producer, current.as_ref().and_then(|c| c.producer.as_ref())) {
            (Some(p), _) | (None, Some(p)) => p.clone(),
            (None, None) => return Err(DeadLetterError::NoProducer),
        };
        let destination = match &self.resolver {
            Some(r) => r(record, error),
            None => DltDestination::default_for(record),
        };
        if self.create_topics && !self.ready_topics.lock().contains(&destination.topic) {
            // A topic that cannot be checked or created (no ACL, admin timeout) may still exist or be auto-created
            // by the broker: try the publish anyway, which fails (and so retries) if the topic really is missing.
            let prepared = match self.admin_for(&producer) {
                Ok(admin) => ensure_dead_letter_topic(&admin, record.topic(), &destination.topic).await,
                Err(e) => Err(e),
            };
            match prepared {
                Ok(()) => {
                    self.ready_topics.lock().insert(destination.topic.clone());
                }
                Err(e) => tracing::warn!(dlt_topic = %destination.topic, error = %e,
                    "cannot check or create the dead-letter topic; publishing anyway"),
            }
        }
        let group = current.as_ref().map(|c| c.group_id.as_ref());
        let md = publish_dead_letter(&producer, record, error, group, &destination).await?;
        tracing::warn!(
            topic = record.topic(),
            partition = record.partition(),
            offset = record.offset(),
            dlt_topic = %destination.topic,
            dlt_partition = md.partition,
            dlt_offset = md.offset,
            error = %error,
            "record dead-lettered"
        );
        Ok(())
    }
}

impl ConsumerRecordRecoverer for DeadLetterPublishingRecoverer {
    fn recover<'a>(&'a self, record: &'a Record, error: &'a ListenerError) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move { self.publish(record, error).await.map_err(BoxError::from) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("database down")]
    struct Db(#[source] std::io::Error);

    #[test]
    fn headers_carry_origin_and_failure_and_keep_originals() {
        let mut orig = Headers::new();
        orig.insert("trace", "t1");
        orig.insert(kh::DLT_EXCEPTION_MESSAGE, "old failure");
        let r = Record::new("orders", 3, 42).with_headers(orig).with_timestamp(1_700_000_000_123);
        let e = ListenerError::handler(Db(std::io::Error::other("connection refused")));
        let h = dead_letter_headers(&r, &e, Some("billing"));
        assert_eq!(h.get_str("trace"), Some("t1"));
        assert_eq!(h.get_str(kh::DLT_ORIGINAL_TOPIC), Some("orders"));
        assert_eq!(h.get(kh::DLT_ORIGINAL_PARTITION), Some(&3i32.to_be_bytes()[..]));
        assert_eq!(h.get(kh::DLT_ORIGINAL_OFFSET), Some(&42i64.to_be_bytes()[..]));
        assert_eq!(h.get(kh::DLT_ORIGINAL_TIMESTAMP), Some(&1_700_000_000_123i64.to_be_bytes()[..]));
        assert_eq!(h.get_str(kh::DLT_ORIGINAL_TIMESTAMP_TYPE), Some("CreateTime"));
        assert_eq!(h.get_str(kh::DLT_ORIGINAL_CONSUMER_GROUP), Some("billing"));
        assert_eq!(h.get_str(kh::DLT_EXCEPTION_FQCN), Some("spate::ListenerError::Handler"));
        assert_eq!(h.get_str(kh::DLT_EXCEPTION_MESSAGE), Some("database down"));
        assert_eq!(
            h.get_str(kh::DLT_EXCEPTION_STACKTRACE),
            Some("handler failed: database down\ncaused by: connection refused")
        );
        // Only the new failure's message remains.
        assert_eq!(h.iter().filter(|(n, _)| *n == kh::DLT_EXCEPTION_MESSAGE).count(), 1);
    }

    #[test]
    fn default_destination_is_dash_dlt_same_partition() {
        let d = DltDestination::default_for(&Record::new("orders", 2, 0));
        assert_eq!(d, DltDestination { topic: "orders-dlt".into(), partition: Some(2) });
    }

    #[test]
    fn negative_partition_from_resolver_lets_the_producer_choose() {
        let r =
            DeadLetterPublishingRecoverer::new().destination_resolver(|rec, _| (format!("{}.DLT", rec.topic()), -1));
        let d = (r.resolver.as_ref().unwrap())(&Record::new("a", 1, 0), &ListenerError::Extraction("x".into()));
        assert_eq!(d, DltDestination { topic: "a.DLT".into(), partition: None });
    }
}
