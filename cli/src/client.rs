//! What every command that talks to a broker shares: the `--bootstrap-server` / `-X` flags, the librdkafka
//! configuration built from them, and a client context that remembers why the broker could not be reached, so a
//! timeout can be reported as "connection refused" rather than as a bare "operation timed out".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{Producer, ThreadedProducer};

/// `key=value`, the shape of every passthrough flag.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// Broker(s) to connect to, comma separated host:port.
    #[arg(
        long,
        short = 'b',
        global = true,
        env = "SPATE_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT"
    )]
    pub bootstrap_server: String,

    /// How long to wait for the broker before giving up, in milliseconds.
    #[arg(long, global = true, default_value_t = 30_000, value_name = "MS")]
    pub request_timeout_ms: u64,

    /// Extra librdkafka client property, e.g. `-X security.protocol=ssl`. Repeatable.
    #[arg(long = "property", short = 'X', global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,
}

impl ConnectArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The librdkafka configuration shared by every client: `-X` properties come last so they win.
    pub fn client_config(&self, overrides: &[(&str, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_server)
            .set("client.id", "spate-cli")
            // librdkafka otherwise logs every refused connection to stderr, which buries the one-line error
            // this tool prints; the context keeps the last one for that message instead.
            .set("log.connection.close", "false")
            .set_log_level(RDKafkaLogLevel::Warning);
        for (key, value) in overrides {
            config.set(*key, value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// Remembers the most recent client-level error (refused connection, failed name resolution, authentication)
/// so that a timed-out operation can say why.
#[derive(Default)]
pub struct CliContext {
    last_error: Mutex<Option<String>>,
    all_brokers_down: AtomicBool,
}

impl CliContext {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn all_brokers_down(&self) -> bool {
        self.all_brokers_down.load(Ordering::Relaxed)
    }
}

/// librdkafka's "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in
/// state CONNECT)" becomes "Connect to ipv4#127.0.0.1:1 failed: Connection refused".
fn tidy_reason(reason: &str) -> String {
    let mut reason = reason.trim();
    if let Some((first, rest)) = reason.split_once(": ") {
        if first.contains('/') && !first.contains(' ') {
            reason = rest;
        }
    }
    if let Some(at) = reason.find(" (after ") {
        reason = &reason[..at];
    }
    reason.to_string()
}

impl ClientContext for CliContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::debug!(target: "librdkafka", "{fac} {message}")
            }
            _ => tracing::trace!(target: "librdkafka", "{fac} {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, reason);
        // "all brokers down" says nothing more than the transport error that came just before it.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.all_brokers_down.store(true, Ordering::Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                last.get_or_insert_with(|| tidy_reason(reason));
            }
            return;
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(tidy_reason(reason));
        }
    }
}

impl ConsumerContext for CliContext {}

impl rdkafka::producer::ProducerContext for CliContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// Explains a client error, adding the connection failure seen before it when the operation merely timed out.
pub fn describe_error(error: &KafkaError, context: &CliContext, bootstrap: &str) -> String {
    let timed_out = matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::OperationTimedOut)
            | Some(RDKafkaErrorCode::RequestTimedOut)
            | Some(RDKafkaErrorCode::BrokerTransportFailure)
            | Some(RDKafkaErrorCode::AllBrokersDown)
            | Some(RDKafkaErrorCode::MessageTimedOut)
    );
    match (timed_out, context.last_error()) {
        (true, Some(cause)) => format!("cannot reach the broker at {bootstrap}: {cause}"),
        (true, None) => match error.rdkafka_error_code() {
            Some(code) => format!("cannot reach the broker at {bootstrap}: {code}"),
            None => format!("cannot reach the broker at {bootstrap}: {error}"),
        },
        _ => error.to_string(),
    }
}

/// How long every bootstrap broker may refuse connections before the command gives up: long enough for a
/// broker that is just (re)starting, short enough that a wrong address does not hang a terminal.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(3);

/// Fails with [`CliError::Unreachable`] unless the cluster answers a Metadata request in time; every command
/// starts with this so that a wrong address is reported at once and in one line. It asks for all topics: a
/// request naming one topic may auto-create it, and looking must not create.
///
/// The request goes through a client of its own whose background thread serves librdkafka's error callbacks,
/// so the message can say why (refused, unresolvable) whichever client the command itself uses.
pub fn fetch_metadata(connect: &ConnectArgs) -> Result<Metadata, CliError> {
    let probe: ThreadedProducer<CliContext> = connect
        .client_config(&[])
        .create_with_context(CliContext::default())
        .map_err(|e| CliError::ClientConfig(e.to_string()))?;
    let client = probe.client();
    let context: &CliContext = client.context();
    let start = Instant::now();
    let deadline = start + connect.timeout();
    loop {
        // Short attempts, so that "every broker refuses connections" can end the wait early.
        let attempt = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(500));
        let error = match client.fetch_metadata(None, attempt) {
            Ok(metadata) => return Ok(metadata),
            Err(e) => e,
        };
        let out_of_time = Instant::now() >= deadline;
        let retryable = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::OperationTimedOut)
                | Some(RDKafkaErrorCode::BrokerTransportFailure)
                | Some(RDKafkaErrorCode::AllBrokersDown)
        );
        let refused =
            error.rdkafka_error_code() != Some(RDKafkaErrorCode::OperationTimedOut) || context.all_brokers_down();
        if retryable && !out_of_time && !(refused && start.elapsed() >= UNREACHABLE_GRACE) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        return Err(CliError::Unreachable {
            bootstrap: connect.bootstrap_server.clone(),
            reason: describe_error(&error, context, &connect.bootstrap_server),
        });
    }
}

/// Errors every command can end with; each maps to exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{reason}")]
    Unreachable { bootstrap: String, reason: String },
    #[error("invalid client configuration: {0}")]
    ClientConfig(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("topic '{topic}' has no partition {partition} (it has {count})")]
    UnknownPartition { topic: String, partition: i32, count: usize },
}

/// The number of partitions of `topic`, or `None` when the cluster does not know it.
pub fn partition_count(metadata: &Metadata, topic: &str) -> Option<usize> {
    metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()).map(|t| t.partitions().len())
}
