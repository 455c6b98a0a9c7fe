//! Transactions against the embedded broker: a transactional listener (input → output) in a child process (this
//! test binary re-executed) is SIGKILLed at random points and restarted, and every input appears in the output
//! exactly once for a read_committed reader; `in_transaction` commits and aborts (also on panic); a fenced
//! listener producer stops the container with an event; a transactional factory refuses sends outside a
//! transaction.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use spate::test::{wait_for_assignment, EmbeddedBroker};
use spate::{
    kafka_listener, App, BoxError, ConsumerRecordRecoverer, ContainerEvent, DefaultErrorHandler, FixedBackOff,
    KafkaTemplate, ListenerError, Record, SendError, State, TransactionError,
};

const PREFIX: &str = "tx-";
const EOS_IN: &str = "eos-in";
const EOS_OUT: &str = "eos-out";
const EOS_PARTITIONS: i32 = 3;
const EOS_RECORDS: usize = 2000;
const CHILD_ENV: &str = "SPATE_TXN_CHILD_BOOTSTRAP";

#[kafka_listener(topics = "eos-in", group_id = "eos", id = "eos-transform", concurrency = 2)]
#[send_to("eos-out")]
async fn transform(value: String) -> String {
    format!("out-{value}")
}

/// The transactional listener of the exactly-once test, run until killed.
#[test]
#[ignore = "child process of transactional_listener_killed_at_random_points_outputs_every_record_exactly_once"]
fn child_transactional_listener() {
    let Ok(bootstrap) = std::env::var(CHILD_ENV) else { return };
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let app = App::new()
            .without_env()
            .config_dir(dir.path())
            .discover_listeners(false)
            .set("kafka.bootstrap_servers", &bootstrap)
            .set("kafka.consumer.session_timeout_ms", 6000)
            .set("kafka.consumer.heartbeat_interval_ms", 500)
            .set("kafka.consumer.fetch_max_wait_ms", 50)
            .set("kafka.producer.transaction_id_prefix", PREFIX)
            .set("kafka.producer.transaction_timeout_ms", 10000)
            .listener(transform::definition())
            .start()
            .await
            .unwrap();
        let container = app.container("eos-transform").unwrap();
        wait_for_assignment(&container, EOS_PARTITIONS as usize, Duration::from_secs(90)).await.unwrap();
        println!("ready");
        // Runs until the parent kills it.
        std::future::pending::<()>().await;
    });
}

/// The child dies with the test's runtime thread that spawned it (PR_SET_PDEATHSIG), so a failing or killed test
/// never leaves it behind.
fn die_with_the_test(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts a child and waits (up to a deadline) until its consumers hold every partition; `ready` is false when it
/// exited or did not get there in time (it is then killed; the next round starts another).
async fn spawn_child(bootstrap: &str) -> (Child, bool) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_transactional_listener", "--ignored", "--nocapture"])
        .env(CHILD_ENV, bootstrap)
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("SPATE_TXN_DEBUG").is_some() { Stdio::inherit() } else { Stdio::null() });
    die_with_the_test(&mut cmd);
    // Spawned from a runtime worker thread, which lives as long as the test (a blocking-pool thread may exit
    // early and take the child with it).
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut ready = false;
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) if l.contains("ready") => {
                    ready = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(ready);
    });
    let ready = matches!(tokio::time::timeout(Duration::from_secs(120), rx).await, Ok(Ok(true)));
    (child, ready)
}

async fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}

/// Values of `topic` from the beginning: keeps reading until `want` arrived and nothing new came for `settle`,
/// or `deadline` passed. The consumer is dropped while the broker is up (closing one waits for the broker).
async fn read_values(bootstrap: &str, topic: &str, isolation: &str, want: usize, settle: Duration) -> Vec<String> {
    let (bootstrap, topic, isolation) = (bootstrap.to_string(), topic.to_string(), isolation.to_string());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("reader-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("isolation.level", &isolation)
            .create()
            .unwrap();
        let md = c.fetch_metadata(Some(&topic), Duration::from_secs(30)).unwrap();
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(&topic, p.id(), Offset::Beginning).unwrap();
            }
        }
        c.assign(&tpl).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = Instant::now();
        let mut out = Vec::new();
        while Instant::now() < deadline && !(out.len() >= want && last.elapsed() >= settle) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
                last = Instant::now();
            }
        }
        out
    })
    .await
    .unwrap()
}

/// A small deterministic generator, seeded from the clock and printed so a failing run can be replayed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_listener_killed_at_random_points_outputs_every_record_exactly_once() {
    common::init_tracing();
    let seed = std::env::var("SPATE_TXN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("SPATE_TXN_SEED={seed}");
    let mut rng = Rng(seed);
    let broker =
        EmbeddedBroker::builder().topic(EOS_IN, EOS_PARTITIONS).topic(EOS_OUT, EOS_PARTITIONS).start().await.unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    let input: KafkaTemplate<String, String> = broker.template();
    let sends: Vec<_> =
        (0..EOS_RECORDS).map(|i| input.send_to(EOS_IN, i as i32 % EOS_PARTITIONS, None, i.to_string())).collect();
    for r in futures::future::join_all(sends).await {
        r.unwrap();
    }

    // Crash rounds: each incarnation fences the previous one and aborts what it left open.
    let rounds = 6;
    let mut ready_rounds = 0;
    for round in 0..rounds {
        let (child, ready) = spawn_child(&bootstrap).await;
        ready_rounds += usize::from(ready);
        let pause = 100 + rng.below(1500);
        eprintln!("round {round}: ready = {ready}, killing after {pause} ms");
        if ready {
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        kill(child).await;
    }
    assert!(ready_rounds > 0, "seed {seed}: no incarnation ever got its partitions");

    // A last incarnation runs until the output has caught up.
    let (mut child, _) = spawn_child(&bootstrap).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let got = read_values(&bootstrap, EOS_OUT, "read_committed", EOS_RECORDS, Duration::from_secs(1)).await;
        eprintln!("output: {} committed records", got.len());
        if got.len() >= EOS_RECORDS || Instant::now() > deadline {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            child = spawn_child(&bootstrap).await.0;
        }
    }
    kill(child).await;

    let got = read_values(&bootstrap, EOS_OUT, "read_committed", EOS_RECORDS + 1, Duration::from_secs(3)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for v in &got {
        *counts.entry(v.clone()).or_default() += 1;
    }
    let missing: Vec<usize> = (0..EOS_RECORDS).filter(|i| !counts.contains_key(&format!("out-{i}"))).collect();
    let duplicated: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: {} inputs missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        duplicated.is_empty(),
        "seed {seed}: {} outputs duplicated, e.g. {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(10)]
    );
    assert_eq!(got.len(), EOS_RECORDS, "seed {seed}: unexpected extra output");
    let raw = read_values(&bootstrap, EOS_OUT, "read_uncommitted", EOS_RECORDS, Duration::from_secs(2)).await;
    eprintln!("seed {seed}: {} records in the output log, {} committed", raw.len(), got.len());
    broker.shutdown().await.unwrap();
}

async fn transactional_app(broker: &EmbeddedBroker, prefix: &str) -> spate::RunningApp {
    broker.app().set("kafka.producer.transaction_id_prefix", prefix).start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_transaction_commit_is_visible_to_read_committed_readers() {
    let broker = EmbeddedBroker::builder().topic("tx-commit", 1).start().await.unwrap();
    let app = transactional_app(&broker, "commit-").await;
    let template: KafkaTemplate<String, String> = app.template();
    let sent = template
        .in_transaction(|tx| async move {
            for i in 0..3 {
                tx.send("tx-commit", None, format!("v{i}")).await?;
            }
            Ok(3)
        })
        .await
        .unwrap();
    assert_eq!(sent, 3);
    let got = read_values(broker.bootstrap_servers(), "tx-commit", "read_committed", 3, Duration::from_secs(1)).await;
    assert_eq!(got, vec!["v0", "v1", "v2"]);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_transaction_error_aborts_what_was_sent() {
    let broker = EmbeddedBroker::builder().topic("tx-abort", 1).start().await.unwrap();
    let app = transactional_app(&broker, "abort-").await;
    let template: KafkaTemplate<String, String> = app.template();
    let err = template
        .in_transaction(|tx| async move {
            tx.send("tx-abort", None, "aborted-1".to_string()).await?;
            tx.send("tx-abort", None, "aborted-2".to_string()).await?;
            Err::<(), _>("business rule failed".into())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, TransactionError::RolledBack(ref e) if e.to_string() == "business rule failed"), "{err}");
    template
        .in_transaction(|tx| async move { Ok(tx.send("tx-abort", None, "after".to_string()).await?) })
        .await
        .unwrap();
    // The aborted records are in the log, but a read_committed reader skips them and sees the later commit.
    let raw = read_values(broker.bootstrap_servers(), "tx-abort", "read_uncommitted", 3, Duration::from_secs(1)).await;
    assert_eq!(raw, vec!["aborted-1", "aborted-2", "after"]);
    let committed =
        read_values(broker.bootstrap_servers(), "tx-abort", "read_committed", 1, Duration::from_secs(1)).await;
    assert_eq!(committed, vec!["after"]);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_transaction_panic_aborts_and_the_panic_continues() {
    let broker = EmbeddedBroker::builder().topic("tx-panic", 1).start().await.unwrap();
    let app = transactional_app(&broker, "panic-").await;
    let template: KafkaTemplate<String, String> = app.template();
    let t = template.clone();
    let joined = tokio::spawn(async move {
        t.in_transaction(|tx| async move {
            tx.send("tx-panic", None, "aborted".to_string()).await?;
            if tx.is_in_transaction() {
                panic!("handler bug");
            }
            Ok(())
        })
        .await
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    template
        .in_transaction(|tx| async move { Ok(tx.send("tx-panic", None, "after".to_string()).await?) })
        .await
        .unwrap();
    let committed =
        read_values(broker.bootstrap_servers(), "tx-panic", "read_committed", 1, Duration::from_secs(1)).await;
    assert_eq!(committed, vec!["after"]);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_in_transaction_calls_run_on_different_producers() {
    let broker = EmbeddedBroker::builder().topic("tx-concurrent", 1).start().await.unwrap();
    let app = transactional_app(&broker, "concurrent-").await;
    let template: KafkaTemplate<String, String> = app.template();
    // Every transaction waits inside for all the others: on one shared producer this could never finish.
    let n = 4;
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let calls = (0..n).map(|i| {
        let barrier = barrier.clone();
        template.in_transaction(move |tx| async move {
            tx.send("tx-concurrent", None, format!("c{i}")).await?;
            barrier.wait().await;
            Ok(())
        })
    });
    let results = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(calls)).await.unwrap();
    for r in results {
        r.unwrap();
    }
    let mut got =
        read_values(broker.bootstrap_servers(), "tx-concurrent", "read_committed", n, Duration::from_secs(1)).await;
    got.sort();
    assert_eq!(got, vec!["c0", "c1", "c2", "c3"]);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_outside_a_transaction_on_a_transactional_factory_is_refused() {
    let broker = EmbeddedBroker::builder().topic("tx-outside", 1).start().await.unwrap();
    let app = transactional_app(&broker, "outside-").await;
    let template: KafkaTemplate<String, String> = app.template();
    let err = template.send("tx-outside", None, "v".to_string()).await.unwrap_err();
    assert!(matches!(err, SendError::NotInTransaction { ref topic } if topic == "tx-outside"), "{err}");
    assert!(err.to_string().contains("in_transaction"), "{err}");
    assert!(!template.is_in_transaction());
    app.shutdown().await;
}

#[kafka_listener(topics = "fence-in", group_id = "fence", id = "fence-transform", concurrency = 2)]
#[send_to("fence-out")]
async fn fence_transform(value: String) -> String {
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_listener_producer_stops_the_container_with_an_event() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("fence-in", 1).topic("fence-out", 1).start().await.unwrap();
    let app = broker
        .app()
        .set("kafka.producer.transaction_id_prefix", PREFIX)
        .listener(fence_transform::definition())
        .start()
        .await
        .unwrap();
    let container = app.container("fence-transform").unwrap();
    let mut events = container.events();
    wait_for_assignment(&container, 1, common::WAIT).await.unwrap();
    broker.produce("fence-in", None, "one").await.unwrap();
    let out =
        read_values(broker.bootstrap_servers(), "fence-out", "read_committed", 1, Duration::from_millis(200)).await;
    assert_eq!(out, vec!["one"]);

    // Second instances of both consumer slots take over their transactional.ids. Only the consumer owning the
    // partition sends again and learns it was fenced; the other one stops with the container.
    let bootstrap = broker.bootstrap_servers().to_string();
    let usurpers = tokio::task::spawn_blocking(move || {
        (0..2)
            .map(|i| {
                let p: BaseProducer = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("transactional.id", format!("{PREFIX}fence.fence-transform.{i}"))
                    .create()
                    .unwrap();
                p.init_transactions(Duration::from_secs(30)).unwrap();
                p
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    broker.produce("fence-in", None, "two").await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut failed = Vec::new();
    let mut stopped = std::collections::BTreeSet::new();
    while stopped.len() < 2 {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(ContainerEvent::TransactionFailed { consumer, transactional_id, fenced, .. })) => {
                failed.push((consumer, transactional_id, fenced))
            }
            Ok(Ok(ContainerEvent::ConsumerStopped { consumer, .. })) => {
                stopped.insert(consumer);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("event stream: {e}"),
            Err(_) => panic!("consumers stopped within 60 s: {stopped:?} (TransactionFailed seen: {failed:?})"),
        }
    }
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (consumer, transactional_id, fenced) = failed.pop().unwrap();
    assert_eq!(transactional_id, format!("{PREFIX}fence.fence-transform.{consumer}"));
    assert!(fenced);
    // The fenced delivery was never committed.
    let out = read_values(broker.bootstrap_servers(), "fence-out", "read_committed", 1, Duration::from_secs(1)).await;
    assert_eq!(out, vec!["one"]);
    app.shutdown().await;
    let _ = tokio::task::spawn_blocking(move || drop(usurpers)).await;
    broker.shutdown().await.unwrap();
}

/// Sends a dead letter through a template of the listener's (transactional) factory, known once the app started.
#[derive(Clone, Default)]
struct DeadLetters(Arc<std::sync::OnceLock<KafkaTemplate<String, String>>>);

impl ConsumerRecordRecoverer for DeadLetters {
    fn recover<'a>(&'a self, record: &'a Record, _error: &'a ListenerError) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let template = self.0.get().ok_or("no template yet")?;
            let value = String::from_utf8_lossy(record.value().unwrap_or_default()).into_owned();
            template.send("txr-dlt", None, value).await?;
            Ok(())
        })
    }
}

static DEAD_LETTERS: std::sync::LazyLock<DeadLetters> = std::sync::LazyLock::new(DeadLetters::default);

fn two_attempts_then_dead_letter() -> DefaultErrorHandler {
    DefaultErrorHandler::new()
        .back_off(FixedBackOff { interval: Duration::ZERO, max_attempts: 2 })
        .recoverer(DEAD_LETTERS.clone())
}

/// Values that already failed once.
#[derive(Clone, Default)]
struct FailedOnce(Arc<parking_lot::Mutex<std::collections::HashSet<String>>>);

#[kafka_listener(topics = "txr-in", group_id = "txr", id = "txr", error_handler = two_attempts_then_dead_letter)]
async fn forward_then_maybe_fail(
    value: String,
    template: KafkaTemplate<String, String>,
    State(failed): State<FailedOnce>,
) -> Result<(), BoxError> {
    // Sent before the failure: visible only if the delivery's transaction commits.
    template.send("txr-out", None, format!("out-{value}")).await?;
    if value == "poison" || (value == "flaky" && failed.0.lock().insert(value.clone())) {
        return Err(format!("cannot handle {value}").into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_aborts_its_sends_and_the_recovery_commits_with_the_offsets() {
    let broker =
        EmbeddedBroker::builder().topic("txr-in", 1).topic("txr-out", 1).topic("txr-dlt", 1).start().await.unwrap();
    let app = broker
        .app()
        .set("kafka.producer.transaction_id_prefix", "txr-")
        .state(FailedOnce::default())
        .listener(forward_then_maybe_fail::definition())
        .start()
        .await
        .unwrap();
    DEAD_LETTERS.0.set(app.template()).unwrap();
    for v in ["a", "flaky", "poison", "b"] {
        broker.produce("txr-in", None, v).await.unwrap();
    }
    let bootstrap = broker.bootstrap_servers();
    let out = read_values(bootstrap, "txr-out", "read_committed", 3, Duration::from_secs(1)).await;
    assert_eq!(out, vec!["out-a", "out-flaky", "out-b"]);
    let dlt = read_values(bootstrap, "txr-dlt", "read_committed", 1, Duration::from_secs(1)).await;
    assert_eq!(dlt, vec!["poison"]);
    // The aborted attempts did write: once for "flaky", twice for "poison".
    let raw = read_values(bootstrap, "txr-out", "read_uncommitted", 6, Duration::from_secs(1)).await;
    assert_eq!(raw, vec!["out-a", "out-flaky", "out-flaky", "out-poison", "out-poison", "out-b"]);
    // The offsets were committed by the transactions, up to the last record.
    wait_until_committed(&broker, "txr", "txr-in", 4).await;
    app.shutdown().await;
}

async fn wait_until_committed(broker: &EmbeddedBroker, group: &str, topic: &str, offset: i64) {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let committed = broker.committed_offset(group, topic, 0).await.unwrap();
        if committed == Some(offset) {
            return;
        }
        assert!(Instant::now() < deadline, "committed offset {committed:?}, expected {offset}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the first delivery of a batch was already failed once.
#[derive(Clone, Default)]
struct FailFirstBatch(Arc<std::sync::atomic::AtomicBool>);

#[kafka_listener(topics = "txb-in", group_id = "txb", id = "txb", batch = true)]
async fn forward_batch(
    values: Vec<String>,
    template: KafkaTemplate<String, String>,
    State(fail): State<FailFirstBatch>,
) -> Result<(), BoxError> {
    for v in &values {
        template.send("txb-out", None, format!("out-{v}")).await?;
    }
    if !fail.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err("the first batch fails once".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_batch_listener_commits_each_batch_with_its_offsets_once() {
    let broker = EmbeddedBroker::builder().topic("txb-in", 1).topic("txb-out", 1).start().await.unwrap();
    let input: KafkaTemplate<String, String> = broker.template();
    let sends: Vec<_> = (0..20).map(|i| input.send("txb-in", None, i.to_string())).collect();
    for r in futures::future::join_all(sends).await {
        r.unwrap();
    }
    let app = broker
        .app()
        .set("kafka.producer.transaction_id_prefix", "txb-")
        .state(FailFirstBatch::default())
        .listener(forward_batch::definition())
        .start()
        .await
        .unwrap();
    let out = read_values(broker.bootstrap_servers(), "txb-out", "read_committed", 20, Duration::from_secs(1)).await;
    assert_eq!(out, (0..20).map(|i| format!("out-{i}")).collect::<Vec<_>>());
    wait_until_committed(&broker, "txb", "txb-in", 20).await;
    // The failed first attempt wrote its outputs too, but aborted them.
    let raw = read_values(broker.bootstrap_servers(), "txb-out", "read_uncommitted", 21, Duration::from_secs(1)).await;
    assert!(raw.len() > 20, "{} records in the raw log", raw.len());
    app.shutdown().await;
}
