//! KafkaTemplate and KafkaAdmin against the embedded broker.
#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spate::test::EmbeddedBroker;
use spate::{Headers, Json, KafkaTemplate, ProducerFactory, ProducerRecord, Topic, TopicBuilder};

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Order {
    id: u32,
}

const ORDERS: Topic<String, Json<Order>> = Topic::new("orders");

#[tokio::test]
async fn send_returns_metadata_and_the_record_is_readable() {
    let broker = EmbeddedBroker::builder().topic("orders", 2).start().await.unwrap();
    let template: KafkaTemplate<String, Json<Order>> = broker.template();
    let md = template.send(ORDERS, "c1".to_string(), Json(Order { id: 7 })).await.unwrap();
    assert_eq!(md.topic, "orders");
    assert_eq!(md.offset, 0);
    let recs = broker.consume("orders", 1, common::WAIT).await.unwrap();
    assert_eq!(recs[0].key().unwrap(), b"c1");
    assert_eq!(recs[0].value().unwrap(), br#"{"id":7}"#);
}

#[tokio::test]
async fn send_to_partition_with_headers_and_timestamp() {
    let broker = EmbeddedBroker::builder().topic("events", 3).start().await.unwrap();
    let template: KafkaTemplate<String, String> = broker.template();
    let md = template.send_to("events", 2, None, "x".to_string()).await.unwrap();
    assert_eq!(md.partition, 2);
    let rec =
        ProducerRecord::new("events", "y".to_string()).partition(1).timestamp(1_700_000_000_123).header("trace", "abc");
    let md = template.send_record(rec).await.unwrap();
    assert_eq!((md.partition, md.timestamp), (1, Some(1_700_000_000_123)));
    let recs = broker.consume("events", 2, common::WAIT).await.unwrap();
    let y = recs.iter().find(|r| r.partition() == 1).unwrap();
    assert_eq!(y.headers().get_str("trace"), Some("abc"));
    assert_eq!(y.timestamp(), Some(1_700_000_000_123));
}

#[tokio::test]
async fn send_default_uses_configured_topic_and_fails_without_one() {
    let broker = EmbeddedBroker::start().await.unwrap();
    let t: KafkaTemplate<(), String> = broker.template();
    assert!(matches!(t.send_default((), "a".into()).await, Err(spate::SendError::NoDefaultTopic)));
    let app = broker.app().set("kafka.template.default_topic", "defaults").start().await.unwrap();
    let t: KafkaTemplate<(), String> = app.template();
    let md = t.send_default((), "a".into()).await.unwrap();
    assert_eq!(md.topic, "defaults");
    app.shutdown().await;
}

struct Counting(Arc<AtomicUsize>, Arc<AtomicUsize>);
impl spate::ProducerListener for Counting {
    fn on_success(&self, _r: &spate::SentRecord<'_>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn on_error(&self, _r: &spate::SentRecord<'_>, _e: &rdkafka::error::KafkaError) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn producer_listener_sees_successes_even_for_dropped_futures_and_flush_waits() {
    let broker = EmbeddedBroker::builder().topic("t", 1).start().await.unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let factory = ProducerFactory::for_bootstrap(broker.bootstrap_servers());
    factory.add_listener(Counting(ok.clone(), failed.clone()));
    let t: KafkaTemplate<(), String> = KafkaTemplate::new(&factory);
    for i in 0..10 {
        drop(t.send("t", (), format!("{i}")));
    }
    t.flush(Duration::from_secs(10)).await.unwrap();
    assert_eq!(ok.load(Ordering::SeqCst), 10);
    assert_eq!(failed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn producer_listener_sees_failures() {
    let broker = EmbeddedBroker::builder().topic("small", 1).start().await.unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let factory = ProducerFactory::for_bootstrap(broker.bootstrap_servers());
    factory.add_listener(Counting(ok.clone(), failed.clone()));
    let t: KafkaTemplate<(), String> = KafkaTemplate::new(&factory);
    // Partition 5 does not exist.
    let r = t.send_to("small", 5, (), "x".into()).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(failed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn templates_of_one_factory_share_one_producer() {
    let broker = EmbeddedBroker::builder().topic("a", 1).start().await.unwrap();
    let app = broker.app().start().await.unwrap();
    let a: KafkaTemplate<String, String> = app.template();
    let b: KafkaTemplate<(), Json<Order>> = app.template();
    a.send("a", None, "1".into()).await.unwrap();
    b.send("a", (), Json(Order { id: 1 })).await.unwrap();
    assert!(a.producer_factory().is_same(b.producer_factory()));
    let other = ProducerFactory::for_bootstrap(broker.bootstrap_servers());
    assert!(!a.producer_factory().is_same(&other));
    app.shutdown().await;
}

#[tokio::test]
async fn admin_creates_declared_topics_and_grows_partitions() {
    let broker = EmbeddedBroker::builder().topic("grow", 1).start().await.unwrap();
    let app = broker
        .app()
        .topic(TopicBuilder::name("fresh").partitions(3))
        .topic(TopicBuilder::name("grow").partitions(4))
        .start()
        .await
        .unwrap();
    let admin = broker.admin().unwrap();
    let topics = admin.describe_topics(&["fresh", "grow"]).await.unwrap();
    assert_eq!(topics.get("fresh"), Some(&3));
    assert_eq!(topics.get("grow"), Some(&4));
    let report = admin.initialize(&[TopicBuilder::name("grow").partitions(4).build()]).await.unwrap();
    assert_eq!(report.unchanged, vec!["grow".to_string()]);
    app.shutdown().await;
}

#[tokio::test]
async fn headers_roundtrip_through_embedded_helpers() {
    let broker = EmbeddedBroker::builder().topic("h", 1).start().await.unwrap();
    let mut h = Headers::new();
    h.insert("a", "1").insert("a", "2");
    broker.produce_to("h", 0, Some("k"), "v", h).await.unwrap();
    let r = broker.consume("h", 1, common::WAIT).await.unwrap();
    assert_eq!(r[0].headers().get_str("a"), Some("2"));
    assert_eq!(r[0].headers().iter().filter(|(name, _)| *name == "a").count(), 2);
    // Every send also carries a W3C trace context (see observability).
    assert!(r[0].headers().get_str(spate::kafka_headers::TRACEPARENT).is_some());
}

#[tokio::test]
async fn a_full_local_queue_neither_loses_nor_reorders_records_whose_futures_were_dropped() {
    let broker = EmbeddedBroker::builder().topic("overflow", 1).start().await.unwrap();
    // A librdkafka queue of 50 records: most of the 5000 sends below find it full.
    let app = broker
        .app()
        .set("kafka.producer.properties", std::collections::BTreeMap::from([("queue.buffering.max.messages", "50")]))
        .start()
        .await
        .unwrap();
    let t: KafkaTemplate<(), String> = app.template();
    let n = 5000;
    for i in 0..n {
        // Fire and forget, as with Spring's KafkaTemplate: the record must still be sent.
        drop(t.send("overflow", (), format!("{i}")));
    }
    t.flush(Duration::from_secs(60)).await.unwrap();
    let got = broker.consume("overflow", n, Duration::from_secs(60)).await.unwrap();
    let values: Vec<usize> = got.iter().map(|r| String::from_utf8_lossy(r.value().unwrap()).parse().unwrap()).collect();
    assert_eq!(values, (0..n).collect::<Vec<_>>(), "every record, in send order");
    app.shutdown().await;
}

/// `EmbeddedBrokerBuilder::broker_config` changes the broker's settings before it starts: here a lower
/// `message.max.bytes`, which the broker enforces on produce.
#[tokio::test]
async fn the_embedded_broker_takes_broker_settings_before_it_starts() {
    let broker = EmbeddedBroker::builder()
        .broker_config(|c| c.message_max_bytes = 1024)
        .topic("small-records", 1)
        .start()
        .await
        .unwrap();
    let template: KafkaTemplate<String, Vec<u8>> = broker.template();
    template.send("small-records", None, vec![b'x'; 100]).await.unwrap();
    let too_large = template.send("small-records", None, vec![b'x'; 4096]).await;
    assert!(too_large.is_err(), "a record over message.max.bytes was accepted");
}
