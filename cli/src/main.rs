//! The `spate` command. Each subcommand lives in its own module; this file parses the command line, sets up
//! logging and turns the outcome into an exit code: 0 when the operation succeeded, 1 when it failed, 2 when the
//! command line itself was wrong (clap's convention).

mod broker;
mod broker_config;
mod client;
mod consume;
mod groups;
mod perf;
mod perf_rebalance;
mod produce;
mod topics;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

// The embedded broker decodes untrusted requests; see spate_broker::protocol::decode_guard for why this matters.
#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

#[derive(Parser, Debug)]
#[command(
    name = "spate",
    version,
    about = "Spate: run the bundled Kafka-compatible broker and work with topics and records",
    long_about = "Spate: run the bundled Kafka-compatible broker and work with topics and records.\n\n\
        Every command except `broker` speaks the Kafka protocol, so it works against Spate's broker and any Kafka \
        cluster alike. The broker address comes from --bootstrap-server or SPATE_BOOTSTRAP_SERVERS.",
    after_help = "Examples:\n  \
        spate broker --data-dir ./data\n  \
        spate topics create orders --partitions 3\n  \
        echo 'hello' | spate produce orders\n  \
        spate consume orders --from-beginning --max-messages 1\n  \
        spate groups describe billing\n  \
        spate perf produce --topic bench --num-records 100000 --record-size 100"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the bundled broker in the foreground until Ctrl-C or SIGTERM.
    Broker(broker::BrokerArgs),
    /// Create, list, describe, alter and delete topics.
    Topics(topics::TopicsArgs),
    /// Write records from standard input (one per line) or from --value.
    Produce(produce::ProduceArgs),
    /// Print records of a topic to standard output.
    Consume(consume::ConsumeArgs),
    /// List, describe and delete consumer groups, and reset their committed offsets.
    Groups(groups::GroupsArgs),
    /// Measure producer or consumer throughput and latency.
    Perf(perf::PerfArgs),
}

/// An error whose details were already printed on standard error; only its summary remains to be said.
#[derive(Debug)]
pub struct Reported(pub String);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reported {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A running broker reports what it does; the client commands print results and stay quiet otherwise.
    let default_level = if matches!(cli.command, Command::Broker(_)) { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Broker(args) => broker::run(args).await,
            Command::Topics(args) => topics::run(args).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Groups(args) => groups::run(args).await,
            Command::Perf(args) => perf::run(args).await,
        }
    });
    // Nothing left matters once the outcome is known (a signal listener may still be waiting); don't wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
