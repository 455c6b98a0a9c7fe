//! Global tables (Kafka's `GlobalStreamThread`): one global task per instance reads every partition of the
//! global topics into the global stores — to the end before the stream threads start (the bootstrap), then on
//! its own thread as records arrive. Stream tasks read the same store instances (`StreamTask::add_global_store`).
//! The stores are rebuilt from their topics at each start (no checkpoint), as a global topic is its own
//! changelog.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::internal_topics::consumer_config;
use super::kafka_streams::Shared;
use crate::state::StoreHandle;
use crate::{
    ConsumedRecord, ProcessingGuarantee, ProducedRecord, StreamTask, StreamsConfig, StreamsError, TaskId, Topology,
};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// The bootstrap fails rather than hang when it makes no progress for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The id of the global task (persistent global stores live under `<state.dir>/<application.id>/4294967295_0`).
pub(crate) const GLOBAL_TASK: TaskId = TaskId { subtopology: u32::MAX, partition: 0 };

fn kafka(what: &str, e: KafkaError) -> StreamsError {
    StreamsError::Store { store: what.to_owned(), reason: format!("global table: {e}") }
}

/// The global task with its consumer, bootstrapped.
pub(crate) struct GlobalTask {
    task: StreamTask,
    consumer: BaseConsumer,
}

impl GlobalTask {
    /// Creates the global task and reads its topics to their end.
    pub(crate) fn bootstrap(topology: &Topology, config: &StreamsConfig) -> Result<GlobalTask, StreamsError> {
        let nodes = topology.global_nodes();
        let mut task = StreamTask::new(topology, GLOBAL_TASK, config, Some(&nodes))?;
        let mut cc = consumer_config(config);
        cc.set("group.id", format!("{}-global", config.application_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set(
                "isolation.level",
                match config.processing_guarantee {
                    ProcessingGuarantee::ExactlyOnceV2 => "read_committed",
                    ProcessingGuarantee::AtLeastOnce => "read_uncommitted",
                },
            );
        let consumer: BaseConsumer = cc.create().map_err(|e| kafka("consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        let mut pending: HashMap<(String, i32), i64> = HashMap::new();
        for topic in topology.global_source_topics() {
            let md = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT).map_err(|e| kafka(&topic, e))?;
            let parts: Vec<i32> = md
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if parts.is_empty() {
                return Err(StreamsError::Topology(format!("global topic {topic} does not exist")));
            }
            for p in parts {
                tpl.add_partition_offset(&topic, p, Offset::Beginning).map_err(|e| kafka(&topic, e))?;
                let (low, high) =
                    consumer.fetch_watermarks(&topic, p, METADATA_TIMEOUT).map_err(|e| kafka(&topic, e))?;
                if high > low {
                    pending.insert((topic.clone(), p), high);
                }
            }
        }
        consumer.assign(&tpl).map_err(|e| kafka("assign", e))?;
        let mut sink = Vec::new();
        task.init(&mut sink)?;
        // Every partition to the high watermark it had when the bootstrap began. An end-of-partition event (the
        // last stable offset under read_committed) names only the partition number.
        let mut last_progress = Instant::now();
        let mut global = GlobalTask { task, consumer };
        while !pending.is_empty() {
            if last_progress.elapsed() > STALL_TIMEOUT {
                return Err(StreamsError::Topology("bootstrapping the global tables made no progress for 60 s".into()));
            }
            match global.poll_one(Duration::from_millis(100), &mut sink)? {
                Polled::Record(topic, partition, offset) => {
                    last_progress = Instant::now();
                    let key = (topic, partition);
                    if pending.get(&key).is_some_and(|high| offset + 1 >= *high) {
                        pending.remove(&key);
                    }
                }
                Polled::End(partition) => {
                    last_progress = Instant::now();
                    let same: Vec<(String, i32)> = pending.keys().filter(|(_, p)| *p == partition).cloned().collect();
                    let reached: Vec<(String, i32)> = same
                        .iter()
                        .filter(|(t, p)| global.position(t, *p).is_some_and(|pos| pos >= pending[&(t.clone(), *p)]))
                        .cloned()
                        .collect();
                    let done = if reached.is_empty() && same.len() == 1 { same } else { reached };
                    for d in done {
                        pending.remove(&d);
                    }
                }
                Polled::Nothing => {}
            }
        }
        tracing::info!("global tables bootstrapped");
        Ok(global)
    }

    fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.consumer
            .position()
            .ok()
            .and_then(|tpl| tpl.find_partition(topic, partition).and_then(|p| p.offset().to_raw()))
    }

    fn poll_one(&mut self, timeout: Duration, sink: &mut Vec<ProducedRecord>) -> Result<Polled, StreamsError> {
        match self.consumer.poll(timeout) {
            None => Ok(Polled::Nothing),
            Some(Err(KafkaError::PartitionEOF(p))) => Ok(Polled::End(p)),
            Some(Err(e)) => Err(kafka("poll", e)),
            Some(Ok(m)) => {
                let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
                let record = ConsumedRecord {
                    topic: topic.clone(),
                    partition,
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis().unwrap_or(-1),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: spate::Headers::new(),
                };
                self.task.process(record, sink)?;
                // Global processors only write their stores; anything forwarded further has no sink to reach.
                sink.clear();
                Ok(Polled::Record(topic, partition, offset))
            }
        }
    }

    /// The global stores, for the stream tasks and interactive queries.
    pub(crate) fn stores(&self) -> Vec<StoreHandle> {
        self.task.stores()
    }

    /// Keeps the global stores up to date until the application stops.
    pub(crate) fn run(mut self, shared: Arc<Shared>) -> Result<(), StreamsError> {
        let mut sink = Vec::new();
        while !shared.stop.load(Ordering::Acquire) {
            self.poll_one(Duration::from_millis(50), &mut sink)?;
            self.task.advance_wall_clock(super::stream_thread::now_ms(), &mut sink)?;
            sink.clear();
        }
        self.task.close();
        Ok(())
    }
}

enum Polled {
    Record(String, i32, i64),
    End(i32),
    Nothing,
}
