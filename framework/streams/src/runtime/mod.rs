//! The runtime over a broker (part B): [`KafkaStreams`] with its stream threads, internal topics, changelog
//! restore with checkpoints, at-least-once and exactly-once (v2) processing, and interactive queries.

mod checkpoint;
mod collector;
mod exception_handler;
mod global_thread;
mod internal_topics;
mod kafka_streams;
mod partitioner;
mod queries;
mod restore;
mod standby;
mod stream_thread;

pub use checkpoint::{read_checkpoint, write_checkpoint, Checkpoint, CHECKPOINT_FILE};
pub use exception_handler::{shutdown_topic, StreamThreadExceptionResponse, StreamsUncaughtExceptionHandler};
pub use kafka_streams::{KafkaStreams, State};
pub use partitioner::{default_partition, murmur2};
#[doc(hidden)]
pub use queries::StoreRegistry;
pub use queries::{QueryableStore, ReadOnlyKeyValueStore, ReadOnlyWindowStore, StoreQueryParameters};
