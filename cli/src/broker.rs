//! `spate broker`: run the bundled broker in the foreground until SIGINT or SIGTERM, then shut it down cleanly
//! (flushed logs, clean-shutdown marker) so the next start skips recovery.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use spate_broker::config::StorageBackendKind;
use spate_broker::Broker;

use crate::broker_config::{self, FlagSettings, Sources};
use crate::client::parse_key_value;

#[derive(Copy, Clone, Debug, ValueEnum)]
enum StorageBackend {
    /// io_uring when the kernel allows it, else std.
    Auto,
    /// io_uring only; fail to start without it.
    #[value(name = "io_uring", alias = "io-uring")]
    IoUring,
    /// Portable std::fs backend.
    Std,
}

impl From<StorageBackend> for StorageBackendKind {
    fn from(b: StorageBackend) -> Self {
        match b {
            StorageBackend::Auto => StorageBackendKind::Auto,
            StorageBackend::IoUring => StorageBackendKind::IoUring,
            StorageBackend::Std => StorageBackendKind::Std,
        }
    }
}

#[derive(Args, Debug)]
#[command(after_help = "\
Settings are layered, later ones winning: built-in defaults, the [broker] section of spate.toml (or --config),
SPATE_BROKER_* environment variables (SPATE_BROKER_LOG_RETENTION_MS=60000), then flags. Setting names are
Kafka's broker configs with dots as underscores: log.retention.ms is log_retention_ms.")]
pub struct BrokerArgs {
    /// Configuration file whose [broker] section is read (default: ./spate.toml if it exists).
    #[arg(long, short = 'c', env = "SPATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory for partitions, topic metadata and committed offsets (log.dirs).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// host:port clients are told to connect to (advertised.listeners); default: the bound address.
    #[arg(long, value_name = "HOST:PORT")]
    advertised_listener: Option<String>,
    /// Storage backend for segment I/O.
    #[arg(long, value_enum)]
    storage_backend: Option<StorageBackend>,
    /// Broker id (node.id).
    #[arg(long, value_name = "ID")]
    node_id: Option<i32>,
    /// Any other broker setting, e.g. `--set log.retention.ms=60000`. Repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    set: Vec<(String, String)>,
    /// Print the resulting configuration as TOML and exit without starting.
    #[arg(long)]
    print_config: bool,
}

pub async fn run(args: BrokerArgs) -> Result<()> {
    let sources = Sources {
        file: args.config,
        flags: FlagSettings {
            listen: args.listen,
            data_dir: args.data_dir,
            advertised_listener: args.advertised_listener,
            storage_backend: args.storage_backend.map(Into::into),
            node_id: args.node_id,
        },
        set: args.set,
    };
    let config = broker_config::load(&sources)?;
    if args.print_config {
        print!("{}", toml::to_string(&config).context("rendering the configuration as TOML")?);
        return Ok(());
    }

    let broker = Broker::start(config).await.context("the broker could not start")?;
    tracing::info!("listening on {} (bootstrap.servers={})", broker.local_addr(), broker.bootstrap_servers());

    let signal = wait_for_signal().await?;
    tracing::info!("{signal} received; shutting down (send it again to stop at once)");
    tokio::select! {
        result = broker.shutdown() => result.context("the broker did not shut down cleanly")?,
        signal = wait_for_signal() => {
            let signal = signal?;
            tracing::warn!("{signal} received again; exiting without a clean shutdown");
            std::process::exit(130);
        }
    }
    tracing::info!("broker stopped");
    Ok(())
}

async fn wait_for_signal() -> Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tokio::select! {
            _ = terminate.recv() => Ok("SIGTERM"),
            _ = interrupt.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        Ok("Ctrl-C")
    }
}
