//! Consumer lag per partition, sampled on a timer beside each consumer: librdkafka's cached high watermark (from
//! its last fetch response, no broker round trip) minus the consumer's position (the offset after the last record
//! handed to the container), as Kafka's Java consumer computes `records-lag`. Sampled off the consumer's own task,
//! so it keeps moving while a handler is slow or stuck — when lag matters most.

use std::ffi::CString;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::Offset;
use tokio::task::JoinHandle;

/// How often each consumer's lag is sampled.
pub const LAG_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// Samples one consumer's lag until dropped.
pub(crate) struct LagSampler(JoinHandle<()>);

impl Drop for LagSampler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl LagSampler {
    pub(crate) fn start<C: ConsumerContext + 'static>(
        listener_id: Arc<str>,
        consumer: Weak<StreamConsumer<C>>,
    ) -> LagSampler {
        LagSampler(tokio::spawn(async move {
            let mut tick = tokio::time::interval(LAG_SAMPLE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // The strong reference never lives across an await, so this task can never be the one that drops
                // (and so closes, blocking) the consumer.
                let Some(c) = consumer.upgrade() else {
                    return;
                };
                sample(&listener_id, &c);
                drop(c);
            }
        }))
    }
}

fn sample<C: ConsumerContext>(listener_id: &str, consumer: &StreamConsumer<C>) {
    let Ok(positions) = consumer.position() else {
        return;
    };
    for e in positions.elements() {
        let Offset::Offset(position) = e.offset() else {
            // Nothing handed to the container yet.
            continue;
        };
        let Some(high) = cached_high_watermark(consumer, e.topic(), e.partition()) else {
            continue;
        };
        super::metrics::set_lag(listener_id, e.topic(), e.partition(), (high - position).max(0));
    }
}

/// librdkafka's last known high watermark of a partition, without asking the broker.
fn cached_high_watermark<C: ConsumerContext>(consumer: &StreamConsumer<C>, topic: &str, partition: i32) -> Option<i64> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` is borrowed; the topic is a NUL-terminated string that
    // outlives the call, and the out-pointers point to live locals. The call only reads librdkafka's cache.
    let err = unsafe {
        rdkafka_sys::rd_kafka_get_watermark_offsets(
            consumer.client().native_client().ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}
