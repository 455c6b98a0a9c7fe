//! `spate-broker`: the broker alone, for containers and for tests that must kill a real process.
//! Most users run `spate broker`, which adds configuration files and environment on top of the same library.
//!
//! Usage: `spate-broker [--listen ADDR] [--data-dir DIR] [--storage-backend auto|io_uring|std]
//!         [--flush-every-produce] [--advertised-listener HOST:PORT]`

use std::process::ExitCode;

use spate_broker::config::StorageBackendKind;
use spate_broker::protocol::decode_guard::GuardedAllocator;
use spate_broker::{Broker, BrokerConfig};

#[global_allocator]
static ALLOC: GuardedAllocator = GuardedAllocator;

fn parse(args: impl Iterator<Item = String>) -> Result<BrokerConfig, String> {
    let mut config = BrokerConfig::default();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                config.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--data-dir" => config.data_dir = value("--data-dir")?.into(),
            "--advertised-listener" => config.advertised_listener = Some(value("--advertised-listener")?),
            "--storage-backend" => {
                config.storage_backend = match value("--storage-backend")?.as_str() {
                    "auto" => StorageBackendKind::Auto,
                    "io_uring" => StorageBackendKind::IoUring,
                    "std" => StorageBackendKind::Std,
                    other => return Err(format!("--storage-backend {other}: expected auto, io_uring or std")),
                }
            }
            "--flush-every-produce" => config.flush_every_produce = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("spate-broker: {e}");
            }
            eprintln!(
                "usage: spate-broker [--listen ADDR] [--data-dir DIR] [--storage-backend auto|io_uring|std] \
                 [--flush-every-produce] [--advertised-listener HOST:PORT]"
            );
            return ExitCode::from(2);
        }
    };
    let broker = match Broker::start(config).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("spate-broker: {e}");
            return ExitCode::from(1);
        }
    };
    // Tests read this line to learn the port.
    println!("listening on {}", broker.local_addr());
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("spate-broker: cannot install SIGTERM handler: {e}");
            return ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    match broker.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spate-broker: shutdown: {e}");
            ExitCode::from(1)
        }
    }
}
