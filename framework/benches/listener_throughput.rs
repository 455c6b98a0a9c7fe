//! Records/s through a `#[kafka_listener]` (concurrency 1 and 4) against a bare rdkafka `StreamConsumer` loop on the
//! same topic, both against the bundled broker in-process (on a runtime of its own). Run:
//! `cargo bench -p spate --bench listener_throughput` (`BENCH_RECORDS`, `BENCH_ROUNDS` to change the size;
//! `BENCH_ONLY=listener|unobserved|bare`, `BENCH_CONCURRENCY=1` and `BENCH_TOPIC=bench|bench-traced` to run one
//! side for profiling; `BENCH_VERBOSE=1` prints every run). Time and the process's CPU time are measured from the first
//! record received to the last, so group joins are not counted. Figures and analysis: docs/benchmarks.md.

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use spate::test::EmbeddedBroker;
use spate::{kafka_listener, Bytes, KafkaTemplate, State};

/// The same records twice: without headers, and each with a W3C `traceparent` (what a `KafkaTemplate` sends
/// by default, `kafka.template.observation_enabled`), which the listener parses, one bare loop ignores and another
/// looks up.
const TOPICS: [(&str, &str); 2] = [("bench", "no headers"), ("bench-traced", "traceparent header")];
const PARTITIONS: i32 = 4;

/// Counts records; remembers when the first and the target-th arrived, and the process's CPU time then. One
/// `Arc`, as application state usually is: `State<T>` clones it for every record.
#[derive(Clone)]
struct Counter(Arc<Counts>);

/// A value on cache lines of its own (128 bytes: x86 prefetches lines in pairs).
#[repr(align(128))]
struct Padded<T>(T);

struct Counts {
    /// The count every consumer increments, away from the `Arc`'s reference count (which `State<T>` changes for
    /// every record) and from the fields read for every record: sharing a line, the measuring counter and the
    /// measured reference count slowed each other down, which a real application's state does not suffer.
    n: Padded<AtomicU64>,
    first: OnceLock<(Instant, Duration)>,
    done: OnceLock<(Instant, Duration)>,
    /// Told when the target-th record arrived (the bare loops stop on it).
    finished: tokio::sync::Notify,
    target: u64,
}

/// CPU time of the whole process so far (broker, librdkafka's threads and the consumers alike).
fn process_cpu() -> Duration {
    // SAFETY: `getrusage` fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// What one run measured.
#[derive(Clone, Copy)]
struct Run {
    records_per_second: f64,
    /// Process CPU time per record, in microseconds: what the run costs when the machine is busy.
    cpu_micros_per_record: f64,
}

impl Counter {
    fn new(target: u64) -> Self {
        Counter(Arc::new(Counts {
            n: Padded(AtomicU64::new(0)),
            first: OnceLock::new(),
            done: OnceLock::new(),
            finished: tokio::sync::Notify::new(),
            target,
        }))
    }
    fn record(&self, bytes: usize) {
        std::hint::black_box(bytes);
        let c = &self.0;
        let _ = c.first.get_or_init(|| (Instant::now(), process_cpu()));
        if c.n.0.fetch_add(1, Ordering::Relaxed) + 1 == c.target {
            let _ = c.done.set((Instant::now(), process_cpu()));
            c.finished.notify_waiters();
        }
    }
    fn is_done(&self) -> bool {
        self.0.done.get().is_some()
    }
    async fn wait(&self) -> Run {
        while !self.is_done() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let c = &self.0;
        let (Some((t0, cpu0)), Some((t1, cpu1))) = (c.first.get(), c.done.get()) else {
            return Run { records_per_second: 0.0, cpu_micros_per_record: 0.0 };
        };
        let run = Run {
            records_per_second: c.target as f64 / (*t1 - *t0).as_secs_f64(),
            cpu_micros_per_record: (*cpu1 - *cpu0).as_secs_f64() * 1e6 / c.target as f64,
        };
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            eprintln!("run: {:.0} records/s, {:.2} CPU µs/record", run.records_per_second, run.cpu_micros_per_record);
        }
        run
    }
}

#[kafka_listener(topics = "${bench.topic}", group_id = "${bench.group}", concurrency = "${bench.concurrency}")]
async fn bench_listener(value: Bytes, State(c): State<Counter>) {
    c.record(value.len());
}

/// One run of the listener; `observation`: `kafka.listener.observation_enabled` (off, this listener reads no
/// headers at all, so its container skips them).
async fn framework_run(
    broker: &EmbeddedBroker,
    topic: &str,
    concurrency: usize,
    target: u64,
    round: usize,
    observation: bool,
) -> Run {
    let counter = Counter::new(target);
    let app = broker
        .app()
        .set("kafka.listener.observation_enabled", observation)
        .set("bench.topic", topic)
        .set("bench.group", format!("fw-{topic}-{concurrency}-{round}-{observation}"))
        .set("bench.concurrency", concurrency)
        .state(counter.clone())
        .listener(bench_listener::definition())
        .start()
        .await
        .expect("app starts");
    let rate = counter.wait().await;
    app.shutdown().await;
    rate
}

/// What the bare loop does with each message besides counting it.
#[derive(Clone, Copy, PartialEq)]
enum Bare {
    /// Nothing: the headers are never parsed.
    IgnoreHeaders,
    /// Looks up the `traceparent` header, as a loop continuing the producer's trace must (librdkafka parses a
    /// message's headers when first asked).
    ReadTraceparent,
}

async fn bare_run(
    broker: &EmbeddedBroker,
    topic: &str,
    concurrency: usize,
    target: u64,
    round: usize,
    mode: Bare,
) -> Run {
    let counter = Counter::new(target);
    let group = format!("bare-{topic}-{concurrency}-{round}-{}", mode as u8);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        // The group settings `EmbeddedBroker::app()` gives the listener's consumers.
        let consumer: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("group.id", &group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("fetch.wait.max.ms", "50")
            // The listener container's default (see config.rs): without it librdkafka 2.4+ waits a second before
            // refetching once its queue is drained, and the comparison would measure that stall, not the loop.
            .set("fetch.queue.backoff.ms", "10")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let c = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = consumer.stream();
            let mut since_commit = 0;
            // The loop a user would write: the stream, and a signal to stop (registered before the check, so the
            // notification cannot be missed).
            let finished = c.0.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            while !c.is_done() {
                let next = tokio::select! {
                    biased;
                    m = stream.next() => m,
                    _ = &mut finished => break,
                };
                if let Some(Ok(m)) = next {
                    if mode == Bare::ReadTraceparent {
                        use rdkafka::message::Headers;
                        let traceparent = m.headers().and_then(|h| h.iter().find(|h| h.key == "traceparent"));
                        std::hint::black_box(traceparent.and_then(|h| h.value));
                    }
                    c.record(m.payload().map(|p| p.len()).unwrap_or(0));
                    since_commit += 1;
                    // The same commit policy as the framework's default (after each poll's records, ~500).
                    if since_commit >= 500 {
                        let _ = consumer.commit_message(&m, rdkafka::consumer::CommitMode::Async);
                        since_commit = 0;
                    }
                }
            }
            drop(stream);
            // Dropping a group consumer closes it, which blocks until the broker answers: not on a worker thread.
            let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        }));
    }
    let rate = counter.wait().await;
    for t in tasks {
        let _ = t.await;
    }
    rate
}

/// The median of each measure on its own.
fn median(runs: Vec<Run>) -> Run {
    let mid = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Run {
        records_per_second: mid(runs.iter().map(|r| r.records_per_second).collect()),
        cpu_micros_per_record: mid(runs.iter().map(|r| r.cpu_micros_per_record).collect()),
    }
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    }
    // The broker runs on a runtime of its own, as it would in a process of its own: its tasks do not take turns
    // with the consumers' on the same worker threads, and a profile tells the two apart by thread name.
    let broker_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-broker")
        .enable_all()
        .build()
        .expect("broker runtime");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    // Every consumer of a run joins its group's first generation (Kafka's default delay is 3 s; the test broker's
    // is none): otherwise the first to join takes every partition, the clock starts, and the others' joins stop
    // it again, so the figure for four consumers would measure the race of their joins.
    let mut builder = EmbeddedBroker::builder().broker_config(|c| c.group_initial_rebalance_delay_ms = 1000);
    for (topic, _) in TOPICS {
        builder = builder.topic(topic, PARTITIONS);
    }
    let broker = broker_runtime.block_on(builder.start()).expect("broker");
    runtime.block_on(run(&broker));
    // The broker's tasks stop on its own runtime.
    broker_runtime.block_on(async move { drop(broker) });
}

async fn run(broker: &EmbeddedBroker) {
    let records: u64 = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(400_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let payload = vec![b'x'; 100];
    for (topic, _) in TOPICS {
        // The test template sends a traceparent; the headerless topic gets its records from a template that
        // does not.
        let untraced = match topic {
            "bench" => Some(broker.app().set("kafka.template.observation_enabled", false).start().await.expect("app")),
            _ => None,
        };
        let template: KafkaTemplate<String, Vec<u8>> = match &untraced {
            Some(app) => KafkaTemplate::new(app.producer_factory()),
            None => broker.template(),
        };
        for i in 0..records {
            drop(template.send(topic, format!("key-{}", i % 1000), payload.clone()));
        }
        template.flush(Duration::from_secs(120)).await.expect("flush");
        if let Some(app) = untraced {
            app.shutdown().await;
        }
    }
    println!("{records} records of 100 bytes on {PARTITIONS} partitions; median of {rounds} rounds; records/s from first to last record");
    println!(
        "| consumer | records | concurrency | records/s | CPU µs/record | listener vs bare (ignoring headers / reading traceparent) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    // BENCH_ONLY=listener|unobserved|bare runs one side (for profiling; `unobserved`: only the listener with
    // observation off); BENCH_CONCURRENCY=1 one concurrency;
    // BENCH_TOPIC=bench|bench-traced one kind of record.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let only_topic = std::env::var("BENCH_TOPIC").unwrap_or_default();
    let concurrencies: Vec<usize> = match std::env::var("BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()) {
        Some(c) => vec![c],
        None => vec![1, 4],
    };
    for (topic, kind) in TOPICS.into_iter().filter(|(t, _)| only_topic.is_empty() || *t == only_topic) {
        // Both topics are also read by a bare loop that looks up `traceparent`: what the listener compares with when
        // it continues traces (asking librdkafka for headers costs even for a record without any).
        let modes = [Bare::IgnoreHeaders, Bare::ReadTraceparent];
        for &concurrency in &concurrencies {
            let mut bare: Vec<Vec<Run>> = vec![Vec::new(); modes.len()];
            // The listener as configured by default (continuing traces), and with listener observation off.
            let observations = [true, false];
            let mut fw: Vec<Vec<Run>> = vec![Vec::new(); observations.len()];
            // Interleaved rounds, so drift (page cache, CPU frequency, other load) hits both alike.
            for round in 0..rounds {
                if only.is_empty() || only == "bare" {
                    for (i, &mode) in modes.iter().enumerate() {
                        bare[i].push(bare_run(broker, topic, concurrency, records, round, mode).await);
                    }
                }
                if only != "bare" {
                    for (i, &observation) in observations.iter().enumerate() {
                        if only == "unobserved" && observation {
                            continue;
                        }
                        fw[i].push(framework_run(broker, topic, concurrency, records, round, observation).await);
                    }
                }
            }
            let bare: Vec<Run> = bare.into_iter().filter(|v| !v.is_empty()).map(median).collect();
            for (&mode, b) in modes.iter().zip(&bare) {
                let name = match mode {
                    Bare::IgnoreHeaders => "bare rdkafka StreamConsumer loop",
                    Bare::ReadTraceparent => "bare rdkafka StreamConsumer loop reading `traceparent`",
                };
                let (rate, cpu) = (b.records_per_second, b.cpu_micros_per_record);
                println!("| {name} | {kind} | {concurrency} | {rate:.0} | {cpu:.2} | |");
            }
            for (&observation, runs) in observations.iter().zip(fw) {
                if runs.is_empty() {
                    continue;
                }
                let f = median(runs);
                let versus: Vec<String> = bare
                    .iter()
                    .map(|b| format!("{:.1}%", 100.0 * f.records_per_second / b.records_per_second))
                    .collect();
                let name = if observation { "#[kafka_listener]" } else { "#[kafka_listener], observation off" };
                let (rate, cpu) = (f.records_per_second, f.cpu_micros_per_record);
                println!("| {name} | {kind} | {concurrency} | {rate:.0} | {cpu:.2} | {} |", versus.join(" / "));
            }
        }
    }
}
