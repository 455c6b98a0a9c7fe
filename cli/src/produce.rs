//! `spate produce`: the console producer (kafka-console-producer.sh). Each line of standard input becomes one
//! record; every record that the broker refuses is reported with its line number, and the exit code says
//! whether all of them were written.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::{
    describe_error, fetch_metadata, parse_key_value, partition_count, CliContext, CliError, ConnectArgs,
};

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum Acks {
    /// Do not wait for the broker.
    #[value(name = "0")]
    None,
    /// Wait for the leader.
    #[value(name = "1")]
    Leader,
    /// Wait for all in-sync replicas.
    #[value(name = "all", alias = "-1")]
    All,
}

impl Acks {
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Send this one value instead of reading lines from standard input.
    #[arg(long, value_name = "VALUE")]
    value: Option<String>,
    /// Key of the record given with --value.
    #[arg(long, requires = "value", value_name = "KEY")]
    key: Option<String>,
    /// Split each input line at the first SEP into key and value (lines without SEP are refused).
    #[arg(long, value_name = "SEP", conflicts_with = "value")]
    key_separator: Option<String>,
    /// Header added to every record, e.g. `--header source=cli`. Repeatable.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// Write every record to this partition instead of letting the partitioner choose.
    #[arg(long, short = 'p', value_name = "N")]
    partition: Option<i32>,
    /// Acknowledgements to wait for.
    #[arg(long, value_enum, default_value = "all")]
    acks: Acks,
    /// Compression codec for record batches.
    #[arg(long, value_enum, default_value = "none")]
    compression: Compression,
}

/// Counts outcomes from librdkafka's delivery-report thread; the opaque is the record's line number.
#[derive(Default)]
struct ConsoleContext {
    client: CliContext,
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for ConsoleContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.client.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason)
    }
}

impl ProducerContext for ConsoleContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, line: usize) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("error: record {line} not written: {error}");
            }
        }
    }
}

pub async fn run(args: ProduceArgs) -> Result<()> {
    tokio::task::spawn_blocking(move || produce(args)).await?
}

fn produce(args: ProduceArgs) -> Result<()> {
    let connect = &args.connect;
    let producer: ThreadedProducer<ConsoleContext> = connect
        .client_config(&[
            ("acks", args.acks.as_config().to_string()),
            ("compression.type", args.compression.as_config().to_string()),
            // Console input is interactive: send each line at once rather than waiting to fill a batch.
            ("linger.ms", "0".to_string()),
            ("message.timeout.ms", connect.request_timeout_ms.to_string()),
        ])
        .create_with_context(ConsoleContext::default())
        .map_err(|e| CliError::ClientConfig(e.to_string()))?;

    let metadata = fetch_metadata(connect)?;
    if let (Some(partition), Some(count)) = (args.partition, partition_count(&metadata, &args.topic)) {
        if partition < 0 || partition as usize >= count {
            return Err(CliError::UnknownPartition { topic: args.topic.clone(), partition, count }.into());
        }
    }

    let mut headers = OwnedHeaders::new();
    for (key, value) in &args.headers {
        headers = headers.insert(Header { key, value: Some(value.as_bytes()) });
    }

    // Returns whether librdkafka accepted the record; its delivery is reported later.
    let send = |line: usize, key: Option<&str>, value: &str| -> bool {
        let mut record = BaseRecord::with_opaque_to(&args.topic, line).payload(value).headers(headers.clone());
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        loop {
            match producer.send(record) {
                Ok(()) => return true,
                // The local queue is full: wait for deliveries to free room rather than drop input.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => {
                    eprintln!("error: record {line} not sent: {error}");
                    return false;
                }
            }
        }
    };

    let mut refused = 0u64;
    let mut sent = 0u64;
    let mut count = |accepted: bool| {
        if accepted {
            sent += 1
        } else {
            refused += 1
        }
    };
    if let Some(value) = &args.value {
        count(send(1, args.key.as_deref(), value));
    } else {
        let stdin = std::io::stdin();
        for (index, line) in stdin.lock().lines().enumerate() {
            let line_number = index + 1;
            let line = match line {
                Ok(line) => line,
                Err(e) => {
                    eprintln!("error: reading standard input at line {line_number}: {e}");
                    count(false);
                    break;
                }
            };
            match &args.key_separator {
                Some(sep) => match line.split_once(sep.as_str()) {
                    Some((key, value)) => count(send(line_number, Some(key), value)),
                    None => {
                        eprintln!("error: record {line_number} not sent: no key separator '{sep}' in the line");
                        count(false);
                    }
                },
                None => count(send(line_number, None, &line)),
            }
        }
    }

    // Records still queued after flush's timeout never got a delivery report; count them as failed.
    let flushed = producer.flush(connect.timeout());
    let context = producer.context();
    let delivered = context.delivered.load(Ordering::Relaxed);
    let failed = context.failed.load(Ordering::Relaxed);
    let undelivered = sent.saturating_sub(delivered + failed);
    if let Err(e) = flushed {
        eprintln!(
            "error: {undelivered} records not confirmed: {}",
            describe_error(&e, &context.client, &connect.bootstrap_server)
        );
    }
    let not_written = refused + failed + undelivered;
    if not_written > 0 {
        return Err(crate::Reported(format!("{not_written} of {} records not written", sent + refused)).into());
    }
    Ok(())
}
