//! What a processor can do while it runs (Kafka's `api.ProcessorContext`): forward records to its children, read
//! the consumed record's metadata, get its stores, schedule punctuators, read stream and wall-clock time.

use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use spate::{Decode, Encode, Headers};

use super::{Cancellable, PunctuationType};
use crate::state::{KeyValueStore, SessionStore, StoreHandle, ValueAndTimestamp, WindowStore};
use crate::task::{Schedule, TaskCore, TaskId};
use crate::{BoxError, Data, Record, RecordContext, StreamsError};

/// The context of one processor node, passed to each call. `KOut`/`VOut` are the types it forwards.
pub struct ProcessorContext<'a, KOut, VOut> {
    core: &'a mut TaskCore,
    node: usize,
    _types: PhantomData<fn(KOut, VOut)>,
}

impl<'a, KOut, VOut> ProcessorContext<'a, KOut, VOut> {
    pub(crate) fn new(core: &'a mut TaskCore, node: usize) -> Self {
        ProcessorContext { core, node, _types: PhantomData }
    }

    /// `application.id`.
    pub fn application_id(&self) -> &str {
        &self.core.application_id
    }

    /// The task running this processor.
    pub fn task_id(&self) -> TaskId {
        self.core.task_id
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.core.names[self.node]
    }

    /// Topic, partition, offset, timestamp and headers of the consumed record being processed; `None` inside a
    /// punctuation.
    pub fn record_context(&self) -> Option<&RecordContext> {
        self.core.record_context.as_ref()
    }

    /// The consumed record's topic.
    pub fn topic(&self) -> Option<&str> {
        self.core.record_context.as_ref().map(|c| c.topic.as_str())
    }

    /// The consumed record's partition.
    pub fn partition(&self) -> Option<i32> {
        self.core.record_context.as_ref().map(|c| c.partition)
    }

    /// The consumed record's offset.
    pub fn offset(&self) -> Option<i64> {
        self.core.record_context.as_ref().map(|c| c.offset)
    }

    /// The consumed record's headers.
    pub fn headers(&self) -> Option<&Headers> {
        self.core.record_context.as_ref().map(|c| &c.headers)
    }

    /// Stream time: the largest record timestamp this task has processed (`-1` before the first record).
    pub fn current_stream_time_ms(&self) -> i64 {
        self.core.stream_time.max(-1)
    }

    /// Wall-clock time as the runtime (or the test driver) last set it.
    pub fn current_system_time_ms(&self) -> i64 {
        self.core.wall_clock
    }

    /// Asks the runtime to commit soon (Kafka's `commit()`); the test driver commits after every record anyway.
    pub fn commit(&mut self) {
        self.core.commit_requested = true;
    }

    /// Sends `record` to every child, depth first, as Kafka does: each child (and its descendants) has handled it
    /// when this returns.
    pub fn forward(&mut self, record: Record<KOut, VOut>) -> Result<(), StreamsError>
    where
        KOut: Data,
        VOut: Data,
    {
        let children = self.core.children[self.node].clone();
        let mut record = Some(record);
        for (i, child) in children.iter().enumerate() {
            let r = if i + 1 == children.len() { record.take() } else { record.clone() };
            if let Some(r) = r {
                self.core.dispatch(*child, Box::new(r))?;
            }
        }
        Ok(())
    }

    /// Sends `record` to the child named `child` only (Kafka's `To.child`).
    pub fn forward_to(&mut self, child: &str, record: Record<KOut, VOut>) -> Result<(), StreamsError>
    where
        KOut: Data,
        VOut: Data,
    {
        let target = self.core.children[self.node].iter().copied().find(|c| self.core.names[*c] == child);
        match target {
            Some(c) => self.core.dispatch(c, Box::new(record)),
            None => Err(StreamsError::Topology(format!("{} has no child named {child}", self.node_name()))),
        }
    }

    /// Schedules `punctuator` every `interval` on stream or wall-clock time (Kafka's `schedule`). The callback gets
    /// the current time of its clock and this node's context to forward from.
    pub fn schedule<F>(&mut self, interval: Duration, kind: PunctuationType, mut punctuator: F) -> Cancellable
    where
        F: FnMut(i64, &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), BoxError> + Send + 'static,
        KOut: 'static,
        VOut: 'static,
    {
        let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
        let cancelled = Arc::new(AtomicBool::new(false));
        let next = match kind {
            PunctuationType::StreamTime => 0,
            PunctuationType::WallClockTime => self.core.wall_clock.saturating_add(interval),
        };
        let callback = Box::new(move |ts: i64, core: &mut TaskCore, node: usize| {
            let mut ctx = ProcessorContext::<KOut, VOut>::new(core, node);
            punctuator(ts, &mut ctx)
        });
        self.core.punctuations.push(Schedule {
            node: self.node,
            interval,
            kind,
            next,
            cancelled: cancelled.clone(),
            callback: Some(callback),
        });
        Cancellable { cancelled }
    }

    fn store(&self, name: &str) -> Result<StoreHandle, StreamsError> {
        self.core.connected_store(self.node, name)
    }

    /// A key-value store connected to this processor. For a timestamped (DSL) store this is a plain view.
    pub fn get_key_value_store<K: Encode + Decode, V: Encode + Decode>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<K, V>, StreamsError> {
        match self.store(name)? {
            StoreHandle::KeyValue(s) => {
                let plain_view = s.lock().timestamped;
                Ok(KeyValueStore::new(s, plain_view))
            }
            _ => Err(StreamsError::store(name, "not a key-value store")),
        }
    }

    /// A timestamped key-value store connected to this processor.
    pub fn get_timestamped_key_value_store<K: Encode + Decode, V: Encode + Decode>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<K, ValueAndTimestamp<V>>, StreamsError> {
        match self.store(name)? {
            StoreHandle::KeyValue(s) if s.lock().timestamped => Ok(KeyValueStore::new(s, false)),
            _ => Err(StreamsError::store(name, "not a timestamped key-value store")),
        }
    }

    /// A window store connected to this processor (plain view over a timestamped one).
    pub fn get_window_store<K: Encode + Decode, V: Encode + Decode>(
        &self,
        name: &str,
    ) -> Result<WindowStore<K, V>, StreamsError> {
        match self.store(name)? {
            StoreHandle::Window(s) => {
                let plain_view = s.lock().timestamped;
                Ok(WindowStore::new(s, plain_view))
            }
            _ => Err(StreamsError::store(name, "not a window store")),
        }
    }

    /// A timestamped window store connected to this processor.
    pub fn get_timestamped_window_store<K: Encode + Decode, V: Encode + Decode>(
        &self,
        name: &str,
    ) -> Result<WindowStore<K, ValueAndTimestamp<V>>, StreamsError> {
        match self.store(name)? {
            StoreHandle::Window(s) if s.lock().timestamped => Ok(WindowStore::new(s, false)),
            _ => Err(StreamsError::store(name, "not a timestamped window store")),
        }
    }

    /// A session store connected to this processor.
    pub fn get_session_store<K: Encode + Decode + Clone, V: Encode + Decode>(
        &self,
        name: &str,
    ) -> Result<SessionStore<K, V>, StreamsError> {
        match self.store(name)? {
            StoreHandle::Session(s) => Ok(SessionStore::new(s)),
            _ => Err(StreamsError::store(name, "not a session store")),
        }
    }

    pub(crate) fn core(&mut self) -> &mut TaskCore {
        self.core
    }
}
