//! `spate consume`: the console consumer (kafka-console-consumer.sh). Without `--group` it reads partitions
//! directly (no group is created on the broker and nothing is committed); with `--group` it joins that group and
//! commits what it printed.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::client::{describe_error, fetch_metadata, partition_count, CliContext, CliError, ConnectArgs};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value only.
    Value,
    /// Key, separator, value.
    KeyValue,
    /// One JSON object per record: topic, partition, offset, timestamp, key, value, headers.
    Json,
}

/// Where to start reading a partition: `earliest`, `latest` or an offset.
#[derive(Copy, Clone, Debug)]
pub enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

fn parse_offset(s: &str) -> Result<StartOffset, String> {
    match s {
        "earliest" | "beginning" => Ok(StartOffset::Earliest),
        "latest" | "end" => Ok(StartOffset::Latest),
        n => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(StartOffset::At(n)),
            _ => Err(format!("expected 'earliest', 'latest' or an offset >= 0, got '{s}'")),
        },
    }
}

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Start at the earliest record rather than only printing new ones.
    #[arg(long)]
    from_beginning: bool,
    /// Read only this partition.
    #[arg(long, short = 'p', value_name = "N", conflicts_with = "group")]
    partition: Option<i32>,
    /// Offset to start at in --partition: `earliest`, `latest` or a number.
    #[arg(long, value_name = "OFFSET", value_parser = parse_offset, requires = "partition", conflicts_with = "from_beginning")]
    offset: Option<StartOffset>,
    /// Join this consumer group and commit offsets (without it, partitions are read directly, committing nothing).
    #[arg(long, short = 'g', value_name = "GROUP")]
    group: Option<String>,
    /// Exit after printing this many records.
    #[arg(long, short = 'n', value_name = "N")]
    max_messages: Option<u64>,
    /// Exit when no record arrives for this long, in milliseconds.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Exit once every partition has been read to its end.
    #[arg(long, short = 'e', conflicts_with = "group")]
    exit_at_end: bool,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "value")]
    format: Format,
    /// Separator between headers, key and value in the text formats.
    #[arg(long, default_value = "\t", value_name = "SEP")]
    key_separator: String,
    /// Print the headers (`k:v,k2:v2`, or NO_HEADERS) before the key and value in the text formats.
    #[arg(long)]
    print_headers: bool,
}

pub async fn run(args: ConsumeArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.store(true, Ordering::Relaxed);
        }
    });
    tokio::task::spawn_blocking(move || consume(args, &stop)).await?
}

fn consume(args: ConsumeArgs, stop: &AtomicBool) -> Result<()> {
    let connect = &args.connect;
    let mut overrides = vec![("enable.partition.eof", args.exit_at_end.to_string())];
    match &args.group {
        Some(group) => {
            overrides.push(("group.id", group.clone()));
            let reset = if args.from_beginning { "earliest" } else { "latest" };
            overrides.push(("auto.offset.reset", reset.to_string()));
            // Commit only what was printed, not what was fetched: offsets are stored after each print.
            overrides.push(("enable.auto.offset.store", "false".to_string()));
        }
        None => {
            // librdkafka refuses assign() without a group id even though assigning never contacts the group
            // coordinator; with auto-commit off this name never reaches the broker.
            overrides.push(("group.id", "spate-cli-no-group".to_string()));
            overrides.push(("enable.auto.commit", "false".to_string()));
        }
    }
    let consumer: BaseConsumer<CliContext> = connect
        .client_config(&overrides.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>())
        .create_with_context(CliContext::default())
        .map_err(|e| CliError::ClientConfig(e.to_string()))?;

    let metadata = fetch_metadata(connect)?;
    let Some(partitions) = partition_count(&metadata, &args.topic) else {
        return Err(CliError::UnknownTopic(args.topic.clone()).into());
    };
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut assigned: usize = 0;
    if args.group.is_some() {
        consumer.subscribe(&[&args.topic])?;
    } else {
        let mut assignment = TopicPartitionList::new();
        let start = match (args.offset, args.from_beginning) {
            (Some(StartOffset::Earliest), _) | (None, true) => Offset::Beginning,
            (Some(StartOffset::Latest), _) | (None, false) => Offset::End,
            (Some(StartOffset::At(n)), _) => Offset::Offset(n),
        };
        let wanted: Vec<i32> = match args.partition {
            Some(p) if p < 0 || p as usize >= partitions => {
                return Err(
                    CliError::UnknownPartition { topic: args.topic.clone(), partition: p, count: partitions }.into()
                )
            }
            Some(p) => vec![p],
            None => (0..partitions as i32).collect(),
        };
        for partition in &wanted {
            assignment.add_partition_offset(&args.topic, *partition, start)?;
        }
        assigned = wanted.len();
        consumer.assign(&assignment)?;
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed: u64 = 0;
    let mut last_record = Instant::now();
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut broken_pipe = false;
    while !stop.load(Ordering::Relaxed) {
        if args.max_messages.is_some_and(|max| printed >= max) {
            break;
        }
        if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
            break;
        }
        if args.exit_at_end && assigned > 0 && at_end.len() >= assigned {
            break;
        }
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            // Idle: show what was printed so far to a reader at a terminal or in a pipe.
            if out.flush().is_err() {
                broken_pipe = true;
                break;
            }
            continue;
        };
        match polled {
            Ok(message) => {
                last_record = Instant::now();
                at_end.remove(&message.partition());
                if let Err(e) = write_record(&mut out, &message, &args) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        broken_pipe = true;
                        break;
                    }
                    bail!("writing to standard output: {e}");
                }
                printed += 1;
                if args.group.is_some() {
                    if let Err(e) = consumer.store_offset_from_message(&message) {
                        tracing::warn!("could not store the offset of a printed record: {e}");
                    }
                }
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                at_end.insert(partition);
            }
            Err(e) if is_fatal(&e) => {
                return Err(anyhow::anyhow!(
                    "reading '{}': {}",
                    args.topic,
                    describe_error(&e, consumer.context(), &connect.bootstrap_server)
                ));
            }
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    if !broken_pipe {
        out.flush().ok();
    }
    drop(out);
    if args.group.is_some() && printed > 0 {
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            eprintln!("warning: committing offsets of group: {e}");
        }
    }
    eprintln!("Processed a total of {printed} messages");
    Ok(())
}

/// Errors after which polling on would only repeat them.
fn is_fatal(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition)
            | Some(RDKafkaErrorCode::TopicAuthorizationFailed)
            | Some(RDKafkaErrorCode::GroupAuthorizationFailed)
            | Some(RDKafkaErrorCode::Fatal)
    )
}

fn write_record(out: &mut impl Write, message: &BorrowedMessage<'_>, args: &ConsumeArgs) -> std::io::Result<()> {
    let sep = args.key_separator.as_str();
    match args.format {
        Format::Json => {
            let record = JsonRecord {
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp().to_millis(),
                key: message.key().map(String::from_utf8_lossy),
                value: message.payload().map(String::from_utf8_lossy),
                headers: message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| JsonHeader { key: h.key, value: h.value.map(String::from_utf8_lossy) })
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            serde_json::to_writer(&mut *out, &record)?;
            writeln!(out)
        }
        Format::Value | Format::KeyValue => {
            if args.print_headers {
                match message.headers() {
                    Some(headers) if headers.count() > 0 => {
                        for (i, h) in headers.iter().enumerate() {
                            if i > 0 {
                                out.write_all(b",")?;
                            }
                            out.write_all(h.key.as_bytes())?;
                            out.write_all(b":")?;
                            out.write_all(h.value.unwrap_or(b"null"))?;
                        }
                    }
                    _ => out.write_all(b"NO_HEADERS")?,
                }
                out.write_all(sep.as_bytes())?;
            }
            if args.format == Format::KeyValue {
                out.write_all(message.key().unwrap_or(b"null"))?;
                out.write_all(sep.as_bytes())?;
            }
            out.write_all(message.payload().unwrap_or(b"null"))?;
            out.write_all(b"\n")
        }
    }
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<std::borrow::Cow<'a, str>>,
    value: Option<std::borrow::Cow<'a, str>>,
    headers: Vec<JsonHeader<'a>>,
}

#[derive(Serialize)]
struct JsonHeader<'a> {
    key: &'a str,
    value: Option<std::borrow::Cow<'a, str>>,
}
