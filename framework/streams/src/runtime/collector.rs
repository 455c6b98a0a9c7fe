//! The producer side of a stream thread: a librdkafka producer whose delivery reports record the last offset
//! written to each partition (changelog offsets become the checkpoint) and the first failure, and the
//! `RecordCollector` that sends a task's sink, repartition and changelog records through it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message};

use crate::{ProducedRecord, RecordCollector, StreamsError};

/// What delivery reports tell the thread.
#[derive(Default)]
pub(crate) struct Deliveries {
    /// (topic, partition) → last acknowledged offset.
    pub(crate) offsets: HashMap<(String, i32), i64>,
    /// The first failed delivery since the last check.
    pub(crate) failure: Option<StreamsError>,
}

/// The producer's context: collects delivery reports.
#[derive(Clone, Default)]
pub(crate) struct DeliveryContext {
    pub(crate) deliveries: Arc<Mutex<Deliveries>>,
    /// `ProductionExceptionHandler::Continue`: a record that cannot be sent is logged and dropped.
    pub(crate) continue_on_error: bool,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut d = self.deliveries.lock();
        match result {
            Ok(m) => {
                let e = d.offsets.entry((m.topic().to_owned(), m.partition())).or_insert(-1);
                *e = (*e).max(m.offset());
            }
            Err((e, m)) if self.continue_on_error => {
                tracing::warn!(topic = m.topic(), partition = m.partition(), error = %e, "dropping a streams record that was not delivered (production exception handler: continue)");
            }
            Err((e, m)) => {
                tracing::error!(topic = m.topic(), partition = m.partition(), error = %e, "a streams record was not delivered");
                if d.failure.is_none() {
                    d.failure = Some(StreamsError::Send { topic: m.topic().to_owned(), reason: e.to_string() });
                }
            }
        }
    }
}

pub(crate) type StreamsProducer = BaseProducer<DeliveryContext>;

/// Sends a task's records with the thread's producer; counts them so the thread knows a commit has work.
pub(crate) struct ProducerCollector<'a> {
    pub(crate) producer: &'a StreamsProducer,
    pub(crate) sent: usize,
}

impl RecordCollector for ProducerCollector<'_> {
    fn send(&mut self, record: ProducedRecord) -> Result<(), StreamsError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in record.headers.iter() {
            headers = headers.insert(Header { key: name, value });
        }
        let mut r: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&record.topic).timestamp(record.timestamp).headers(headers);
        if let Some(p) = record.partition {
            r = r.partition(p);
        }
        if let Some(k) = record.key.as_deref() {
            r = r.key(k);
        }
        if let Some(v) = record.value.as_deref() {
            r = r.payload(v);
        }
        loop {
            match self.producer.send(r) {
                Ok(()) => break,
                Err((rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The local queue drains as the broker acknowledges; serve delivery reports meanwhile.
                    self.producer.poll(Duration::from_millis(10));
                    r = back;
                }
                Err((e, _)) if self.producer.context().continue_on_error => {
                    tracing::warn!(topic = %record.topic, error = %e, "dropping a streams record the producer refused (production exception handler: continue)");
                    return Ok(());
                }
                Err((e, _)) => return Err(StreamsError::Send { topic: record.topic.clone(), reason: e.to_string() }),
            }
        }
        self.sent += 1;
        Ok(())
    }
}
