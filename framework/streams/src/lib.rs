//! Kafka Streams for Rust: transform records from topic to topic with state.
//!
//! Build a topology with [`StreamsBuilder`] (the DSL: [`KStream`], [`KTable`], [`GlobalKTable`]) or by hand with
//! [`Topology`] and the Processor API ([`Processor`], [`ProcessorContext`]), and test it without a broker with
//! [`TopologyTestDriver`]. Keys and values use Spate's codecs ([`spate::Encode`]/[`spate::Decode`]): `String`,
//! `i64`, `Json<T>`... — the type names the format.
//!
//! ```
//! use spate_streams::{StreamsBuilder, StreamsConfig, TopologyTestDriver};
//! let builder = StreamsBuilder::new();
//! builder.stream::<String, String>("in").filter(|_, v| v.len() > 2).map_values(|v| v.to_uppercase()).to("out");
//! let driver = TopologyTestDriver::new(builder.build(), StreamsConfig::new("app")).unwrap();
//! driver.create_input_topic::<String, String>("in").pipe_input("k".into(), "hello".into()).unwrap();
//! driver.create_input_topic::<String, String>("in").pipe_input("k".into(), "hi".into()).unwrap();
//! let out = driver.create_output_topic::<String, String>("out");
//! assert_eq!(out.read_value().unwrap(), "HELLO");
//! assert!(out.is_empty());
//! ```

mod config;
pub mod dsl;
mod error;
pub mod processor;
mod record;
pub mod runtime;
pub mod state;
mod task;
pub mod test_driver;
mod topology;
mod windowed;

pub use config::{
    DeserializationHandler, DslStoreType, ProcessingGuarantee, ProductionExceptionHandler, StreamsConfig,
};
pub use dsl::*;
pub use error::{BoxError, StreamsError};
pub use processor::{Cancellable, Processor, ProcessorContext, PunctuationType, TimestampExtractor};
pub use record::{ConsumedRecord, Data, KeyValue, ProducedRecord, Record, RecordContext};
pub use runtime::{
    KafkaStreams, ReadOnlyKeyValueStore, ReadOnlyWindowStore, State, StoreQueryParameters,
    StreamThreadExceptionResponse, StreamsUncaughtExceptionHandler,
};
pub use state::{KeyValueStore, SessionStore, StoreBuilder, Stores, ValueAndTimestamp, WindowStore};
pub use task::{RecordCollector, StreamTask, TaskId};
pub use test_driver::{TestInputTopic, TestOutputTopic, TestRecord, TopologyTestDriver};
pub use topology::{Topology, TopologyDescription};
pub use windowed::{Window, Windowed};
