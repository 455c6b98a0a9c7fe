//! The driver: one task running the whole topology (global nodes included), a clock, and per-topic queues of
//! everything produced.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use spate::{Decode, Encode};

use super::{TestInputTopic, TestOutputTopic};
use crate::state::{KeyValueStore, SessionStore, StoreHandle, ValueAndTimestamp, WindowStore};
use crate::{ConsumedRecord, ProducedRecord, StreamTask, StreamsConfig, StreamsError, TaskId, Topology};

pub(crate) struct DriverState {
    pub(crate) task: StreamTask,
    pub(crate) outputs: HashMap<String, VecDeque<ProducedRecord>>,
    offsets: HashMap<String, i64>,
    internal_topics: HashSet<String>,
    pub(crate) wall_clock: i64,
}

impl DriverState {
    /// Processes one input record and, in order, the repartition records it causes.
    pub(crate) fn pipe(&mut self, mut record: ConsumedRecord) -> Result<(), StreamsError> {
        let mut pending = VecDeque::new();
        loop {
            let offset = self.offsets.entry(record.topic.clone()).or_insert(0);
            record.offset = *offset;
            *offset += 1;
            let mut produced = Vec::new();
            self.task.process(record, &mut produced)?;
            self.capture(produced, &mut pending);
            match pending.pop_front() {
                Some(next) => record = next,
                None => return Ok(()),
            }
        }
    }

    fn capture(&mut self, produced: Vec<ProducedRecord>, pending: &mut VecDeque<ConsumedRecord>) {
        for p in produced {
            if self.internal_topics.contains(&p.topic) {
                pending.push_back(ConsumedRecord {
                    topic: p.topic.clone(),
                    partition: 0,
                    offset: 0,
                    timestamp: p.timestamp,
                    key: p.key.clone(),
                    value: p.value.clone(),
                    headers: p.headers.clone(),
                });
            }
            self.outputs.entry(p.topic.clone()).or_default().push_back(p);
        }
    }
}

/// Runs a topology without a broker.
///
/// ```
/// use spate_streams::{StreamsBuilder, StreamsConfig, TopologyTestDriver};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, i64>("numbers").filter(|_, v| *v > 10).to("big");
/// let driver = TopologyTestDriver::new(builder.build(), StreamsConfig::new("test")).unwrap();
/// let input = driver.create_input_topic::<String, i64>("numbers");
/// let output = driver.create_output_topic::<String, i64>("big");
/// input.pipe_input("a".into(), 5).unwrap();
/// input.pipe_input("b".into(), 50).unwrap();
/// assert_eq!(output.read_key_values_to_list().unwrap(), vec![spate_streams::KeyValue::pair("b".to_string(), 50)]);
/// ```
pub struct TopologyTestDriver {
    state: Rc<RefCell<DriverState>>,
}

impl TopologyTestDriver {
    /// A driver whose wall clock starts at 0.
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self, StreamsError> {
        Self::with_wall_clock(topology, config, 0)
    }

    /// A driver whose wall clock starts at `initial_wall_clock_ms`.
    pub fn with_wall_clock(
        topology: Topology,
        config: StreamsConfig,
        initial_wall_clock_ms: i64,
    ) -> Result<Self, StreamsError> {
        let internal_topics = topology.repartition_topics(&config.application_id).into_iter().collect();
        let mut task = StreamTask::new(&topology, TaskId { subtopology: 0, partition: 0 }, &config, None)?;
        task.set_wall_clock(initial_wall_clock_ms);
        let mut produced = Vec::new();
        task.init(&mut produced)?;
        let mut state = DriverState {
            task,
            outputs: HashMap::new(),
            offsets: HashMap::new(),
            internal_topics,
            wall_clock: initial_wall_clock_ms,
        };
        state.capture(produced, &mut VecDeque::new());
        Ok(TopologyTestDriver { state: Rc::new(RefCell::new(state)) })
    }

    /// An input topic whose records get the driver's wall-clock time unless given one.
    pub fn create_input_topic<K: Encode, V: Encode>(&self, topic: &str) -> TestInputTopic<K, V> {
        let now = self.state.borrow().wall_clock;
        TestInputTopic::new(self.state.clone(), topic, now, Duration::ZERO)
    }

    /// An input topic whose records start at `start_ms` and each advance the time by `auto_advance`.
    pub fn create_input_topic_with_time<K: Encode, V: Encode>(
        &self,
        topic: &str,
        start_ms: i64,
        auto_advance: Duration,
    ) -> TestInputTopic<K, V> {
        TestInputTopic::new(self.state.clone(), topic, start_ms, auto_advance)
    }

    /// An output topic (any topic the topology writes to, changelogs and repartition topics included).
    pub fn create_output_topic<K: Decode, V: Decode>(&self, topic: &str) -> TestOutputTopic<K, V> {
        TestOutputTopic::new(self.state.clone(), topic)
    }

    /// Moves the wall clock forward and runs the wall-clock punctuators that became due.
    pub fn advance_wall_clock_time(&self, advance: Duration) -> Result<(), StreamsError> {
        let mut state = self.state.borrow_mut();
        state.wall_clock = state.wall_clock.saturating_add(i64::try_from(advance.as_millis()).unwrap_or(i64::MAX));
        let now = state.wall_clock;
        let mut produced = Vec::new();
        state.task.advance_wall_clock(now, &mut produced)?;
        let mut pending = VecDeque::new();
        state.capture(produced, &mut pending);
        while let Some(r) = pending.pop_front() {
            state.pipe(r)?;
        }
        Ok(())
    }

    /// Topics something was produced to.
    pub fn produced_topic_names(&self) -> Vec<String> {
        let mut t: Vec<String> = self.state.borrow().outputs.keys().cloned().collect();
        t.sort();
        t
    }

    fn store(&self, name: &str) -> Option<StoreHandle> {
        self.state.borrow().task.store(name)
    }

    /// A key-value store (plain values, also for the timestamped stores of the DSL); `None` if there is none.
    pub fn get_key_value_store<K: Encode + Decode, V: Encode + Decode>(
        &self,
        name: &str,
    ) -> Option<KeyValueStore<K, V>> {
        match self.store(name)? {
            StoreHandle::KeyValue(s) => {
                let plain = s.lock().timestamped;
                Some(KeyValueStore::new(s, plain))
            }
            _ => None,
        }
    }

    /// A timestamped key-value store.
    pub fn get_timestamped_key_value_store<K: Encode + Decode, V: Encode + Decode>(
        &self,
        name: &str,
    ) -> Option<KeyValueStore<K, ValueAndTimestamp<V>>> {
        match self.store(name)? {
            StoreHandle::KeyValue(s) if s.lock().timestamped => Some(KeyValueStore::new(s, false)),
            _ => None,
        }
    }

    /// A window store (plain values).
    pub fn get_window_store<K: Encode + Decode, V: Encode + Decode>(&self, name: &str) -> Option<WindowStore<K, V>> {
        match self.store(name)? {
            StoreHandle::Window(s) => {
                let plain = s.lock().timestamped;
                Some(WindowStore::new(s, plain))
            }
            _ => None,
        }
    }

    /// A session store.
    pub fn get_session_store<K: Encode + Decode + Clone, V: Encode + Decode>(
        &self,
        name: &str,
    ) -> Option<SessionStore<K, V>> {
        match self.store(name)? {
            StoreHandle::Session(s) => Some(SessionStore::new(s)),
            _ => None,
        }
    }

    /// Replays changelog records (as read from `<app>-<store>-changelog`) into a store, as the runtime does on
    /// start: for tests of restoration.
    pub fn restore(&self, store: &str, records: &[ProducedRecord]) -> Result<(), StreamsError> {
        let handle = self.store(store).ok_or_else(|| StreamsError::store(store, "no such store"))?;
        for r in records {
            let key = r.key.as_deref().ok_or_else(|| StreamsError::store(store, "changelog record without key"))?;
            handle.restore(key, r.value.as_deref(), r.timestamp)?;
        }
        Ok(())
    }

    /// Closes the topology's processors.
    pub fn close(self) {
        self.state.borrow_mut().task.close();
    }
}
