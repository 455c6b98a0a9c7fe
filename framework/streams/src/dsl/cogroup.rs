//! `cogroup`: several grouped streams aggregated into one table with one store, each stream with its own
//! aggregator (Kafka's `CogroupedKStream`). Each input gets its own aggregate processor over the shared store;
//! their updates merge into one table. Inputs are repartitioned first when a key-changing operator came before,
//! and must be co-partitioned.

use std::sync::Arc;

use spate::{Decode, Encode};

use super::builder::Shared;
use super::grouped_stream::{AggregateProcessor, Aggregator, Initializer};
use super::{Change, KGroupedStream, KTable, Materialized};
use crate::topology::NodeDef;
use crate::{Data, ProcessorContext, Record};

/// Adds one input's aggregate processor for the store, returning its node.
type AddInput<VA> = Box<dyn FnOnce(&str, usize, Initializer<VA>) -> usize>;

/// Grouped streams aggregated together (Kafka's `CogroupedKStream`).
pub struct CogroupedKStream<K, VA> {
    b: Shared,
    inputs: Vec<AddInput<VA>>,
    _key: std::marker::PhantomData<fn() -> K>,
}

fn input<K, V, VA>(grouped: &KGroupedStream<K, V>, aggregator: Aggregator<K, V, VA>) -> AddInput<VA>
where
    K: Encode + Decode + Data,
    V: Encode + Decode + Data,
    VA: Encode + Decode + Data,
{
    let stream = grouped.stream.clone();
    let repartition_name = grouped.repartition_name.clone();
    Box::new(move |store: &str, index: usize, init: Initializer<VA>| {
        let source = if stream.repartition_required {
            let base = repartition_name.unwrap_or_else(|| format!("{store}-{index}"));
            stream.through_repartition_topic(&base, true)
        } else {
            stream.clone()
        };
        let mut b = stream.b.borrow_mut();
        let name = b.new_name("COGROUPKSTREAM-AGGREGATE");
        let s = store.to_owned();
        let node = b.add_processor::<K, V, K, Change<VA>, _>(name, &[source.node], move |_: &NodeDef| {
            AggregateProcessor { store: s.clone(), init: init.clone(), adder: aggregator.clone() }
        });
        b.topology.connect_store(node, store);
        node
    })
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> KGroupedStream<K, V> {
    /// Starts a cogrouped aggregation with this stream and its `aggregator`.
    pub fn cogroup<VA: Encode + Decode + Data>(
        &self,
        aggregator: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    ) -> CogroupedKStream<K, VA> {
        CogroupedKStream {
            b: self.stream.b.clone(),
            inputs: vec![input(self, Arc::new(aggregator))],
            _key: std::marker::PhantomData,
        }
    }
}

impl<K: Encode + Decode + Data, VA: Encode + Decode + Data> CogroupedKStream<K, VA> {
    /// Adds another grouped stream (of any value type) with its own aggregator.
    pub fn cogroup<V2: Encode + Decode + Data>(
        mut self,
        other: &KGroupedStream<K, V2>,
        aggregator: impl Fn(&K, &V2, VA) -> VA + Send + Sync + 'static,
    ) -> Self {
        self.inputs.push(input(other, Arc::new(aggregator)));
        self
    }

    /// The aggregate of all inputs per key, starting from `initializer()`.
    pub fn aggregate(self, initializer: impl Fn() -> VA + Send + Sync + 'static) -> KTable<K, VA> {
        self.aggregate_with(initializer, Materialized::with_defaults())
    }

    /// [`aggregate`](Self::aggregate) into a named store.
    pub fn aggregate_with(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, VA> {
        let store = self.b.borrow_mut().materialize_kv(&materialized, "COGROUPKSTREAM-AGGREGATE-STATE-STORE");
        let init: Initializer<VA> = Arc::new(initializer);
        let nodes: Vec<usize> =
            self.inputs.into_iter().enumerate().map(|(i, add)| add(&store, i, init.clone())).collect();
        let mut b = self.b.borrow_mut();
        for pair in nodes.windows(2) {
            b.copartition(pair[0], pair[1]);
        }
        let name = b.new_name("COGROUPKSTREAM-MERGE");
        let merge =
            b.add_fn(name, &nodes, |r: Record<K, Change<VA>>, ctx: &mut ProcessorContext<'_, K, Change<VA>>| {
                Ok(ctx.forward(r)?)
            });
        b.topology.nodes[merge].table_store = Some(store.clone());
        b.topology.connect_store(merge, &store);
        drop(b);
        KTable::new(self.b.clone(), merge, None)
    }
}
