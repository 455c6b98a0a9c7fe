//! Windowed aggregations: per key and time window (tumbling/hopping), or per key and session. A record whose
//! window has closed — its end at or before stream time minus grace — is dropped, as in Kafka.

use std::sync::Arc;

use spate::{Decode, Encode};

use super::grouped_stream::{is_null, Aggregator, Initializer};
use super::{KGroupedStream, KTable, Materialized, SessionWindows, TimeWindows};
use crate::state::{Stores, ValueAndTimestamp};
use crate::topology::NodeDef;
use crate::{BoxError, Change, Data, Processor, ProcessorContext, Record, Window, Windowed};

/// A stream grouped by key and time window (Kafka's `TimeWindowedKStream`).
pub struct TimeWindowedKStream<K, V> {
    pub(crate) grouped: KGroupedStream<K, V>,
    pub(crate) windows: TimeWindows,
}

struct WindowAggregateProcessor<K, V, VA> {
    store: String,
    windows: TimeWindows,
    init: Initializer<VA>,
    adder: Aggregator<K, V, VA>,
    observed_stream_time: i64,
}

impl<K, V, VA> Processor<K, V, Windowed<K>, Change<VA>> for WindowAggregateProcessor<K, V, VA>
where
    K: Encode + Decode + Data,
    V: Encode + Data,
    VA: Encode + Decode + Data,
{
    fn process(
        &mut self,
        r: Record<K, V>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), BoxError> {
        if is_null(r.key()) || is_null(r.value()) {
            tracing::warn!(node = ctx.node_name(), "skipping a record with a null key or value");
            return Ok(());
        }
        let store = ctx.get_timestamped_window_store::<K, VA>(&self.store)?;
        self.observed_stream_time = self.observed_stream_time.max(r.timestamp());
        let close_time = self.observed_stream_time - self.windows.grace;
        for window in self.windows.windows_for(r.timestamp()) {
            if window.end <= close_time {
                tracing::debug!(
                    node = ctx.node_name(),
                    window.start,
                    window.end,
                    close_time,
                    "skipping a record for an expired window"
                );
                continue;
            }
            let old = store.fetch(r.key(), window.start)?;
            let (agg, ts) = match &old {
                None => ((self.init)(), r.timestamp()),
                Some(o) => (o.value.clone(), o.timestamp.max(r.timestamp())),
            };
            let new = (self.adder)(r.key(), r.value(), agg);
            store.put(r.key(), &ValueAndTimestamp::make(new.clone(), ts), window.start)?;
            let key = Windowed::new(r.key().clone(), window);
            let out =
                r.clone().with_key(key).with_value(Change::new(Some(new), old.map(|o| o.value))).with_timestamp(ts);
            ctx.forward(out)?;
        }
        Ok(())
    }
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> TimeWindowedKStream<K, V> {
    /// Counts records per key and window.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::with_defaults())
    }

    /// [`count`](Self::count) into a named window store.
    pub fn count_with(&self, materialized: Materialized) -> KTable<Windowed<K>, i64> {
        self.aggregate_with(|| 0i64, |_, _, n| n + 1, materialized)
    }

    /// Reduces the values per key and window.
    pub fn reduce(&self, reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static) -> KTable<Windowed<K>, V> {
        let reducer = Arc::new(reducer);
        // A reduce is an aggregate whose first value is the value itself; Option marks "no aggregate yet".
        let t = self.aggregate_with(
            || None::<V>,
            move |_, v, agg: Option<V>| {
                Some(match agg {
                    None => v.clone(),
                    Some(a) => reducer(&a, v),
                })
            },
            Materialized::with_defaults(),
        );
        t.map_values_unmaterialized_some()
    }

    /// Folds values per key and window, starting from `initializer()` in each window.
    pub fn aggregate<VA: Encode + Decode + Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(initializer, aggregator, Materialized::with_defaults())
    }

    /// [`aggregate`](Self::aggregate) into a named window store (retention at least size + grace).
    pub fn aggregate_with<VA: Encode + Decode + Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, VA> {
        let b = &self.grouped.stream.b;
        let w = self.windows;
        let store = b.borrow_mut().materialize_window(
            &materialized,
            "KSTREAM-AGGREGATE-STATE-STORE",
            w.size + w.grace,
            w.size,
            false,
        );
        let stream = self.grouped.source_stream(&store);
        let mut bm = b.borrow_mut();
        let name = bm.new_name("KSTREAM-AGGREGATE");
        let (init, adder): (Initializer<VA>, Aggregator<K, V, VA>) = (Arc::new(initializer), Arc::new(aggregator));
        let s = store.clone();
        let node = bm.add_processor::<K, V, Windowed<K>, Change<VA>, _>(name, &[stream.node], move |_: &NodeDef| {
            WindowAggregateProcessor {
                store: s.clone(),
                windows: w,
                init: init.clone(),
                adder: adder.clone(),
                observed_stream_time: i64::MIN,
            }
        });
        bm.topology.connect_store(node, &store);
        drop(bm);
        KTable::new(b.clone(), node, Some(super::suppress::Windowing::of_windowed(w.grace)))
    }
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> KTable<Windowed<K>, Option<V>> {
    /// Unwraps the `Option` of a reduce's aggregate (always `Some` once a value was seen).
    fn map_values_unmaterialized_some(&self) -> KTable<Windowed<K>, V> {
        self.map_node("KTABLE-MAPVALUES", &[self.node], None, Arc::new(|_, v: Option<&Option<V>>| v.cloned().flatten()))
    }
}

/// A stream grouped by key and session (Kafka's `SessionWindowedKStream`).
pub struct SessionWindowedKStream<K, V> {
    pub(crate) grouped: KGroupedStream<K, V>,
    pub(crate) windows: SessionWindows,
}

type Merger<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;

struct SessionAggregateProcessor<K, V, VA> {
    store: String,
    windows: SessionWindows,
    init: Initializer<VA>,
    adder: Aggregator<K, V, VA>,
    merger: Merger<K, VA>,
    observed_stream_time: i64,
}

impl<K, V, VA> Processor<K, V, Windowed<K>, Change<VA>> for SessionAggregateProcessor<K, V, VA>
where
    K: Encode + Decode + Data,
    V: Encode + Data,
    VA: Encode + Decode + Data,
{
    fn process(
        &mut self,
        r: Record<K, V>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), BoxError> {
        if is_null(r.key()) || is_null(r.value()) {
            tracing::warn!(node = ctx.node_name(), "skipping a record with a null key or value");
            return Ok(());
        }
        let store = ctx.get_session_store::<K, VA>(&self.store)?;
        let ts = r.timestamp();
        self.observed_stream_time = self.observed_stream_time.max(ts);
        let close_time = self.observed_stream_time - self.windows.grace;
        let overlapping = store.find_sessions(r.key(), ts - self.windows.gap, ts + self.windows.gap)?;
        let mut window = Window::new(ts, ts);
        let mut agg = (self.init)();
        for (session, value) in &overlapping {
            window = Window::new(window.start.min(session.window.start), window.end.max(session.window.end));
            agg = (self.merger)(r.key(), agg, value.clone());
        }
        if window.end < close_time {
            tracing::debug!(
                node = ctx.node_name(),
                window.start,
                window.end,
                close_time,
                "skipping a record for an expired session"
            );
            return Ok(());
        }
        for (session, value) in overlapping {
            if session.window != window {
                store.remove(&session)?;
                let end = session.window.end;
                ctx.forward(
                    r.clone().with_key(session).with_value(Change::new(None, Some(value))).with_timestamp(end),
                )?;
            }
        }
        let agg = (self.adder)(r.key(), r.value(), agg);
        let key = Windowed::new(r.key().clone(), window);
        store.put(&key, &agg)?;
        Ok(ctx.forward(r.with_key(key).with_value(Change::new(Some(agg), None)).with_timestamp(window.end))?)
    }
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> SessionWindowedKStream<K, V> {
    /// Counts records per key and session.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.aggregate_with(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b, Materialized::with_defaults())
    }

    /// Reduces the values per session (merged sessions combine with the same reducer).
    pub fn reduce(&self, reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static) -> KTable<Windowed<K>, V> {
        let reducer = Arc::new(reducer);
        let merge = reducer.clone();
        let t = self.aggregate_with(
            || None::<V>,
            move |_, v, agg: Option<V>| {
                Some(match agg {
                    None => v.clone(),
                    Some(a) => reducer(&a, v),
                })
            },
            move |_, a: Option<V>, b: Option<V>| match (a, b) {
                (Some(a), Some(b)) => Some(merge(&a, &b)),
                (a, b) => a.or(b),
            },
            Materialized::with_defaults(),
        );
        t.map_values_unmaterialized_some()
    }

    /// Folds values per session; `merger` combines the aggregates of two sessions a record bridges.
    pub fn aggregate<VA: Encode + Decode + Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(initializer, aggregator, merger, Materialized::with_defaults())
    }

    /// [`aggregate`](Self::aggregate) into a named session store.
    pub fn aggregate_with<VA: Encode + Decode + Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, VA> {
        let b = &self.grouped.stream.b;
        let w = self.windows;
        let store = {
            let mut bm = b.borrow_mut();
            let name = materialized.name.clone().unwrap_or_else(|| bm.new_name("KSTREAM-AGGREGATE-STATE-STORE"));
            let retention = std::time::Duration::from_millis(u64::try_from(w.gap + w.grace).unwrap_or(0));
            let retention = materialized.retention.map_or(retention, |r| r.max(retention));
            let supplier = match materialized.store_type {
                crate::DslStoreType::InMemory => Stores::in_memory_session_store(&name, retention),
                crate::DslStoreType::Persistent => Stores::persistent_session_store(&name, retention),
            };
            let mut builder = Stores::session_store_builder(supplier);
            if !materialized.logging {
                builder = builder.with_logging_disabled();
            }
            bm.add_store(builder);
            name
        };
        let stream = self.grouped.source_stream(&store);
        let mut bm = b.borrow_mut();
        let name = bm.new_name("KSTREAM-SESSIONWINDOWAGGREGATE");
        let (init, adder, merger): (Initializer<VA>, Aggregator<K, V, VA>, Merger<K, VA>) =
            (Arc::new(initializer), Arc::new(aggregator), Arc::new(merger));
        let s = store.clone();
        let node = bm.add_processor::<K, V, Windowed<K>, Change<VA>, _>(name, &[stream.node], move |_: &NodeDef| {
            SessionAggregateProcessor {
                store: s.clone(),
                windows: w,
                init: init.clone(),
                adder: adder.clone(),
                merger: merger.clone(),
                observed_stream_time: i64::MIN,
            }
        });
        bm.topology.connect_store(node, &store);
        drop(bm);
        KTable::new(b.clone(), node, Some(super::suppress::Windowing::of_windowed(w.grace)))
    }
}

/// A stream grouped by key and sliding window (Kafka's `SlidingWindowedKStream`).
pub struct SlidingWindowedKStream<K, V> {
    pub(crate) grouped: KGroupedStream<K, V>,
    pub(crate) windows: super::SlidingWindows,
}

struct SlidingAggregateProcessor<K, V, VA> {
    store: String,
    difference: i64,
    grace: i64,
    init: Initializer<VA>,
    adder: Aggregator<K, V, VA>,
    observed_stream_time: i64,
}

impl<K, V, VA> SlidingAggregateProcessor<K, V, VA>
where
    K: Encode + Decode + Data,
    V: Encode + Data,
    VA: Encode + Decode + Data,
{
    /// Adds the record to the window starting at `start` (whose aggregate so far is `base`, `None` for a new
    /// window) and forwards the result, unless the window has closed.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        store: &crate::WindowStore<K, ValueAndTimestamp<VA>>,
        r: &Record<K, V>,
        start: i64,
        base: Option<ValueAndTimestamp<VA>>,
        existing: bool,
        close_time: i64,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), BoxError> {
        let end = start + self.difference;
        if end <= close_time {
            tracing::debug!(
                node = ctx.node_name(),
                start,
                end,
                close_time,
                "skipping a record for an expired sliding window"
            );
            return Ok(());
        }
        let (agg, ts) = match &base {
            Some(b) => (b.value.clone(), b.timestamp.max(r.timestamp())),
            None => ((self.init)(), r.timestamp()),
        };
        let new = (self.adder)(r.key(), r.value(), agg);
        store.put(r.key(), &ValueAndTimestamp::make(new.clone(), ts), start)?;
        let old = if existing { base.map(|b| b.value) } else { None };
        let key = Windowed::new(r.key().clone(), Window::new(start, end));
        ctx.forward(r.clone().with_key(key).with_value(Change::new(Some(new), old)).with_timestamp(ts))?;
        Ok(())
    }
}

impl<K, V, VA> Processor<K, V, Windowed<K>, Change<VA>> for SlidingAggregateProcessor<K, V, VA>
where
    K: Encode + Decode + Data,
    V: Encode + Data,
    VA: Encode + Decode + Data,
{
    fn process(
        &mut self,
        r: Record<K, V>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), BoxError> {
        if is_null(r.key()) || is_null(r.value()) {
            tracing::warn!(node = ctx.node_name(), "skipping a record with a null key or value");
            return Ok(());
        }
        let t = r.timestamp();
        let d = self.difference;
        self.observed_stream_time = self.observed_stream_time.max(t);
        let close_time = self.observed_stream_time - self.grace;
        // Every window holding t ends by t + 1 + d (its right window); once that has closed, t is late.
        if t + 1 + d <= close_time {
            tracing::debug!(node = ctx.node_name(), t, close_time, "skipping a record for expired sliding windows");
            return Ok(());
        }
        let store = ctx.get_timestamped_window_store::<K, VA>(&self.store)?;
        let mut starts = std::collections::BTreeSet::new();
        // The aggregate of the latest window ending before t, and the largest record time in it.
        let mut before_t: Option<ValueAndTimestamp<VA>> = None;
        let mut previous_record: Option<i64> = None;
        // The aggregate (before this record) of the latest-starting window that holds t and ends after it.
        let mut holding_t: Option<ValueAndTimestamp<VA>> = None;
        let mut left_exists = false;
        let mut right_exists = false;
        for (start, vat) in store.fetch_range(r.key(), t - 2 * d, t + 1)? {
            starts.insert(start);
            let end = start + d;
            if start == t + 1 {
                right_exists = true;
            } else if end < t {
                previous_record = Some(vat.timestamp);
                before_t = Some(vat);
            } else if end == t {
                left_exists = true;
                if vat.timestamp < t {
                    previous_record = Some(vat.timestamp);
                }
                self.update(&store, &r, start, Some(vat), true, close_time, ctx)?;
            } else if start <= t {
                holding_t = Some(vat.clone());
                self.update(&store, &r, start, Some(vat), true, close_time, ctx)?;
            }
        }
        // The previous record's right window starts holding records now.
        if let Some(p) = previous_record {
            if !starts.contains(&(p + 1)) && p + 1 + d >= t {
                self.update(&store, &r, p + 1, None, false, close_time, ctx)?;
            }
        }
        // This record's left window: the records in [t - d, t].
        if !left_exists {
            let base = match (previous_record, before_t) {
                (Some(p), Some(agg)) if p >= t - d => Some(agg),
                _ => None,
            };
            self.update(&store, &r, t - d, base.map(|b| ValueAndTimestamp::make(b.value, t)), false, close_time, ctx)?;
        }
        // This record's right window, when later records (out of order) already exist.
        if !right_exists {
            if let Some(agg) = holding_t.filter(|a| a.timestamp > t) {
                let end = t + 1 + d;
                if end > close_time {
                    store.put(r.key(), &agg, t + 1)?;
                    let key = Windowed::new(r.key().clone(), Window::new(t + 1, end));
                    let out = r
                        .clone()
                        .with_key(key)
                        .with_value(Change::new(Some(agg.value), None))
                        .with_timestamp(agg.timestamp);
                    ctx.forward(out)?;
                }
            }
        }
        Ok(())
    }
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> SlidingWindowedKStream<K, V> {
    /// Counts records per key and sliding window.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.aggregate_with(|| 0i64, |_, _, n| n + 1, Materialized::with_defaults())
    }

    /// Folds values per key and sliding window.
    pub fn aggregate<VA: Encode + Decode + Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(initializer, aggregator, Materialized::with_defaults())
    }

    /// [`aggregate`](Self::aggregate) into a named window store.
    pub fn aggregate_with<VA: Encode + Decode + Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, VA> {
        let b = &self.grouped.stream.b;
        let (d, grace) = (self.windows.time_difference, self.windows.grace);
        let store = b.borrow_mut().materialize_window(
            &materialized,
            "KSTREAM-AGGREGATE-STATE-STORE",
            2 * d + grace + 1,
            d,
            false,
        );
        let stream = self.grouped.source_stream(&store);
        let mut bm = b.borrow_mut();
        let name = bm.new_name("KSTREAM-SLIDINGWINDOWAGGREGATE");
        let init: Initializer<VA> = Arc::new(initializer);
        let adder: Aggregator<K, V, VA> = Arc::new(aggregator);
        let s = store.clone();
        let node = bm.add_processor::<K, V, Windowed<K>, Change<VA>, _>(name, &[stream.node], move |_: &NodeDef| {
            SlidingAggregateProcessor {
                store: s.clone(),
                difference: d,
                grace,
                init: init.clone(),
                adder: adder.clone(),
                observed_stream_time: i64::MIN,
            }
        });
        bm.topology.connect_store(node, &store);
        drop(bm);
        KTable::new(b.clone(), node, Some(super::suppress::Windowing::of_windowed(grace)))
    }
}
