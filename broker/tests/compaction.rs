//! Compaction seen by a client: a `cleanup.policy=compact` topic keeps the newest value of every key in its
//! closed segments, across a restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{consume, TestBroker};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_topic_keeps_the_newest_value_of_every_key() {
    let mut b = TestBroker::start_with(|c| c.log_retention_check_interval_ms = 100).await;
    b.create_topic(
        "latest",
        1,
        &[("cleanup.policy", "compact"), ("segment.bytes", "2048"), ("min.cleanable.dirty.ratio", "0.01")],
    )
    .await;
    let p = b.producer(&[("linger.ms", "0")]);
    let rounds = 20;
    for round in 0..rounds {
        for key in 0..10 {
            let k = format!("k{key}");
            let v = format!("round-{round}-{}", "p".repeat(100));
            p.send(FutureRecord::to("latest").key(&k).payload(&v), Duration::from_secs(10)).await.unwrap();
        }
    }
    let total = rounds * 10;
    // Wait until the cleaner has removed superseded records.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut remaining = total;
    while Instant::now() < deadline {
        let c = b.consumer(&[]);
        let (lo, hi) = c.fetch_watermarks("latest", 0, Duration::from_secs(10)).unwrap();
        remaining = consume(&c, "latest", &[0], (hi - lo) as usize, Duration::from_secs(5)).len();
        if remaining < total / 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(remaining < total / 2, "compaction removed nothing: {remaining} of {total} records remain");

    b.restart(|c| c.log_retention_check_interval_ms = 100).await;
    let c = b.consumer(&[]);
    let (_, hi) = c.fetch_watermarks("latest", 0, Duration::from_secs(10)).unwrap();
    assert_eq!(hi, total as i64, "offsets are kept; compaction leaves gaps, not renumbering");
    let got = consume(&c, "latest", &[0], remaining, Duration::from_secs(20));
    let mut newest: HashMap<String, String> = HashMap::new();
    let mut last_offset = -1;
    for m in &got {
        assert!(m.offset() > last_offset, "offsets increase");
        last_offset = m.offset();
        newest.insert(
            String::from_utf8_lossy(m.key().unwrap()).to_string(),
            String::from_utf8_lossy(m.payload().unwrap()).to_string(),
        );
    }
    assert_eq!(newest.len(), 10, "every key survives");
    for (k, v) in &newest {
        assert!(v.starts_with(&format!("round-{}-", rounds - 1)), "{k} lost its newest value: {v}");
    }
    b.shutdown().await;
}
