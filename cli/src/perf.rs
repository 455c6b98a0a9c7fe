//! `spate perf produce` and `spate perf consume`: throughput benchmarks in the manner of Kafka's
//! kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh, so numbers can be compared between Spate's broker
//! and Apache Kafka with the same client (librdkafka) on both sides.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::client::{describe_error, fetch_metadata, partition_count, CliContext, CliError, ConnectArgs};
use crate::produce::{Acks, Compression};

const MB: f64 = 1024.0 * 1024.0;

#[derive(Args, Debug)]
pub struct PerfArgs {
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(Subcommand, Debug)]
enum PerfCommand {
    /// Send records as fast as allowed and report throughput and delivery latency.
    Produce(PerfProduceArgs),
    /// Read records from the start of a topic and report throughput.
    Consume(PerfConsumeArgs),
    /// Measure how long a consumer group takes to rebalance when a member joins and when one leaves.
    Rebalance(crate::perf_rebalance::PerfRebalanceArgs),
}

#[derive(Args, Debug)]
struct PerfProduceArgs {
    /// Topic to write to (created by the broker if it auto-creates topics).
    #[arg(long, short = 't')]
    topic: String,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Number of records to send.
    #[arg(long, short = 'n', value_name = "N")]
    num_records: u64,
    /// Size of each record's value in bytes.
    #[arg(long, short = 's', default_value_t = 100, value_name = "BYTES")]
    record_size: usize,
    /// Cap on records per second; -1 for no cap.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "RECORDS_PER_SEC")]
    throughput: i64,
    /// Acknowledgements to wait for.
    #[arg(long, value_enum, default_value = "all")]
    acks: Acks,
    /// Compression codec for record batches.
    #[arg(long, value_enum, default_value = "none")]
    compression: Compression,
    /// Largest batch in bytes (librdkafka batch.size).
    #[arg(long, value_name = "BYTES")]
    batch_size: Option<u64>,
    /// How long to wait for a batch to fill (librdkafka linger.ms).
    #[arg(long, value_name = "MS")]
    linger_ms: Option<u64>,
    /// Idempotent producer (librdkafka enable.idempotence=true).
    #[arg(long)]
    idempotence: bool,
    /// Produce in transactions with this transactional.id (implies idempotence), like kafka-producer-perf-test's
    /// --transactional-id.
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// Records per transaction with --transactional-id.
    #[arg(long, default_value_t = 1000, value_name = "N", requires = "transactional_id")]
    transaction_records: u64,
    /// Print a progress line this often on standard error, in milliseconds; 0 for none.
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    report_interval_ms: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct PerfConsumeArgs {
    /// Topic to read.
    #[arg(long, short = 't')]
    topic: String,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Number of records to read.
    #[arg(long, short = 'n', value_name = "N")]
    num_records: u64,
    /// Read as a member of this group from its committed offsets (default: every partition from the start,
    /// without a group).
    #[arg(long, short = 'g', value_name = "GROUP")]
    group: Option<String>,
    /// Give up when no record arrives for this long, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    timeout_ms: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: PerfArgs) -> Result<()> {
    match args.command {
        PerfCommand::Produce(a) => tokio::task::spawn_blocking(move || perf_produce(a)).await?,
        PerfCommand::Rebalance(a) => tokio::task::spawn_blocking(move || crate::perf_rebalance::run(a)).await?,
        PerfCommand::Consume(a) => {
            let stop = Arc::new(AtomicBool::new(false));
            let on_signal = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_signal.store(true, Ordering::Relaxed);
                }
            });
            tokio::task::spawn_blocking(move || perf_consume(a, &stop)).await?
        }
    }
}

/// Latencies from send to delivery report, in microseconds; the delivery opaque carries the send time as
/// nanoseconds since `start`, which costs no allocation per record.
struct PerfContext {
    client: CliContext,
    start: Instant,
    latencies: Mutex<Histogram<u64>>,
    window: Mutex<Window>,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<KafkaError>>,
}

#[derive(Default)]
struct Window {
    records: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
}

impl ClientContext for PerfContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.client.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason)
    }
}

impl ProducerContext for PerfContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at_ns: usize) {
        let now_ns = self.start.elapsed().as_nanos() as u64;
        let latency_us = now_ns.saturating_sub(sent_at_ns as u64) / 1_000;
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut h) = self.latencies.lock() {
                    h.saturating_record(latency_us.max(1));
                }
                if let Ok(mut w) = self.window.lock() {
                    w.records += 1;
                    w.latency_sum_us += latency_us;
                    w.latency_max_us = w.latency_max_us.max(latency_us);
                }
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| error.clone());
                }
            }
        }
    }
}

#[derive(Serialize, Debug)]
struct ProduceReport {
    topic: String,
    records_sent: u64,
    records_failed: u64,
    record_size: usize,
    elapsed_secs: f64,
    records_per_sec: f64,
    mb_per_sec: f64,
    latency_ms: Latency,
    /// Transactions committed, with --transactional-id.
    #[serde(skip_serializing_if = "Option::is_none")]
    transactions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transactions_per_sec: Option<f64>,
}

#[derive(Serialize, Debug)]
struct Latency {
    avg: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}

/// Kafka's perf tool sends random upper-case letters; the same here, from a fixed seed so runs compare.
fn payload(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}

fn perf_produce(args: PerfProduceArgs) -> Result<()> {
    let connect = &args.connect;
    let mut overrides = vec![
        ("acks", args.acks.as_config().to_string()),
        ("compression.type", args.compression.as_config().to_string()),
        ("queue.buffering.max.messages", "1000000".to_string()),
    ];
    if let Some(batch_size) = args.batch_size {
        overrides.push(("batch.size", batch_size.to_string()));
    }
    if let Some(linger) = args.linger_ms {
        overrides.push(("linger.ms", linger.to_string()));
    }
    if args.idempotence {
        overrides.push(("enable.idempotence", "true".to_string()));
    }
    if let Some(id) = &args.transactional_id {
        overrides.push(("transactional.id", id.clone()));
    }
    let start = Instant::now();
    let context = PerfContext {
        client: CliContext::default(),
        start,
        // 1 µs to 10 minutes at 3 significant digits.
        latencies: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        window: Mutex::new(Window::default()),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let producer: ThreadedProducer<PerfContext> = connect
        .client_config(&overrides)
        .create_with_context(context)
        .map_err(|e| CliError::ClientConfig(e.to_string()))?;
    fetch_metadata(connect)?;
    let transactional = args.transactional_id.is_some();
    let txn_timeout = connect.timeout().max(Duration::from_secs(30));
    if transactional {
        producer.init_transactions(txn_timeout).context("init_transactions")?;
        producer.begin_transaction().context("begin_transaction")?;
    }
    let mut transactions = 0u64;

    let value = payload(args.record_size);
    let start = Instant::now();
    let mut last_report = start;
    let mut window_start_sent = 0u64;
    let report_every = Duration::from_millis(args.report_interval_ms);
    let mut refused = 0u64;
    for i in 0..args.num_records {
        if transactional && i > 0 && i % args.transaction_records.max(1) == 0 {
            producer.commit_transaction(txn_timeout).context("commit_transaction")?;
            transactions += 1;
            producer.begin_transaction().context("begin_transaction")?;
        }
        if args.throughput > 0 {
            // Sleep until this record is due rather than sending in bursts.
            let due = start + Duration::from_secs_f64(i as f64 / args.throughput as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let sent_at = producer.context().start.elapsed().as_nanos() as usize;
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(&args.topic, sent_at).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err((error, _)) => {
                    refused += 1;
                    let mut first = producer.context().first_error.lock().ok();
                    if let Some(first) = first.as_deref_mut() {
                        first.get_or_insert(error);
                    }
                    break;
                }
            }
        }
        if args.report_interval_ms > 0 && last_report.elapsed() >= report_every {
            report_window(&producer, last_report.elapsed(), i + 1 - window_start_sent, args.record_size);
            window_start_sent = i + 1;
            last_report = Instant::now();
        }
    }
    if transactional && args.num_records > 0 {
        producer.commit_transaction(txn_timeout).context("commit_transaction")?;
        transactions += 1;
    }
    let flush_timeout = connect.timeout().max(Duration::from_secs(60));
    let flushed = producer.flush(flush_timeout);
    let elapsed = start.elapsed();

    let context = producer.context();
    let delivered = context.delivered.load(Ordering::Relaxed);
    let failed = context.failed.load(Ordering::Relaxed) + refused;
    let histogram = context.latencies.lock().map(|h| h.clone()).unwrap_or_else(|p| p.into_inner().clone());
    let ms = |us: u64| us as f64 / 1_000.0;
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    let report = ProduceReport {
        topic: args.topic.clone(),
        records_sent: delivered,
        records_failed: failed,
        record_size: args.record_size,
        elapsed_secs: secs,
        records_per_sec: delivered as f64 / secs,
        mb_per_sec: delivered as f64 * args.record_size as f64 / MB / secs,
        latency_ms: Latency {
            avg: histogram.mean() / 1_000.0,
            p50: ms(histogram.value_at_quantile(0.50)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        },
        transactions: transactional.then_some(transactions),
        transactions_per_sec: transactional.then_some(transactions as f64 / secs),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let l = &report.latency_ms;
        println!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, \
             {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            report.records_sent, report.records_per_sec, report.mb_per_sec, l.avg, l.max, l.p50, l.p95, l.p99, l.p99_9
        );
        if let (Some(n), Some(rate)) = (report.transactions, report.transactions_per_sec) {
            println!("{n} transactions committed, {rate:.1} transactions/sec.");
        }
    }

    let lost = args.num_records.saturating_sub(delivered + failed);
    if failed + lost > 0 {
        let cause = match (&flushed, context.first_error.lock().ok().and_then(|e| e.clone())) {
            (_, Some(e)) => describe_error(&e, &context.client, &connect.bootstrap_server),
            (Err(e), None) => describe_error(e, &context.client, &connect.bootstrap_server),
            (Ok(()), None) => "no delivery report".to_string(),
        };
        anyhow::bail!("{} of {} records not written: {cause}", failed + lost, args.num_records);
    }
    Ok(())
}

fn report_window(producer: &ThreadedProducer<PerfContext>, elapsed: Duration, sent: u64, record_size: usize) {
    let Ok(mut window) = producer.context().window.lock() else { return };
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    let avg_ms = if window.records > 0 { window.latency_sum_us as f64 / window.records as f64 / 1_000.0 } else { 0.0 };
    eprintln!(
        "{sent} records sent, {:.1} records/sec ({:.2} MB/sec), {avg_ms:.1} ms avg latency, {:.1} ms max latency.",
        sent as f64 / secs,
        sent as f64 * record_size as f64 / MB / secs,
        window.latency_max_us as f64 / 1_000.0
    );
    *window = Window::default();
}

#[derive(Serialize, Debug)]
struct ConsumeReport {
    topic: String,
    records: u64,
    bytes: u64,
    /// From the first poll to the first record: connecting, joining a group, the first fetch.
    time_to_first_record_ms: f64,
    /// From the first poll to the last record.
    elapsed_secs: f64,
    records_per_sec: f64,
    mb_per_sec: f64,
    /// Throughput after the first record arrived, which leaves out start-up (Kafka's fetch.MB.sec).
    fetch_records_per_sec: f64,
    fetch_mb_per_sec: f64,
}

fn perf_consume(args: PerfConsumeArgs, stop: &AtomicBool) -> Result<()> {
    let connect = &args.connect;
    let mut overrides = vec![("enable.partition.eof", "false".to_string())];
    match &args.group {
        Some(group) => {
            overrides.push(("group.id", group.clone()));
            overrides.push(("auto.offset.reset", "earliest".to_string()));
        }
        None => {
            // librdkafka refuses assign() without a group id even though assigning never contacts the group
            // coordinator; with auto-commit off this name never reaches the broker.
            overrides.push(("group.id", "spate-cli-no-group".to_string()));
            overrides.push(("enable.auto.commit", "false".to_string()));
        }
    }
    let consumer: BaseConsumer<CliContext> = connect
        .client_config(&overrides)
        .create_with_context(CliContext::default())
        .map_err(|e| CliError::ClientConfig(e.to_string()))?;
    let metadata = fetch_metadata(connect)?;
    let Some(partitions) = partition_count(&metadata, &args.topic) else {
        return Err(CliError::UnknownTopic(args.topic.clone()).into());
    };
    if args.group.is_some() {
        consumer.subscribe(&[&args.topic])?;
    } else {
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            assignment.add_partition_offset(&args.topic, partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
    }

    let start = Instant::now();
    let mut first_record: Option<Instant> = None;
    let mut last_record = start;
    let mut records = 0u64;
    let mut bytes = 0u64;
    let idle_limit = Duration::from_millis(args.timeout_ms);
    let mut timed_out = false;
    while records < args.num_records && !stop.load(Ordering::Relaxed) {
        if last_record.elapsed() >= idle_limit {
            timed_out = true;
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                let now = Instant::now();
                first_record.get_or_insert(now);
                last_record = now;
                records += 1;
                bytes += (message.payload_len() + message.key().map_or(0, <[u8]>::len)) as u64;
            }
            Some(Err(e)) => {
                return Err(anyhow::anyhow!(
                    "reading '{}': {}",
                    args.topic,
                    describe_error(&e, consumer.context(), &connect.bootstrap_server)
                ))
            }
        }
    }

    let elapsed = last_record.duration_since(start).as_secs_f64().max(f64::EPSILON);
    let fetch_elapsed =
        first_record.map_or(f64::EPSILON, |f| last_record.duration_since(f).as_secs_f64().max(f64::EPSILON));
    let report = ConsumeReport {
        topic: args.topic.clone(),
        records,
        bytes,
        time_to_first_record_ms: first_record.map_or(0.0, |f| f.duration_since(start).as_secs_f64() * 1_000.0),
        elapsed_secs: elapsed,
        records_per_sec: records as f64 / elapsed,
        mb_per_sec: bytes as f64 / MB / elapsed,
        fetch_records_per_sec: if records > 1 { (records - 1) as f64 / fetch_elapsed } else { 0.0 },
        fetch_mb_per_sec: if records > 1 { bytes as f64 / MB / fetch_elapsed } else { 0.0 },
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} records ({:.2} MB) consumed in {:.3} s: {:.1} records/sec, {:.2} MB/sec; first record after {:.1} ms, \
             then {:.1} records/sec ({:.2} MB/sec).",
            report.records,
            bytes as f64 / MB,
            report.elapsed_secs,
            report.records_per_sec,
            report.mb_per_sec,
            report.time_to_first_record_ms,
            report.fetch_records_per_sec,
            report.fetch_mb_per_sec
        );
    }
    if timed_out {
        anyhow::bail!(
            "only {records} of {} records arrived: none for {} ms (--timeout-ms)",
            args.num_records,
            args.timeout_ms
        );
    }
    Ok(())
}
