//! A task: one instance of a sub-topology for one input partition (group). It owns its processor graph and its
//! stores, processes consumed records one at a time, keeps stream time, runs punctuators, and hands what it
//! produces (sink records, repartition records, changelog entries) to a `RecordCollector` — a producer in the
//! runtime, a queue in the test driver.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::processor::node::{AnyRecord, ErasedNode};
use crate::processor::{next_time, PunctuationType};
use crate::state::{changelog_topic, ChangeLogger, ChangelogHook, ChangelogRecord, StoreContext, StoreHandle};
use crate::topology::NodeKind;
use crate::{BoxError, ConsumedRecord, ProducedRecord, Record, RecordContext, StreamsConfig, StreamsError, Topology};

/// Kafka's task id: sub-topology and partition, printed `0_1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Sub-topology number.
    pub subtopology: u32,
    /// Input partition.
    pub partition: i32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// Receives what a task produces. The runtime implements it with a (transactional) producer.
pub trait RecordCollector {
    /// Sends one record.
    fn send(&mut self, record: ProducedRecord) -> Result<(), StreamsError>;
}

impl RecordCollector for Vec<ProducedRecord> {
    fn send(&mut self, record: ProducedRecord) -> Result<(), StreamsError> {
        self.push(record);
        Ok(())
    }
}

type PunctuateFn = Box<dyn FnMut(i64, &mut TaskCore, usize) -> Result<(), BoxError> + Send>;

pub(crate) struct Schedule {
    pub(crate) node: usize,
    pub(crate) interval: i64,
    pub(crate) kind: PunctuationType,
    pub(crate) next: i64,
    pub(crate) cancelled: Arc<AtomicBool>,
    pub(crate) callback: Option<PunctuateFn>,
}

/// Changelog entries become records for the store's changelog topic on the task's partition.
struct OutputChangelog {
    application_id: String,
    partition: i32,
    output: Arc<Mutex<Vec<ProducedRecord>>>,
}

impl ChangelogHook for OutputChangelog {
    fn log(&self, record: ChangelogRecord) {
        self.output.lock().push(ProducedRecord {
            topic: changelog_topic(&self.application_id, &record.store),
            partition: Some(self.partition),
            key: Some(record.key),
            value: record.value,
            timestamp: record.timestamp,
            headers: spate::Headers::new(),
        });
    }
}

/// The state processors reach through their context.
pub(crate) struct TaskCore {
    pub(crate) application_id: String,
    pub(crate) task_id: TaskId,
    pub(crate) names: Vec<String>,
    pub(crate) children: Vec<Vec<usize>>,
    nodes: Vec<Option<Box<dyn ErasedNode>>>,
    connected: Vec<HashSet<String>>,
    stores: HashMap<String, StoreHandle>,
    global_stores: HashSet<String>,
    pub(crate) record_context: Option<RecordContext>,
    pub(crate) stream_time: i64,
    pub(crate) wall_clock: i64,
    clock: Arc<AtomicI64>,
    pub(crate) punctuations: Vec<Schedule>,
    pub(crate) output: Arc<Mutex<Vec<ProducedRecord>>>,
    pub(crate) commit_requested: bool,
    pub(crate) continue_on_deserialization_error: bool,
}

impl TaskCore {
    pub(crate) fn set_clock(&self, timestamp: i64) {
        self.clock.store(timestamp, Ordering::Relaxed);
    }

    /// Stream time moves with each record a source accepts, never back.
    pub(crate) fn advance_stream_time(&mut self, timestamp: i64) {
        self.stream_time = self.stream_time.max(timestamp);
        if let Some(c) = self.record_context.as_mut() {
            c.timestamp = timestamp;
        }
    }

    pub(crate) fn dispatch(&mut self, node: usize, record: AnyRecord) -> Result<(), StreamsError> {
        let mut n = self.nodes.get_mut(node).and_then(Option::take).ok_or_else(|| {
            StreamsError::Topology(format!(
                "node {} is not part of task {} (or forwards to itself)",
                self.names[node], self.task_id
            ))
        })?;
        let result = n.process(record, self, node);
        self.nodes[node] = Some(n);
        result
    }

    pub(crate) fn connected_store(&self, node: usize, name: &str) -> Result<StoreHandle, StreamsError> {
        let store = self.stores.get(name).ok_or_else(|| StreamsError::store(name, "no such store in this task"))?;
        if self.connected[node].contains(name) || self.global_stores.contains(name) {
            Ok(store.clone())
        } else {
            Err(StreamsError::store(name, format!("not connected to processor {}", self.names[node])))
        }
    }
}

/// One task of a topology.
pub struct StreamTask {
    core: TaskCore,
    sources: HashMap<String, usize>,
    initialized: bool,
}

impl StreamTask {
    /// Creates the task `id` for the given nodes of `topology` (a sub-topology from
    /// [`Topology::subtopologies`], or every node, global ones included, as the test driver does), creating its
    /// stores and wiring their changelogs to the task's output.
    pub fn new(
        topology: &Topology,
        id: TaskId,
        config: &StreamsConfig,
        nodes: Option<&[usize]>,
    ) -> Result<StreamTask, StreamsError> {
        if let Some(first) = topology.build_errors.first() {
            return Err(StreamsError::Topology(first.clone()));
        }
        let all: Vec<usize> = (0..topology.nodes.len()).collect();
        let selected: HashSet<usize> = nodes.unwrap_or(&all).iter().copied().collect();
        let output = Arc::new(Mutex::new(Vec::new()));
        let clock = Arc::new(AtomicI64::new(0));
        let hook: Arc<dyn ChangelogHook> = Arc::new(OutputChangelog {
            application_id: config.application_id.clone(),
            partition: id.partition,
            output: output.clone(),
        });
        let store_ctx = StoreContext {
            application_id: config.application_id.clone(),
            task_id: id.to_string(),
            state_dir: config.state_dir.clone(),
        };
        let mut stores = HashMap::new();
        let mut sources = HashMap::new();
        let mut built = Vec::with_capacity(topology.nodes.len());
        let mut connected = Vec::with_capacity(topology.nodes.len());
        for (i, def) in topology.nodes.iter().enumerate() {
            if !selected.contains(&i) {
                built.push(None);
                connected.push(HashSet::new());
                continue;
            }
            for s in &def.stores {
                if stores.contains_key(s) {
                    continue;
                }
                let builder = topology.stores.get(s).ok_or_else(|| StreamsError::store(s, "declared by no builder"))?;
                let logger = ChangeLogger { store: s.clone(), hook: hook.clone(), clock: clock.clone() };
                // Global stores are rebuilt from their source topic, which is their changelog.
                let logger = (!topology.global_stores.contains(s)).then_some(logger);
                stores.insert(s.clone(), builder.build(&store_ctx, logger, clock.clone())?);
            }
            if let NodeKind::Source(topics) = &def.kind {
                for t in topics {
                    sources.insert(t.full_name(&config.application_id), i);
                }
            }
            built.push(Some((def.factory)(def)));
            connected.push(def.stores.iter().cloned().collect());
        }
        let core = TaskCore {
            application_id: config.application_id.clone(),
            task_id: id,
            names: topology.nodes.iter().map(|n| n.name.clone()).collect(),
            children: topology.nodes.iter().map(|n| n.children.clone()).collect(),
            nodes: built,
            connected,
            stores,
            global_stores: topology.global_stores.iter().cloned().collect(),
            record_context: None,
            stream_time: i64::MIN,
            wall_clock: 0,
            clock,
            punctuations: Vec::new(),
            output,
            commit_requested: false,
            continue_on_deserialization_error: config.deserialization_handler
                == crate::DeserializationHandler::LogAndContinue,
        };
        Ok(StreamTask { core, sources, initialized: false })
    }

    /// This task's id.
    pub fn id(&self) -> TaskId {
        self.core.task_id
    }

    /// Topics this task reads (full names).
    pub fn source_topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self.sources.keys().cloned().collect();
        t.sort();
        t
    }

    /// The task's stores, to restore them from their changelogs before [`init`](Self::init).
    pub fn stores(&self) -> Vec<StoreHandle> {
        self.core.stores.values().cloned().collect()
    }

    /// One store by name.
    pub fn store(&self, name: &str) -> Option<StoreHandle> {
        self.core.stores.get(name).cloned()
    }

    /// Makes a global store (built once per instance and fed by the global task) readable by this task's
    /// processors. Call before [`init`](Self::init).
    pub fn add_global_store(&mut self, store: StoreHandle) {
        let name = store.name();
        self.core.global_stores.insert(name.clone());
        self.core.stores.insert(name, store);
    }

    /// Stream time (the largest timestamp processed; `-1` before the first record).
    pub fn stream_time(&self) -> i64 {
        self.core.stream_time.max(-1)
    }

    /// Sets the wall clock without punctuating (before `init`, so wall-clock punctuators start from it).
    pub fn set_wall_clock(&mut self, now_ms: i64) {
        self.core.wall_clock = now_ms;
    }

    /// Whether a processor asked for a commit since the last call.
    pub fn take_commit_request(&mut self) -> bool {
        std::mem::take(&mut self.core.commit_requested)
    }

    /// Initialises every processor (stores must be restored first).
    pub fn init(&mut self, collector: &mut dyn RecordCollector) -> Result<(), StreamsError> {
        if self.initialized {
            return Ok(());
        }
        self.initialized = true;
        for i in 0..self.core.nodes.len() {
            if let Some(mut n) = self.core.nodes[i].take() {
                let r = n.init(&mut self.core, i);
                self.core.nodes[i] = Some(n);
                r?;
            }
        }
        self.drain(collector)
    }

    fn drain(&mut self, collector: &mut dyn RecordCollector) -> Result<(), StreamsError> {
        let produced = std::mem::take(&mut *self.core.output.lock());
        produced.into_iter().try_for_each(|r| collector.send(r))
    }

    /// Processes one consumed record through the graph, then stream-time punctuators that became due, and hands
    /// everything produced to `collector`. Records with a negative timestamp fail, like Kafka's default
    /// `FailOnInvalidTimestamp` extractor.
    pub fn process(&mut self, record: ConsumedRecord, collector: &mut dyn RecordCollector) -> Result<(), StreamsError> {
        self.init(collector)?;
        let node = *self.sources.get(&record.topic).ok_or_else(|| StreamsError::UnknownTopic(record.topic.clone()))?;
        // The source node checks (or extracts) the timestamp and advances stream time.
        self.core.record_context = Some(RecordContext {
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            headers: record.headers.clone(),
        });
        let raw = Record::new(record.key, record.value, record.timestamp).with_headers(record.headers);
        let result = self.core.dispatch(node, Box::new(raw));
        self.core.record_context = None;
        result?;
        self.punctuate(PunctuationType::StreamTime, self.core.stream_time)?;
        self.drain(collector)
    }

    /// Sets the wall clock to `now_ms` and runs the wall-clock punctuators that became due.
    pub fn advance_wall_clock(&mut self, now_ms: i64, collector: &mut dyn RecordCollector) -> Result<(), StreamsError> {
        self.init(collector)?;
        self.core.wall_clock = self.core.wall_clock.max(now_ms);
        self.punctuate(PunctuationType::WallClockTime, self.core.wall_clock)?;
        self.drain(collector)
    }

    fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<(), StreamsError> {
        let mut i = 0;
        while i < self.core.punctuations.len() {
            let s = &mut self.core.punctuations[i];
            if s.kind != kind || s.cancelled.load(Ordering::Relaxed) || s.next > now {
                i += 1;
                continue;
            }
            let (node, interval, scheduled) = (s.node, s.interval, s.next);
            let Some(mut callback) = s.callback.take() else {
                i += 1;
                continue;
            };
            self.core.record_context = None;
            self.core.set_clock(now);
            let result = callback(now, &mut self.core, node);
            let s = &mut self.core.punctuations[i];
            s.callback = Some(callback);
            s.next = next_time(scheduled, now, interval);
            result.map_err(|e| StreamsError::from_processor(&self.core.names[node], e))?;
            i += 1;
        }
        self.core.punctuations.retain(|s| !s.cancelled.load(Ordering::Relaxed));
        Ok(())
    }

    /// Prepares a commit: flushes the stores (persistent ones become durable) and clears the commit request. The
    /// runtime then commits the consumed offsets (with the produced records, under exactly-once).
    pub fn commit(&mut self) -> Result<(), StreamsError> {
        self.core.commit_requested = false;
        self.core.stores.values().try_for_each(StoreHandle::flush)
    }

    /// Closes every processor.
    pub fn close(&mut self) {
        for n in self.core.nodes.iter_mut().flatten() {
            n.close();
        }
        for s in self.core.stores.values() {
            if let Err(e) = s.flush() {
                tracing::warn!(store = %s.name(), error = %e, "flushing a store on close failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>() {}
    fn sync<T: Sync>() {}

    /// The runtime shares one topology between stream threads and moves tasks between them.
    #[test]
    fn topologies_are_shareable_and_tasks_movable_between_threads() {
        send::<Topology>();
        sync::<Topology>();
        send::<StreamTask>();
        send::<StoreHandle>();
        sync::<StoreHandle>();
    }
}
