//! `suppress(Suppressed::until_window_closes(...))`: holds back a windowed table's updates and emits only the
//! final result of each window once stream time passes its end plus grace (Kafka's `KTableSuppressProcessor`).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use spate::{Decode, Encode};

use super::{Change, KTable};
use crate::topology::NodeDef;
use crate::{BoxError, Data, Processor, ProcessorContext, Record, Windowed};

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

type Buffered<K, V> = Record<Windowed<K>, Change<V>>;

struct SuppressProcessor<K, V> {
    grace: i64,
    observed_stream_time: i64,
    /// Buffered updates by (window end, serialized key): the latest record and the value before the first one.
    buffer: BTreeMap<(i64, Vec<u8>), Buffered<K, V>>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Processor<Windowed<K>, Change<V>, Windowed<K>, Change<V>> for SuppressProcessor<K, V>
where
    K: Encode + Data,
    V: Data,
{
    fn process(
        &mut self,
        r: Record<Windowed<K>, Change<V>>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
    ) -> Result<(), BoxError> {
        self.observed_stream_time = self.observed_stream_time.max(r.timestamp());
        let key = r.key().key.encode()?.unwrap_or_default();
        let slot = (r.key().window.end, key);
        let prior = self.buffer.get(&slot).map(|b| b.value().old_value.clone());
        let r = match prior {
            Some(old) => {
                let new = r.value().new_value.clone();
                r.with_value(Change::new(new, old))
            }
            None => r,
        };
        self.buffer.insert(slot, r);
        let expiry = self.observed_stream_time - self.grace;
        while let Some(entry) = self.buffer.first_entry() {
            if entry.key().0 > expiry {
                break;
            }
            let record = entry.remove();
            ctx.forward(record)?;
        }
        Ok(())
    }
}

impl<K: Encode + Decode + Data, V: Encode + Decode + Data> KTable<Windowed<K>, V> {
    /// Emits only final results per window (see [`Suppressed::until_window_closes`]). The buffer is kept in
    /// memory (not yet backed by a changelog).
    pub fn suppress(&self, _suppressed: Suppressed) -> KTable<Windowed<K>, V> {
        let mut b = self.b.borrow_mut();
        let Some(grace) = self.grace_ms else {
            b.error("suppress(until_window_closes) needs a windowed aggregation's table".into());
            drop(b);
            return self.clone();
        };
        let name = b.new_name("KTABLE-SUPPRESS");
        let node = b.add_processor::<Windowed<K>, Change<V>, Windowed<K>, Change<V>, _>(
            name,
            &[self.node],
            move |_: &NodeDef| SuppressProcessor::<K, V> {
                grace,
                observed_stream_time: i64::MIN,
                buffer: BTreeMap::new(),
                _types: PhantomData,
            },
        );
        drop(b);
        KTable::new(self.b.clone(), node, self.grace_ms)
    }
}
