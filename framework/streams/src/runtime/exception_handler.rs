//! What happens when a thread fails (Kafka's `StreamsUncaughtExceptionHandler`, KIP-671), and how one instance asks
//! every instance of its application to stop.
//!
//! Kafka shuts an application down through its own partition assignor: the failing member flags its subscription
//! and the group leader answers every member with an assignment error code. librdkafka cannot run a custom assignor,
//! so Spate uses an internal topic instead, `<application.id>-shutdown-requests` (one partition, created at start
//! with the other internal topics). Each instance watches it from the end offset it had when the instance started;
//! a request is one record (key: the requesting instance's process id, value: the reason). Every instance running
//! when the record is written stops with state `ERROR`, as Kafka's members do; an instance started afterwards does
//! not see it (Kafka's would not either: the group it joins has no other member left to flag the shutdown).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::internal_topics::{client_config, consumer_config};
use super::kafka_streams::Shared;
use crate::{StreamsConfig, StreamsError};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const WATCH_POLL: Duration = Duration::from_millis(100);

/// What to do with the instance after a thread failed (Kafka's
/// `StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamThreadExceptionResponse {
    /// Start a new stream thread in place of the failed one. The failed thread's uncommitted work is dropped (under
    /// exactly-once its transaction is aborted); its tasks go back to the group and are processed again from their
    /// last committed offsets, with their stores restored from the changelogs. Only stream threads can be
    /// replaced: for the global or standby thread this response acts as [`ShutdownClient`](Self::ShutdownClient).
    ReplaceThread,
    /// Stop this instance: every thread stops and the state becomes `ERROR` (what happens without a handler).
    ShutdownClient,
    /// Stop every instance of the application (all running instances end in `ERROR`).
    ShutdownApplication,
}

/// Decides what a thread's failure does to the instance (Kafka's `StreamsUncaughtExceptionHandler`). Any
/// `Fn(&StreamsError) -> StreamThreadExceptionResponse` closure is one.
///
/// ```no_run
/// use spate_streams::{KafkaStreams, StreamThreadExceptionResponse, StreamsBuilder, StreamsConfig, StreamsError};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").map_values(|v| v.to_uppercase()).to("out");
/// let mut streams = KafkaStreams::new(builder.build(), StreamsConfig::new("app"));
/// streams.set_uncaught_exception_handler(|e: &StreamsError| match e {
///     StreamsError::Processor { .. } => StreamThreadExceptionResponse::ReplaceThread,
///     _ => StreamThreadExceptionResponse::ShutdownApplication,
/// });
/// streams.start().unwrap();
/// ```
pub trait StreamsUncaughtExceptionHandler: Send + Sync {
    /// The response to `error`, which ended a thread of this instance.
    fn handle(&self, error: &StreamsError) -> StreamThreadExceptionResponse;
}

impl<F> StreamsUncaughtExceptionHandler for F
where
    F: Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync,
{
    fn handle(&self, error: &StreamsError) -> StreamThreadExceptionResponse {
        self(error)
    }
}

/// The internal topic through which an instance asks the others to shut down.
pub fn shutdown_topic(application_id: &str) -> String {
    format!("{application_id}-shutdown-requests")
}

/// Writes a shutdown request for the whole application. Best effort: a failure is logged, and the requesting
/// instance stops anyway.
pub(crate) fn request_application_shutdown(config: &StreamsConfig, shared: &Shared, reason: &str) {
    let topic = shutdown_topic(&config.application_id);
    let producer: BaseProducer = match client_config(config).create() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the producer for the application shutdown request");
            return;
        }
    };
    let record = BaseRecord::to(&topic).partition(0).key(shared.process_id.as_bytes()).payload(reason.as_bytes());
    if let Err((e, _)) = producer.send(record) {
        tracing::error!(topic, error = %e, "cannot send the application shutdown request");
        return;
    }
    match producer.flush(REQUEST_TIMEOUT) {
        Ok(()) => tracing::warn!(topic, reason, "requested the shutdown of every instance of the application"),
        Err(e) => tracing::error!(topic, error = %e, "the application shutdown request was not delivered"),
    }
}

/// The end offset of the shutdown topic now: requests written before it are from earlier runs.
pub(crate) fn shutdown_watch_start(config: &StreamsConfig) -> Result<i64, StreamsError> {
    let topic = shutdown_topic(&config.application_id);
    let consumer = watch_consumer(config)?;
    // The topic may have just been created: its leader can take a moment to answer.
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let high = loop {
        match consumer.fetch_watermarks(&topic, 0, REQUEST_TIMEOUT) {
            Ok((_, high)) => break high,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(topic, error = %e, "reading the end offset of the shutdown topic, retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(StreamsError::Send { topic: topic.clone(), reason: format!("reading its end offset: {e}") })
            }
        }
    };
    drop(consumer);
    Ok(high)
}

fn watch_consumer(config: &StreamsConfig) -> Result<BaseConsumer, StreamsError> {
    let topic = shutdown_topic(&config.application_id);
    let mut cc = consumer_config(config);
    // Assign-only: the group id is never joined, it only satisfies librdkafka's consumer.
    cc.set("group.id", format!("{}-shutdown-watch", config.application_id))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100");
    cc.create().map_err(|e| StreamsError::Send { topic, reason: format!("creating the watch consumer: {e}") })
}

/// The watch thread's body: stops this instance (state `ERROR`) when a shutdown request appears after `from`.
pub(crate) fn watch_shutdown_requests(config: Arc<StreamsConfig>, shared: Arc<Shared>, from: i64) {
    let topic = shutdown_topic(&config.application_id);
    let consumer = match watch_consumer(&config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "application shutdown requests are not watched");
            return;
        }
    };
    let mut tpl = TopicPartitionList::new();
    if let Err(e) = tpl.add_partition_offset(&topic, 0, Offset::Offset(from)).and_then(|()| consumer.assign(&tpl)) {
        tracing::error!(topic, error = %e, "application shutdown requests are not watched");
        return;
    }
    while !shared.stop.load(Ordering::Acquire) {
        match consumer.poll(WATCH_POLL) {
            Some(Ok(m)) => {
                let from_instance = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let reason = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                tracing::error!(instance = %from_instance, reason, "an instance requested the application's shutdown");
                shared.fail(format!("application shutdown requested by instance {from_instance}: {reason}"));
            }
            Some(Err(e)) => tracing::warn!(topic, error = %e, "reading application shutdown requests"),
            None => {}
        }
    }
    drop(consumer);
}
