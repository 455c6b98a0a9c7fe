//! `suppress(...)`: holds back a table's updates in a buffer (a logged key-value store, restored like any other
//! state) and emits them later (Kafka's `KTableSuppressProcessor`):
//! - `until_window_closes`: only the final result of each window, once stream time passes its end plus grace;
//! - `until_time_limit`: the latest value of a key once stream time is `limit` past the first buffered update
//!   (a later update replaces the value but does not restart the timer).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use spate::{Decode, Encode, RecordPart};

use super::builder::ms;
use super::{Change, KTable};
use crate::state::ValueAndTimestamp;
use crate::topology::NodeDef;
use crate::{BoxError, Data, KeyValueStore, Processor, ProcessorContext, Record, Stores, Window, Windowed};

/// How much a suppression may buffer (Kafka's `BufferConfig`). Only unbounded buffers exist so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    _private: (),
}

impl BufferConfig {
    /// No limit: never emit early.
    pub fn unbounded() -> Self {
        BufferConfig { _private: () }
    }
}

/// What to hold back (Kafka's `Suppressed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    until: Until,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    WindowCloses,
    TimeLimit(i64),
}

impl Suppressed {
    /// Only each window's final result, when the window closes (end + grace <= stream time). Windowed tables
    /// only.
    pub fn until_window_closes(_buffer: BufferConfig) -> Self {
        Suppressed { until: Until::WindowCloses }
    }

    /// A key's latest value once `limit` of stream time has passed since its first buffered update.
    pub fn until_time_limit(limit: Duration, _buffer: BufferConfig) -> Self {
        Suppressed { until: Until::TimeLimit(ms(limit)) }
    }
}

type KeyEncoder<K> = Arc<dyn Fn(&K) -> Result<Vec<u8>, BoxError> + Send + Sync>;
type KeyDecoder<K> = Arc<dyn Fn(&[u8]) -> Result<K, BoxError> + Send + Sync>;

/// What a windowed table knows about its keys: the grace period, each key's window end, and a byte form that
/// keeps the whole window (the `Windowed` codec keeps only the start).
pub(crate) struct Windowing<K> {
    grace: i64,
    window_end: Arc<dyn Fn(&K) -> i64 + Send + Sync>,
    encode: KeyEncoder<K>,
    decode: KeyDecoder<K>,
}

impl<K> Clone for Windowing<K> {
    fn clone(&self) -> Self {
        Windowing {
            grace: self.grace,
            window_end: self.window_end.clone(),
            encode: self.encode.clone(),
            decode: self.decode.clone(),
        }
    }
}

impl<K: Encode + Decode + 'static> Windowing<Windowed<K>> {
    pub(crate) fn of_windowed(grace: i64) -> Self {
        Windowing {
            grace,
            window_end: Arc::new(|k: &Windowed<K>| k.window.end),
            encode: Arc::new(|k: &Windowed<K>| {
                let mut bytes = k.window.start.to_be_bytes().to_vec();
                bytes.extend_from_slice(&k.window.end.to_be_bytes());
                bytes.extend_from_slice(&k.key.encode()?.unwrap_or_default());
                Ok(bytes)
            }),
            decode: Arc::new(|bytes: &[u8]| {
                let (start, rest) = bytes.split_first_chunk::<8>().ok_or("buffered key too short")?;
                let (end, key) = rest.split_first_chunk::<8>().ok_or("buffered key too short")?;
                let window = Window::new(i64::from_be_bytes(*start), i64::from_be_bytes(*end));
                Ok(Windowed::new(K::decode(Some(key), RecordPart::Key)?, window))
            }),
        }
    }
}

enum BufferTime<K> {
    WindowEnd(Arc<dyn Fn(&K) -> i64 + Send + Sync>),
    RecordTime,
}

impl<K> Clone for BufferTime<K> {
    fn clone(&self) -> Self {
        match self {
            BufferTime::WindowEnd(f) => BufferTime::WindowEnd(f.clone()),
            BufferTime::RecordTime => BufferTime::RecordTime,
        }
    }
}

struct SuppressProcessor<K, V> {
    store: String,
    buffer_time: BufferTime<K>,
    /// Emit when buffer time <= stream time - delay.
    delay: i64,
    encode: KeyEncoder<K>,
    decode: KeyDecoder<K>,
    observed_stream_time: i64,
    _types: PhantomData<fn(V)>,
}

/// A buffered update: its buffer time outside, the record's timestamp inside.
type Buffered<V> = ValueAndTimestamp<ValueAndTimestamp<Change<V>>>;

impl<K, V> Processor<K, Change<V>, K, Change<V>> for SuppressProcessor<K, V>
where
    K: Encode + Decode + Data,
    V: Encode + Decode + Data,
{
    fn process(
        &mut self,
        r: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), BoxError> {
        self.observed_stream_time = self.observed_stream_time.max(r.timestamp());
        let buffer: KeyValueStore<Vec<u8>, Buffered<V>> = ctx.get_key_value_store(&self.store)?;
        let slot = (self.encode)(r.key())?;
        let prior = buffer.get(&slot)?;
        let buffer_time = match (&self.buffer_time, &prior) {
            (BufferTime::WindowEnd(end), _) => end(r.key()),
            // A later update keeps the timer of the first one.
            (BufferTime::RecordTime, Some(p)) => p.timestamp,
            (BufferTime::RecordTime, None) => r.timestamp(),
        };
        // The emitted change's old value is the one from before the first buffered update.
        let old = match prior {
            Some(p) => p.value.value.old_value,
            None => r.value().old_value.clone(),
        };
        let change = Change::new(r.value().new_value.clone(), old);
        buffer.put(&slot, &ValueAndTimestamp::make(ValueAndTimestamp::make(change, r.timestamp()), buffer_time))?;
        let expiry = self.observed_stream_time - self.delay;
        let mut due: Vec<(i64, Vec<u8>, ValueAndTimestamp<Change<V>>)> = buffer
            .all()?
            .into_iter()
            .filter(|(_, b)| b.timestamp <= expiry)
            .map(|(k, b)| (b.timestamp, k, b.value))
            .collect();
        due.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (_, slot, entry) in due {
            buffer.delete(&slot)?;
            let key = (self.decode)(&slot)?;
            ctx.forward(Record::new(key, entry.value, entry.timestamp))?;
        }
        Ok(())
    }
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> KTable<K, V> {
    /// Holds updates back as `suppressed` says (see [`Suppressed`]). `until_window_closes` needs a windowed
    /// aggregation's table; anything else is reported as a topology error.
    pub fn suppress(&self, suppressed: Suppressed) -> KTable<K, V> {
        let mut b = self.b.borrow_mut();
        let (buffer_time, delay, encode, decode) = match (suppressed.until, &self.windowing) {
            (Until::WindowCloses, Some(w)) => {
                (BufferTime::WindowEnd(w.window_end.clone()), w.grace, w.encode.clone(), w.decode.clone())
            }
            (Until::WindowCloses, None) => {
                b.error("suppress(until_window_closes) needs a windowed aggregation's table".into());
                drop(b);
                return self.clone();
            }
            (Until::TimeLimit(limit), Some(w)) => (BufferTime::RecordTime, limit, w.encode.clone(), w.decode.clone()),
            (Until::TimeLimit(limit), None) => {
                let encode: KeyEncoder<K> = Arc::new(|k: &K| Ok(k.encode()?.unwrap_or_default()));
                let decode: KeyDecoder<K> = Arc::new(|bytes: &[u8]| Ok(K::decode(Some(bytes), RecordPart::Key)?));
                (BufferTime::RecordTime, limit, encode, decode)
            }
        };
        let name = b.new_name("KTABLE-SUPPRESS");
        let store = b.new_name("KTABLE-SUPPRESS-STATE-STORE");
        b.add_store(Stores::key_value_store_builder(Stores::in_memory_key_value_store(&store)));
        let s = store.clone();
        let node = b.add_processor::<K, Change<V>, K, Change<V>, _>(name, &[self.node], move |_: &NodeDef| {
            SuppressProcessor::<K, V> {
                store: s.clone(),
                buffer_time: buffer_time.clone(),
                delay,
                encode: encode.clone(),
                decode: decode.clone(),
                observed_stream_time: i64::MIN,
                _types: PhantomData,
            }
        });
        b.topology.connect_store(node, &store);
        drop(b);
        KTable::new(self.b.clone(), node, self.windowing.clone())
    }
}
