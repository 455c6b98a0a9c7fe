//! Joins. Stream–table and stream–global-table joins look the table up for each stream record (the stream
//! record's timestamp; table updates emit nothing). Table–table joins recompute the result on an update of
//! either side (timestamp: the larger of both). Stream–stream joins buffer both sides in window stores and join
//! records whose timestamps are within the join window (timestamp: the larger of both); left and outer joins
//! emit unmatched records only once their window has closed (no spurious `None` results, as Kafka since 3.1):
//! a left record at `t` when stream time passes `t + after + grace`, a right one at `t + before + grace`, checked
//! when a record moves stream time (Kafka also throttles this check by wall-clock time; here it runs each time).

use std::marker::PhantomData;
use std::sync::Arc;

use spate::{Decode, Encode};

use super::grouped_stream::is_null;
use super::{Change, GlobalKTable, JoinWindows, KStream, KTable};
use crate::topology::NodeDef;
use crate::{BoxError, Data, KeyValueStore, Processor, ProcessorContext, Record};

type ValueJoiner<V1, V2, VR> = Arc<dyn Fn(Option<&V1>, Option<&V2>) -> Option<VR> + Send + Sync>;

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> KStream<K, V> {
    fn stream_table<VT: Encode + Decode + Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: ValueJoiner<V, VT, VR>,
        left: bool,
    ) -> KStream<K, VR> {
        let store = table.ensure_materialized();
        let stream = self.repartitioned_if_required(|| self.b.borrow_mut().new_name("KSTREAM-JOIN"));
        let mut b = self.b.borrow_mut();
        let name = b.new_name(if left { "KSTREAM-LEFTJOIN" } else { "KSTREAM-JOIN" });
        let s = store.clone();
        let node = b.add_fn(name, &[stream.node], move |r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, VR>| {
            if is_null(r.value()) || (is_null(r.key()) && !left) {
                tracing::warn!(node = ctx.node_name(), "skipping a record with a null key or value");
                return Ok(());
            }
            let other = if is_null(r.key()) { None } else { ctx.get_key_value_store::<K, VT>(&s)?.get(r.key())? };
            match joiner(Some(r.value()), other.as_ref()) {
                Some(v) => Ok(ctx.forward(r.with_value(v))?),
                None => Ok(()),
            }
        });
        b.topology.connect_store(node, &store);
        b.copartition(stream.node, table.node);
        drop(b);
        KStream::new(self.b.clone(), node, false)
    }

    /// Inner join with a table: each record with a matching table entry becomes `joiner(value, table_value)`.
    pub fn join<VT: Encode + Decode + Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stream_table(table, Arc::new(move |v, t| Some(joiner(v?, t?))), false)
    }

    /// Left join with a table: every record becomes `joiner(value, table_value_or_none)`, also with a null key.
    pub fn left_join<VT: Encode + Decode + Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stream_table(table, Arc::new(move |v, t| Some(joiner(v?, t))), true)
    }

    fn stream_global<GK: Encode + Decode + Data, GV: Encode + Decode + Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: ValueJoiner<V, GV, VR>,
        left: bool,
    ) -> KStream<K, VR> {
        let store = table.store.clone();
        let mapper = Arc::new(key_mapper);
        let mut b = self.b.borrow_mut();
        let name = b.new_name(if left { "KSTREAM-LEFTJOIN" } else { "KSTREAM-JOIN" });
        let node = b.add_fn(name, &[self.node], move |r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, VR>| {
            if is_null(r.value()) {
                return Ok(());
            }
            let gk = mapper(r.key(), r.value());
            let other = if is_null(&gk) { None } else { ctx.get_key_value_store::<GK, GV>(&store)?.get(&gk)? };
            match joiner(Some(r.value()), other.as_ref()) {
                Some(v) => Ok(ctx.forward(r.with_value(v))?),
                None => Ok(()),
            }
        });
        drop(b);
        KStream::new(self.b.clone(), node, self.repartition_required)
    }

    /// Inner join with a global table, looked up by `key_mapper(key, value)`.
    pub fn join_global<GK: Encode + Decode + Data, GV: Encode + Decode + Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stream_global(table, key_mapper, Arc::new(move |v, g| Some(joiner(v?, g?))), false)
    }

    /// Left join with a global table.
    pub fn left_join_global<GK: Encode + Decode + Data, GV: Encode + Decode + Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stream_global(table, key_mapper, Arc::new(move |v, g| Some(joiner(v?, g))), true)
    }

    fn stream_stream<VO: Encode + Decode + Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: ValueJoiner<V, VO, VR>,
        windows: JoinWindows,
        kind: JoinKind,
    ) -> KStream<K, VR> {
        let this = self.repartitioned_if_required(|| self.b.borrow_mut().new_name("KSTREAM-JOINTHIS"));
        let other = other.repartitioned_if_required(|| self.b.borrow_mut().new_name("KSTREAM-JOINOTHER"));
        let mut b = self.b.borrow_mut();
        let retention = windows.before + windows.after + windows.grace + 1;
        let size = windows.before + windows.after + 1;
        let default = super::Materialized::with_defaults();
        let this_store = b.materialize_window(&default, "KSTREAM-JOINTHIS-STORE", retention, size, true);
        let other_store = b.materialize_window(&default, "KSTREAM-JOINOTHER-STORE", retention, size, true);
        let outer_store = (kind != JoinKind::Inner).then(|| {
            let name = b.new_name("KSTREAM-OUTERSHARED-STORE");
            b.add_store(crate::Stores::key_value_store_builder(crate::Stores::in_memory_key_value_store(&name)));
            name
        });
        let shared = Arc::new(StreamJoinSpec {
            left_store: this_store.clone(),
            right_store: other_store.clone(),
            outer_store: outer_store.clone(),
            windows,
            kind,
            joiner,
        });
        let (l, r) = (shared.clone(), shared);
        let lname = b.new_name(if kind == JoinKind::Inner { "KSTREAM-JOINTHIS" } else { "KSTREAM-OUTERTHIS" });
        let left = b.add_processor::<K, V, K, VR, _>(lname, &[this.node], move |_: &NodeDef| StreamJoinSide::<
            K,
            V,
            VO,
            VR,
            LeftSide,
        > {
            spec: l.clone(),
            _types: PhantomData,
        });
        let rname = b.new_name(if kind == JoinKind::Inner { "KSTREAM-JOINOTHER" } else { "KSTREAM-OUTEROTHER" });
        let right = b.add_processor::<K, VO, K, VR, _>(rname, &[other.node], move |_: &NodeDef| StreamJoinSide::<
            K,
            V,
            VO,
            VR,
            RightSide,
        > {
            spec: r.clone(),
            _types: PhantomData,
        });
        for node in [left, right] {
            b.topology.connect_store(node, &this_store);
            b.topology.connect_store(node, &other_store);
            if let Some(o) = &outer_store {
                b.topology.connect_store(node, o);
            }
        }
        b.copartition(this.node, other.node);
        let mname = b.new_name("KSTREAM-MERGE");
        let merge = b.add_fn(mname, &[left, right], |r: Record<K, VR>, ctx: &mut ProcessorContext<'_, K, VR>| {
            Ok(ctx.forward(r)?)
        });
        drop(b);
        KStream::new(self.b.clone(), merge, false)
    }

    /// Windowed inner join of two streams: each pair of records with the same key within `windows` becomes
    /// `joiner(value, other_value)`.
    pub fn join_windowed<VO: Encode + Decode + Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.stream_stream(other, Arc::new(move |a, b| Some(joiner(a?, b?))), windows, JoinKind::Inner)
    }

    /// Windowed left join: also each record of this stream that found no partner by the time its window closed,
    /// as `joiner(value, None)`.
    pub fn left_join_windowed<VO: Encode + Decode + Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.stream_stream(other, Arc::new(move |a, b| Some(joiner(a?, b))), windows, JoinKind::Left)
    }

    /// Windowed outer join: unmatched records of either side once their window closed.
    pub fn outer_join_windowed<VO: Encode + Decode + Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.stream_stream(other, Arc::new(move |a, b| Some(joiner(a, b))), windows, JoinKind::Outer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinKind {
    Inner,
    Left,
    Outer,
}

struct StreamJoinSpec<V1, V2, VR> {
    left_store: String,
    right_store: String,
    outer_store: Option<String>,
    windows: JoinWindows,
    kind: JoinKind,
    joiner: ValueJoiner<V1, V2, VR>,
}

struct LeftSide;
struct RightSide;

struct StreamJoinSide<K, V1, V2, VR, S> {
    spec: Arc<StreamJoinSpec<V1, V2, VR>>,
    _types: PhantomData<fn(K, S)>,
}

/// Outer-buffer key: timestamp, side (0 left, 1 right), key bytes — ordered by time.
fn outer_key(ts: i64, left: bool, key: &[u8]) -> Vec<u8> {
    let mut k = ts.to_be_bytes().to_vec();
    k.push(if left { 0 } else { 1 });
    k.extend_from_slice(key);
    k
}

impl<V1, V2, VR> StreamJoinSpec<V1, V2, VR> {
    /// Emits unmatched records whose join window has closed.
    fn emit_expired<K>(&self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), BoxError>
    where
        K: Encode + Decode + Data,
        V1: Encode + Decode + Data,
        V2: Encode + Decode + Data,
        VR: Data,
    {
        let Some(outer) = &self.outer_store else { return Ok(()) };
        let store: KeyValueStore<Vec<u8>, Vec<u8>> = ctx.get_key_value_store(outer)?;
        let stream_time = ctx.current_stream_time_ms();
        let w = self.windows;
        for (k, v) in store.all()? {
            let Some((ts_bytes, rest)) = k.split_first_chunk::<8>() else { continue };
            let ts = i64::from_be_bytes(*ts_bytes);
            // Entries are in time order: past this point no window of either side has closed.
            if ts + w.before.max(w.after) + w.grace >= stream_time {
                break;
            }
            let Some((side, key_bytes)) = rest.split_first() else { continue };
            // A left record could still meet right records up to `after` later; a right one, left records up
            // to `before` later.
            let look_ahead = if *side == 0 { w.after } else { w.before };
            if ts + look_ahead + w.grace >= stream_time {
                continue;
            }
            store.delete(&k)?;
            let key = K::decode(Some(key_bytes), spate::RecordPart::Key)?;
            let joined = if *side == 0 {
                let v1 = V1::decode(Some(&v), spate::RecordPart::Value)?;
                (self.joiner)(Some(&v1), None)
            } else {
                let v2 = V2::decode(Some(&v), spate::RecordPart::Value)?;
                (self.joiner)(None, Some(&v2))
            };
            if let Some(out) = joined {
                ctx.forward(Record::new(key, out, ts))?;
            }
        }
        Ok(())
    }
}

macro_rules! join_side {
    ($side:ty, $this:ident, $other:ident, $is_left:tt) => {
        impl<K, V1, V2, VR> Processor<K, $this, K, VR> for StreamJoinSide<K, V1, V2, VR, $side>
        where
            K: Encode + Decode + Data,
            V1: Encode + Decode + Data,
            V2: Encode + Decode + Data,
            VR: Data,
        {
            fn process(&mut self, r: Record<K, $this>, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), BoxError> {
                let spec = &self.spec;
                if is_null(r.key()) || is_null(r.value()) {
                    tracing::warn!(node = ctx.node_name(), "skipping a record with a null key or value");
                    return Ok(());
                }
                let w = spec.windows;
                // Seen from this side, the other's records join within [ts - before, ts + after].
                let (before, after) = if $is_left { (w.before, w.after) } else { (w.after, w.before) };
                let ts = r.timestamp();
                let stream_time = ctx.current_stream_time_ms();
                if ts + after + w.grace < stream_time {
                    tracing::debug!(node = ctx.node_name(), ts, "skipping a record outside the join window's grace");
                    return Ok(());
                }
                // Unmatched records whose windows closed are emitted when a record moves stream time, first.
                if ts == stream_time {
                    spec.emit_expired(ctx)?;
                }
                let (this_store, other_store) = if $is_left {
                    (&spec.left_store, &spec.right_store)
                } else {
                    (&spec.right_store, &spec.left_store)
                };
                ctx.get_window_store::<K, $this>(this_store)?.put(r.key(), r.value(), ts)?;
                let matches =
                    ctx.get_window_store::<K, $other>(other_store)?.fetch_range(r.key(), ts - before, ts + after)?;
                let outer: Option<KeyValueStore<Vec<u8>, Vec<u8>>> =
                    spec.outer_store.as_ref().map(|o| ctx.get_key_value_store(o)).transpose()?;
                let key_bytes = r.key().encode()?.unwrap_or_default();
                let outer_side = match spec.kind {
                    JoinKind::Inner => false,
                    JoinKind::Left => $is_left,
                    JoinKind::Outer => true,
                };
                if matches.is_empty() && outer_side {
                    match &outer {
                        // Its window closed already (an out-of-order record): no partner can come.
                        Some(_) if ts + after < stream_time => {
                            #[allow(clippy::redundant_closure_call)]
                            let joined = unmatched_args!($is_left, spec, r.value());
                            if let Some(v) = joined {
                                ctx.forward(r.clone().with_value(v))?;
                            }
                        }
                        Some(o) => {
                            o.put(&outer_key(ts, $is_left, &key_bytes), &r.value().encode()?.unwrap_or_default())?
                        }
                        None => {}
                    }
                }
                for (other_ts, other_value) in matches {
                    if let Some(o) = &outer {
                        o.delete(&outer_key(other_ts, !$is_left, &key_bytes))?;
                    }
                    #[allow(clippy::redundant_closure_call)]
                    let joined = join_args!($is_left, spec, r.value(), &other_value);
                    if let Some(v) = joined {
                        ctx.forward(r.clone().with_value(v).with_timestamp(ts.max(other_ts)))?;
                    }
                }
                Ok(())
            }
        }
    };
}

macro_rules! unmatched_args {
    (true, $spec:ident, $this:expr) => {
        ($spec.joiner)(Some($this), None)
    };
    (false, $spec:ident, $this:expr) => {
        ($spec.joiner)(None, Some($this))
    };
}

macro_rules! join_args {
    (true, $spec:ident, $this:expr, $other:expr) => {
        ($spec.joiner)(Some($this), Some($other))
    };
    (false, $spec:ident, $this:expr, $other:expr) => {
        ($spec.joiner)(Some($other), Some($this))
    };
}

join_side!(LeftSide, V1, V2, true);
join_side!(RightSide, V2, V1, false);

impl<K: Encode + Decode + Data, V1: Encode + Decode + Data> KTable<K, V1> {
    fn table_table<V2: Encode + Decode + Data, VR: Encode + Decode + Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: ValueJoiner<V1, V2, VR>,
        prefix: &str,
    ) -> KTable<K, VR> {
        let left_store = self.ensure_materialized();
        let right_store = other.ensure_materialized();
        let mut b = self.b.borrow_mut();
        let (jl, jr) = (joiner.clone(), joiner);
        let rs = right_store.clone();
        let lname = b.new_name(&format!("{prefix}THIS"));
        let left = b.add_fn(
            lname,
            &[self.node],
            move |r: Record<K, Change<V1>>, ctx: &mut ProcessorContext<'_, K, Change<VR>>| {
                if is_null(r.key()) {
                    return Ok(());
                }
                let o = ctx.get_timestamped_key_value_store::<K, V2>(&rs)?.get(r.key())?;
                let ts = o.as_ref().map_or(r.timestamp(), |o| o.timestamp.max(r.timestamp()));
                let ov = o.as_ref().map(|o| &o.value);
                let new = r
                    .value()
                    .new_value
                    .as_ref()
                    .and_then(|v| jl(Some(v), ov))
                    .or_else(|| r.value().new_value.is_none().then(|| jl(None, ov)).flatten());
                let old = r
                    .value()
                    .old_value
                    .as_ref()
                    .and_then(|v| jl(Some(v), ov))
                    .or_else(|| r.value().old_value.is_none().then(|| jl(None, ov)).flatten());
                if new.is_none() && old.is_none() {
                    return Ok(());
                }
                Ok(ctx.forward(r.with_value(Change::new(new, old)).with_timestamp(ts))?)
            },
        );
        let ls = left_store.clone();
        let rname = b.new_name(&format!("{prefix}OTHER"));
        let right = b.add_fn(
            rname,
            &[other.node],
            move |r: Record<K, Change<V2>>, ctx: &mut ProcessorContext<'_, K, Change<VR>>| {
                if is_null(r.key()) {
                    return Ok(());
                }
                let o = ctx.get_timestamped_key_value_store::<K, V1>(&ls)?.get(r.key())?;
                let ts = o.as_ref().map_or(r.timestamp(), |o| o.timestamp.max(r.timestamp()));
                let ov = o.as_ref().map(|o| &o.value);
                let new = jr(ov, r.value().new_value.as_ref());
                let old = jr(ov, r.value().old_value.as_ref());
                if new.is_none() && old.is_none() {
                    return Ok(());
                }
                Ok(ctx.forward(r.with_value(Change::new(new, old)).with_timestamp(ts))?)
            },
        );
        b.topology.connect_store(left, &right_store);
        b.topology.connect_store(right, &left_store);
        b.copartition(self.node, other.node);
        drop(b);
        let identity: super::ktable::TableFnPub<K, VR, VR> = Arc::new(|_, v: Option<&VR>| v.cloned());
        KTable::<K, VR>::new(self.b.clone(), left, None).map_node("KTABLE-MERGE", &[left, right], None, identity)
    }

    /// Inner join of two tables: an entry exists while both sides have the key.
    pub fn join<V2: Encode + Decode + Data, VR: Encode + Decode + Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V1, &V2) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_table(other, Arc::new(move |a, b| Some(joiner(a?, b?))), "KTABLE-JOIN")
    }

    /// Left join of two tables: an entry exists while this side has the key.
    pub fn left_join<V2: Encode + Decode + Data, VR: Encode + Decode + Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V1, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_table(other, Arc::new(move |a, b| Some(joiner(a?, b))), "KTABLE-LEFTJOIN")
    }

    /// Outer join of two tables: an entry exists while either side has the key.
    pub fn outer_join<V2: Encode + Decode + Data, VR: Encode + Decode + Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(Option<&V1>, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_table(
            other,
            Arc::new(move |a, b| if a.is_none() && b.is_none() { None } else { Some(joiner(a, b)) }),
            "KTABLE-OUTERJOIN",
        )
    }
}
