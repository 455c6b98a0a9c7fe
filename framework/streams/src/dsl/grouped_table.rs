//! `KGroupedTable<K, V>`: a table re-grouped by a new key (`KTable::group_by`), and its aggregations. Each table
//! update travels through a repartition topic as the old pair (to subtract) and the new pair (to add), so an
//! aggregate always reflects the table's current entries (Kafka's adder/subtractor semantics).

use std::sync::Arc;

use spate::{Decode, Encode};

use super::grouped_stream::is_null;
use super::{Change, KStream, KTable, Materialized};
use crate::state::ValueAndTimestamp;
use crate::topology::NodeDef;
use crate::{BoxError, Data, Processor, ProcessorContext, Record};

type Init<VA> = Arc<dyn Fn() -> VA + Send + Sync>;
type Fold<K, V, VA> = Arc<dyn Fn(&K, &V, VA) -> VA + Send + Sync>;

/// A table grouped by a new key (Kafka's `KGroupedTable`).
pub struct KGroupedTable<K, V> {
    repartitioned: KStream<K, Change<V>>,
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> KTable<K, V> {
    /// Re-keys the table's entries with `selector(key, value) -> (new_key, new_value)` for aggregation.
    pub fn group_by<K2: Encode + Decode + Data, V2: Encode + Decode + Data>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KGroupedTable<K2, V2> {
        let selector = Arc::new(selector);
        let mut b = self.b.borrow_mut();
        let name = b.new_name("KTABLE-SELECT");
        let node = b.add_fn(
            name.clone(),
            &[self.node],
            move |r: Record<K, Change<V>>, ctx: &mut ProcessorContext<'_, K2, Change<V2>>| {
                let old = r.value().old_value.as_ref().map(|v| selector(r.key(), v));
                let new = r.value().new_value.as_ref().map(|v| selector(r.key(), v));
                let old = old.filter(|(k, _)| !is_null(k));
                let new = new.filter(|(k, _)| !is_null(k));
                let same_key = match (&old, &new) {
                    (Some((ok, _)), Some((nk, _))) => ok.encode().ok() == nk.encode().ok(),
                    _ => false,
                };
                match (old, new) {
                    (Some((_, ov)), Some((nk, nv))) if same_key => {
                        ctx.forward(r.with_key(nk).with_value(Change::new(Some(nv), Some(ov))))?;
                    }
                    (old, new) => {
                        if let Some((ok, ov)) = old {
                            ctx.forward(r.clone().with_key(ok).with_value(Change::new(None, Some(ov))))?;
                        }
                        if let Some((nk, nv)) = new {
                            ctx.forward(r.with_key(nk).with_value(Change::new(Some(nv), None)))?;
                        }
                    }
                }
                Ok(())
            },
        );
        drop(b);
        let selected: KStream<K2, Change<V2>> = KStream::new(self.b.clone(), node, true);
        let repartitioned = selected.through_repartition_topic(&name, true);
        KGroupedTable { repartitioned }
    }
}

struct TableAggregate<K, V, VA> {
    store: String,
    init: Init<VA>,
    adder: Fold<K, V, VA>,
    subtractor: Fold<K, V, VA>,
}

impl<K, V, VA> Processor<K, Change<V>, K, Change<VA>> for TableAggregate<K, V, VA>
where
    K: Encode + Decode + Data,
    V: Data,
    VA: Encode + Decode + Data,
{
    fn process(
        &mut self,
        r: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), BoxError> {
        let store = ctx.get_timestamped_key_value_store::<K, VA>(&self.store)?;
        let old = store.get(r.key())?;
        let ts = old.as_ref().map_or(r.timestamp(), |o| o.timestamp.max(r.timestamp()));
        let mut agg = old.as_ref().map(|o| o.value.clone());
        if let Some(v) = &r.value().old_value {
            agg = agg.map(|a| (self.subtractor)(r.key(), v, a));
        }
        if let Some(v) = &r.value().new_value {
            let base = agg.take().unwrap_or_else(|| (self.init)());
            agg = Some((self.adder)(r.key(), v, base));
        }
        match &agg {
            Some(a) => store.put(r.key(), &ValueAndTimestamp::make(a.clone(), ts))?,
            None => {
                store.delete(r.key())?;
            }
        }
        let change = Change::new(agg, old.map(|o| o.value));
        Ok(ctx.forward(r.with_value(change).with_timestamp(ts))?)
    }
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> KGroupedTable<K, V> {
    /// Aggregates the current entries per key: `adder` for a new value, `subtractor` for the one it replaced.
    pub fn aggregate<VA: Encode + Decode + Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<K, VA> {
        self.aggregate_with(initializer, adder, subtractor, Materialized::with_defaults())
    }

    /// [`aggregate`](Self::aggregate) into a named store.
    pub fn aggregate_with<VA: Encode + Decode + Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, VA> {
        let b = &self.repartitioned.b;
        let mut bm = b.borrow_mut();
        let store = bm.materialize_kv(&materialized, "KTABLE-AGGREGATE-STATE-STORE");
        let name = bm.new_name("KTABLE-AGGREGATE");
        let init: Init<VA> = Arc::new(initializer);
        let add: Fold<K, V, VA> = Arc::new(adder);
        let sub: Fold<K, V, VA> = Arc::new(subtractor);
        let s = store.clone();
        let node =
            bm.add_processor::<K, Change<V>, K, Change<VA>, _>(name, &[self.repartitioned.node], move |_: &NodeDef| {
                TableAggregate { store: s.clone(), init: init.clone(), adder: add.clone(), subtractor: sub.clone() }
            });
        bm.topology.nodes[node].table_store = Some(store.clone());
        bm.topology.connect_store(node, &store);
        drop(bm);
        KTable::new(b.clone(), node, None)
    }

    /// Counts the current entries per key.
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::with_defaults())
    }

    /// [`count`](Self::count) into a named store.
    pub fn count_with(&self, materialized: Materialized) -> KTable<K, i64> {
        self.aggregate_with(|| 0i64, |_, _, n| n + 1, |_, _, n| n - 1, materialized)
    }

    /// Combines the current entries per key with `adder`, removing replaced ones with `subtractor`.
    pub fn reduce(
        &self,
        adder: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(&V, &V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.reduce_with(adder, subtractor, Materialized::with_defaults())
    }

    /// [`reduce`](Self::reduce) into a named store.
    pub fn reduce_with(
        &self,
        adder: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, V> {
        let t: KTable<K, Option<V>> = self.aggregate_with(
            || None::<V>,
            move |_, v, agg: Option<V>| {
                Some(match agg {
                    None => v.clone(),
                    Some(a) => adder(&a, v),
                })
            },
            move |_, v, agg: Option<V>| agg.map(|a| subtractor(&a, v)),
            materialized,
        );
        t.map_node("KTABLE-MAPVALUES", &[t.node], None, Arc::new(|_, v: Option<&Option<V>>| v.cloned().flatten()))
    }
}
