//! `KStream<K, V>`: an unbounded stream of records, and its stateless operators. Key-changing operators mark the
//! stream so that the next grouping or join inserts a repartition topic first, as Kafka does.

use std::marker::PhantomData;
use std::sync::Arc;

use spate::{Decode, Encode};

use super::builder::Shared;
use super::ktable::{KTableSource, TableNode};
use super::{BranchedKStream, Change, Grouped, KGroupedStream, KTable, Materialized, Named, Repartitioned};
use crate::processor::node::TypedNode;
use crate::processor::source_sink::{SinkProcessor, SinkTarget};
use crate::processor::Processor;
use crate::topology::{NodeFactory, NodeKind, TopicRef};
use crate::{Data, Record, RecordContext};

/// A stream of records (Kafka's `KStream`). Cheap to clone: it is a handle into the builder, and each operator
/// adds a node under it, so one stream can feed several branches.
pub struct KStream<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: usize,
    pub(crate) repartition_required: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            b: self.b.clone(),
            node: self.node,
            repartition_required: self.repartition_required,
            _types: PhantomData,
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(b: Shared, node: usize, repartition_required: bool) -> Self {
        KStream { b, node, repartition_required, _types: PhantomData }
    }

    fn derive<K2: Data, V2: Data, F>(&self, prefix: &str, key_changing: bool, f: F) -> KStream<K2, V2>
    where
        F: Fn(Record<K, V>, &mut crate::ProcessorContext<'_, K2, V2>) -> Result<(), crate::BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        let mut b = self.b.borrow_mut();
        let name = b.new_name(prefix);
        let node = b.add_fn(name, &[self.node], f);
        drop(b);
        KStream::new(self.b.clone(), node, self.repartition_required || key_changing)
    }

    /// Keeps the records for which `predicate` holds.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let p = Arc::new(predicate);
        self.derive(
            "KSTREAM-FILTER",
            false,
            move |r, ctx| if p(r.key(), r.value()) { Ok(ctx.forward(r)?) } else { Ok(()) },
        )
    }

    /// Drops the records for which `predicate` holds.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let p = Arc::new(predicate);
        self.derive(
            "KSTREAM-FILTER",
            false,
            move |r, ctx| if p(r.key(), r.value()) { Ok(()) } else { Ok(ctx.forward(r)?) },
        )
    }

    /// Replaces key and value (marks the stream for repartitioning).
    pub fn map<K2: Data, V2: Data>(
        &self,
        mapper: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let m = Arc::new(mapper);
        self.derive("KSTREAM-MAP", true, move |r, ctx| {
            let (k, v) = m(r.key(), r.value());
            Ok(ctx.forward(r.with_key(k).with_value(v))?)
        })
    }

    /// Replaces the value.
    pub fn map_values<V2: Data>(&self, mapper: impl Fn(&V) -> V2 + Send + Sync + 'static) -> KStream<K, V2> {
        let m = Arc::new(mapper);
        self.derive("KSTREAM-MAPVALUES", false, move |r, ctx| {
            let v = m(r.value());
            Ok(ctx.forward(r.with_value(v))?)
        })
    }

    /// Replaces the value, seeing the key (Kafka's `ValueMapperWithKey`).
    pub fn map_values_with_key<V2: Data>(
        &self,
        mapper: impl Fn(&K, &V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let m = Arc::new(mapper);
        self.derive("KSTREAM-MAPVALUES", false, move |r, ctx| {
            let v = m(r.key(), r.value());
            Ok(ctx.forward(r.with_value(v))?)
        })
    }

    /// Replaces each record by zero or more records (marks the stream for repartitioning).
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        mapper: impl Fn(&K, &V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let m = Arc::new(mapper);
        self.derive("KSTREAM-FLATMAP", true, move |r, ctx| {
            for (k, v) in m(r.key(), r.value()) {
                ctx.forward(r.clone().with_key(k).with_value(v))?;
            }
            Ok(())
        })
    }

    /// Replaces each value by zero or more values with the same key.
    pub fn flat_map_values<V2: Data, I>(&self, mapper: impl Fn(&V) -> I + Send + Sync + 'static) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let m = Arc::new(mapper);
        self.derive("KSTREAM-FLATMAPVALUES", false, move |r, ctx| {
            for v in m(r.value()) {
                ctx.forward(r.clone().with_value(v))?;
            }
            Ok(())
        })
    }

    /// Sets a new key (marks the stream for repartitioning).
    pub fn select_key<K2: Data>(&self, mapper: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KStream<K2, V> {
        let m = Arc::new(mapper);
        self.derive("KSTREAM-KEY-SELECT", true, move |r, ctx| {
            let k = m(r.key(), r.value());
            Ok(ctx.forward(r.with_key(k))?)
        })
    }

    /// Calls `action` on each record and passes it on.
    pub fn peek(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let a = Arc::new(action);
        self.derive("KSTREAM-PEEK", false, move |r, ctx| {
            a(r.key(), r.value());
            Ok(ctx.forward(r)?)
        })
    }

    /// Calls `action` on each record (a terminal operation).
    pub fn foreach(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) {
        let a = Arc::new(action);
        let _: KStream<(), ()> = self.derive("KSTREAM-FOREACH", false, move |r: Record<K, V>, _ctx| {
            a(r.key(), r.value());
            Ok(())
        });
    }

    /// Both streams' records in one stream.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let mut b = self.b.borrow_mut();
        let name = b.new_name("KSTREAM-MERGE");
        let node =
            b.add_fn(name, &[self.node, other.node], |r: Record<K, V>, ctx: &mut crate::ProcessorContext<'_, K, V>| {
                Ok(ctx.forward(r)?)
            });
        drop(b);
        KStream::new(self.b.clone(), node, self.repartition_required || other.repartition_required)
    }

    /// Splits the stream into named branches (Kafka's `split()`): each record goes to the first branch whose
    /// predicate holds.
    pub fn split(&self) -> BranchedKStream<K, V> {
        BranchedKStream::new(self, String::new())
    }

    /// [`split`](Self::split) with branch names prefixed by `named`.
    pub fn split_named(&self, named: Named) -> BranchedKStream<K, V> {
        BranchedKStream::new(self, named.0)
    }

    /// Writes the stream to `topic`.
    pub fn to(&self, topic: &str)
    where
        K: Encode,
        V: Encode,
    {
        let mut b = self.b.borrow_mut();
        let name = b.new_name("KSTREAM-SINK");
        if let Err(e) = b.topology.add_sink_node::<K, V>(name, TopicRef::user(topic), &[self.node]) {
            b.error(e.to_string());
        }
    }

    /// Writes each record to the topic `extractor` picks (Kafka's `TopicNameExtractor`).
    pub fn to_dynamic(&self, extractor: impl Fn(&K, &V, Option<&RecordContext>) -> String + Send + Sync + 'static)
    where
        K: Encode,
        V: Encode,
    {
        let extractor: crate::processor::source_sink::TopicExtractor<K, V> = Arc::new(extractor);
        let mut b = self.b.borrow_mut();
        let name = b.new_name("KSTREAM-SINK");
        let factory: NodeFactory = Arc::new(move |_| {
            Box::new(TypedNode::new(SinkProcessor::<K, V> { target: SinkTarget::PerRecord(extractor.clone()) }))
        });
        b.add(name, NodeKind::Sink(None), &[self.node], factory);
    }

    /// Sends the stream through a repartition topic `<application.id>-<generated>-repartition`, so records are
    /// partitioned by their current key.
    pub fn repartition(&self) -> KStream<K, V>
    where
        K: Encode + Decode,
        V: Encode + Decode,
    {
        let base = self.b.borrow_mut().new_name("KSTREAM-REPARTITION");
        self.through_repartition_topic(&base, false)
    }

    /// [`repartition`](Self::repartition) with the topic `<application.id>-<name>-repartition`.
    pub fn repartition_as(&self, repartitioned: Repartitioned) -> KStream<K, V>
    where
        K: Encode + Decode,
        V: Encode + Decode,
    {
        self.through_repartition_topic(&repartitioned.0, false)
    }

    /// Sink to `<base>-repartition` and a source reading it back; with `drop_null_keys`, a filter first (records
    /// with a null key cannot be grouped or joined).
    pub(crate) fn through_repartition_topic(&self, base: &str, drop_null_keys: bool) -> KStream<K, V>
    where
        K: Encode + Decode,
        V: Encode + Decode,
    {
        let topic = format!("{base}-repartition");
        let mut parent = self.node;
        let mut b = self.b.borrow_mut();
        if drop_null_keys {
            parent = b.add_fn(
                format!("{topic}-filter"),
                &[parent],
                |r: Record<K, V>, ctx: &mut crate::ProcessorContext<'_, K, V>| {
                    if matches!(r.key().encode(), Ok(None)) {
                        tracing::warn!(node = ctx.node_name(), "skipping a record with a null key");
                        return Ok(());
                    }
                    Ok(ctx.forward(r)?)
                },
            );
        }
        if let Err(e) =
            b.topology.add_sink_node::<K, V>(format!("{topic}-sink"), TopicRef::internal(topic.clone()), &[parent])
        {
            b.error(e.to_string());
        }
        let source = match b.topology.add_source_node::<K, V>(
            format!("{topic}-source"),
            vec![TopicRef::internal(topic)],
            None,
        ) {
            Ok(n) => n,
            Err(e) => {
                b.error(e.to_string());
                0
            }
        };
        drop(b);
        KStream::new(self.b.clone(), source, false)
    }

    /// This stream, repartitioned first if a key-changing operator came before (for joins).
    pub(crate) fn repartitioned_if_required(&self, base: impl FnOnce() -> String) -> KStream<K, V>
    where
        K: Encode + Decode,
        V: Encode + Decode,
    {
        if self.repartition_required {
            self.through_repartition_topic(&base(), true)
        } else {
            self.clone()
        }
    }

    /// Runs a custom processor (Kafka's `process`), created once per task by `supplier`, with access to `stores`
    /// (declared with [`StreamsBuilder::add_state_store`](super::StreamsBuilder::add_state_store)).
    pub fn process<K2: Data, V2: Data, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        P: Processor<K, V, K2, V2>,
    {
        let mut b = self.b.borrow_mut();
        let name = b.new_name("KSTREAM-PROCESSOR");
        let node = b.add_processor::<K, V, K2, V2, P>(name, &[self.node], move |_| supplier());
        for s in stores {
            if !b.topology.stores.contains_key(*s) {
                b.error(format!("process(): no store named {s}; declare it with StreamsBuilder::add_state_store"));
            }
            b.topology.connect_store(node, s);
        }
        drop(b);
        KStream::new(self.b.clone(), node, true)
    }

    /// Runs a custom processor that keeps keys as they are (Kafka's `processValues`): unlike
    /// [`process`](Self::process), it does not mark the stream for repartitioning. Keeping the key is the
    /// processor's promise; it is not checked.
    pub fn process_values<V2: Data, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K, V2>
    where
        P: Processor<K, V, K, V2>,
    {
        let stream = self.process::<K, V2, P>(supplier, stores);
        KStream::new(self.b.clone(), stream.node, self.repartition_required)
    }

    /// Groups by the current key, for aggregations.
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        KGroupedStream::new(self.clone(), None)
    }

    /// Groups by the current key with a named repartition topic (used when one is needed).
    pub fn group_by_key_with(&self, grouped: Grouped) -> KGroupedStream<K, V> {
        KGroupedStream::new(self.clone(), Some(grouped.0))
    }

    /// Groups by a new key (always through a repartition topic).
    pub fn group_by<K2: Data>(&self, selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KGroupedStream<K2, V> {
        KGroupedStream::new(self.select_key(selector), None)
    }

    /// [`group_by`](Self::group_by) with a named repartition topic.
    pub fn group_by_with<K2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped,
    ) -> KGroupedStream<K2, V> {
        KGroupedStream::new(self.select_key(selector), Some(grouped.0))
    }

    /// The stream as a table: each record is an update of its key (Kafka's `toTable`).
    pub fn to_table(&self) -> KTable<K, V>
    where
        K: Encode + Decode,
        V: Encode + Decode,
    {
        self.to_table_with(Materialized::with_defaults())
    }

    /// [`to_table`](Self::to_table) with a named store.
    pub fn to_table_with(&self, materialized: Materialized) -> KTable<K, V>
    where
        K: Encode + Decode,
        V: Encode + Decode,
    {
        let stream = self.repartitioned_if_required(|| self.b.borrow_mut().new_name("KSTREAM-TOTABLE"));
        let mut b = self.b.borrow_mut();
        let store = b.materialize_kv(&materialized, "KSTREAM-TOTABLE-STATE-STORE");
        let name = b.new_name("KSTREAM-TOTABLE");
        let wrap = b.add_fn(
            format!("{name}-WRAP"),
            &[stream.node],
            |r: Record<K, V>, ctx: &mut crate::ProcessorContext<'_, K, Option<V>>| {
                let (k, v) = (r.key().clone(), r.value().clone());
                Ok(ctx.forward(r.with_key(k).with_value(Some(v)))?)
            },
        );
        let node = b.add_processor::<K, Option<V>, K, Change<V>, _>(name, &[wrap], |def: &crate::topology::NodeDef| {
            KTableSource::<K, V> { store: TableNode::store_of(def), _types: PhantomData }
        });
        b.topology.nodes[node].table_store = Some(store.clone());
        b.topology.connect_store(node, &store);
        drop(b);
        KTable::new(self.b.clone(), node, None)
    }
}
