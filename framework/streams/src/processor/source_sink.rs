//! The two ends of a topology: sources turn consumed bytes into typed records (with the deserialization handler's
//! choice on failure); sinks turn typed records into bytes for a topic, fixed or chosen per record.

use std::marker::PhantomData;
use std::sync::Arc;

use spate::{Decode, Encode, RecordPart};

use super::{Processor, ProcessorContext};
use crate::topology::TopicRef;
use crate::{BoxError, Data, ProducedRecord, Record, RecordContext, StreamsError};

/// The raw record a source receives.
pub(crate) type RawRecord = Record<Option<Vec<u8>>, Option<Vec<u8>>>;

/// Picks a record's timestamp from its key, value, consumed timestamp and the partition's time so far (Kafka's
/// `TimestampExtractor`).
pub type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64, i64) -> i64 + Send + Sync>;

pub(crate) struct SourceProcessor<K, V> {
    pub(crate) extractor: Option<TimestampExtractor<K, V>>,
    pub(crate) _types: PhantomData<fn(K, V)>,
}

impl<K: Decode + Data, V: Decode + Data> Processor<Option<Vec<u8>>, Option<Vec<u8>>, K, V> for SourceProcessor<K, V> {
    fn process(&mut self, record: RawRecord, ctx: &mut ProcessorContext<'_, K, V>) -> Result<(), BoxError> {
        let ts = record.timestamp();
        let headers = record.headers().clone();
        let (k, v) = record.into_key_value();
        let decoded =
            K::decode(k.as_deref(), RecordPart::Key).and_then(|k| Ok((k, V::decode(v.as_deref(), RecordPart::Value)?)));
        match decoded {
            Ok((k, v)) => {
                let ts = match &self.extractor {
                    Some(extract) => {
                        let ts = extract(&k, &v, ts, ctx.current_stream_time_ms());
                        if ts < 0 {
                            // As Kafka's record queue: a negative extracted timestamp drops the record.
                            tracing::warn!(
                                node = ctx.node_name(),
                                ts,
                                "skipping a record with a negative extracted timestamp"
                            );
                            return Ok(());
                        }
                        ts
                    }
                    None if ts < 0 => {
                        // Kafka's default extractor, FailOnInvalidTimestamp.
                        let (topic, partition, offset) =
                            ctx.record_context().map(|c| (c.topic.clone(), c.partition, c.offset)).unwrap_or_default();
                        return Err(format!(
                            "invalid (negative) timestamp {ts} at {topic}-{partition} offset {offset}"
                        )
                        .into());
                    }
                    None => ts,
                };
                ctx.core().advance_stream_time(ts);
                Ok(ctx.forward(Record::new(k, v, ts).with_headers(headers))?)
            }
            Err(source) => {
                let node = ctx.node_name().to_owned();
                if ctx.core().continue_on_deserialization_error {
                    let (topic, partition, offset) =
                        ctx.record_context().map(|c| (c.topic.clone(), c.partition, c.offset)).unwrap_or_default();
                    tracing::warn!(node, topic, partition, offset, error = %source, "skipping a record that cannot be deserialized");
                    Ok(())
                } else {
                    Err(Box::new(StreamsError::Deserialization { node, source }))
                }
            }
        }
    }
}

/// Picks a sink's topic for each record (Kafka's `TopicNameExtractor`).
pub(crate) type TopicExtractor<K, V> = Arc<dyn Fn(&K, &V, Option<&RecordContext>) -> String + Send + Sync>;

pub(crate) enum SinkTarget<K, V> {
    Fixed(TopicRef),
    PerRecord(TopicExtractor<K, V>),
}

pub(crate) struct SinkProcessor<K, V> {
    pub(crate) target: SinkTarget<K, V>,
}

impl<K: Encode + Data, V: Encode + Data> Processor<K, V, (), ()> for SinkProcessor<K, V> {
    fn process(&mut self, record: Record<K, V>, ctx: &mut ProcessorContext<'_, (), ()>) -> Result<(), BoxError> {
        let node = ctx.node_name().to_owned();
        let topic = match &self.target {
            SinkTarget::Fixed(t) => t.full_name(ctx.application_id()),
            SinkTarget::PerRecord(f) => f(record.key(), record.value(), ctx.record_context()),
        };
        let ser = |source| StreamsError::Serialization { node: node.clone(), source };
        let key = record.key().encode().map_err(ser)?;
        let value = record.value().encode().map_err(ser)?;
        let produced = ProducedRecord {
            topic,
            partition: None,
            key,
            value,
            timestamp: record.timestamp(),
            headers: record.headers().clone(),
        };
        ctx.core().output.lock().push(produced);
        Ok(())
    }
}
