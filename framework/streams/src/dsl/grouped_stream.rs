//! `KGroupedStream<K, V>`: a stream grouped by key, and its aggregations into a table (count, reduce,
//! aggregate). Records with a null key or value are skipped, as in Kafka; each result keeps the larger of the
//! record's and the previous aggregate's timestamp.

use std::sync::Arc;

use spate::{Decode, Encode};

use super::{KStream, KTable, Materialized, SessionWindowedKStream, SessionWindows, TimeWindowedKStream, TimeWindows};
use crate::state::ValueAndTimestamp;
use crate::topology::NodeDef;
use crate::{BoxError, Change, Data, Processor, ProcessorContext, Record};

pub(crate) type Initializer<VA> = Arc<dyn Fn() -> VA + Send + Sync>;
pub(crate) type Aggregator<K, V, VA> = Arc<dyn Fn(&K, &V, VA) -> VA + Send + Sync>;

/// Whether a key or value is null once serialized (Kafka drops such records from aggregations and joins).
pub(crate) fn is_null<T: Encode>(t: &T) -> bool {
    matches!(t.encode(), Ok(None))
}

pub(crate) struct AggregateProcessor<K, V, VA> {
    pub(crate) store: String,
    pub(crate) init: Initializer<VA>,
    pub(crate) adder: Aggregator<K, V, VA>,
}

impl<K, V, VA> Processor<K, V, K, Change<VA>> for AggregateProcessor<K, V, VA>
where
    K: Encode + Decode + Data,
    V: Encode + Data,
    VA: Encode + Decode + Data,
{
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), BoxError> {
        if is_null(r.key()) || is_null(r.value()) {
            tracing::warn!(node = ctx.node_name(), "skipping a record with a null key or value");
            return Ok(());
        }
        let store = ctx.get_timestamped_key_value_store::<K, VA>(&self.store)?;
        let old = store.get(r.key())?;
        let (agg, ts) = match &old {
            None => ((self.init)(), r.timestamp()),
            Some(o) => (o.value.clone(), o.timestamp.max(r.timestamp())),
        };
        let new = (self.adder)(r.key(), r.value(), agg);
        store.put(r.key(), &ValueAndTimestamp::make(new.clone(), ts))?;
        let change = Change::new(Some(new), old.map(|o| o.value));
        Ok(ctx.forward(r.with_value(change).with_timestamp(ts))?)
    }
}

/// A grouped stream (Kafka's `KGroupedStream`).
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) repartition_name: Option<String>,
}

impl<K, V> KGroupedStream<K, V> {
    pub(crate) fn new(stream: KStream<K, V>, repartition_name: Option<String>) -> Self {
        KGroupedStream { stream, repartition_name }
    }
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> KGroupedStream<K, V> {
    /// The stream to aggregate: through a repartition topic named after the grouping (or the store) if a
    /// key-changing operator came before.
    pub(crate) fn source_stream(&self, store: &str) -> KStream<K, V> {
        if self.stream.repartition_required {
            let base = self.repartition_name.clone().unwrap_or_else(|| store.to_owned());
            self.stream.through_repartition_topic(&base, true)
        } else {
            self.stream.clone()
        }
    }

    /// Counts records per key.
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::with_defaults())
    }

    /// [`count`](Self::count) into a named store.
    pub fn count_with(&self, materialized: Materialized) -> KTable<K, i64> {
        self.aggregate_with(|| 0i64, |_, _, n| n + 1, materialized)
    }

    /// Combines the values of a key with `reducer(aggregate, value)`; the first value is the first aggregate.
    pub fn reduce(&self, reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        self.reduce_with(reducer, Materialized::with_defaults())
    }

    /// [`reduce`](Self::reduce) into a named store.
    pub fn reduce_with(
        &self,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, V> {
        let reducer = Arc::new(reducer);
        self.aggregate_opt(
            Arc::new(|| None::<V>),
            Arc::new(move |_, v: &V, agg: Option<V>| {
                Some(match agg {
                    None => v.clone(),
                    Some(a) => reducer(&a, v),
                })
            }),
            materialized,
            "KSTREAM-REDUCE",
        )
    }

    /// Folds the values of a key into an aggregate starting from `initializer()`.
    pub fn aggregate<VA: Encode + Decode + Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<K, VA> {
        self.aggregate_with(initializer, aggregator, Materialized::with_defaults())
    }

    /// [`aggregate`](Self::aggregate) into a named store.
    pub fn aggregate_with<VA: Encode + Decode + Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, VA> {
        let b = &self.stream.b;
        let store = b.borrow_mut().materialize_kv(&materialized, "KSTREAM-AGGREGATE-STATE-STORE");
        let stream = self.source_stream(&store);
        let mut bm = b.borrow_mut();
        let name = bm.new_name("KSTREAM-AGGREGATE");
        let (init, adder): (Initializer<VA>, Aggregator<K, V, VA>) = (Arc::new(initializer), Arc::new(aggregator));
        let s = store.clone();
        let node = bm.add_processor::<K, V, K, Change<VA>, _>(name, &[stream.node], move |_: &NodeDef| {
            AggregateProcessor { store: s.clone(), init: init.clone(), adder: adder.clone() }
        });
        bm.topology.nodes[node].table_store = Some(store.clone());
        bm.topology.connect_store(node, &store);
        drop(bm);
        KTable::new(b.clone(), node, None)
    }

    /// Reduce as an aggregation whose "no aggregate yet" is `None`, unwrapped in the table.
    fn aggregate_opt(
        &self,
        init: Initializer<Option<V>>,
        adder: Aggregator<K, V, Option<V>>,
        materialized: Materialized,
        _prefix: &str,
    ) -> KTable<K, V> {
        let b = &self.stream.b;
        let store = b.borrow_mut().materialize_kv(&materialized, "KSTREAM-REDUCE-STATE-STORE");
        let stream = self.source_stream(&store);
        let mut bm = b.borrow_mut();
        let name = bm.new_name("KSTREAM-REDUCE");
        let s = store.clone();
        let node = bm.add_processor::<K, V, K, Change<V>, _>(name, &[stream.node], move |_: &NodeDef| {
            ReduceProcessor { store: s.clone(), init: init.clone(), adder: adder.clone() }
        });
        bm.topology.nodes[node].table_store = Some(store.clone());
        bm.topology.connect_store(node, &store);
        drop(bm);
        KTable::new(b.clone(), node, None)
    }

    /// Aggregates per key and time window.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: KGroupedStream::new(self.stream.clone(), self.repartition_name.clone()),
            windows,
        }
    }

    /// Aggregates per key and sliding window.
    pub fn windowed_by_sliding(&self, windows: super::SlidingWindows) -> super::SlidingWindowedKStream<K, V> {
        super::SlidingWindowedKStream {
            grouped: KGroupedStream::new(self.stream.clone(), self.repartition_name.clone()),
            windows,
        }
    }

    /// Aggregates per key and session.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: KGroupedStream::new(self.stream.clone(), self.repartition_name.clone()),
            windows,
        }
    }
}

struct ReduceProcessor<K, V> {
    store: String,
    init: Initializer<Option<V>>,
    adder: Aggregator<K, V, Option<V>>,
}

impl<K, V> Processor<K, V, K, Change<V>> for ReduceProcessor<K, V>
where
    K: Encode + Decode + Data,
    V: Encode + Decode + Data,
{
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), BoxError> {
        if is_null(r.key()) || is_null(r.value()) {
            tracing::warn!(node = ctx.node_name(), "skipping a record with a null key or value");
            return Ok(());
        }
        let store = ctx.get_timestamped_key_value_store::<K, V>(&self.store)?;
        let old = store.get(r.key())?;
        let (agg, ts) = match &old {
            None => ((self.init)(), r.timestamp()),
            Some(o) => (Some(o.value.clone()), o.timestamp.max(r.timestamp())),
        };
        let Some(new) = (self.adder)(r.key(), r.value(), agg) else { return Ok(()) };
        store.put(r.key(), &ValueAndTimestamp::make(new.clone(), ts))?;
        let change = Change::new(Some(new), old.map(|o| o.value));
        Ok(ctx.forward(r.with_value(change).with_timestamp(ts))?)
    }
}
