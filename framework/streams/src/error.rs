//! Why a topology could not be built, or a record could not be processed. One enum so the runtime (part B) and the
//! test driver report the same failures with the node, store or topic they concern.

use spate::{DeserializationError, SerializationError};

/// What a user-written processor, predicate or joiner may fail with: any error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A streams failure.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// The topology is inconsistent (unknown parent, duplicate name, a store nobody declared...).
    #[error("invalid topology: {0}")]
    Topology(String),
    /// A key or value could not be serialized for a sink, a store or a repartition topic.
    #[error("at node {node}: {source}")]
    Serialization {
        /// The node (or store) that serialized.
        node: String,
        /// Why.
        source: SerializationError,
    },
    /// A consumed key or value (or a stored one) could not be deserialized.
    #[error("at node {node}: {source}")]
    Deserialization {
        /// The source node or store.
        node: String,
        /// Why.
        source: DeserializationError,
    },
    /// A processor failed (a user processor's error, kept as its source).
    #[error("processor {node} failed: {source}")]
    Processor {
        /// The processor node.
        node: String,
        /// Why.
        source: BoxError,
    },
    /// A record reached a node with another key/value type than it was built for (Processor API wiring mistake).
    #[error("node {node} received a record of another type than it was built for (expected {expected})")]
    TypeMismatch {
        /// The node.
        node: String,
        /// The record type it expects.
        expected: &'static str,
    },
    /// No store of that name is connected, or it is not of the requested kind.
    #[error("state store {store}: {reason}")]
    Store {
        /// Store name.
        store: String,
        /// Why.
        reason: String,
    },
    /// A record was piped into a topic no source reads.
    #[error("unknown topic {0}: no source node reads it")]
    UnknownTopic(String),
    /// A test output topic was read while empty (Kafka's `NoSuchElementException`).
    #[error("no record left in output topic {0}")]
    NoRecord(String),
    /// A stream thread panicked (in user code, typically); the runtime treats it as a failure of the thread.
    #[error("stream thread {thread} panicked: {message}")]
    Panic {
        /// The thread's name.
        thread: String,
        /// The panic message.
        message: String,
    },
    /// The record collector (producer) refused a record.
    #[error("cannot send to {topic}: {reason}")]
    Send {
        /// Destination topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

impl StreamsError {
    /// Wraps a processor's error with its node name, keeping a `StreamsError` that came up from downstream as is.
    pub(crate) fn from_processor(node: &str, error: BoxError) -> StreamsError {
        match error.downcast::<StreamsError>() {
            Ok(e) => *e,
            Err(source) => StreamsError::Processor { node: node.to_owned(), source },
        }
    }

    pub(crate) fn store(store: &str, reason: impl Into<String>) -> StreamsError {
        StreamsError::Store { store: store.to_owned(), reason: reason.into() }
    }
}
