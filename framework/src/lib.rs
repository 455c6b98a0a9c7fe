//! Spate: Spring for Apache Kafka, rebuilt for Rust.
//!
//! Handlers are plain async functions; what they need arrives as extractor arguments; `#[kafka_listener]`
//! registers them and [`App`] (or `#[spate::main]`) runs each in a listener container.
//!
//! ```no_run
//! use spate::{Json, Key, KafkaTemplate, Meta};
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Order { id: u64, amount: u64 }
//!
//! #[spate::kafka_listener(topics = "${app.orders_topic:orders}", group_id = "billing", concurrency = 3)]
//! async fn on_order(Json(order): Json<Order>, Key(customer): Key<String>, meta: Meta) {
//!     println!("{customer} ordered {} at {}-{}@{}", order.id, meta.topic, meta.partition, meta.offset);
//! }
//!
//! #[spate::main]
//! async fn main() -> spate::App {
//!     spate::App::new().topic(spate::TopicBuilder::name("orders").partitions(3))
//! }
//! ```
//!
//! Modules: [`config`] (figment configuration), [`template`] (`KafkaTemplate`), [`container`] (listener
//! containers, ack modes, registry), [`extract`] (handler arguments), [`listener`] (definitions and the service
//! type), [`error_handler`] (back-offs, recoverers, dead letters, batch outcomes), [`retry_topic`] (non-blocking
//! retries), [`layers`] (tower layers for listeners), [`admin`], [`codec`] (serialization), [`observability`]
//! (spans, trace context, metrics, health server), [`transaction`] (`in_transaction`, transactional listeners),
//! [`reply`] (`ReplyingKafkaTemplate`), [`test`] (feature `test-support`).

pub mod admin;
pub mod app;
pub mod codec;
pub mod config;
pub mod container;
pub mod error_handler;
pub mod extract;
pub mod kafka_headers;
pub mod layers;
pub mod listener;
pub mod observability;
pub mod record;
pub mod reply;
pub mod retry_topic;
pub mod template;
#[cfg(feature = "test-support")]
pub mod test;
pub mod topic;
pub mod transaction;

pub use admin::{AdminError, KafkaAdmin, TopicBuilder, TopicSpec};
pub use app::{shutdown_signal, App, AppError, RunningApp};
pub use codec::{Decode, DeserializationError, Encode, Json, RecordBytes, RecordPart, SerializationError};
pub use config::{Config, ConfigError, ConfigLoader};
pub use container::{
    Ack, AckMode, ContainerError, ContainerEvent, InitialPositions, ListenerContainer, ListenerEndpointRegistry,
    Ordering, RebalanceListener, SeekPosition,
};
pub use error_handler::{
    BackOff, BatchFailed, ConsumerRecordRecoverer, DeadLetterPublishingRecoverer, DefaultErrorHandler, ErrorDecision,
    ErrorHandler, ExponentialBackOff, FixedBackOff, LoggingRecoverer, ValidationError,
};
pub use extract::{Batch, FromBatch, FromRecord, IntoOutcome, IntoReply, Key, Meta, State};
pub use listener::{BoxError, Delivery, ListenerContext, ListenerDefinition, ListenerError, Outcome, StateMap};
pub use record::{Headers, Record, TimestampType, TopicPartition};
pub use reply::{ReplyError, ReplyingKafkaTemplate, ReplyingKafkaTemplateBuilder};
pub use retry_topic::{DltInfo, DltStrategy, ErrorKind, RetryBackOff, RetryTopicConfiguration, TopicSuffixingStrategy};
pub use spate_macros::{dlt_handler, kafka_listener, main, retryable_topic, send_to};
pub use template::{
    KafkaTemplate, ProducerFactory, ProducerListener, ProducerRecord, RecordMetadata, SendError, SentRecord,
};
pub use topic::{Topic, TopicName};
pub use transaction::TransactionError;

/// Re-exported so applications need not depend on them directly.
pub use {bytes::Bytes, rdkafka};

/// Used by the code `#[kafka_listener]` and `#[spate::main]` generate; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::extract::assert_fits_topic;
    pub use crate::listener::{HandlerFuture, ListenerRegistration};
    pub use futures::future::BoxFuture;
    pub use inventory;

    /// What `#[spate::main]`'s function may return.
    pub trait IntoApp {
        /// The app, or the error that prevented building it.
        fn into_app(self) -> Result<crate::App, String>;
    }

    impl IntoApp for crate::App {
        fn into_app(self) -> Result<crate::App, String> {
            Ok(self)
        }
    }

    impl<E: std::fmt::Display> IntoApp for Result<crate::App, E> {
        fn into_app(self) -> Result<crate::App, String> {
            self.map_err(|e| e.to_string())
        }
    }

    /// Body of `#[spate::main]`: logging, a multi-threaded runtime, build the app, run it until a signal.
    pub fn run_main<F>(build: F) -> std::process::ExitCode
    where
        F: std::future::Future,
        F::Output: IntoApp,
    {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
        let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot start the tokio runtime: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        runtime.block_on(async move {
            let app = match build.await.into_app() {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match app.run().await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        })
    }
}
