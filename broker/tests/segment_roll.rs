//! Time-based segment rolls seen by a client: `segment.ms` is measured between record timestamps (Kafka's
//! `LogSegment.shouldRoll`), so producers that stamp records with event time from the past — Kafka Streams
//! forwarding the input's timestamps does — get one segment, not one per produce request. A segment per request
//! holds four open files each; at a million records the broker ran out of descriptors, every produce failed with
//! KAFKA_STORAGE_ERROR and a Java producer's `flush()` hung until retention deleted the old segments.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::TestBroker;
use rdkafka::producer::FutureRecord;

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

const DAY_MS: i64 = 24 * 3600 * 1000;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Sends one record per produce request (`linger.ms=0`, each awaited before the next) with the given timestamps.
async fn send_one_by_one(b: &TestBroker, topic: &str, timestamps: impl IntoIterator<Item = i64>) {
    let p = b.producer(&[("linger.ms", "0"), ("enable.idempotence", "true")]);
    for ts in timestamps {
        // A generous deadline for "the produce completes at all"; it takes milliseconds.
        p.send(FutureRecord::<(), _>::to(topic).payload("metric").timestamp(ts), Duration::from_secs(30))
            .await
            .unwrap();
    }
}

fn segment_count(b: &TestBroker, topic: &str) -> usize {
    b.broker.as_ref().unwrap().state().replicas.partition(topic, 0).unwrap().log.segment_count()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_with_month_old_timestamps_stay_in_one_segment() {
    let b = TestBroker::start().await;
    b.create_topic("event-time", 1, &[]).await;
    let start = now_ms() - 30 * DAY_MS;
    send_one_by_one(&b, "event-time", (0..200).map(|i| start + i)).await;
    assert_eq!(segment_count(&b, "event-time"), 1, "segment.ms (7 days) spans 200 ms of record time");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_further_apart_than_segment_ms_start_a_new_segment() {
    let b = TestBroker::start().await;
    b.create_topic("spread", 1, &[("segment.ms", "60000")]).await;
    let start = now_ms() - 30 * DAY_MS;
    send_one_by_one(&b, "spread", [start, start + 30_000, start + 61_000, start + 62_000]).await;
    assert_eq!(segment_count(&b, "spread"), 2, "the third record is 61 s of record time after the first");
    b.shutdown().await;
}
