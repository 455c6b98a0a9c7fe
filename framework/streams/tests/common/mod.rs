//! Shared helpers for the runtime's integration tests: starting and closing `KafkaStreams` off the async
//! runtime's threads, producing, reading topics back, and bounded waits.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use spate::test::EmbeddedBroker;
use spate_streams::{KafkaStreams, State, StreamsConfig, Topology};

pub const WAIT: Duration = Duration::from_secs(60);

/// A config for tests: small session timeout and commit interval, its own state dir.
pub fn config(broker: &EmbeddedBroker, app: &str, state_dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app)
        .bootstrap_servers(broker.bootstrap_servers())
        .state_dir(state_dir)
        .commit_interval_ms(200)
        .client_property("session.timeout.ms", "6000")
        .client_property("heartbeat.interval.ms", "500")
        .client_property("fetch.wait.max.ms", "50")
}

/// Starts an application (start() blocks on metadata requests: keep it off the runtime's workers).
pub async fn start(topology: Topology, config: StreamsConfig) -> KafkaStreams {
    tokio::task::spawn_blocking(move || {
        let mut s = KafkaStreams::new(topology, config);
        s.start().unwrap();
        s
    })
    .await
    .unwrap()
}

/// Closes an application; its consumers leave the group while the broker is still up.
pub async fn close(mut streams: KafkaStreams) {
    tokio::task::spawn_blocking(move || {
        assert!(streams.close_timeout(WAIT), "threads did not stop within 60 s");
        assert_eq!(streams.state(), State::NotRunning, "error: {:?}", streams.error());
    })
    .await
    .unwrap();
}

pub async fn wait_for_state(streams: &KafkaStreams, state: State) {
    let deadline = Instant::now() + WAIT;
    while streams.state() != state {
        assert!(
            Instant::now() < deadline,
            "state {:?} not reached: {:?} ({:?})",
            state,
            streams.state(),
            streams.error()
        );
        assert_ne!(streams.state(), State::Error, "application failed: {:?}", streams.error());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn produce(broker: &EmbeddedBroker, topic: &str, key: &str, value: &str) {
    broker.produce(topic, Some(key), value.as_bytes().to_vec()).await.unwrap();
}

/// One record read back: partition, key, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub partition: i32,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl Out {
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(&self.key).into_owned()
    }
    pub fn value_i64(&self) -> i64 {
        let v = self.value.as_deref().unwrap();
        i64::from_be_bytes(v.try_into().unwrap())
    }
}

/// Reads a topic from the beginning until `count` records arrived (failing after 60 s), then keeps reading for a
/// short while to catch extra (duplicate) records. `read_committed` for exactly-once checks.
pub async fn read(bootstrap: &str, topic: &str, count: usize, read_committed: bool) -> Vec<Out> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "test-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", if read_committed { "read_committed" } else { "read_uncommitted" })
            .create()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        // The application may create the topic after this reader starts.
        let mut tpl = TopicPartitionList::new();
        while tpl.count() == 0 {
            assert!(Instant::now() < deadline, "topic {topic} did not appear within 60 s");
            let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).unwrap();
            for t in md.topics().iter().filter(|t| t.error().is_none()) {
                for p in t.partitions() {
                    tpl.add_partition_offset(&topic, p.id(), Offset::Beginning).unwrap();
                }
            }
            if tpl.count() == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let mut quiet_until: Option<Instant> = None;
        loop {
            if out.len() >= count && quiet_until.is_none() {
                quiet_until = Some(Instant::now() + Duration::from_millis(500));
            }
            if quiet_until.is_some_and(|q| Instant::now() > q) {
                break;
            }
            assert!(Instant::now() < deadline, "{count} records on {topic} not seen within 60 s (got {})", out.len());
            if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                let m = m.unwrap();
                out.push(Out {
                    partition: m.partition(),
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().map(<[u8]>::to_vec),
                });
            }
        }
        drop(consumer);
        out
    })
    .await
    .unwrap()
}

/// The last count per key of a count output (i64 values).
pub fn last_counts(out: &[Out]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for o in out {
        m.insert(o.key_str(), o.value_i64());
    }
    m
}
