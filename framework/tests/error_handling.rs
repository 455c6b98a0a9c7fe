//! Error handling against the embedded broker: dead-letter publishing with its headers, back-offs, classification,
//! failing recoverers, per-record batch outcomes and tower layers composing with retries.
#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Seen, WAIT};
use futures::future::BoxFuture;
use rdkafka::consumer::{BaseConsumer, Consumer};
use spate::kafka_headers as kh;
use spate::test::EmbeddedBroker;
use spate::{
    kafka_listener, layers, AckMode, BatchFailed, ConsumerRecordRecoverer, DeadLetterPublishingRecoverer,
    DefaultErrorHandler, ExponentialBackOff, FixedBackOff, Headers, Json, ListenerError, Record, State,
    ValidationError,
};

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Order {
    id: u32,
}

/// Log-end offsets of every partition of `topic`.
async fn end_offsets(broker: &EmbeddedBroker, topic: &str) -> Vec<i64> {
    let bootstrap = broker.bootstrap_servers().to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "watermarks")
            .create()
            .unwrap();
        let md = c.fetch_metadata(Some(&topic), Duration::from_secs(10)).unwrap();
        // A topic that does not exist (yet) has no partitions.
        let parts =
            md.topics().iter().find(|t| t.name() == topic && t.error().is_none()).map_or(0, |t| t.partitions().len())
                as i32;
        (0..parts).map(|p| c.fetch_watermarks(&topic, p, Duration::from_secs(10)).unwrap().1).collect()
    })
    .await
    .unwrap()
}

/// The first `n` records of the dead-letter topic `topic`, once it exists and holds them.
async fn dead_letters(broker: &EmbeddedBroker, topic: &str, n: i64) -> Vec<Record> {
    let deadline = Instant::now() + WAIT;
    while end_offsets(broker, topic).await.iter().sum::<i64>() < n {
        assert!(Instant::now() < deadline, "{n} records on {topic}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    broker.consume(topic, n as usize, WAIT).await.unwrap()
}

async fn wait_committed(broker: &EmbeddedBroker, group: &str, topic: &str, partition: i32, offset: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = broker.committed_offset(group, topic, partition).await.unwrap();
        if got == Some(offset) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "committed offset of {group} on {topic}-{partition}: {got:?}, want {offset}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn i32_header(h: &Headers, name: &str) -> i32 {
    i32::from_be_bytes(h.get(name).unwrap_or_else(|| panic!("no {name}")).try_into().unwrap())
}

fn i64_header(h: &Headers, name: &str) -> i64 {
    i64::from_be_bytes(h.get(name).unwrap_or_else(|| panic!("no {name}")).try_into().unwrap())
}

// ---------------------------------------------------------------------------------------------------------------

#[kafka_listener(topics = "poison", group_id = "poison-group")]
async fn on_poison(Json(order): Json<Order>, State(seen): State<Seen<u32>>) {
    seen.push(order.id);
}

#[tokio::test]
async fn poison_pill_is_dead_lettered_once_with_its_headers_and_the_listener_keeps_going() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("poison", 2).start().await.unwrap();
    let seen = Seen::<u32>::default();
    let handler = DefaultErrorHandler::new()
        .back_off(FixedBackOff::new(Duration::from_millis(10), 5))
        .recoverer(DeadLetterPublishingRecoverer::new());
    let app = broker
        .app()
        .state(seen.clone())
        .listener(on_poison::definition().error_handler(handler))
        .start()
        .await
        .unwrap();
    let mut headers = Headers::new();
    headers.insert("origin", "web");
    headers.insert("trace", vec![0u8, 1, 2]);
    broker.produce_to("poison", 1, Some("k0"), r#"{"id":1}"#, Headers::new()).await.unwrap();
    let pill = broker.produce_to("poison", 1, Some("bad-key"), "{not json", headers).await.unwrap();
    broker.produce_to("poison", 1, Some("k2"), r#"{"id":2}"#, Headers::new()).await.unwrap();
    broker.produce_to("poison", 0, Some("k3"), r#"{"id":3}"#, Headers::new()).await.unwrap();
    let mut got = seen.wait_for(3, WAIT).await;
    got.sort();
    assert_eq!(got, vec![1, 2, 3], "the good records around the pill are handled");

    let dead = dead_letters(&broker, "poison-dlt", 1).await;
    let d = &dead[0];
    assert_eq!(d.partition(), 1, "same partition as the source");
    assert_eq!(d.key(), Some(&b"bad-key"[..]));
    assert_eq!(d.value(), Some(&b"{not json"[..]));
    let h = d.headers();
    assert_eq!(h.get_str("origin"), Some("web"));
    assert_eq!(h.get("trace"), Some(&[0u8, 1, 2][..]));
    assert_eq!(h.get_str(kh::DLT_ORIGINAL_TOPIC), Some("poison"));
    assert_eq!(i32_header(h, kh::DLT_ORIGINAL_PARTITION), 1);
    assert_eq!(i64_header(h, kh::DLT_ORIGINAL_OFFSET), pill.offset);
    let source = broker.consume("poison", 4, WAIT).await.unwrap();
    let original = source.iter().find(|r| r.partition() == 1 && r.offset() == pill.offset).unwrap();
    assert_eq!(i64_header(h, kh::DLT_ORIGINAL_TIMESTAMP), original.timestamp().unwrap());
    assert_eq!(h.get_str(kh::DLT_ORIGINAL_TIMESTAMP_TYPE), Some("CreateTime"));
    assert_eq!(h.get_str(kh::DLT_ORIGINAL_CONSUMER_GROUP), Some("poison-group"));
    assert_eq!(h.get_str(kh::DLT_EXCEPTION_FQCN), Some("spate::ListenerError::Deserialization"));
    assert_eq!(h.get_str(kh::DLT_EXCEPTION_CAUSE_FQCN), Some("spate::codec::DeserializationError"));
    let message = h.get_str(kh::DLT_EXCEPTION_MESSAGE).unwrap();
    assert!(message.contains("Value") && message.contains("key must be a string"), "{message}");
    let trace = h.get_str(kh::DLT_EXCEPTION_STACKTRACE).unwrap();
    assert!(trace.contains(message) && trace.contains("poison-1@1"), "{trace}");

    app.shutdown().await;
    assert_eq!(broker.committed_offset("poison-group", "poison", 1).await.unwrap(), Some(3));
    // Exactly once: the dead-letter topic (created with the source's 2 partitions) holds one record.
    assert_eq!(end_offsets(&broker, "poison-dlt").await, vec![0, 1]);
}

// ---------------------------------------------------------------------------------------------------------------

/// When each call of a handler started.
#[derive(Clone)]
struct Calls(Seen<(String, Instant)>);

impl Default for Calls {
    fn default() -> Self {
        Calls(Seen(Default::default()))
    }
}

impl Calls {
    fn of(&self, body: &str) -> Vec<Instant> {
        self.0.get().into_iter().filter(|(b, _)| b == body).map(|(_, t)| t).collect()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("downstream unavailable")]
struct Unavailable;

#[kafka_listener(topics = "retried", group_id = "retried")]
async fn on_retried(body: String, State(calls): State<Calls>) -> Result<(), Unavailable> {
    calls.0.push((body.clone(), Instant::now()));
    if body == "fail" {
        return Err(Unavailable);
    }
    Ok(())
}

#[tokio::test]
async fn failing_handler_is_retried_with_exponential_back_off_then_dead_lettered() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("retried", 1).start().await.unwrap();
    let calls = Calls::default();
    let handler = DefaultErrorHandler::new()
        .back_off(ExponentialBackOff::new(Duration::from_millis(100), 2.0).max_retries(3))
        .recoverer(DeadLetterPublishingRecoverer::new());
    let app = broker
        .app()
        .state(calls.clone())
        .listener(on_retried::definition().error_handler(handler))
        .start()
        .await
        .unwrap();
    broker.produce("retried", Some("k"), "fail").await.unwrap();
    broker.produce("retried", Some("k"), "after").await.unwrap();
    let dead = dead_letters(&broker, "retried-dlt", 1).await;
    calls.0.wait_for(5, WAIT).await;
    let at = calls.of("fail");
    assert_eq!(at.len(), 4, "1 call + 3 retries");
    for (i, want) in [100u64, 200, 400].into_iter().enumerate() {
        let gap = at[i + 1] - at[i];
        assert!(gap >= Duration::from_millis(want), "retry {} came {gap:?} after the previous call", i + 1);
    }
    assert_eq!(calls.of("after").len(), 1);
    let h = dead[0].headers();
    assert_eq!(h.get_str(kh::DLT_EXCEPTION_FQCN), Some("spate::ListenerError::Handler"));
    assert_eq!(h.get_str(kh::DLT_EXCEPTION_MESSAGE), Some("downstream unavailable"));
    assert_eq!(h.get_str(kh::DLT_ORIGINAL_CONSUMER_GROUP), Some("retried"));
    app.shutdown().await;
    assert_eq!(broker.committed_offset("retried", "retried", 0).await.unwrap(), Some(2));
    assert_eq!(end_offsets(&broker, "retried-dlt").await, vec![1]);
}

// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
#[error("account closed")]
struct AccountClosed;

/// Wraps the real cause, so classification has to look through the chain.
#[derive(Debug, thiserror::Error)]
#[error("payment failed")]
struct PaymentFailed(#[source] AccountClosed);

#[kafka_listener(topics = "classified", group_id = "classified")]
async fn on_classified(body: String, State(calls): State<Calls>) -> Result<(), spate::BoxError> {
    calls.0.push((body.clone(), Instant::now()));
    match body.as_str() {
        "invalid" => Err(ValidationError::new("amount must be positive").into()),
        "closed" => Err(PaymentFailed(AccountClosed).into()),
        "transient" => Err(Unavailable.into()),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn not_retryable_errors_skip_the_retries() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("classified", 1).start().await.unwrap();
    let calls = Calls::default();
    let handler = DefaultErrorHandler::new()
        .back_off(FixedBackOff::new(Duration::from_millis(10), 4))
        .add_not_retryable::<AccountClosed>()
        .recoverer(DeadLetterPublishingRecoverer::new());
    let app = broker
        .app()
        .state(calls.clone())
        .listener(on_classified::definition().error_handler(handler))
        .start()
        .await
        .unwrap();
    for body in ["invalid", "closed", "transient", "ok"] {
        broker.produce("classified", None, body).await.unwrap();
    }
    let dead = dead_letters(&broker, "classified-dlt", 3).await;
    calls.0.wait_for(1 + 1 + 4 + 1, WAIT).await;
    assert_eq!(calls.of("invalid").len(), 1, "ValidationError is not retried");
    assert_eq!(calls.of("closed").len(), 1, "AccountClosed (as a source) is not retried");
    assert_eq!(calls.of("transient").len(), 4, "other errors are");
    assert_eq!(calls.of("ok").len(), 1);
    let messages: Vec<_> = dead.iter().map(|r| r.headers().get_str(kh::DLT_EXCEPTION_MESSAGE).unwrap()).collect();
    assert_eq!(messages, ["amount must be positive", "payment failed", "downstream unavailable"]);
    assert_eq!(
        dead[0].headers().get_str(kh::DLT_EXCEPTION_CAUSE_FQCN),
        Some("spate::error_handler::classify::ValidationError")
    );
    assert!(dead[1].headers().get_str(kh::DLT_EXCEPTION_STACKTRACE).unwrap().ends_with("caused by: account closed"));
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------------

/// Fails while `available` is false, then publishes to the dead-letter topic.
#[derive(Clone)]
struct Flaky {
    available: Arc<AtomicBool>,
    failures: Arc<AtomicUsize>,
    dlt: Arc<DeadLetterPublishingRecoverer>,
}

impl ConsumerRecordRecoverer for Flaky {
    fn recover<'a>(
        &'a self,
        record: &'a Record,
        error: &'a ListenerError,
    ) -> BoxFuture<'a, Result<(), spate::BoxError>> {
        Box::pin(async move {
            if !self.available.load(Ordering::SeqCst) {
                self.failures.fetch_add(1, Ordering::SeqCst);
                return Err("dead-letter store unavailable".into());
            }
            self.dlt.recover(record, error).await
        })
    }
}

#[kafka_listener(topics = "unrecovered", group_id = "unrecovered")]
async fn on_unrecovered(body: String, State(calls): State<Calls>) -> Result<(), Unavailable> {
    calls.0.push((body.clone(), Instant::now()));
    if body == "bad" {
        return Err(Unavailable);
    }
    Ok(())
}

#[tokio::test]
async fn a_failing_recoverer_loses_nothing_and_holds_the_commit() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("unrecovered", 1).start().await.unwrap();
    let calls = Calls::default();
    let flaky = Flaky {
        available: Arc::new(AtomicBool::new(false)),
        failures: Arc::new(AtomicUsize::new(0)),
        dlt: Arc::new(DeadLetterPublishingRecoverer::new()),
    };
    let handler = DefaultErrorHandler::new()
        .back_off(FixedBackOff::new(Duration::from_millis(10), 2))
        .recovery_retry_interval(Duration::from_millis(50))
        .recoverer(flaky.clone());
    let app = broker
        .app()
        .state(calls.clone())
        .listener(on_unrecovered::definition().ack_mode(AckMode::Record).error_handler(handler))
        .start()
        .await
        .unwrap();
    for body in ["ok0", "bad", "ok2"] {
        broker.produce("unrecovered", None, body).await.unwrap();
    }
    wait_committed(&broker, "unrecovered", "unrecovered", 0, 1).await;
    spate::test::wait_until(WAIT, "3 failed recoveries", || flaky.failures.load(Ordering::SeqCst) >= 3).await.unwrap();
    // The record is neither skipped nor committed past while it cannot be recovered.
    assert_eq!(broker.committed_offset("unrecovered", "unrecovered", 0).await.unwrap(), Some(1));
    assert!(calls.of("ok2").is_empty());
    assert_eq!(end_offsets(&broker, "unrecovered-dlt").await.iter().sum::<i64>(), 0);
    flaky.available.store(true, Ordering::SeqCst);
    let dead = dead_letters(&broker, "unrecovered-dlt", 1).await;
    assert_eq!(dead[0].value(), Some(&b"bad"[..]));
    assert_eq!(i64_header(dead[0].headers(), kh::DLT_ORIGINAL_OFFSET), 1);
    wait_committed(&broker, "unrecovered", "unrecovered", 0, 3).await;
    assert_eq!(calls.of("ok2").len(), 1);
    app.shutdown().await;
    assert_eq!(end_offsets(&broker, "unrecovered-dlt").await, vec![1]);
}

// ---------------------------------------------------------------------------------------------------------------

#[kafka_listener(topics = "batch-partial", group_id = "batch-partial", batch = true)]
async fn on_batch_partial(records: Vec<Record>, State(calls): State<Seen<Vec<String>>>) -> Result<(), BatchFailed> {
    let bodies: Vec<String> =
        records.iter().map(|r| String::from_utf8_lossy(r.value().unwrap_or(b"")).into()).collect();
    calls.push(bodies.clone());
    BatchFailed::collect(bodies.iter().map(|b| {
        if b == "3" || b == "7" {
            Err(format!("cannot handle {b}"))
        } else {
            Ok(())
        }
    }))
}

#[tokio::test]
async fn batch_listener_retries_and_dead_letters_only_the_failed_records() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("batch-partial", 1).start().await.unwrap();
    for i in 0..10 {
        broker.produce("batch-partial", None, i.to_string()).await.unwrap();
    }
    let calls = Seen::<Vec<String>>::default();
    let handler = DefaultErrorHandler::new()
        .back_off(FixedBackOff::new(Duration::from_millis(50), 3))
        .recoverer(DeadLetterPublishingRecoverer::new());
    let app = broker
        .app()
        .state(calls.clone())
        .listener(on_batch_partial::definition().error_handler(handler))
        .start()
        .await
        .unwrap();
    let dead = dead_letters(&broker, "batch-partial-dlt", 2).await;
    let dead_offsets: Vec<i64> = dead.iter().map(|r| i64_header(r.headers(), kh::DLT_ORIGINAL_OFFSET)).collect();
    assert_eq!(dead_offsets, [3, 7]);
    assert_eq!(dead[0].headers().get_str(kh::DLT_EXCEPTION_MESSAGE), Some("cannot handle 3"));
    wait_committed(&broker, "batch-partial", "batch-partial", 0, 10).await;
    let deliveries = calls.get();
    let count = |v: &str| deliveries.iter().flatten().filter(|b| *b == v).count();
    for i in 0..10 {
        let want = if i == 3 || i == 7 { 3 } else { 1 };
        assert_eq!(count(&i.to_string()), want, "deliveries of record {i}: {deliveries:?}");
    }
    assert!(
        deliveries.iter().any(|d| d.len() > 2 && d.contains(&"3".to_string())),
        "a failed record was delivered with good ones: {deliveries:?}"
    );
    // Retries carry only failed records.
    for d in deliveries.iter().filter(|d| d.iter().all(|b| b == "3" || b == "7")) {
        assert!(!d.is_empty());
    }
    assert_eq!(deliveries.iter().filter(|d| d.iter().all(|b| b == "3" || b == "7")).map(Vec::len).sum::<usize>(), 4);
    app.shutdown().await;
    assert_eq!(end_offsets(&broker, "batch-partial-dlt").await, vec![2]);
}

// ---------------------------------------------------------------------------------------------------------------

#[kafka_listener(topics = "slow", group_id = "slow")]
async fn on_slow(body: String, State(calls): State<Calls>) {
    calls.0.push((body.clone(), Instant::now()));
    if body == "slow" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

#[tokio::test]
async fn a_timeout_layer_fails_the_call_which_is_retried_then_dead_lettered() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("slow", 1).start().await.unwrap();
    let calls = Calls::default();
    let handler = DefaultErrorHandler::new()
        .back_off(FixedBackOff::new(Duration::from_millis(20), 3))
        .recoverer(DeadLetterPublishingRecoverer::new());
    let def = on_slow::definition()
        .layer(layers::timeout(Duration::from_millis(200)))
        .layer(layers::concurrency_limit(1))
        .error_handler(handler);
    let app = broker.app().state(calls.clone()).listener(def).start().await.unwrap();
    broker.produce("slow", None, "slow").await.unwrap();
    broker.produce("slow", None, "fast").await.unwrap();
    let dead = dead_letters(&broker, "slow-dlt", 1).await;
    calls.0.wait_for(4, WAIT).await;
    let at = calls.of("slow");
    assert_eq!(at.len(), 3, "each attempt timed out and was retried");
    for w in at.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(200 + 20), "an attempt lasts the timeout, then the back-off");
    }
    let h = dead[0].headers();
    assert_eq!(h.get_str(kh::DLT_EXCEPTION_FQCN), Some("spate::ListenerError::Handler"));
    assert_eq!(h.get_str(kh::DLT_EXCEPTION_CAUSE_FQCN), Some("tower::timeout::error::Elapsed"));
    assert_eq!(h.get_str(kh::DLT_EXCEPTION_MESSAGE), Some("request timed out"));
    assert_eq!(calls.of("fast").len(), 1);
    app.shutdown().await;
    assert_eq!(broker.committed_offset("slow", "slow", 0).await.unwrap(), Some(2));
}
