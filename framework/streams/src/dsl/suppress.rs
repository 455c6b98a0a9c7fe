//! `suppress(Suppressed::until_window_closes(...))`: holds back a windowed table's updates and emits only the
//! final result of each window once stream time passes its end plus grace (Kafka's `KTableSuppressProcessor`). The
//! buffer is a logged key-value store ordered by window end.

use std::marker::PhantomData;

use spate::{Decode, Encode};

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
    _buffer: BufferConfig,
}

impl Suppressed {
    /// Only each window's final result, when the window closes (end + grace <= stream time).
    pub fn until_window_closes(buffer: BufferConfig) -> Self {
        Suppressed { _buffer: buffer }
    }
}

struct SuppressProcessor<K, V> {
    store: String,
    grace: i64,
    observed_stream_time: i64,
    _types: PhantomData<fn(K, V)>,
}

/// Buffer key: window end, window start (big-endian, so entries sort by end), then the key's bytes.
fn buffer_key(end: i64, start: i64, key: &[u8]) -> Vec<u8> {
    let mut k = end.to_be_bytes().to_vec();
    k.extend_from_slice(&start.to_be_bytes());
    k.extend_from_slice(key);
    k
}

impl<K, V> Processor<Windowed<K>, Change<V>, Windowed<K>, Change<V>> for SuppressProcessor<K, V>
where
    K: Encode + Decode + Data,
    V: Encode + Decode + Data,
{
    fn process(
        &mut self,
        r: Record<Windowed<K>, Change<V>>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
    ) -> Result<(), BoxError> {
        self.observed_stream_time = self.observed_stream_time.max(r.timestamp());
        let buffer: KeyValueStore<Vec<u8>, ValueAndTimestamp<Change<V>>> = ctx.get_key_value_store(&self.store)?;
        let window = r.key().window;
        let slot = buffer_key(window.end, window.start, &r.key().key.encode()?.unwrap_or_default());
        // A key updated twice before emission keeps the value from before its first buffered update.
        let old = match buffer.get(&slot)? {
            Some(prior) => prior.value.old_value,
            None => r.value().old_value.clone(),
        };
        let change = Change::new(r.value().new_value.clone(), old);
        buffer.put(&slot, &ValueAndTimestamp::make(change, r.timestamp()))?;
        let expiry = self.observed_stream_time - self.grace;
        for (slot, entry) in buffer.all()? {
            let Some((end, rest)) = slot.split_first_chunk::<8>() else { continue };
            let end = i64::from_be_bytes(*end);
            if end > expiry {
                break;
            }
            buffer.delete(&slot)?;
            let Some((start, key)) = rest.split_first_chunk::<8>() else { continue };
            let key = K::decode(Some(key), spate::RecordPart::Key)?;
            let windowed = Windowed::new(key, Window::new(i64::from_be_bytes(*start), end));
            ctx.forward(Record::new(windowed, entry.value, entry.timestamp))?;
        }
        Ok(())
    }
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> KTable<Windowed<K>, V> {
    /// Emits only final results per window (see [`Suppressed::until_window_closes`]). The buffer is a store
    /// logged to its changelog, so it survives a restart like any other state.
    pub fn suppress(&self, _suppressed: Suppressed) -> KTable<Windowed<K>, V> {
        let mut b = self.b.borrow_mut();
        let Some(grace) = self.grace_ms else {
            b.error("suppress(until_window_closes) needs a windowed aggregation's table".into());
            drop(b);
            return self.clone();
        };
        let name = b.new_name("KTABLE-SUPPRESS");
        let store = b.new_name("KTABLE-SUPPRESS-STATE-STORE");
        b.add_store(Stores::key_value_store_builder(Stores::in_memory_key_value_store(&store)));
        let s = store.clone();
        let node = b.add_processor::<Windowed<K>, Change<V>, Windowed<K>, Change<V>, _>(
            name,
            &[self.node],
            move |_: &NodeDef| SuppressProcessor::<K, V> {
                store: s.clone(),
                grace,
                observed_stream_time: i64::MIN,
                _types: PhantomData,
            },
        );
        b.topology.connect_store(node, &store);
        drop(b);
        KTable::new(self.b.clone(), node, self.grace_ms)
    }
}
