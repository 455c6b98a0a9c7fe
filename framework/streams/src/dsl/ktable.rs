//! `KTable<K, V>`: a changelog stream read as the latest value per key. Its nodes forward `Change`s (new and old
//! value); a table is materialized in a timestamped key-value store when named, joined or looked up.

use std::marker::PhantomData;
use std::sync::Arc;

use spate::{Decode, Encode};

use super::builder::Shared;
use super::{Change, KStream, Materialized};
use crate::state::ValueAndTimestamp;
use crate::topology::NodeDef;
use crate::{BoxError, Data, Processor, ProcessorContext, Record};

/// Helpers shared by table nodes.
pub(crate) struct TableNode;

impl TableNode {
    pub(crate) fn store_of(def: &NodeDef) -> Option<String> {
        def.table_store.clone()
    }
}

fn null_key<K: Encode>(key: &K) -> bool {
    matches!(key.encode(), Ok(None))
}

/// Applies a table update from a topic (or `to_table`) to the table's store and forwards it as a `Change`.
pub(crate) struct KTableSource<K, V> {
    pub(crate) store: Option<String>,
    pub(crate) _types: PhantomData<fn(K, V)>,
}

impl<K, V> Processor<K, Option<V>, K, Change<V>> for KTableSource<K, V>
where
    K: Encode + Decode + Data,
    V: Encode + Decode + Data,
{
    fn process(
        &mut self,
        r: Record<K, Option<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), BoxError> {
        if null_key(r.key()) {
            tracing::warn!(node = ctx.node_name(), "skipping a table update with a null key");
            return Ok(());
        }
        let ts = r.timestamp();
        let new = r.value().clone();
        let mut old = None;
        if let Some(store) = &self.store {
            let s = ctx.get_timestamped_key_value_store::<K, V>(store)?;
            old = s.get(r.key())?.map(|o| o.value);
            match &new {
                Some(v) => s.put(r.key(), &ValueAndTimestamp::make(v.clone(), ts))?,
                None => {
                    s.delete(r.key())?;
                }
            }
            if new.is_none() && old.is_none() {
                return Ok(());
            }
        }
        Ok(ctx.forward(r.with_value(Change::new(new, old)))?)
    }
}

pub(crate) type TableFnPub<K, V, V2> = TableFn<K, V, V2>;
type TableFn<K, V, V2> = Arc<dyn Fn(&K, Option<&V>) -> Option<V2> + Send + Sync>;

/// A per-value table operator (filter, map_values, merge of join results), materialized when asked.
pub(crate) struct TableMap<K, V, V2> {
    pub(crate) store: Option<String>,
    pub(crate) f: TableFn<K, V, V2>,
}

impl<K, V, V2> Processor<K, Change<V>, K, Change<V2>> for TableMap<K, V, V2>
where
    K: Encode + Decode + Data,
    V: Data,
    V2: Encode + Decode + Data,
{
    fn process(
        &mut self,
        r: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
    ) -> Result<(), BoxError> {
        let new = (self.f)(r.key(), r.value().new_value.as_ref());
        let mut old = (self.f)(r.key(), r.value().old_value.as_ref());
        if let Some(store) = &self.store {
            let s = ctx.get_timestamped_key_value_store::<K, V2>(store)?;
            old = s.get(r.key())?.map(|o| o.value);
            match &new {
                Some(v) => s.put(r.key(), &ValueAndTimestamp::make(v.clone(), r.timestamp()))?,
                None => {
                    s.delete(r.key())?;
                }
            }
        }
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        Ok(ctx.forward(r.with_value(Change::new(new, old)))?)
    }
}

/// A table (Kafka's `KTable`). Cheap to clone.
pub struct KTable<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: usize,
    /// For windowed tables: the grace period and how to find a key's window, which `suppress` needs.
    pub(crate) windowing: Option<super::suppress::Windowing<K>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable { b: self.b.clone(), node: self.node, windowing: self.windowing.clone(), _types: PhantomData }
    }
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> KTable<K, V> {
    pub(crate) fn new(b: Shared, node: usize, windowing: Option<super::suppress::Windowing<K>>) -> Self {
        KTable { b, node, windowing, _types: PhantomData }
    }

    /// The name of the store holding this table, materializing it if it has none yet (for lookups).
    pub(crate) fn ensure_materialized(&self) -> String {
        let mut b = self.b.borrow_mut();
        if let Some(s) = b.topology.nodes[self.node].table_store.clone() {
            return s;
        }
        let store = b.materialize_kv(&Materialized::with_defaults(), "KTABLE-STATE-STORE");
        b.topology.nodes[self.node].table_store = Some(store.clone());
        b.topology.connect_store(self.node, &store);
        store
    }

    /// The store a query can read this table from, if it is materialized.
    pub fn queryable_store_name(&self) -> Option<String> {
        self.b.borrow().topology.nodes[self.node].table_store.clone()
    }

    pub(crate) fn map_node<V2: Encode + Decode + Data>(
        &self,
        prefix: &str,
        parents: &[usize],
        materialized: Option<Materialized>,
        f: TableFn<K, V, V2>,
    ) -> KTable<K, V2> {
        let mut b = self.b.borrow_mut();
        let name = b.new_name(prefix);
        let node = b.add_processor::<K, Change<V>, K, Change<V2>, _>(name, parents, move |def: &NodeDef| TableMap {
            store: TableNode::store_of(def),
            f: f.clone(),
        });
        if let Some(m) = materialized {
            let store = b.materialize_kv(&m, &format!("{prefix}-STATE-STORE"));
            b.topology.nodes[node].table_store = Some(store.clone());
            b.topology.connect_store(node, &store);
        }
        drop(b);
        KTable::new(self.b.clone(), node, self.windowing.clone())
    }

    /// Keeps the entries for which `predicate` holds; an entry that stops matching is deleted downstream.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let p = Arc::new(predicate);
        self.map_node(
            "KTABLE-FILTER",
            &[self.node],
            None,
            Arc::new(move |k, v: Option<&V>| v.filter(|v| p(k, v)).cloned()),
        )
    }

    /// [`filter`](Self::filter), materialized.
    pub fn filter_with(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, V> {
        let p = Arc::new(predicate);
        self.map_node(
            "KTABLE-FILTER",
            &[self.node],
            Some(materialized),
            Arc::new(move |k, v: Option<&V>| v.filter(|v| p(k, v)).cloned()),
        )
    }

    /// Drops the entries for which `predicate` holds.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let p = Arc::new(predicate);
        self.map_node(
            "KTABLE-FILTER",
            &[self.node],
            None,
            Arc::new(move |k, v: Option<&V>| v.filter(|v| !p(k, v)).cloned()),
        )
    }

    /// Transforms each value.
    pub fn map_values<V2: Encode + Decode + Data>(
        &self,
        mapper: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let m = Arc::new(mapper);
        self.map_node("KTABLE-MAPVALUES", &[self.node], None, Arc::new(move |_, v: Option<&V>| v.map(|v| m(v))))
    }

    /// [`map_values`](Self::map_values), materialized.
    pub fn map_values_with<V2: Encode + Decode + Data>(
        &self,
        mapper: impl Fn(&V) -> V2 + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, V2> {
        let m = Arc::new(mapper);
        self.map_node(
            "KTABLE-MAPVALUES",
            &[self.node],
            Some(materialized),
            Arc::new(move |_, v: Option<&V>| v.map(|v| m(v))),
        )
    }

    /// The table's updates as a stream; a deletion is a `None` value (a tombstone when written to a topic).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let mut b = self.b.borrow_mut();
        let name = b.new_name("KTABLE-TOSTREAM");
        let node =
            b.add_fn(name, &[self.node], |r: Record<K, Change<V>>, ctx: &mut ProcessorContext<'_, K, Option<V>>| {
                let v = r.value().new_value.clone();
                Ok(ctx.forward(r.with_value(v))?)
            });
        drop(b);
        KStream::new(self.b.clone(), node, false)
    }
}
