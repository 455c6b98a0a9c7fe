//! Retention seen by a client: topic configs set through the admin API roll segments and delete whole closed
//! segments by size and by age, moving the log start offset that consumers see.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{consume, TestBroker};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

/// Watermarks once retention has moved the log start above `floor` and then left it alone for a second (the
/// check runs every 100 ms and may take several passes).
async fn settled_watermarks_above(b: &TestBroker, topic: &str, floor: i64) -> (i64, i64) {
    let c = b.consumer(&[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (-1, -1);
    let mut stable_since = Instant::now();
    loop {
        let now = c.fetch_watermarks(topic, 0, Duration::from_secs(10)).unwrap();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
        if (last.0 > floor && stable_since.elapsed() > Duration::from_secs(1)) || Instant::now() > deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_bytes_deletes_the_oldest_closed_segments() {
    let b = TestBroker::start_with(|c| c.log_retention_check_interval_ms = 100).await;
    b.create_topic("by-size", 1, &[("segment.bytes", "4096"), ("retention.bytes", "16384")]).await;
    let p = b.producer(&[("linger.ms", "0")]);
    let value = "v".repeat(500);
    for _ in 0..200 {
        p.send(FutureRecord::<(), _>::to("by-size").payload(&value), Duration::from_secs(10)).await.unwrap();
    }
    let (lo, hi) = settled_watermarks_above(&b, "by-size", 0).await;
    assert_eq!(hi, 200);
    assert!(lo > 0, "nothing was deleted");
    let size = b.broker.as_ref().unwrap().state().replicas.partition("by-size", 0).unwrap().log.size_in_bytes();
    assert!(size <= 16384 + 4096, "log still {size} bytes");
    let c = b.consumer(&[]);
    let got = consume(&c, "by-size", &[0], (hi - lo) as usize, Duration::from_secs(20));
    assert_eq!(got.first().map(|m| m.offset()), Some(lo), "a consumer from the beginning starts at the new log start");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_ms_deletes_segments_whose_records_are_old() {
    let b = TestBroker::start_with(|c| c.log_retention_check_interval_ms = 100).await;
    b.create_topic("by-age", 1, &[("segment.bytes", "2048"), ("retention.ms", "60000")]).await;
    let p = b.producer(&[("linger.ms", "0")]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let value = "o".repeat(400);
    // Twenty records stamped two hours ago, then ten fresh ones.
    for _ in 0..20 {
        p.send(FutureRecord::<(), _>::to("by-age").payload(&value).timestamp(now - 7_200_000), Duration::from_secs(10))
            .await
            .unwrap();
    }
    for _ in 0..10 {
        p.send(FutureRecord::<(), _>::to("by-age").payload(&value).timestamp(now), Duration::from_secs(10))
            .await
            .unwrap();
    }
    let (lo, hi) = settled_watermarks_above(&b, "by-age", 0).await;
    assert_eq!(hi, 30);
    assert!(lo > 0, "old segments were not deleted");
    assert!(lo <= 20, "a segment holding fresh records was deleted (log start {lo})");
    b.shutdown().await;
}
