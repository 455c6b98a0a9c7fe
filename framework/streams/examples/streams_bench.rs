//! Throughput of the streams runtime beside Apache Kafka Streams, on the same broker and the same pre-produced
//! input. Two topologies (`--topology`):
//! - `server-metrics` (default): the book's 5.2 topology from `samples/server-metrics` (JSON metrics in; CPU and
//!   memory metrics split into their own topics; CPU above 50% to an alert topic as hostname and timestamp);
//! - `count`: a count per key (in-memory store, changelog on), every update sent on.
//!
//! Both sides are timed the same way, by this harness: from the moment the application is started until a
//! `read_committed` consumer has seen the expected number of records on the run's output topics (each run writes
//! to fresh topics). Each side runs `--runs` times per guarantee, alternating which goes first.
//! Run through `scripts/streams-bench`, which resolves Kafka Streams' jars with Maven and passes
//! `--java-classpath`; without it only the Rust side runs.
//!
//! `cargo run --release -p spate-streams --example streams_bench -- [--topology server-metrics|count]
//! [--records N] [--keys K] [--partitions P] [--runs R] [--guarantee at_least_once|exactly_once_v2|both]
//! [--java-classpath CP] [--bootstrap-servers host:port]` (default: the bundled broker in-process).

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

#[allow(dead_code)]
#[path = "../../../samples/server-metrics/src/topology.rs"]
mod topology;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use spate::test::EmbeddedBroker;
use spate::{KafkaAdmin, TopicBuilder};
use spate_streams::{KafkaStreams, Materialized, ProcessingGuarantee, State, StreamsBuilder, StreamsConfig, Topology};

/// How long one side may take to produce all its output before the run counts as failed.
const RUN_LIMIT: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bench {
    ServerMetrics,
    Count,
}

impl Bench {
    fn name(self) -> &'static str {
        match self {
            Bench::ServerMetrics => "server-metrics",
            Bench::Count => "count",
        }
    }
    fn input(self) -> &'static str {
        match self {
            Bench::ServerMetrics => "bench-metrics",
            Bench::Count => "bench-words",
        }
    }
    /// The output topics of one run.
    fn outputs(self, tag: &str) -> Vec<String> {
        match self {
            Bench::ServerMetrics => {
                vec![format!("{tag}-cpu-metrics"), format!("{tag}-memory-metrics"), format!("{tag}-cpu-alerts")]
            }
            Bench::Count => vec![format!("{tag}-counts")],
        }
    }
    fn rust_topology(self, outputs: &[String]) -> Topology {
        match self {
            Bench::ServerMetrics => topology::topology_for(self.input(), &outputs[0], &outputs[1], &outputs[2]),
            Bench::Count => {
                let builder = StreamsBuilder::new();
                builder
                    .stream::<String, String>(self.input())
                    .group_by_key()
                    .count_with(Materialized::as_("counts"))
                    .to_stream()
                    .to(&outputs[0]);
                builder.build()
            }
        }
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// The `i`-th input record (key, value) and how many output records it yields.
fn input_record(bench: Bench, i: i64, keys: i64) -> (String, String, u64) {
    match bench {
        Bench::ServerMetrics => {
            let host = format!("host-{}", i % keys);
            let kind = ["cpu", "memory", "disk"][(i % 3) as usize];
            // Spread over 0..100 so about half the CPU metrics raise an alert.
            let value = ((i * 7919) % 100) as f64 + 0.5;
            let json = format!(
                r#"{{"hostname":"{host}","timestamp":{},"type":"{kind}","value":{value}}}"#,
                1_700_000_000_000 + i
            );
            let outputs = match kind {
                "cpu" if value > 50.0 => 2,
                "cpu" | "memory" => 1,
                _ => 0,
            };
            (host, json, outputs)
        }
        Bench::Count => (format!("key-{}", i % keys), format!("value-{i}"), 1),
    }
}

/// A `read_committed` consumer over a run's (fresh) output topics, assigned before the application starts.
fn output_counter(bootstrap: &str, topics: &[String], partitions: i32) -> Result<BaseConsumer, String> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka's assign() wants a group id; nothing is committed to it.
        .set("group.id", "streams-bench-counter")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..partitions {
            tpl.add_partition_offset(t, p, Offset::Beginning).map_err(|e| e.to_string())?;
        }
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    Ok(consumer)
}

/// Counts records until `expected` arrived; `failed` reports the application's failure.
fn wait_for_outputs(
    consumer: &BaseConsumer,
    expected: u64,
    mut failed: impl FnMut() -> Option<String>,
) -> Result<Instant, String> {
    let deadline = Instant::now() + RUN_LIMIT;
    let mut seen = 0u64;
    let mut next_check = Instant::now();
    while seen < expected {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => seen += 1,
            Some(Err(e)) => return Err(format!("output consumer: {e}")),
            None => {}
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + Duration::from_millis(200);
            if let Some(e) = failed() {
                return Err(e);
            }
            if Instant::now() > deadline {
                return Err(format!("{seen} of {expected} output records within {} s", RUN_LIMIT.as_secs()));
            }
        }
    }
    Ok(Instant::now())
}

struct Run<'a> {
    bootstrap: &'a str,
    bench: Bench,
    partitions: i32,
    expected: u64,
    guarantee: ProcessingGuarantee,
    tag: String,
}

impl Run<'_> {
    fn guarantee_name(&self) -> &'static str {
        guarantee_name(self.guarantee)
    }

    fn create_outputs(&self, runtime: &tokio::runtime::Runtime) -> Result<Vec<String>, String> {
        let outputs = self.bench.outputs(&self.tag);
        runtime.block_on(async {
            let admin = KafkaAdmin::for_bootstrap(self.bootstrap).map_err(|e| e.to_string())?;
            let topics: Vec<_> =
                outputs.iter().map(|t| TopicBuilder::name(t.as_str()).partitions(self.partitions).build()).collect();
            admin.create_topics(&topics).await.map_err(|e| e.to_string())
        })?;
        Ok(outputs)
    }

    fn rust(&self, runtime: &tokio::runtime::Runtime) -> Result<Duration, String> {
        let outputs = self.create_outputs(runtime)?;
        let counter = output_counter(self.bootstrap, &outputs, self.partitions)?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let config = StreamsConfig::new(self.tag.clone())
            .bootstrap_servers(self.bootstrap)
            .state_dir(dir.path())
            .processing_guarantee(self.guarantee);
        let mut streams = KafkaStreams::new(self.bench.rust_topology(&outputs), config);
        let t0 = Instant::now();
        let result = streams.start().map_err(|e| e.to_string()).and_then(|()| {
            wait_for_outputs(&counter, self.expected, || {
                (streams.state() == State::Error).then(|| streams.error().unwrap_or_default())
            })
        });
        streams.close();
        drop(counter);
        Ok(result? - t0)
    }

    fn java(&self, runtime: &tokio::runtime::Runtime, classpath: &str) -> Result<Duration, String> {
        let outputs = self.create_outputs(runtime)?;
        let counter = output_counter(self.bootstrap, &outputs, self.partitions)?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = Command::new("java")
            .args(["-cp", classpath, "StreamsBench", self.bootstrap, &self.tag, self.bench.name()])
            .arg(self.guarantee_name())
            .arg(dir.path())
            .arg(self.bench.input())
            .args(&outputs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("java: {e}"))?;
        let (lines_tx, lines) = mpsc::channel::<String>();
        let stdout = child.stdout.take().ok_or("java: no stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let result = self.time_java(&mut child, &lines, &counter);
        // "stop" lets Kafka Streams close cleanly (leave the group, end its transactions); kill it if it hangs.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let stop_deadline = Instant::now() + Duration::from_secs(60);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < stop_deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        drop(counter);
        result
    }

    fn time_java(
        &self,
        child: &mut Child,
        lines: &mpsc::Receiver<String>,
        counter: &BaseConsumer,
    ) -> Result<Duration, String> {
        let started_by = Instant::now() + Duration::from_secs(120);
        loop {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l == "starting" => break,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err("java exited before starting".into()),
            }
            if Instant::now() > started_by {
                return Err("java did not start within 120 s".into());
            }
        }
        let t0 = Instant::now();
        let t1 = wait_for_outputs(counter, self.expected, || {
            if let Ok(l) = lines.try_recv() {
                if let Some(e) = l.strip_prefix("error=") {
                    return Some(format!("Kafka Streams failed: {e}"));
                }
            }
            match child.try_wait() {
                Ok(Some(status)) => Some(format!("java exited: {status}")),
                _ => None,
            }
        })?;
        Ok(t1 - t0)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = match arg(&args, "--topology").as_deref() {
        None | Some("server-metrics") => Bench::ServerMetrics,
        Some("count") => Bench::Count,
        Some(other) => return Err(format!("unknown topology {other} (server-metrics or count)").into()),
    };
    let records: i64 = arg(&args, "--records").map(|v| v.parse()).transpose()?.unwrap_or(200_000);
    let keys: i64 = arg(&args, "--keys").map(|v| v.parse()).transpose()?.unwrap_or(100);
    let partitions: i32 = arg(&args, "--partitions").map(|v| v.parse()).transpose()?.unwrap_or(4);
    let runs: usize = arg(&args, "--runs").map(|v| v.parse()).transpose()?.unwrap_or(2);
    let guarantees: Vec<ProcessingGuarantee> = match arg(&args, "--guarantee").as_deref() {
        None | Some("both") => vec![ProcessingGuarantee::AtLeastOnce, ProcessingGuarantee::ExactlyOnceV2],
        Some("at_least_once") => vec![ProcessingGuarantee::AtLeastOnce],
        Some("exactly_once_v2") => vec![ProcessingGuarantee::ExactlyOnceV2],
        Some(other) => return Err(format!("unknown guarantee {other}").into()),
    };
    let java = arg(&args, "--java-classpath");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (bootstrap, broker) = match arg(&args, "--bootstrap-servers") {
        Some(b) => (b, None),
        None => {
            let broker = runtime.block_on(EmbeddedBroker::start())?;
            (broker.bootstrap_servers().to_owned(), Some(broker))
        }
    };
    runtime.block_on(async {
        let admin = KafkaAdmin::for_bootstrap(&bootstrap)?;
        admin.create_topics(&[TopicBuilder::name(bench.input()).partitions(partitions).build()]).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("partitioner", "murmur2_random")
        .create()?;
    let mut expected = 0u64;
    for i in 0..records {
        let (key, value, outputs) = input_record(bench, i, keys);
        expected += outputs;
        let mut r = BaseRecord::to(bench.input()).key(&key).payload(&value);
        loop {
            match producer.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    std::thread::sleep(Duration::from_millis(5));
                    r = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    drop(producer);

    println!(
        "topology {}: {records} input records ({expected} output records), {keys} keys, {partitions} partitions, \
         1 stream thread, {runs} runs per side and guarantee",
        bench.name()
    );
    println!("| implementation | guarantee | run | seconds | input records/s |");
    println!("| --- | --- | --- | --- | --- |");
    let mut summary: Vec<(String, &'static str, Vec<f64>)> = Vec::new();
    for g in guarantees {
        let mut rust_rates = Vec::new();
        let mut java_rates = Vec::new();
        for run in 0..runs {
            let make = |side: &str| Run {
                bootstrap: &bootstrap,
                bench,
                partitions,
                expected,
                guarantee: g,
                tag: format!("{side}-{}-{}-{run}", bench.name(), guarantee_name(g)),
            };
            let rust_run = make("rust");
            let mut sides: Vec<&str> = vec!["spate-streams"];
            if java.is_some() {
                sides.push("Kafka Streams (Java)");
            }
            // Alternate which side goes first so neither always runs on a broker with more data on it.
            if run % 2 == 1 {
                sides.reverse();
            }
            for side in sides {
                let (result, rates) = if side == "spate-streams" {
                    (rust_run.rust(&runtime), &mut rust_rates)
                } else {
                    let cp = java.as_deref().unwrap_or_default();
                    (make("java").java(&runtime, cp), &mut java_rates)
                };
                match result {
                    Ok(d) => {
                        let rate = records as f64 / d.as_secs_f64();
                        rates.push(rate);
                        println!(
                            "| {side} | {} | {} | {:.2} | {rate:.0} |",
                            rust_run.guarantee_name(),
                            run + 1,
                            d.as_secs_f64()
                        );
                    }
                    Err(e) => println!("| {side} | {} | {} | failed: {e} | |", rust_run.guarantee_name(), run + 1),
                }
            }
        }
        let name = guarantee_name(g);
        summary.push(("spate-streams".into(), name, rust_rates));
        if java.is_some() {
            summary.push(("Kafka Streams (Java)".into(), name, java_rates));
        }
    }
    println!();
    println!("| implementation | guarantee | runs | best records/s | mean records/s |");
    println!("| --- | --- | --- | --- | --- |");
    for (side, g, rates) in summary {
        if rates.is_empty() {
            println!("| {side} | {g} | 0 | | |");
            continue;
        }
        let best = rates.iter().copied().fold(0.0, f64::max);
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        println!("| {side} | {g} | {} | {best:.0} | {mean:.0} |", rates.len());
    }
    if let Some(b) = broker {
        runtime.block_on(b.shutdown())?;
    }
    Ok(())
}

fn guarantee_name(g: ProcessingGuarantee) -> &'static str {
    match g {
        ProcessingGuarantee::AtLeastOnce => "at_least_once",
        ProcessingGuarantee::ExactlyOnceV2 => "exactly_once_v2",
    }
}
