//! Non-blocking retries (`#[retryable_topic]`) against the embedded broker: back-off between deliveries on the
//! retry topics, the DLT with its headers and handler, pausing (not blocking) while a record waits, deserialization
//! failures straight to the DLT, the topics created at start-up, and what the DLT strategy does at the end of the
//! chain.
#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;

use std::time::{Duration, Instant};

use common::{Seen, WAIT};
use rdkafka::consumer::{BaseConsumer, Consumer};
use spate::kafka_headers as kh;
use spate::test::{wait_for_assignment, wait_until, EmbeddedBroker};
use spate::{
    dlt_handler, kafka_listener, ContainerEvent, Delivery, DltInfo, DltStrategy, ErrorKind, FromRecord, Headers, Json,
    ListenerDefinition, ListenerError, Meta, Outcome, RetryBackOff, RetryTopicConfiguration, State,
    TopicSuffixingStrategy,
};

/// One delivery seen by a handler: topic, partition, body, when.
type Attempt = (String, i32, String, Instant);

#[derive(Clone)]
struct Probe {
    attempts: Seen<Attempt>,
    handled: Seen<String>,
    dlt: Seen<(String, DltInfo, Meta)>,
}

impl Probe {
    fn new() -> Self {
        Probe { attempts: Seen(Default::default()), handled: Seen::default(), dlt: Seen(Default::default()) }
    }

    fn attempts_of(&self, body: &str) -> Vec<Attempt> {
        self.attempts.get().into_iter().filter(|a| a.2 == body).collect()
    }
}

/// Partition high watermarks of a topic (how many records each partition holds).
async fn high_watermarks(broker: &EmbeddedBroker, topic: &str, partitions: i32) -> Vec<i64> {
    let bootstrap = broker.bootstrap_servers().to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", &bootstrap).set("group.id", "wm").create().unwrap();
        (0..partitions).map(|p| c.fetch_watermarks(&topic, p, Duration::from_secs(10)).unwrap().1).collect()
    })
    .await
    .unwrap()
}

async fn wait_all_assigned(app: &spate::RunningApp, ids_and_partitions: &[(&str, usize)]) {
    for (id, n) in ids_and_partitions {
        let c = app.container(id).unwrap_or_else(|| panic!("no container `{id}`"));
        wait_for_assignment(&c, *n, WAIT).await.unwrap();
    }
}

// --- back-off between deliveries, success handled once ---------------------------------------------------------

#[kafka_listener(topics = "payments", group_id = "payments")]
#[retryable_topic(attempts = 4, backoff(delay_ms = 500, multiplier = 2.0))]
async fn on_payment(body: String, meta: Meta, State(p): State<Probe>) -> Result<(), std::io::Error> {
    p.attempts.push((meta.topic.clone(), meta.partition, body.clone(), Instant::now()));
    if body == "flaky" && p.attempts_of("flaky").len() <= 2 {
        return Err(std::io::Error::other("not yet"));
    }
    p.handled.push(body);
    Ok(())
}

#[tokio::test]
async fn failing_record_is_redelivered_from_retry_topics_no_earlier_than_its_back_off_and_handled_once() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("payments", 2).start().await.unwrap();
    let probe = Probe::new();
    let app = broker.app().state(probe.clone()).listener(on_payment::definition()).start().await.unwrap();
    wait_all_assigned(&app, &[("on_payment", 2), ("on_payment-retry-500", 2), ("on_payment-retry-1000", 2)]).await;

    broker.produce_to("payments", 1, Some("k"), "flaky", Headers::new()).await.unwrap();
    probe.handled.wait_for(1, WAIT).await;
    let attempts = probe.attempts_of("flaky");
    let where_: Vec<(&str, i32)> = attempts.iter().map(|a| (a.0.as_str(), a.1)).collect();
    assert_eq!(where_, vec![("payments", 1), ("payments-retry-500", 1), ("payments-retry-1000", 1)]);
    let first_gap = attempts[1].3 - attempts[0].3;
    let second_gap = attempts[2].3 - attempts[1].3;
    assert!(first_gap >= Duration::from_millis(500), "second delivery after {first_gap:?}");
    assert!(second_gap >= Duration::from_millis(1000), "third delivery after {second_gap:?}");

    // A later record goes through; by then a duplicate delivery of "flaky" would have shown.
    broker.produce_to("payments", 1, Some("k"), "after", Headers::new()).await.unwrap();
    probe.handled.wait_for(2, WAIT).await;
    assert_eq!(probe.handled.get(), vec!["flaky", "after"]);
    assert_eq!(probe.attempts_of("flaky").len(), 3);
    assert_eq!(high_watermarks(&broker, "payments-dlt", 2).await, vec![0, 0]);
    app.shutdown().await;
    // The failed record's offset on the main topic was committed (after its forward).
    assert_eq!(broker.committed_offset("payments", "payments", 1).await.unwrap(), Some(2));
}

// --- DLT with headers and handler ---------------------------------------------------------------------------------

#[kafka_listener(topics = "invoices", group_id = "invoices")]
#[retryable_topic(attempts = 3, backoff(delay_ms = 100), dlt_handler = on_invoice_dlt)]
async fn on_invoice(body: String, meta: Meta, State(p): State<Probe>) -> Result<(), std::io::Error> {
    p.attempts.push((meta.topic.clone(), meta.partition, body.clone(), Instant::now()));
    if body == "poison" {
        return Err(std::io::Error::other("cannot bill"));
    }
    p.handled.push(body);
    Ok(())
}

#[dlt_handler]
async fn on_invoice_dlt(body: String, info: DltInfo, meta: Meta, State(p): State<Probe>) {
    p.dlt.push((body, info, meta));
}

#[tokio::test]
async fn always_failing_record_reaches_the_dlt_once_with_its_headers_and_the_dlt_handler_sees_it() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("invoices", 2).start().await.unwrap();
    let probe = Probe::new();
    let app = broker.app().state(probe.clone()).listener(on_invoice::definition()).start().await.unwrap();
    wait_all_assigned(&app, &[("on_invoice", 2), ("on_invoice-retry-100", 2), ("on_invoice-dlt", 2)]).await;

    let mut headers = Headers::new();
    headers.insert("trace", "abc");
    broker.produce_to("invoices", 1, Some("c1"), "ok-1", Headers::new()).await.unwrap();
    let sent = broker.produce_to("invoices", 1, Some("c1"), "poison", headers).await.unwrap();
    let dlt = probe.dlt.wait_for(1, WAIT).await;
    let (body, info, meta) = &dlt[0];
    assert_eq!(body, "poison");
    assert_eq!((meta.topic.as_str(), meta.partition), ("invoices-dlt", 1));
    assert_eq!(info.original_topic.as_deref(), Some("invoices"));
    assert_eq!(info.original_partition, Some(1));
    assert_eq!(info.original_offset, Some(sent.offset));
    assert_eq!(info.original_consumer_group.as_deref(), Some("invoices"));
    assert_eq!(info.exception_fqcn.as_deref(), Some("spate::ListenerError::Handler"));
    assert_eq!(info.exception_message.as_deref(), Some("cannot bill"));
    assert_eq!(info.attempts, Some(3));
    let topics: Vec<String> = probe.attempts_of("poison").into_iter().map(|a| a.0).collect();
    assert_eq!(topics, vec!["invoices", "invoices-retry-100", "invoices-retry-100"]);

    // The listener keeps going, and the poison pill is in the DLT once, with the raw record and headers.
    broker.produce_to("invoices", 1, Some("c1"), "ok-2", Headers::new()).await.unwrap();
    probe.handled.wait_for(2, WAIT).await;
    assert_eq!(probe.handled.get(), vec!["ok-1", "ok-2"]);
    assert_eq!(high_watermarks(&broker, "invoices-dlt", 2).await, vec![0, 1]);
    let raw = broker.consume("invoices-dlt", 1, WAIT).await.unwrap();
    let h = raw[0].headers();
    assert_eq!(raw[0].key().map(|k| k.to_vec()), Some(b"c1".to_vec()));
    assert_eq!(h.get_str("trace"), Some("abc"));
    assert_eq!(h.get_str(kh::DLT_ORIGINAL_TOPIC), Some("invoices"));
    assert_eq!(h.get(kh::DLT_ORIGINAL_PARTITION), Some(&1i32.to_be_bytes()[..]));
    assert_eq!(h.get(kh::DLT_ORIGINAL_OFFSET), Some(&sent.offset.to_be_bytes()[..]));
    assert!(h.get(kh::DLT_ORIGINAL_TIMESTAMP).is_some());
    assert_eq!(h.get_str(kh::DLT_EXCEPTION_MESSAGE), Some("cannot bill"));
    assert_eq!(probe.dlt.len(), 1);
    app.shutdown().await;
}

// --- pausing, not blocking ----------------------------------------------------------------------------------------

fn probing_listener(id: &str, topic: &str) -> ListenerDefinition {
    probing(id, topic, |body, delivery| body.starts_with("fail") && delivery == 1)
}

/// A listener that records each delivery in the probe and fails while `fails(body, delivery)` says so (`delivery`:
/// 1 for a body's first).
fn probing(id: &str, topic: &str, fails: fn(&str, usize) -> bool) -> ListenerDefinition {
    ListenerDefinition::new(
        id,
        tower::service_fn(move |d: Delivery| async move {
            let (record, ctx) = d.record_parts()?;
            let p: Probe = ctx.state().get().unwrap();
            let body = String::from_utf8_lossy(record.value().unwrap_or_default()).to_string();
            p.attempts.push((record.topic().to_string(), record.partition(), body.clone(), Instant::now()));
            if fails(&body, p.attempts_of(&body).len()) {
                return Err(ListenerError::handler("handler failed"));
            }
            p.handled.push(body);
            Ok::<_, ListenerError>(Outcome::done())
        }),
    )
    .topics([topic])
    .group_id(id)
    .requires_state::<Probe>()
}

#[tokio::test]
async fn while_a_retry_record_waits_for_its_due_time_other_partitions_and_the_main_topic_keep_flowing() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("shipments", 2).start().await.unwrap();
    let probe = Probe::new();
    let def = probing_listener("ship", "shipments")
        .retryable_topic(RetryTopicConfiguration::new().attempts(2).back_off(RetryBackOff::fixed(5000)));
    let app = broker.app().state(probe.clone()).listener(def).start().await.unwrap();
    wait_all_assigned(&app, &[("ship", 2), ("ship-retry-5000", 2)]).await;
    let mut events = app.container("ship-retry-5000").unwrap().events();

    broker.produce_to("shipments", 0, None, "fail-a", Headers::new()).await.unwrap();
    // The retry container holds partition 0 of the retry topic until "fail-a" is due.
    wait_until(WAIT, "the retry partition to be held", || loop {
        match events.try_recv() {
            Ok(ContainerEvent::ConsumerPaused { listener_id, partitions, .. }) if listener_id == "ship-retry-5000" => {
                assert_eq!(partitions, vec![spate::TopicPartition::new("shipments-retry-5000", 0)]);
                return true;
            }
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => return false,
        }
    })
    .await
    .unwrap();
    // Meanwhile: a due record on the retry topic's other partition (same consumer) and a main-topic record.
    broker.produce_to("shipments-retry-5000", 1, None, "direct", Headers::new()).await.unwrap();
    broker.produce_to("shipments", 1, None, "main", Headers::new()).await.unwrap();
    let handled = probe.handled.wait_for(3, WAIT).await;
    assert_eq!(handled.last().map(String::as_str), Some("fail-a"), "handled: {handled:?}");
    let a = probe.attempts_of("fail-a");
    assert_eq!(a.len(), 2);
    assert!(a[1].3 - a[0].3 >= Duration::from_millis(5000));
    app.shutdown().await;
}

// --- deserialization failures -------------------------------------------------------------------------------------

#[derive(serde::Deserialize, Debug)]
struct Parcel {
    #[allow(dead_code)]
    id: u32,
}

#[kafka_listener(topics = "parcels", group_id = "parcels")]
#[retryable_topic(attempts = 3, backoff(delay_ms = 100), exclude = ["panic"], dlt_handler = on_parcel_dlt)]
async fn on_parcel(Json(_p): Json<Parcel>, meta: Meta, State(p): State<Probe>) {
    p.attempts.push((meta.topic, meta.partition, "parcel".into(), Instant::now()));
}

#[dlt_handler]
async fn on_parcel_dlt(body: String, info: DltInfo, meta: Meta, State(p): State<Probe>) {
    p.dlt.push((body, info, meta));
}

#[tokio::test]
async fn deserialization_failures_skip_the_retry_topics_and_go_straight_to_the_dlt() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("parcels", 1).start().await.unwrap();
    let probe = Probe::new();
    let app = broker.app().state(probe.clone()).listener(on_parcel::definition()).start().await.unwrap();
    wait_all_assigned(&app, &[("on_parcel", 1), ("on_parcel-retry-100", 1), ("on_parcel-dlt", 1)]).await;

    broker.produce("parcels", None, "not json").await.unwrap();
    broker.produce("parcels", None, r#"{"id":1}"#).await.unwrap();
    let dlt = probe.dlt.wait_for(1, WAIT).await;
    assert_eq!(dlt[0].0, "not json");
    assert_eq!(dlt[0].1.exception_fqcn.as_deref(), Some("spate::ListenerError::Deserialization"));
    assert_eq!(dlt[0].1.attempts, None);
    probe.attempts.wait_for(1, WAIT).await;
    assert_eq!(high_watermarks(&broker, "parcels-retry-100", 1).await, vec![0]);
    assert_eq!(high_watermarks(&broker, "parcels-dlt", 1).await, vec![1]);
    app.shutdown().await;
}

// --- topic creation -----------------------------------------------------------------------------------------------

#[tokio::test]
async fn retry_topics_and_dlt_are_created_with_the_expected_names_and_partition_counts() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("alpha", 3).topic("beta", 1).start().await.unwrap();
    let probe = Probe::new();
    let by_delay = probing_listener("alpha", "alpha")
        .retryable_topic(RetryTopicConfiguration::new().attempts(4).back_off(RetryBackOff::exponential(100, 2.0, 200)));
    let by_index = probing_listener("beta", "beta").retryable_topic(
        RetryTopicConfiguration::new()
            .attempts(3)
            .suffixing_strategy(TopicSuffixingStrategy::SuffixWithIndexValue)
            .retry_topic_suffix("-again")
            .dlt_suffix("-dead")
            .num_partitions(2)
            .exclude([ErrorKind::Panic]),
    );
    let app = broker.app().state(probe.clone()).listener(by_delay).listener(by_index).start().await.unwrap();
    let admin = broker.admin().unwrap();
    let names = ["alpha-retry-100", "alpha-retry-200", "alpha-dlt", "beta-again-0", "beta-again-1", "beta-dead"];
    let found = admin.describe_topics(&names).await.unwrap();
    let expected: std::collections::BTreeMap<String, i32> = [
        ("alpha-retry-100", 3),
        ("alpha-retry-200", 3),
        ("alpha-dlt", 3),
        ("beta-again-0", 2),
        ("beta-again-1", 2),
        ("beta-dead", 2),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_string(), p))
    .collect();
    assert_eq!(found, expected);
    let ids = app.registry().listener_container_ids();
    for id in [
        "alpha",
        "alpha-retry-100",
        "alpha-retry-200",
        "alpha-dlt",
        "beta",
        "beta-again-0",
        "beta-again-1",
        "beta-dead",
    ] {
        assert!(ids.contains(&id.to_string()), "no container `{id}` in {ids:?}");
    }
    app.shutdown().await;
}

// --- a waiting record survives a restart --------------------------------------------------------------------------

#[tokio::test]
async fn a_record_waiting_on_a_retry_topic_survives_a_restart_and_is_delivered_when_due() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("refunds", 1).start().await.unwrap();
    let probe = Probe::new();
    let def = || {
        probing_listener("refund", "refunds")
            .retryable_topic(RetryTopicConfiguration::new().attempts(2).back_off(RetryBackOff::fixed(5000)))
    };
    let app = broker.app().state(probe.clone()).listener(def()).start().await.unwrap();
    wait_all_assigned(&app, &[("refund", 1), ("refund-retry-5000", 1)]).await;
    let mut events = app.container("refund-retry-5000").unwrap().events();
    broker.produce("refunds", None, "fail-r").await.unwrap();
    wait_until(WAIT, "the retry partition to be held", || loop {
        match events.try_recv() {
            Ok(ContainerEvent::ConsumerPaused { listener_id, .. }) if listener_id == "refund-retry-5000" => {
                return true
            }
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => return false,
        }
    })
    .await
    .unwrap();
    app.shutdown().await;
    // The main topic's record was committed past (its copy is on the retry topic); the held one was not.
    assert_eq!(broker.committed_offset("refund", "refunds", 0).await.unwrap(), Some(1));

    let app = broker.app().state(probe.clone()).listener(def()).start().await.unwrap();
    assert_eq!(probe.handled.wait_for(1, WAIT).await, vec!["fail-r"]);
    let a = probe.attempts_of("fail-r");
    assert_eq!(a.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(), vec!["refunds", "refunds-retry-5000"]);
    assert!(a[1].3 - a[0].3 >= Duration::from_millis(5000));
    app.shutdown().await;
}

// --- the end of the chain: DltStrategy --------------------------------------------------------------------------

/// A listener of `topic` whose every delivery fails, with `config` (with `attempts(1)`, failures go straight to
/// the end of the chain).
fn always_failing(id: &str, topic: &str, config: RetryTopicConfiguration) -> ListenerDefinition {
    probing(id, topic, |_, _| true).retryable_topic(config)
}

/// A DLT handler that records each delivery in the probe's `dlt` list and fails while `fails(body, seen)` says so
/// (`seen`: how many times this body has reached the handler, this time included).
fn dlt_recorder(fails: fn(&str, usize) -> bool) -> RetryTopicConfiguration {
    RetryTopicConfiguration::new().dlt_handler(tower::service_fn(move |d: Delivery| async move {
        let (record, ctx) = d.record_parts()?;
        let p: Probe = ctx.state().get().unwrap();
        let body = String::from_utf8_lossy(record.value().unwrap_or_default()).to_string();
        p.dlt.push((body.clone(), DltInfo::of(record), Meta::from_record(record, ctx)?));
        let seen = p.dlt.get().iter().filter(|(b, _, _)| *b == body).count();
        if fails(&body, seen) {
            return Err(ListenerError::handler(format!("dlt handler failed on delivery {seen}")));
        }
        Ok(Outcome::done())
    }))
}

/// A broker with `topic` (one partition) and an app whose always-failing listener of it (id and group `topic`) has
/// `config`, once the main and DLT containers have their partition.
async fn straight_to_the_dlt(
    topic: &str,
    config: RetryTopicConfiguration,
) -> (EmbeddedBroker, Probe, spate::RunningApp) {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic(topic, 1).start().await.unwrap();
    let probe = Probe::new();
    let def = always_failing(topic, topic, config);
    let app = broker.app().state(probe.clone()).listener(def).start().await.unwrap();
    wait_all_assigned(&app, &[(topic, 1), (&format!("{topic}-dlt"), 1)]).await;
    (broker, probe, app)
}

/// (body, DLT offset) of each DLT handler call.
fn dlt_calls(probe: &Probe) -> Vec<(String, i64)> {
    probe.dlt.get().into_iter().map(|(b, _, m)| (b, m.offset)).collect()
}

#[tokio::test]
async fn by_default_a_record_whose_dlt_handler_fails_goes_back_to_the_end_of_the_dlt() {
    let config = dlt_recorder(|body, seen| body == "lost" && seen == 1).attempts(1);
    let (broker, probe, app) = straight_to_the_dlt("letters", config).await;

    broker.produce("letters", None, "lost").await.unwrap();
    broker.produce("letters", None, "found").await.unwrap();
    // "lost" fails in the DLT handler and is sent to the end of the DLT (behind "found", unless "found" had not
    // reached the DLT yet), where its second delivery succeeds.
    let dlt = probe.dlt.wait_for(3, WAIT).await;
    let mut calls = dlt_calls(&probe);
    calls.sort_by_key(|(_, offset)| *offset);
    assert_eq!(calls.iter().map(|(_, o)| *o).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(calls[0].0, "lost");
    let lost: Vec<i64> = calls.iter().filter(|(b, _)| b == "lost").map(|(_, o)| *o).collect();
    assert_eq!(lost.len(), 2, "{calls:?}");
    // The copy sent back keeps the record's origin and says why the DLT handler failed.
    let again = &dlt.iter().find(|(b, _, m)| b == "lost" && m.offset == lost[1]).unwrap().1;
    assert_eq!(again.original_topic.as_deref(), Some("letters"));
    assert_eq!(again.original_offset, Some(0));
    assert_eq!(again.exception_message.as_deref(), Some("dlt handler failed on delivery 1"));
    app.shutdown().await;
    assert_eq!(high_watermarks(&broker, "letters-dlt", 1).await, vec![3]);
    assert_eq!(broker.committed_offset("letters", "letters-dlt", 0).await.unwrap(), Some(3));
}

#[tokio::test]
async fn with_fail_on_error_a_record_whose_dlt_handler_fails_is_dropped_and_the_dlt_moves_on() {
    let config = dlt_recorder(|body, _| body.starts_with("bad")).attempts(1).dlt_strategy(DltStrategy::FailOnError);
    let (broker, probe, app) = straight_to_the_dlt("parcels", config).await;

    for body in ["bad-1", "bad-2", "fine"] {
        broker.produce("parcels", None, body).await.unwrap();
    }
    probe.dlt.wait_for(3, WAIT).await;
    app.shutdown().await;
    // Each once: nothing was retried in place or sent back, and the DLT's offsets were committed past them.
    assert_eq!(dlt_calls(&probe), vec![("bad-1".into(), 0), ("bad-2".into(), 1), ("fine".into(), 2)]);
    assert_eq!(high_watermarks(&broker, "parcels-dlt", 1).await, vec![3]);
    assert_eq!(broker.committed_offset("parcels", "parcels-dlt", 0).await.unwrap(), Some(3));
}

#[tokio::test]
async fn with_no_dlt_a_record_out_of_retries_is_dropped_and_no_dlt_is_made() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("clicks", 1).start().await.unwrap();
    let probe = Probe::new();
    let config =
        RetryTopicConfiguration::new().attempts(2).back_off(RetryBackOff::fixed(100)).dlt_strategy(DltStrategy::NoDlt);
    let app = broker.app().state(probe.clone()).listener(always_failing("clicks", "clicks", config)).start().await;
    let app = app.unwrap();
    assert!(app.container("clicks-dlt").is_none());
    wait_all_assigned(&app, &[("clicks", 1), ("clicks-retry-100", 1)]).await;

    broker.produce("clicks", None, "c1").await.unwrap();
    broker.produce("clicks", None, "c2").await.unwrap();
    wait_until(WAIT, "both records delivered twice", || probe.attempts.len() == 4).await.unwrap();
    app.shutdown().await;
    let topics: Vec<String> = probe.attempts_of("c2").into_iter().map(|a| a.0).collect();
    assert_eq!(topics, vec!["clicks", "clicks-retry-100"]);
    // Given up on the retry topic: committed there, and never produced anywhere.
    assert_eq!(broker.committed_offset("clicks", "clicks-retry-100", 0).await.unwrap(), Some(2));
    let found = broker.admin().unwrap().describe_topics(&["clicks-retry-100", "clicks-dlt"]).await.unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), vec!["clicks-retry-100"]);
}

#[tokio::test]
async fn a_dlt_handler_with_no_dlt_is_refused_at_start() {
    let broker = EmbeddedBroker::builder().topic("orphans", 1).start().await.unwrap();
    let config = dlt_recorder(|_, _| false).dlt_strategy(DltStrategy::NoDlt);
    let err = broker.app().state(Probe::new()).listener(always_failing("orphans", "orphans", config)).start().await;
    let message = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("DltStrategy::NoDlt"), "{message}");
}
