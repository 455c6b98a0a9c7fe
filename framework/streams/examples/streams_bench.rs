//! Throughput of the streams runtime beside Apache Kafka Streams, on the same broker and input: a count per key
//! (in-memory store, changelog on) over pre-produced records, timed from `start()` until the local store's
//! counts add up to the number of records. Run through `scripts/streams-bench`, which resolves Kafka Streams'
//! jars with Maven and passes `--java-classpath`; without it only the Rust side runs.
//!
//! `cargo run --release -p spate-streams --example streams_bench -- [--records N] [--keys K] [--partitions P]
//! [--java-classpath CP] [--bootstrap-servers host:port]` (default: the bundled broker in-process).

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use spate::test::EmbeddedBroker;
use spate::{KafkaAdmin, TopicBuilder};
use spate_streams::{
    KafkaStreams, Materialized, ProcessingGuarantee, ReadOnlyKeyValueStore, State, StoreQueryParameters,
    StreamsBuilder, StreamsConfig,
};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn run_rust(bootstrap: &str, guarantee: ProcessingGuarantee, tag: &str, records: i64) -> Result<Duration, String> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("bench-in")
        .group_by_key()
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to(&format!("rust-out-{tag}"));
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = StreamsConfig::new(format!("rust-bench-{tag}"))
        .bootstrap_servers(bootstrap)
        .state_dir(dir.path())
        .processing_guarantee(guarantee);
    let mut streams = KafkaStreams::new(builder.build(), config);
    let t0 = Instant::now();
    streams.start().map_err(|e| e.to_string())?;
    let deadline = t0 + Duration::from_secs(300);
    loop {
        if streams.state() == State::Error {
            return Err(streams.error().unwrap_or_default());
        }
        if streams.state() == State::Running {
            let store: ReadOnlyKeyValueStore<String, i64> =
                streams.store(StoreQueryParameters::from_name("counts")).map_err(|e| e.to_string())?;
            let sum: i64 = store.all().map_err(|e| e.to_string())?.iter().map(|(_, v)| v).sum();
            if sum >= records {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err("not done within 300 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = t0.elapsed();
    streams.close();
    Ok(elapsed)
}

fn run_java(cp: &str, bootstrap: &str, guarantee: &str, tag: &str, records: i64) -> Result<Duration, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = std::process::Command::new("java")
        .args(["-cp", cp, "StreamsBench", bootstrap, &format!("java-bench-{tag}"), "bench-in"])
        .arg(format!("java-out-{tag}"))
        .arg(records.to_string())
        .arg(guarantee)
        .arg(dir.path())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ms = text
        .lines()
        .find_map(|l| l.strip_prefix("elapsed_ms="))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("java printed no time: {text} {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok(Duration::from_millis(ms))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let records: i64 = arg(&args, "--records").map(|v| v.parse()).transpose()?.unwrap_or(200_000);
    let keys: i64 = arg(&args, "--keys").map(|v| v.parse()).transpose()?.unwrap_or(1_000);
    let partitions: i32 = arg(&args, "--partitions").map(|v| v.parse()).transpose()?.unwrap_or(4);
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
        admin.create_topics(&[TopicBuilder::name("bench-in").partitions(partitions).build()]).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("partitioner", "murmur2_random")
        .create()?;
    for i in 0..records {
        let key = format!("key-{}", i % keys);
        let value = format!("value-{i}");
        let mut r = BaseRecord::to("bench-in").key(&key).payload(&value);
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
    println!("{records} records, {keys} keys, {partitions} partitions; count per key, in-memory store, 1 thread");
    println!("| implementation | guarantee | seconds | records/s |");
    println!("| --- | --- | --- | --- |");
    for (g, name, tag) in [
        (ProcessingGuarantee::AtLeastOnce, "at_least_once", "alos"),
        (ProcessingGuarantee::ExactlyOnceV2, "exactly_once_v2", "eos"),
    ] {
        let report = |who: &str, r: Result<Duration, String>| match r {
            Ok(d) => println!("| {who} | {name} | {:.2} | {:.0} |", d.as_secs_f64(), records as f64 / d.as_secs_f64()),
            Err(e) => println!("| {who} | {name} | failed: {e} | |"),
        };
        report("spate-streams", run_rust(&bootstrap, g, tag, records));
        if let Some(cp) = &java {
            report("Kafka Streams (Java)", run_java(cp, &bootstrap, name, tag, records));
        }
    }
    if let Some(b) = broker {
        runtime.block_on(b.shutdown())?;
    }
    Ok(())
}
