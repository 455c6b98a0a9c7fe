//! #[kafka_listener] handlers, extractors, replies, filters, errors and malformed payloads, against the embedded
//! broker.
#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Seen, WAIT};
use futures::future::BoxFuture;
use spate::test::EmbeddedBroker;
use spate::{
    kafka_listener, Batch, Bytes, DefaultErrorHandler, FixedBackOff, Headers, Json, Key, ListenerError, Meta, Record,
    State, Topic,
};

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Order {
    id: u32,
}

const ORDERS: Topic<String, Json<Order>> = Topic::new("typed-orders");

/// Records what the recoverer was given.
#[derive(Clone, Default)]
struct Recovered(Seen<(i64, String)>);

impl spate::ConsumerRecordRecoverer for Recovered {
    fn recover<'a>(
        &'a self,
        record: &'a Record,
        error: &'a ListenerError,
    ) -> BoxFuture<'a, Result<(), spate::BoxError>> {
        let kind = match error {
            ListenerError::Deserialization { record: raw, .. } => {
                assert_eq!(raw.offset(), record.offset());
                "deserialization".to_string()
            }
            ListenerError::Handler(_) => "handler".to_string(),
            ListenerError::Panic(_) => "panic".to_string(),
            other => other.to_string(),
        };
        self.0.push((record.offset(), kind));
        Box::pin(async { Ok(()) })
    }
}

#[kafka_listener(topics = "orders", id = "orders-json")]
async fn on_order(
    Json(order): Json<Order>,
    Key(key): Key<String>,
    meta: Meta,
    headers: Headers,
    State(seen): State<Seen<String>>,
) {
    seen.push(format!(
        "{key}:{}:{}:{}:{}:{}",
        order.id,
        meta.topic,
        meta.partition,
        meta.offset,
        headers.get_str("h").unwrap_or("-")
    ));
}

#[tokio::test]
async fn json_listener_gets_value_key_meta_and_headers() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("orders", 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let app = broker.app().state(seen.clone()).listener(on_order::definition()).start().await.unwrap();
    let mut h = Headers::new();
    h.insert("h", "hv");
    broker.produce_to("orders", 0, Some("c1"), r#"{"id":1}"#, h).await.unwrap();
    broker.produce("orders", Some("c2"), r#"{"id":2}"#).await.unwrap();
    let got = seen.wait_for(2, WAIT).await;
    assert_eq!(got, vec!["c1:1:orders:0:0:hv", "c2:2:orders:0:1:-"]);
    app.shutdown().await;
    assert_eq!(broker.committed_offset("orders-json", "orders", 0).await.unwrap(), Some(2));
}

#[kafka_listener(topics = "${app.topic}", group_id = "${app.group:fallback-group}")]
async fn on_configured(body: String, meta: Meta, State(seen): State<Seen<String>>) {
    seen.push(format!("{body}@{}", meta.group_id));
}

#[tokio::test]
async fn topics_and_group_come_from_configuration_placeholders() {
    let broker = EmbeddedBroker::builder().topic("from-config", 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let app = broker
        .app()
        .set("app.topic", "from-config")
        .state(seen.clone())
        .listener(on_configured::definition())
        .start()
        .await
        .unwrap();
    broker.produce("from-config", None, "hello").await.unwrap();
    assert_eq!(seen.wait_for(1, WAIT).await, vec!["hello@fallback-group"]);
    app.shutdown().await;
}

#[tokio::test]
async fn missing_placeholder_fails_start_naming_it() {
    let broker = EmbeddedBroker::start().await.unwrap();
    let err =
        broker.app().state(Seen::<String>::default()).listener(on_configured::definition()).start().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("app.topic") && msg.contains("on_configured") && msg.contains("topics"), "{msg}");
}

#[tokio::test]
async fn missing_state_fails_start() {
    let broker = EmbeddedBroker::start().await.unwrap();
    let err = broker.app().set("app.topic", "x").listener(on_configured::definition()).start().await.unwrap_err();
    assert!(err.to_string().contains("State<"), "{err}");
}

#[kafka_listener(topics = ORDERS, group_id = "typed")]
async fn on_typed(order: Json<Order>, key: Key<String>, State(seen): State<Seen<String>>) {
    seen.push(format!("{}:{}", key.0, order.id));
}

#[tokio::test]
async fn typed_topic_constant_shared_by_template_and_listener() {
    let broker = EmbeddedBroker::builder().topic(ORDERS.name(), 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let app = broker.app().state(seen.clone()).listener(on_typed::definition()).start().await.unwrap();
    app.template::<String, Json<Order>>().send(ORDERS, "k".to_string(), Json(Order { id: 9 })).await.unwrap();
    assert_eq!(seen.wait_for(1, WAIT).await, vec!["k:9"]);
    app.shutdown().await;
}

#[kafka_listener(topics = "raw", group_id = "raw")]
async fn on_raw(
    text: String,
    bytes: Bytes,
    record: Record,
    key: Key<Option<String>>,
    State(seen): State<Seen<String>>,
) {
    assert_eq!(text.as_bytes(), bytes.as_ref());
    seen.push(format!("{text}:{}:{:?}", record.offset(), key.0));
}

#[tokio::test]
async fn string_bytes_record_and_optional_key_payloads() {
    let broker = EmbeddedBroker::builder().topic("raw", 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let app = broker.app().state(seen.clone()).listener(on_raw::definition()).start().await.unwrap();
    broker.produce("raw", None, "a").await.unwrap();
    broker.produce("raw", Some("k"), "b").await.unwrap();
    assert_eq!(seen.wait_for(2, WAIT).await, vec!["a:0:None", "b:1:Some(\"k\")"]);
    app.shutdown().await;
}

#[kafka_listener(topics = "malformed", group_id = "malformed")]
async fn on_maybe_malformed(Json(order): Json<Order>, State(seen): State<Seen<String>>) {
    seen.push(order.id.to_string());
}

#[tokio::test]
async fn malformed_payload_goes_to_recoverer_once_without_retries_and_is_committed_past() {
    let broker = EmbeddedBroker::builder().topic("malformed", 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let recovered = Recovered::default();
    let handler = DefaultErrorHandler::new()
        .back_off(FixedBackOff { interval: Duration::from_millis(10), max_attempts: 5 })
        .recoverer(recovered.clone());
    let app = broker
        .app()
        .state(seen.clone())
        .listener(on_maybe_malformed::definition().error_handler(handler))
        .start()
        .await
        .unwrap();
    broker.produce("malformed", None, r#"{"id":1}"#).await.unwrap();
    broker.produce("malformed", None, "not json").await.unwrap();
    broker.produce("malformed", None, r#"{"id":3}"#).await.unwrap();
    assert_eq!(seen.wait_for(2, WAIT).await, vec!["1", "3"]);
    assert_eq!(recovered.0.get(), vec![(1, "deserialization".to_string())]);
    app.shutdown().await;
    assert_eq!(broker.committed_offset("malformed", "malformed", 0).await.unwrap(), Some(3));
}

static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

#[kafka_listener(topics = "flaky", group_id = "flaky")]
async fn on_flaky(body: String, State(seen): State<Seen<String>>) -> Result<(), std::io::Error> {
    if body == "fail-twice" && ATTEMPTS.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(std::io::Error::other("transient"));
    }
    if body == "always" {
        return Err(std::io::Error::other("permanent"));
    }
    seen.push(body);
    Ok(())
}

#[tokio::test]
async fn handler_errors_are_retried_with_back_off_then_recovered() {
    let broker = EmbeddedBroker::builder().topic("flaky", 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let recovered = Recovered::default();
    let handler = DefaultErrorHandler::new()
        .back_off(FixedBackOff { interval: Duration::from_millis(5), max_attempts: 3 })
        .recoverer(recovered.clone());
    let app =
        broker.app().state(seen.clone()).listener(on_flaky::definition().error_handler(handler)).start().await.unwrap();
    broker.produce("flaky", None, "fail-twice").await.unwrap();
    broker.produce("flaky", None, "always").await.unwrap();
    broker.produce("flaky", None, "ok").await.unwrap();
    assert_eq!(seen.wait_for(2, WAIT).await, vec!["fail-twice", "ok"]);
    assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 3);
    assert_eq!(recovered.0.get(), vec![(1, "handler".to_string())]);
    app.shutdown().await;
}

#[kafka_listener(topics = "panics", group_id = "panics")]
async fn on_panicky(body: String, State(seen): State<Seen<String>>) {
    if body == "boom" {
        panic!("boom");
    }
    seen.push(body);
}

#[tokio::test]
async fn a_panicking_handler_is_an_error_not_a_dead_consumer() {
    let broker = EmbeddedBroker::builder().topic("panics", 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let recovered = Recovered::default();
    let handler = DefaultErrorHandler::new()
        .back_off(FixedBackOff { interval: Duration::ZERO, max_attempts: 1 })
        .recoverer(recovered.clone());
    let app = broker
        .app()
        .state(seen.clone())
        .listener(on_panicky::definition().error_handler(handler))
        .start()
        .await
        .unwrap();
    broker.produce("panics", None, "boom").await.unwrap();
    broker.produce("panics", None, "after").await.unwrap();
    assert_eq!(seen.wait_for(1, WAIT).await, vec!["after"]);
    assert_eq!(recovered.0.get(), vec![(0, "panic".to_string())]);
    app.shutdown().await;
}

#[kafka_listener(topics = "requests", group_id = "replier")]
#[send_to("replies")]
async fn on_request(Json(order): Json<Order>) -> Option<Json<Order>> {
    (order.id != 0).then(|| Json(Order { id: order.id * 10 }))
}

#[tokio::test]
async fn send_to_sends_the_return_value_with_the_incoming_key() {
    let broker = EmbeddedBroker::builder().topic("requests", 1).topic("replies", 1).start().await.unwrap();
    let app = broker.app().listener(on_request::definition()).start().await.unwrap();
    broker.produce("requests", Some("k"), r#"{"id":0}"#).await.unwrap();
    broker.produce("requests", Some("k"), r#"{"id":4}"#).await.unwrap();
    let replies = broker.consume("replies", 1, WAIT).await.unwrap();
    assert_eq!(replies[0].value().unwrap(), br#"{"id":40}"#);
    assert_eq!(replies[0].key().unwrap(), b"k");
    app.shutdown().await;
    // Only one reply: None sends nothing.
    assert!(broker.consume("replies", 2, Duration::from_secs(2)).await.is_err());
}

fn only_even(r: &Record) -> bool {
    r.offset() % 2 == 0
}

#[kafka_listener(topics = "filtered", group_id = "filtered", filter = only_even)]
async fn on_filtered(body: String, State(seen): State<Seen<String>>) {
    seen.push(body);
}

#[tokio::test]
async fn filter_skips_records_and_commits_past_them() {
    let broker = EmbeddedBroker::builder().topic("filtered", 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let app = broker.app().state(seen.clone()).listener(on_filtered::definition()).start().await.unwrap();
    for i in 0..6 {
        broker.produce("filtered", None, format!("{i}")).await.unwrap();
    }
    assert_eq!(seen.wait_for(3, WAIT).await, vec!["0", "2", "4"]);
    app.shutdown().await;
    assert_eq!(broker.committed_offset("filtered", "filtered", 0).await.unwrap(), Some(6));
}

fn recording_handler() -> DefaultErrorHandler {
    DefaultErrorHandler::new()
        .back_off(FixedBackOff { interval: Duration::ZERO, max_attempts: 1 })
        .recoverer(GLOBAL_RECOVERED.clone())
}

static GLOBAL_RECOVERED: std::sync::LazyLock<Recovered> = std::sync::LazyLock::new(Recovered::default);

#[kafka_listener(topics = "eh", group_id = "eh", error_handler = recording_handler)]
async fn on_eh(body: String) -> Result<(), String> {
    Err(format!("no {body}"))
}

#[tokio::test]
async fn error_handler_attribute_names_the_handler() {
    let broker = EmbeddedBroker::builder().topic("eh", 1).start().await.unwrap();
    let app = broker.app().listener(on_eh::definition()).start().await.unwrap();
    broker.produce("eh", None, "x").await.unwrap();
    GLOBAL_RECOVERED.0.wait_for(1, WAIT).await;
    assert_eq!(GLOBAL_RECOVERED.0.get(), vec![(0, "handler".to_string())]);
    app.shutdown().await;
}

#[kafka_listener(topics = "batched", group_id = "batched", batch = true)]
async fn on_batch(orders: Vec<Json<Order>>, State(seen): State<Seen<usize>>, State(ids): State<Seen<u32>>) {
    seen.push(orders.len());
    for o in orders {
        ids.push(o.0.id);
    }
}

#[tokio::test]
async fn batch_listener_receives_the_records_of_a_poll_together() {
    let broker = EmbeddedBroker::builder().topic("batched", 1).start().await.unwrap();
    let t: spate::KafkaTemplate<(), Json<Order>> = broker.template();
    for i in 0..50 {
        drop(t.send("batched", (), Json(Order { id: i })));
    }
    t.flush(Duration::from_secs(10)).await.unwrap();
    let sizes = Seen::<usize>::default();
    let ids = Seen::<u32>::default();
    let app =
        broker.app().state(sizes.clone()).state(ids.clone()).listener(on_batch::definition()).start().await.unwrap();
    ids.wait_for(50, WAIT).await;
    assert_eq!(ids.get(), (0..50).collect::<Vec<_>>());
    assert!(sizes.get().iter().any(|&n| n > 1), "records were delivered together: {:?}", sizes.get());
    app.shutdown().await;
    assert_eq!(broker.committed_offset("batched", "batched", 0).await.unwrap(), Some(50));
}

#[kafka_listener(topics = "batch-bad", group_id = "batch-bad", batch = true)]
async fn on_batch_meta(batch: Batch<Json<Order>>, State(seen): State<Seen<String>>) {
    for (r, o) in batch.iter() {
        seen.push(format!("{}={}", r.offset(), o.id));
    }
}

#[tokio::test]
async fn malformed_record_in_a_batch_is_recovered_alone_and_the_rest_delivered() {
    let broker = EmbeddedBroker::builder().topic("batch-bad", 1).start().await.unwrap();
    broker.produce("batch-bad", None, r#"{"id":1}"#).await.unwrap();
    broker.produce("batch-bad", None, "{broken").await.unwrap();
    broker.produce("batch-bad", None, r#"{"id":3}"#).await.unwrap();
    let seen = Seen::<String>::default();
    let recovered = Recovered::default();
    let app = broker
        .app()
        .state(seen.clone())
        .listener(on_batch_meta::definition().error_handler(DefaultErrorHandler::new().recoverer(recovered.clone())))
        .start()
        .await
        .unwrap();
    let got = seen.wait_for(2, WAIT).await;
    assert_eq!(got, vec!["0=1", "2=3"]);
    assert_eq!(recovered.0.get(), vec![(1, "deserialization".to_string())]);
    app.shutdown().await;
    assert_eq!(broker.committed_offset("batch-bad", "batch-bad", 0).await.unwrap(), Some(3));
}

#[kafka_listener(topic_partitions = ["assigned:1@2", "assigned:0@-1"], group_id = "manual-assign")]
async fn on_assigned(body: String, meta: Meta, State(seen): State<Seen<String>>) {
    seen.push(format!("{}:{}:{body}", meta.partition, meta.offset));
}

#[tokio::test]
async fn topic_partitions_assign_explicitly_with_initial_offsets() {
    let broker = EmbeddedBroker::builder().topic("assigned", 3).start().await.unwrap();
    for i in 0..4 {
        broker.produce_to("assigned", 1, None, format!("p1-{i}"), Headers::new()).await.unwrap();
        broker.produce_to("assigned", 0, None, format!("p0-{i}"), Headers::new()).await.unwrap();
        broker.produce_to("assigned", 2, None, format!("p2-{i}"), Headers::new()).await.unwrap();
    }
    let seen = Seen::<String>::default();
    let app = broker.app().state(seen.clone()).listener(on_assigned::definition()).start().await.unwrap();
    spate::test::wait_for_assignment(&app.container("on_assigned").unwrap(), 2, WAIT).await.unwrap();
    // Partition 1 from offset 2; partition 0 from one record before its end; partition 2 not at all.
    let mut got = seen.wait_for(3, WAIT).await;
    got.sort();
    assert_eq!(got, vec!["0:3:p0-3", "1:2:p1-2", "1:3:p1-3"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.len(), 3);
    app.shutdown().await;
}

#[kafka_listener(topic_pattern = "metrics-.*", group_id = "pattern")]
async fn on_pattern(meta: Meta, State(seen): State<Seen<String>>) {
    seen.push(meta.topic);
}

#[tokio::test]
async fn topic_pattern_subscribes_to_matching_topics() {
    let broker = EmbeddedBroker::builder()
        .topic("metrics-cpu", 1)
        .topic("metrics-mem", 1)
        .topic("other", 1)
        .start()
        .await
        .unwrap();
    broker.produce("metrics-cpu", None, "1").await.unwrap();
    broker.produce("metrics-mem", None, "1").await.unwrap();
    broker.produce("other", None, "1").await.unwrap();
    let seen = Seen::<String>::default();
    let app = broker.app().state(seen.clone()).listener(on_pattern::definition()).start().await.unwrap();
    let mut got = seen.wait_for(2, WAIT).await;
    got.sort();
    assert_eq!(got, vec!["metrics-cpu", "metrics-mem"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.len(), 2);
    app.shutdown().await;
}

#[kafka_listener(topics = "analytics-events", group_id = "analytics", cluster = "analytics",
    client_id_prefix = "analytics-reader", properties = ["fetch.wait.max.ms=20", "${app.extra_property:check.crcs=true}"])]
async fn on_analytics(body: String, State(seen): State<Seen<String>>) {
    seen.push(body);
}

#[tokio::test]
async fn listener_on_a_named_cluster_with_properties_and_client_id_prefix() {
    let main = EmbeddedBroker::start().await.unwrap();
    let analytics = EmbeddedBroker::builder().topic("analytics-events", 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let app = main
        .app()
        .set("kafka.clusters.analytics.bootstrap_servers", analytics.bootstrap_servers())
        .state(seen.clone())
        .listener(on_analytics::definition())
        .start()
        .await
        .unwrap();
    analytics.produce("analytics-events", None, "on-analytics").await.unwrap();
    assert_eq!(seen.wait_for(1, WAIT).await, vec!["on-analytics"]);
    // The consumer's client.id carries the prefix: visible in the group's members.
    let bootstrap = analytics.bootstrap_servers().to_string();
    let client_ids = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let c: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
        let groups = c.fetch_group_list(Some("analytics"), Duration::from_secs(10)).unwrap();
        groups.groups().iter().flat_map(|g| g.members().iter().map(|m| m.client_id().to_string())).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(client_ids, vec!["analytics-reader-0"]);
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_cluster_and_bad_listener_property_fail_start() {
    let broker = EmbeddedBroker::start().await.unwrap();
    let err =
        broker.app().state(Seen::<String>::default()).listener(on_analytics::definition()).start().await.unwrap_err();
    assert!(err.to_string().contains("cluster `analytics`"), "{err}");
    let err = broker
        .app()
        .set("kafka.clusters.analytics.bootstrap_servers", broker.bootstrap_servers())
        .set("app.extra_property", "no.such.property=1")
        .state(Seen::<String>::default())
        .listener(on_analytics::definition())
        .start()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no.such.property") && msg.contains("listener `on_analytics` properties"), "{msg}");
}

#[kafka_listener(topics = "later", group_id = "later", auto_startup = "${app.auto:false}")]
async fn on_later(body: String, State(seen): State<Seen<String>>) {
    seen.push(body);
}

#[tokio::test]
async fn auto_startup_false_waits_for_the_registry() {
    let broker = EmbeddedBroker::builder().topic("later", 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let app = broker.app().state(seen.clone()).listener(on_later::definition()).start().await.unwrap();
    broker.produce("later", None, "x").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seen.len(), 0);
    assert!(!app.container("on_later").unwrap().is_running());
    app.registry().start("on_later").await.unwrap();
    assert_eq!(seen.wait_for(1, WAIT).await, vec!["x"]);
    app.shutdown().await;
}

#[tokio::test]
async fn listener_layers_wrap_the_handler() {
    let broker = EmbeddedBroker::builder().topic("layered", 1).start().await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let def = spate::ListenerDefinition::new(
        "layered",
        tower::service_fn(move |d: spate::Delivery| {
            let c = c2.clone();
            async move {
                c.fetch_add(d.records().len(), Ordering::SeqCst);
                Ok::<_, ListenerError>(spate::Outcome::done())
            }
        }),
    )
    .topics(["layered"])
    .layer(
        tower::ServiceBuilder::new()
            .map_err(ListenerError::Handler)
            .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(5))),
    );
    let app = broker.app().listener(def).start().await.unwrap();
    broker.produce("layered", None, "x").await.unwrap();
    spate::test::wait_until(WAIT, "one call", || calls.load(Ordering::SeqCst) == 1).await.unwrap();
    app.shutdown().await;
}

#[kafka_listener(topics = "odd-headers", id = "odd-headers")]
async fn on_odd_headers(body: String, headers: Headers, State(seen): State<Seen<String>>) {
    // The embedded broker's template adds a traceparent.
    let names: Vec<&str> = headers.iter().map(|(name, _)| name).filter(|n| *n != "traceparent").collect();
    seen.push(format!("{body}:{}", names.join(",")));
}

/// Produces one record whose only header name is `name` (a C string), through librdkafka directly: rdkafka's API
/// only takes header names as `&str`.
fn produce_with_raw_header_name(bootstrap: &str, topic: &str, name: &std::ffi::CStr, value: &str) {
    use rdkafka::bindings as rd;
    use rdkafka::producer::{BaseProducer, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let topic = std::ffi::CString::new(topic).unwrap();
    let arg = |vtype, u| rd::rd_kafka_vu_t { vtype, u };
    let vus = [
        arg(rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_TOPIC, rd::rd_kafka_vu_s__bindgen_ty_1 { cstr: topic.as_ptr() }),
        arg(
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE,
            rd::rd_kafka_vu_s__bindgen_ty_1 {
                mem: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 { ptr: value.as_ptr() as *mut _, size: value.len() },
            },
        ),
        arg(
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_HEADER,
            rd::rd_kafka_vu_s__bindgen_ty_1 {
                header: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2 {
                    name: name.as_ptr(),
                    val: b"v".as_ptr().cast(),
                    size: 1,
                },
            },
        ),
    ];
    // SAFETY: every pointer outlives the call (librdkafka copies the value and headers).
    let error = unsafe { rd::rd_kafka_produceva(producer.client().native_ptr(), vus.as_ptr(), vus.len()) };
    assert!(error.is_null(), "produce refused");
    producer.flush(WAIT).unwrap();
}

/// Kafka's header names are text, but nothing stops a client from sending other bytes: the record is delivered
/// with them replaced (rdkafka's own header iterator panics on them), and the records after it still flow.
#[tokio::test]
async fn a_header_name_that_is_not_utf8_is_delivered_replaced_and_the_consumer_goes_on() {
    let broker = EmbeddedBroker::builder().topic("odd-headers", 1).start().await.unwrap();
    let seen = Seen::<String>::default();
    let app = broker.app().state(seen.clone()).listener(on_odd_headers::definition()).start().await.unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    tokio::task::spawn_blocking(move || produce_with_raw_header_name(&bootstrap, "odd-headers", c"\xffk", "first"))
        .await
        .unwrap();
    let mut h = Headers::new();
    h.insert("ok", "v");
    broker.produce_to("odd-headers", 0, None, "second", h).await.unwrap();
    assert_eq!(seen.wait_for(2, WAIT).await, vec!["first:\u{FFFD}k", "second:ok"]);
    app.shutdown().await;
}

/// What a raw-record listener saw: offset, key, value, headers.
type Consumed = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>);

#[kafka_listener(topics = "mixed-records", id = "mixed-records")]
async fn on_mixed(record: Record, State(seen): State<Seen<Consumed>>) {
    let headers = record.headers().iter().map(|(name, value)| (name.to_string(), value.map(<[u8]>::to_vec))).collect();
    seen.push((record.offset(), record.key().map(|k| k.to_vec()), record.value().map(|v| v.to_vec()), headers));
}

/// Records of one poll share copy buffers of up to 64 KiB: keys, values and headers of every record come out
/// intact whatever their shape — null keys and values, empty values, null and repeated header values, a record
/// larger than a buffer between small ones, and enough bytes to fill several buffers.
#[tokio::test]
async fn records_of_every_shape_come_out_of_the_shared_copy_buffers_intact() {
    let broker = EmbeddedBroker::builder().topic("mixed-records", 1).start().await.unwrap();
    // Without the traceparent a template adds, every record's headers are the test's own.
    let producing = broker.app().set("kafka.template.observation_enabled", false).start().await.unwrap();
    let template: spate::KafkaTemplate<Option<String>, Option<Vec<u8>>> =
        spate::KafkaTemplate::new(producing.producer_factory());
    let mut expected: Vec<Consumed> = Vec::new();
    let mut sends = Vec::new();
    for i in 0..300i64 {
        let key = (i % 7 != 0).then(|| format!("key-{i}"));
        let value = match i {
            50 => None,
            51 => Some(Vec::new()),
            52 => Some(vec![b'L'; 100 * 1024]),
            i if i < 50 => Some(format!("small-{i}").into_bytes()),
            i => Some(vec![(i % 251) as u8; 1024]),
        };
        let mut headers = Headers::new();
        let mut listed = Vec::new();
        if i % 3 == 0 {
            headers.insert("n", i.to_string()).insert_null("null").insert("n", "again");
            listed = vec![
                ("n".to_string(), Some(i.to_string().into_bytes())),
                ("null".to_string(), None),
                ("n".to_string(), Some(b"again".to_vec())),
            ];
        }
        expected.push((i, key.as_ref().map(|k| k.clone().into_bytes()), value.clone(), listed));
        let record = spate::ProducerRecord::new("mixed-records", value).partition(0).headers(headers);
        let record = match key {
            Some(k) => record.key(Some(k)),
            None => record,
        };
        sends.push(template.send_record(record));
    }
    for s in futures::future::join_all(sends).await {
        s.unwrap();
    }
    producing.shutdown().await;
    let seen = Seen::<Consumed>::default();
    let app = broker.app().state(seen.clone()).listener(on_mixed::definition()).start().await.unwrap();
    let got = seen.wait_for(300, WAIT).await;
    app.shutdown().await;
    assert_eq!(got.len(), expected.len());
    for (got, expected) in got.iter().zip(&expected) {
        assert_eq!(got, expected, "record at offset {}", expected.0);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Header reads: a listener whose every part reads no headers skips librdkafka's header parse.

/// An error handler that claims to read no headers and records whether each failed record had the `h` header the
/// test sent: the witness of whether its container asked for headers.
#[derive(Clone, Default)]
struct HeadersOnFailure(Seen<(String, bool)>);

impl spate::ErrorHandler for HeadersOnFailure {
    fn handle<'a>(
        &'a self,
        records: &'a [Record],
        _error: &'a ListenerError,
        _attempt: u32,
    ) -> BoxFuture<'a, spate::ErrorDecision> {
        for r in records {
            self.0.push((r.topic().to_string(), r.headers().get_str("h") == Some("v")));
        }
        Box::pin(std::future::ready(spate::ErrorDecision::Skip))
    }

    fn reads_headers(&self) -> bool {
        false
    }
}

#[kafka_listener(topics = "headers-unread", id = "headers-unread")]
async fn fails_reading_bytes(_body: Bytes, State(_n): State<Arc<AtomicUsize>>) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("fails"))
}

#[kafka_listener(topics = "headers-read", id = "headers-read")]
async fn fails_reading_headers(_body: Bytes, _headers: Headers) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("fails"))
}

/// Whether each failed record had its header, by topic, with `kafka.listener.observation_enabled` as given.
async fn headers_seen_on_failure(observation: bool) -> Vec<(String, bool)> {
    let broker = EmbeddedBroker::builder().topic("headers-unread", 1).topic("headers-read", 1).start().await.unwrap();
    let seen = HeadersOnFailure::default();
    let app = broker
        .app()
        .set("kafka.listener.observation_enabled", observation)
        .state(Arc::new(AtomicUsize::new(0)))
        .listener(fails_reading_bytes::definition().error_handler(seen.clone()))
        .listener(fails_reading_headers::definition().error_handler(seen.clone()))
        .start()
        .await
        .unwrap();
    for topic in ["headers-unread", "headers-read"] {
        let mut h = Headers::new();
        h.insert("h", "v");
        broker.produce_to(topic, 0, None, "x", h).await.unwrap();
    }
    let mut got = seen.0.wait_for(2, WAIT).await;
    app.shutdown().await;
    got.sort();
    got
}

#[tokio::test]
async fn a_listener_whose_arguments_and_error_handler_read_no_headers_skips_them_with_observation_off() {
    common::init_tracing();
    let got = headers_seen_on_failure(false).await;
    assert_eq!(got, vec![("headers-read".to_string(), true), ("headers-unread".to_string(), false)]);
}

#[tokio::test]
async fn with_listener_observation_on_every_record_keeps_its_headers() {
    common::init_tracing();
    let got = headers_seen_on_failure(true).await;
    assert_eq!(got, vec![("headers-read".to_string(), true), ("headers-unread".to_string(), true)]);
}
