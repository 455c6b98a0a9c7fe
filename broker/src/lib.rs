//! Spate's bundled broker: a Kafka-wire-compatible server that stores partitions in Kafka's own on-disk format.
//!
//! Start one in-process with [`Broker::start`], or from the command line with `spate broker`.
//!
//! ```no_run
//! # async fn run() -> Result<(), spate_broker::BrokerError> {
//! let config = spate_broker::BrokerConfig::for_tests(std::path::Path::new("/tmp/spate-data"));
//! let broker = spate_broker::Broker::start(config).await?;
//! println!("bootstrap.servers={}", broker.bootstrap_servers());
//! broker.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! The crate is laid out by concept: `protocol` (framing, connections, one handler file per API),
//! `log` (segments and indexes, as Apache Kafka's `storage/internals/log`), `io` (the io_uring and portable
//! storage backends), `cluster` (topic metadata and configs), `coordinator` (consumer groups, transactions).

pub mod broker;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod io;
pub mod log;
pub mod open_files;
pub mod protocol;

pub use broker::{Broker, BrokerError};
pub use config::BrokerConfig;
