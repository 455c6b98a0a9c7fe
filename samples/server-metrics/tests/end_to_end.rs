//! The sample end to end: the 5.2 topology run by `KafkaStreams` against the bundled broker; JSON metrics in,
//! CPU and memory metrics and CPU alerts out.
#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use spate::test::EmbeddedBroker;
use spate::{Json, KafkaTemplate};
use spate_sample_server_metrics::{config, topology, CpuAlert, Metric, TOPICS};
use spate_streams::{KafkaStreams, State};

/// Values of `topic` from the beginning until `count` arrived (at most 60 s), then 300 ms more for extras.
async fn read(bootstrap: &str, topic: &str, count: usize) -> Vec<Vec<u8>> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "reader")
            .create()
            .unwrap();
        let md = c.fetch_metadata(Some(&topic), Duration::from_secs(10)).unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition_offset(&topic, p.id(), Offset::Beginning).unwrap();
        }
        c.assign(&tpl).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        let mut extra: Option<Instant> = None;
        while extra.is_none_or(|e| Instant::now() < e) {
            assert!(Instant::now() < deadline, "{count} records on {topic} not seen (got {})", out.len());
            if out.len() >= count && extra.is_none() {
                extra = Some(Instant::now() + Duration::from_millis(300));
            }
            if let Some(m) = c.poll(Duration::from_millis(50)) {
                out.push(m.unwrap().payload().unwrap_or_default().to_vec());
            }
        }
        out
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_split_by_kind_and_high_cpu_raises_alerts_against_the_bundled_broker() {
    let mut b = EmbeddedBroker::builder();
    for t in TOPICS {
        b = b.topic(t, 2);
    }
    let broker = b.start().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let cfg = config(broker.bootstrap_servers())
        .state_dir(state.path())
        .commit_interval_ms(200)
        .client_property("session.timeout.ms", "6000");
    let mut streams = tokio::task::spawn_blocking(move || {
        let mut s = KafkaStreams::new(topology(), cfg);
        s.start().unwrap();
        s
    })
    .await
    .unwrap();
    let template: KafkaTemplate<String, Json<Metric>> = broker.template();
    let metrics = [("web-1", "cpu", 42.0), ("web-1", "memory", 81.0), ("db-1", "cpu", 97.5), ("db-1", "disk", 99.0)];
    for (i, (host, kind, value)) in metrics.into_iter().enumerate() {
        let m = Metric { hostname: host.into(), timestamp: 1_000 + i as i64, kind: kind.into(), value };
        template.send("metrics", None, Json(m)).await.unwrap();
    }
    let alerts = read(broker.bootstrap_servers(), "cpu-alerts", 1).await;
    assert_eq!(alerts.len(), 1);
    let alert: CpuAlert = serde_json::from_slice(&alerts[0]).unwrap();
    assert_eq!(alert, CpuAlert { hostname: "db-1".into(), timestamp: 1_002 });
    assert_eq!(read(broker.bootstrap_servers(), "cpu-metrics", 2).await.len(), 2);
    assert_eq!(read(broker.bootstrap_servers(), "memory-metrics", 1).await.len(), 1);
    assert_eq!(streams.state(), State::Running);
    tokio::task::spawn_blocking(move || streams.close()).await.unwrap();
}
