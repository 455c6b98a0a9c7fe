//! `StreamsBuilder` (the DSL's entry point) and the shared graph builder every `KStream`/`KTable` handle points
//! into: node naming like Kafka's (`KSTREAM-FILTER-0000000001`), store declaration, and build errors collected
//! until `build()` hands the topology over.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use spate::{Decode, Encode};

use super::ktable::{KTableSource, TableNode};
use super::{GlobalKTable, KStream, KTable, Materialized};
use crate::processor::node::TypedNode;
use crate::processor::{FnProcessor, Processor, ProcessorContext};
use crate::state::{StoreBuilder, Stores};
use crate::topology::{NodeFactory, NodeKind, TopicRef};
use crate::{BoxError, Data, Record, Topology};

pub(crate) type Shared = Rc<RefCell<InternalBuilder>>;

#[derive(Default)]
pub(crate) struct InternalBuilder {
    pub(crate) topology: Topology,
    index: usize,
}

impl InternalBuilder {
    pub(crate) fn new_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}-{:010}", self.index);
        self.index += 1;
        name
    }

    pub(crate) fn error(&mut self, message: String) {
        self.topology.build_errors.push(message);
    }

    /// Adds a node, recording a duplicate name as a build error (returned node is then a placeholder).
    pub(crate) fn add(&mut self, name: String, kind: NodeKind, parents: &[usize], factory: NodeFactory) -> usize {
        match self.topology.add_node(name.clone(), kind.clone(), parents, factory.clone()) {
            Ok(id) => id,
            Err(e) => {
                self.error(e.to_string());
                let unique = self.new_name(&name);
                self.topology.add_node(unique, kind, parents, factory).unwrap_or(0)
            }
        }
    }

    /// Adds a processor node running `supplier()` in each task.
    pub(crate) fn add_processor<KIn, VIn, KOut, VOut, P>(
        &mut self,
        name: String,
        parents: &[usize],
        supplier: impl Fn(&crate::topology::NodeDef) -> P + Send + Sync + 'static,
    ) -> usize
    where
        P: Processor<KIn, VIn, KOut, VOut>,
        KIn: 'static,
        VIn: 'static,
        KOut: 'static,
        VOut: 'static,
    {
        let factory: NodeFactory =
            Arc::new(move |def| Box::new(TypedNode::<P, KIn, VIn, KOut, VOut>::new(supplier(def))));
        self.add(name, NodeKind::Processor, parents, factory)
    }

    /// Adds a processor made of a closure.
    pub(crate) fn add_fn<KIn, VIn, KOut, VOut, F>(&mut self, name: String, parents: &[usize], f: F) -> usize
    where
        F: Fn(Record<KIn, VIn>, &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        KIn: 'static,
        VIn: 'static,
        KOut: 'static,
        VOut: 'static,
    {
        self.add_processor::<KIn, VIn, KOut, VOut, _>(name, parents, move |_| FnProcessor { f: f.clone() })
    }

    /// Declares a store, recording a duplicate as a build error.
    pub(crate) fn add_store(&mut self, builder: StoreBuilder) {
        let name = builder.name().to_owned();
        match self.topology.stores.entry(name) {
            std::collections::btree_map::Entry::Occupied(e) => {
                let message = format!("a store named {} already exists", e.key());
                self.error(message);
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(builder);
            }
        }
    }

    /// Declares the timestamped key-value store a table or aggregation materializes into.
    pub(crate) fn materialize_kv(&mut self, materialized: &Materialized, prefix: &str) -> String {
        let name = materialized.name.clone().unwrap_or_else(|| self.new_name(prefix));
        let supplier = match materialized.store_type {
            crate::DslStoreType::InMemory => Stores::in_memory_key_value_store(&name),
            crate::DslStoreType::Persistent => Stores::persistent_key_value_store(&name),
        };
        let mut builder = Stores::timestamped_key_value_store_builder(supplier);
        if !materialized.logging {
            builder = builder.with_logging_disabled();
        }
        self.add_store(builder);
        name
    }

    /// Declares a timestamped window store.
    pub(crate) fn materialize_window(
        &mut self,
        materialized: &Materialized,
        prefix: &str,
        retention_ms: i64,
        size_ms: i64,
        retain_duplicates: bool,
    ) -> String {
        let name = materialized.name.clone().unwrap_or_else(|| self.new_name(prefix));
        let retention = materialized.retention.map_or(retention_ms, |r| ms(r).max(retention_ms));
        let (retention, size) = (
            Duration::from_millis(u64::try_from(retention).unwrap_or(0)),
            Duration::from_millis(u64::try_from(size_ms).unwrap_or(0)),
        );
        let supplier = match materialized.store_type {
            crate::DslStoreType::InMemory => Stores::in_memory_window_store(&name, retention, size, retain_duplicates),
            crate::DslStoreType::Persistent => {
                Stores::persistent_window_store(&name, retention, size, retain_duplicates)
            }
        };
        let mut builder = Stores::timestamped_window_store_builder(supplier);
        if !materialized.logging {
            builder = builder.with_logging_disabled();
        }
        self.add_store(builder);
        name
    }

    /// Source topics upstream of `node` (through repartition topics too), for co-partitioning groups.
    pub(crate) fn upstream_topics(&self, node: usize) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![node];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            let def = &self.topology.nodes[n];
            if let NodeKind::Source(ts) = &def.kind {
                out.extend(ts.iter().map(|t| t.name.clone()));
            }
            stack.extend(def.parents.iter().copied());
        }
        out
    }

    pub(crate) fn copartition(&mut self, a: usize, b: usize) {
        let mut group = self.upstream_topics(a);
        group.extend(self.upstream_topics(b));
        if !self.topology.copartition_groups.contains(&group) {
            self.topology.copartition_groups.push(group);
        }
    }
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Builds a topology with the DSL (Kafka's `StreamsBuilder`).
///
/// ```
/// use spate_streams::StreamsBuilder;
/// let builder = StreamsBuilder::new();
/// let words = builder.stream::<String, String>("sentences")
///     .flat_map_values(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
/// words.group_by(|_, w| w.clone()).count().to_stream().to("word-counts");
/// let topology = builder.build();
/// assert!(topology.describe().to_string().contains("KSTREAM-FLATMAPVALUES-0000000001"));
/// ```
#[derive(Default)]
pub struct StreamsBuilder {
    b: Shared,
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        StreamsBuilder::default()
    }

    /// A stream of the records of `topic`.
    pub fn stream<K: Decode + Data, V: Decode + Data>(&self, topic: &str) -> KStream<K, V> {
        self.stream_from_topics(&[topic])
    }

    /// A stream of the records of several topics.
    pub fn stream_from_topics<K: Decode + Data, V: Decode + Data>(&self, topics: &[&str]) -> KStream<K, V> {
        self.stream_with_consumed(topics, super::Consumed::default())
    }

    /// A stream of `topic` with source options (Kafka's `Consumed`): a timestamp extractor, a source name.
    ///
    /// ```
    /// use spate_streams::{Consumed, StreamsBuilder};
    /// # #[derive(Clone, serde::Deserialize)] struct Metric { timestamp: i64 }
    /// let builder = StreamsBuilder::new();
    /// let metrics = builder.stream_with::<String, spate::Json<Metric>>(
    ///     "metrics",
    ///     Consumed::with_timestamp_extractor(|_k, m: &spate::Json<Metric>, _record_ts, _partition_time| m.timestamp),
    /// );
    /// ```
    pub fn stream_with<K: Decode + Data, V: Decode + Data>(
        &self,
        topic: &str,
        consumed: super::Consumed<K, V>,
    ) -> KStream<K, V> {
        self.stream_with_consumed(&[topic], consumed)
    }

    fn stream_with_consumed<K: Decode + Data, V: Decode + Data>(
        &self,
        topics: &[&str],
        consumed: super::Consumed<K, V>,
    ) -> KStream<K, V> {
        let mut b = self.b.borrow_mut();
        let name = consumed.name.clone().unwrap_or_else(|| b.new_name("KSTREAM-SOURCE"));
        let topics = topics.iter().map(|t| TopicRef::user(t)).collect();
        let node = match b.topology.add_source_node::<K, V>(name, topics, consumed.extractor) {
            Ok(n) => n,
            Err(e) => {
                b.error(e.to_string());
                0
            }
        };
        drop(b);
        KStream::new(self.b.clone(), node, false)
    }

    /// A table of the latest value per key of `topic` (null values delete), in a store with a generated name.
    pub fn table<K: Encode + Decode + Data, V: Encode + Decode + Data>(&self, topic: &str) -> KTable<K, V> {
        self.table_with(topic, Materialized::with_defaults())
    }

    /// [`table`](Self::table) materialized as `materialized` says.
    pub fn table_with<K: Encode + Decode + Data, V: Encode + Decode + Data>(
        &self,
        topic: &str,
        materialized: Materialized,
    ) -> KTable<K, V> {
        let node = self.table_source::<K, V>(topic, &materialized, false);
        KTable::new(self.b.clone(), node, None)
    }

    fn table_source<K: Encode + Decode + Data, V: Encode + Decode + Data>(
        &self,
        topic: &str,
        materialized: &Materialized,
        global: bool,
    ) -> usize {
        let mut b = self.b.borrow_mut();
        let source_name = b.new_name("KSTREAM-SOURCE");
        let source = match b.topology.add_source_node::<K, Option<V>>(source_name, vec![TopicRef::user(topic)], None) {
            Ok(n) => n,
            Err(e) => {
                b.error(e.to_string());
                0
            }
        };
        b.topology.nodes[source].global = global;
        let store = b.materialize_kv(materialized, &format!("{topic}-STATE-STORE"));
        if global {
            b.topology.global_stores.insert(store.clone());
        }
        let name = b.new_name("KTABLE-SOURCE");
        let node =
            b.add_processor::<K, Option<V>, K, Change<V>, _>(name, &[source], move |def: &crate::topology::NodeDef| {
                KTableSource::<K, V> { store: TableNode::store_of(def), _types: PhantomData }
            });
        b.topology.nodes[node].table_store = Some(store.clone());
        b.topology.connect_store(node, &store);
        node
    }

    /// A table replicated in full to every instance, read by key from stream joins (Kafka's `GlobalKTable`).
    pub fn global_table<K: Encode + Decode + Data, V: Encode + Decode + Data>(
        &self,
        topic: &str,
    ) -> GlobalKTable<K, V> {
        self.global_table_with(topic, Materialized::with_defaults())
    }

    /// [`global_table`](Self::global_table) with a named store.
    pub fn global_table_with<K: Encode + Decode + Data, V: Encode + Decode + Data>(
        &self,
        topic: &str,
        materialized: Materialized,
    ) -> GlobalKTable<K, V> {
        let node = self.table_source::<K, V>(topic, &materialized, true);
        let store = self.b.borrow().topology.nodes[node].table_store.clone().unwrap_or_default();
        GlobalKTable::new(store)
    }

    /// Declares a store for [`KStream::process`] processors.
    pub fn add_state_store(&self, builder: StoreBuilder) -> &Self {
        self.b.borrow_mut().add_store(builder);
        self
    }

    /// The topology built so far. Mistakes (a duplicate name, an unknown store) are reported when a task or a
    /// test driver is created from it.
    pub fn build(&self) -> Topology {
        self.b.borrow().topology.clone()
    }
}

use super::Change;
