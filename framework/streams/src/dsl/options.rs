//! Options that name what an operator creates or say how its state is kept (Kafka's `Named`, `Materialized`,
//! `Grouped`, `Repartitioned`). Key and value formats come from the types, so none of these carry serdes.

use std::time::Duration;

use crate::DslStoreType;

/// Names a processor (Kafka's `Named`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named(pub(crate) String);

impl Named {
    /// `Named::as_("name")`.
    pub fn as_(name: impl Into<String>) -> Self {
        Named(name.into())
    }
}

/// Names and configures the store of a table or aggregation (Kafka's `Materialized`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materialized {
    pub(crate) name: Option<String>,
    pub(crate) logging: bool,
    pub(crate) retention: Option<Duration>,
    pub(crate) store_type: DslStoreType,
}

impl Default for Materialized {
    fn default() -> Self {
        Materialized::with_defaults()
    }
}

impl Materialized {
    /// A store named `name`: queryable by that name, and its changelog is `<application.id>-<name>-changelog`.
    pub fn as_(name: impl Into<String>) -> Self {
        Materialized { name: Some(name.into()), logging: true, retention: None, store_type: DslStoreType::InMemory }
    }
    /// A store with a generated name.
    pub fn with_defaults() -> Self {
        Materialized { name: None, logging: true, retention: None, store_type: DslStoreType::InMemory }
    }
    /// In memory (the default here) or persistent (redb).
    pub fn with_store_type(mut self, store_type: DslStoreType) -> Self {
        self.store_type = store_type;
        self
    }
    /// No changelog topic.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }
    /// How long a windowed store keeps windows (at least window size + grace).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }
}

/// Source options (Kafka's `Consumed`, without serdes: the types are the format).
pub struct Consumed<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) extractor: Option<crate::processor::TimestampExtractor<K, V>>,
}

impl<K, V> Default for Consumed<K, V> {
    fn default() -> Self {
        Consumed { name: None, extractor: None }
    }
}

impl<K, V> Consumed<K, V> {
    /// Takes each record's timestamp from `extractor(key, value, record_timestamp, partition_time)` (Kafka's
    /// `TimestampExtractor`); a negative result drops the record, as in Kafka.
    pub fn with_timestamp_extractor(extractor: impl Fn(&K, &V, i64, i64) -> i64 + Send + Sync + 'static) -> Self {
        Consumed { name: None, extractor: Some(std::sync::Arc::new(extractor)) }
    }
    /// Names the source node.
    pub fn as_(name: impl Into<String>) -> Self {
        Consumed { name: Some(name.into()), extractor: None }
    }
    /// Names the source node (chained after `with_timestamp_extractor`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Names the repartition topic of a grouping (Kafka's `Grouped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouped(pub(crate) String);

impl Grouped {
    /// The repartition topic becomes `<application.id>-<name>-repartition`.
    pub fn as_(name: impl Into<String>) -> Self {
        Grouped(name.into())
    }
}

/// Names an explicit repartition topic (Kafka's `Repartitioned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repartitioned(pub(crate) String);

impl Repartitioned {
    /// The topic becomes `<application.id>-<name>-repartition`.
    pub fn as_(name: impl Into<String>) -> Self {
        Repartitioned(name.into())
    }
}
