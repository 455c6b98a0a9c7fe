//! Starting and stopping a broker: open the data dir, recover logs, bind the listeners, accept connections,
//! and on shutdown stop accepting, let connections finish their current request, and flush every log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{Controller, MetadataError, MetadataStore, ProducerIdManager, ReplicaManager};
use crate::config::BrokerConfig;
use crate::coordinator::Coordinators;
use crate::log::dir_lock::DataDirLock;
use crate::log::{LogError, LogManager, LogManagerOptions};
use crate::protocol::connection;

/// Why the broker could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// What every connection shares: configuration, topic registry, hosted partitions and coordinators.
pub struct BrokerState {
    pub config: Arc<BrokerConfig>,
    /// `host` and `port` clients are told to connect to.
    pub advertised_host: String,
    pub advertised_port: i32,
    pub metadata: Arc<MetadataStore>,
    pub replicas: Arc<ReplicaManager>,
    pub controller: Controller,
    pub producer_ids: ProducerIdManager,
    pub coordinators: Coordinators,
    /// Flips to true when the broker begins shutting down; long polls return early.
    pub shutdown: watch::Receiver<bool>,
    /// Open client connections, for `max.connections` and for waiting on them at shutdown.
    pub connections: connection::ConnectionTracker,
}

/// A running broker. Dropping it without [`Broker::shutdown`] stops accepting but skips the final flush.
pub struct Broker {
    state: Arc<BrokerState>,
    local_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
    logs: Arc<LogManager>,
    /// Released last, after the final flush.
    _dir_lock: DataDirLock,
}

impl Broker {
    /// Opens the data dir (recovering every log), binds the listeners and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        if config.node_id < 0 {
            return Err(BrokerError::Config(format!("node_id must be >= 0, got {}", config.node_id)));
        }
        if config.num_partitions < 1 {
            return Err(BrokerError::Config(format!("num_partitions must be >= 1, got {}", config.num_partitions)));
        }
        if !crate::protocol::decode_guard::GuardedAllocator::is_installed() {
            tracing::warn!(
                "GuardedAllocator is not this process's global allocator: a hostile request with an impossible \
                 array count can abort the process (see spate_broker::protocol::decode_guard)"
            );
        }
        match crate::open_files::raise_to_hard_limit() {
            Ok(limit) if limit.now > limit.before => {
                tracing::info!(before = limit.before, now = limit.now, "open-file limit raised to the hard limit")
            }
            Ok(limit) => tracing::debug!(limit = limit.now, "open-file limit"),
            Err(error) => tracing::warn!(%error, "could not raise the open-file limit to the hard limit"),
        }
        let config = Arc::new(config);
        // Before anything reads or writes the directory: a second broker on it must not touch a single file.
        let dir_lock = DataDirLock::acquire(&config.data_dir)?;
        let metadata = Arc::new(MetadataStore::open(&config.data_dir, config.node_id, config.cluster_id.as_deref())?);
        let logs = LogManager::open(
            &config.data_dir,
            LogManagerOptions {
                backend: config.storage_backend,
                max_decompressed_batch_bytes: config.max_decompressed_batch_bytes,
            },
        )?;
        let replicas = Arc::new(ReplicaManager::new(logs.clone()));
        let controller = Controller::new(config.clone(), metadata.clone(), replicas.clone());
        controller.load().await?;
        logs.start_background_tasks(
            Duration::from_millis(config.log_retention_check_interval_ms),
            Duration::from_millis(config.log_flush_scheduler_interval_ms),
        );

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| BrokerError::Bind { addr: config.listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| BrokerError::Bind { addr: config.listen, source })?;
        let mut listeners = vec![listener];
        let mut extra_listen = config.extra_listen.clone();
        if extra_listen.is_empty() && local_addr.ip() == std::net::IpAddr::from([127, 0, 0, 1]) {
            // librdkafka resolves `localhost` to ::1 first; answering there too spares clients a failed connect
            // and an error line per start. Best effort: a host without IPv6 simply skips it.
            extra_listen.push(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, local_addr.port())));
        }
        for extra in &extra_listen {
            // An extra listener on the same port as the main one when port 0 was asked for.
            let addr = if extra.port() == 0 { SocketAddr::new(extra.ip(), local_addr.port()) } else { *extra };
            match TcpListener::bind(addr).await {
                Ok(l) => listeners.push(l),
                Err(e) if config.extra_listen.is_empty() => {
                    tracing::debug!(%addr, error = %e, "IPv6 loopback listener not available")
                }
                Err(e) => tracing::warn!(%addr, error = %e, "could not bind extra listener"),
            }
        }
        let (advertised_host, advertised_port) = advertised(&config, local_addr)?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let metadata_for_ids = metadata.clone();
        let coordinators = Coordinators::new(config.clone(), metadata.clone(), replicas.clone());
        let state = Arc::new(BrokerState {
            config: config.clone(),
            advertised_host,
            advertised_port,
            metadata,
            replicas,
            controller,
            producer_ids: ProducerIdManager::new(metadata_for_ids),
            coordinators,
            shutdown: shutdown_rx,
            connections: connection::ConnectionTracker::default(),
        });
        state.coordinators.start(&state).await?;
        let accept_tasks =
            listeners.into_iter().map(|l| tokio::spawn(connection::accept_loop(l, state.clone()))).collect();
        tracing::info!(
            listen = %local_addr,
            advertised = %format!("{}:{}", state.advertised_host, state.advertised_port),
            data_dir = %config.data_dir.display(),
            storage = logs.backend_name(),
            cluster_id = state.metadata.cluster_id(),
            "broker started"
        );
        Ok(Broker { state, local_addr, shutdown_tx, accept_tasks, logs, _dir_lock: dir_lock })
    }

    /// The address the main listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `host:port` for a client's `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        format!("{}:{}", self.state.advertised_host, self.state.advertised_port)
    }

    /// The shared state, for in-process inspection in tests.
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Stops accepting, ends long polls, closes connections after their current request, flushes and closes
    /// every log, and writes the clean-shutdown marker so the next start skips recovery.
    pub async fn shutdown(mut self) -> Result<(), BrokerError> {
        let _ = self.shutdown_tx.send(true);
        for t in self.accept_tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.state.connections.wait_idle(Duration::from_secs(5)).await;
        self.state.coordinators.shutdown().await;
        self.logs.shutdown().await?;
        tracing::info!(listen = %self.local_addr, "broker stopped");
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        for t in &self.accept_tasks {
            t.abort();
        }
    }
}

fn advertised(config: &BrokerConfig, bound: SocketAddr) -> Result<(String, i32), BrokerError> {
    match &config.advertised_listener {
        Some(listener) => {
            let l = listener.strip_prefix("PLAINTEXT://").unwrap_or(listener);
            let (host, port) = l
                .rsplit_once(':')
                .ok_or_else(|| BrokerError::Config(format!("advertised_listener {listener:?} is not host:port")))?;
            let port: i32 = port
                .parse()
                .map_err(|_| BrokerError::Config(format!("advertised_listener {listener:?} has no valid port")))?;
            let port = if port == 0 { bound.port() as i32 } else { port };
            Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port))
        }
        None => {
            let ip = bound.ip();
            let host = if ip.is_unspecified() { "localhost".to_string() } else { ip.to_string() };
            Ok((host, bound.port() as i32))
        }
    }
}
