//! Failure handling in the runtime against the embedded broker: the uncaught exception handler's three responses
//! (a replaced thread reprocesses from the last commit, a client shutdown stops only that instance, an application
//! shutdown stops every running instance but not one started later), a panic handled like an error, and the
//! deserialization and production exception handlers.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use spate::admin::TopicBuilder;
use spate::test::EmbeddedBroker;
use spate_streams::{
    BoxError, DeserializationHandler, KafkaStreams, ProcessingGuarantee, Processor, ProcessorContext,
    ProductionExceptionHandler, Record, State, StreamThreadExceptionResponse, StreamsBuilder, StreamsError, Topology,
};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

/// Upper-cases values; the first "poison" record it meets fails (an error, or a panic), later ones pass.
struct FailOnce {
    armed: Arc<AtomicBool>,
    panic: bool,
}

impl Processor<String, String, String, String> for FailOnce {
    fn process(
        &mut self,
        record: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), BoxError> {
        if record.value() == "poison" && self.armed.swap(false, Ordering::SeqCst) {
            if self.panic {
                panic!("poison record");
            }
            return Err("poison record".into());
        }
        let upper = record.value().to_uppercase();
        ctx.forward(record.with_value(upper))?;
        Ok(())
    }
}

fn fail_once_topology(armed: &Arc<AtomicBool>, panic: bool) -> Topology {
    let builder = StreamsBuilder::new();
    let armed = armed.clone();
    builder
        .stream::<String, String>("in")
        .process::<String, String, _>(move || FailOnce { armed: armed.clone(), panic }, &[])
        .to("out");
    builder.build()
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "not within 60 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Closes an instance that may have failed (state stays ERROR) while the broker is up.
async fn close_any(mut streams: KafkaStreams) -> State {
    tokio::task::spawn_blocking(move || {
        assert!(streams.close_timeout(WAIT), "threads did not stop within 60 s");
        streams.state()
    })
    .await
    .unwrap()
}

fn values(out: &[Out]) -> Vec<String> {
    out.iter().map(|o| String::from_utf8_lossy(o.value.as_deref().unwrap_or_default()).into_owned()).collect()
}

async fn replace_thread_case(panic: bool, guarantee: ProcessingGuarantee) {
    let broker = EmbeddedBroker::builder().topic("in", 1).topic("out", 1).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let armed = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    for v in ["a", "b", "poison", "c"] {
        produce(&broker, "in", "k", v).await;
    }
    let streams = tokio::task::spawn_blocking({
        let (topology, config, calls) = (
            fail_once_topology(&armed, panic),
            config(&broker, "replace", dir.path()).processing_guarantee(guarantee),
            calls.clone(),
        );
        move || {
            let mut s = KafkaStreams::new(topology, config);
            s.set_uncaught_exception_handler(move |e: &StreamsError| {
                calls.fetch_add(1, Ordering::SeqCst);
                assert!(e.to_string().contains("poison record"), "unexpected failure: {e}");
                StreamThreadExceptionResponse::ReplaceThread
            });
            s.start().unwrap();
            s
        }
    })
    .await
    .unwrap();
    // The failing record is read again from the last committed offset by the new thread, and passes this time.
    let eos = guarantee == ProcessingGuarantee::ExactlyOnceV2;
    let out = read(broker.bootstrap_servers(), "out", 4, eos).await;
    let got = values(&out);
    if eos {
        // The failed thread's transaction was aborted: committed output has every record once.
        assert_eq!(got, ["A", "B", "POISON", "C"]);
    }
    for v in ["A", "B", "POISON", "C"] {
        assert!(got.contains(&v.to_owned()), "{v} missing from {got:?}");
    }
    assert!(!armed.load(Ordering::SeqCst), "the poison record was never processed");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    wait_for_state(&streams, State::Running).await;
    produce(&broker, "in", "k", "d").await;
    let out = read(broker.bootstrap_servers(), "out", got.len() + 1, eos).await;
    assert!(values(&out).contains(&"D".to_owned()), "the replacement thread does not process new records");
    close(streams).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_thread_starts_a_new_thread_that_reprocesses_from_the_last_commit() {
    replace_thread_case(false, ProcessingGuarantee::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_thread_under_exactly_once_outputs_every_record_once() {
    replace_thread_case(false, ProcessingGuarantee::ExactlyOnceV2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_processor_goes_to_the_uncaught_exception_handler() {
    replace_thread_case(true, ProcessingGuarantee::AtLeastOnce).await;
}

async fn start_with_response(
    topology: Topology,
    config: spate_streams::StreamsConfig,
    response: StreamThreadExceptionResponse,
) -> KafkaStreams {
    tokio::task::spawn_blocking(move || {
        let mut s = KafkaStreams::new(topology, config);
        s.set_uncaught_exception_handler(move |_: &StreamsError| response);
        s.start().unwrap();
        s
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_client_stops_only_the_failing_instance_and_another_takes_over() {
    let broker = EmbeddedBroker::builder().topic("in", 2).topic("out", 2).start().await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let armed = Arc::new(AtomicBool::new(true));
    let response = StreamThreadExceptionResponse::ShutdownClient;
    let a =
        start_with_response(fail_once_topology(&armed, false), config(&broker, "client", dir_a.path()), response).await;
    wait_for_state(&a, State::Running).await;
    let b =
        start_with_response(fail_once_topology(&armed, false), config(&broker, "client", dir_b.path()), response).await;
    wait_for_state(&b, State::Running).await;
    for (k, v) in [("k1", "a"), ("k2", "b"), ("k3", "poison"), ("k4", "c")] {
        produce(&broker, "in", k, v).await;
    }
    wait_until("one instance in ERROR", || a.state() == State::Error || b.state() == State::Error).await;
    let (failed, survivor) = if a.state() == State::Error { (a, b) } else { (b, a) };
    assert!(failed.error().unwrap().contains("poison record"), "{:?}", failed.error());
    // The survivor gets the failed instance's partitions and processes the record that failed.
    let out = read(broker.bootstrap_servers(), "out", 4, false).await;
    let got = values(&out);
    for v in ["A", "B", "POISON", "C"] {
        assert!(got.contains(&v.to_owned()), "{v} missing from {got:?}");
    }
    assert_eq!(survivor.state(), State::Running, "{:?}", survivor.error());
    assert_eq!(close_any(failed).await, State::Error);
    close(survivor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_application_stops_every_running_instance_but_not_one_started_later() {
    let broker = EmbeddedBroker::builder().topic("in", 2).topic("out", 2).start().await.unwrap();
    let (dir_a, dir_b, dir_c) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let armed = Arc::new(AtomicBool::new(true));
    let response = StreamThreadExceptionResponse::ShutdownApplication;
    let a = start_with_response(fail_once_topology(&armed, false), config(&broker, "app-down", dir_a.path()), response)
        .await;
    let b = start_with_response(fail_once_topology(&armed, false), config(&broker, "app-down", dir_b.path()), response)
        .await;
    wait_for_state(&a, State::Running).await;
    wait_for_state(&b, State::Running).await;
    for (k, v) in [("k1", "a"), ("k2", "poison")] {
        produce(&broker, "in", k, v).await;
    }
    wait_until("both instances in ERROR", || a.state() == State::Error && b.state() == State::Error).await;
    let errors = [a.error().unwrap(), b.error().unwrap()];
    // One failed on the record; the other stopped on its request, which carries the reason.
    let requested = errors.iter().filter(|e| e.starts_with("application shutdown requested by instance")).count();
    assert_eq!(requested, 1, "{errors:?}");
    assert!(errors.iter().all(|e| e.contains("poison record")), "{errors:?}");
    assert_eq!(close_any(a).await, State::Error);
    assert_eq!(close_any(b).await, State::Error);

    // The request stays on the topic; an instance started afterwards ignores it and resumes the work.
    let c = start_with_response(fail_once_topology(&armed, false), config(&broker, "app-down", dir_c.path()), response)
        .await;
    wait_for_state(&c, State::Running).await;
    let out = read(broker.bootstrap_servers(), "out", 2, false).await;
    assert!(values(&out).contains(&"POISON".to_owned()), "{:?}", values(&out));
    assert_eq!(c.state(), State::Running);
    close(c).await;
}

fn i64_topology() -> Topology {
    let builder = StreamsBuilder::new();
    builder.stream::<String, i64>("numbers").map_values(|v| v * 10).to("out");
    builder.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_and_continue_skips_a_record_that_cannot_be_deserialized() {
    let broker = EmbeddedBroker::builder().topic("numbers", 1).topic("out", 1).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    broker.produce("numbers", Some("k"), 1i64.to_be_bytes().to_vec()).await.unwrap();
    broker.produce("numbers", Some("k"), b"bad".to_vec()).await.unwrap();
    broker.produce("numbers", Some("k"), 2i64.to_be_bytes().to_vec()).await.unwrap();
    let config =
        config(&broker, "deser-continue", dir.path()).deserialization_handler(DeserializationHandler::LogAndContinue);
    let streams = start(i64_topology(), config).await;
    let out = read(broker.bootstrap_servers(), "out", 2, false).await;
    assert_eq!(out.iter().map(Out::value_i64).collect::<Vec<_>>(), [10, 20]);
    assert_eq!(streams.state(), State::Running);
    close(streams).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_and_fail_stops_the_client_on_a_record_that_cannot_be_deserialized() {
    let broker = EmbeddedBroker::builder().topic("numbers", 1).topic("out", 1).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    broker.produce("numbers", Some("k"), b"bad".to_vec()).await.unwrap();
    // No uncaught exception handler: the default response shuts this client down.
    let streams = start(i64_topology(), config(&broker, "deser-fail", dir.path())).await;
    wait_until("state ERROR", || streams.state() == State::Error).await;
    let error = streams.error().unwrap();
    assert!(error.contains("KSTREAM-SOURCE"), "{error}");
    assert_eq!(close_any(streams).await, State::Error);
}

/// Values starting with "big" become 5000 bytes and go to `big-out`, whose `max.message.bytes` is 1000.
async fn production_case(
    handler: ProductionExceptionHandler,
    app: &str,
) -> (EmbeddedBroker, KafkaStreams, tempfile::TempDir) {
    let broker = EmbeddedBroker::builder().topic("in", 1).topic("out", 1).start().await.unwrap();
    broker
        .admin()
        .unwrap()
        .create_topics(&[TopicBuilder::name("big-out").partitions(1).config("max.message.bytes", "1000").build()])
        .await
        .unwrap();
    let builder = StreamsBuilder::new();
    let input = builder.stream::<String, String>("in");
    input.filter(|_, v| v.starts_with("big")).map_values(|v| v.repeat(5000 / v.len() + 1)).to("big-out");
    input.filter(|_, v| !v.starts_with("big")).to("out");
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker, app, dir.path()).production_exception_handler(handler);
    let streams = start(builder.build(), config).await;
    for v in ["a", "big", "b"] {
        produce(&broker, "in", "k", v).await;
    }
    (broker, streams, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_exception_handler_continue_drops_a_refused_record_and_goes_on() {
    let (broker, streams, _dir) = production_case(ProductionExceptionHandler::Continue, "produce-continue").await;
    let out = read(broker.bootstrap_servers(), "out", 2, false).await;
    assert_eq!(values(&out), ["a", "b"]);
    // The refused record's failure has been reported by now (it was sent before "b"); the client goes on.
    produce(&broker, "in", "k", "c").await;
    let out = read(broker.bootstrap_servers(), "out", 3, false).await;
    assert_eq!(values(&out), ["a", "b", "c"]);
    assert_eq!(streams.state(), State::Running, "{:?}", streams.error());
    close(streams).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_exception_handler_fail_stops_the_client_on_a_refused_record() {
    let (_broker, streams, _dir) = production_case(ProductionExceptionHandler::Fail, "produce-fail").await;
    wait_until("state ERROR", || streams.state() == State::Error).await;
    let error = streams.error().unwrap();
    assert!(error.contains("big-out"), "{error}");
    assert_eq!(close_any(streams).await, State::Error);
}
