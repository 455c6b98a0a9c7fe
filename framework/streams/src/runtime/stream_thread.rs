//! One stream thread (Kafka's `StreamThread`): a consumer in the group `application.id` subscribed to every source
//! and repartition topic, a producer (transactional under exactly-once), and the tasks made from the partitions
//! the group assigns it. The loop polls, processes one record at a time through its task, runs wall-clock
//! punctuators, and commits every `commit.interval.ms` (and before partitions are revoked).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Headers as _;
use rdkafka::producer::{Producer, PurgeConfig};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use super::checkpoint::{read_checkpoint, write_checkpoint, Checkpoint, CHECKPOINT_FILE};
use super::collector::{DeliveryContext, ProducerCollector, StreamsProducer};
use super::internal_topics::{client_config, consumer_config, TopicPlan};
use super::kafka_streams::{Shared, ThreadPhase};
use super::restore::{restore_task, wipe_unrecoverable};
use super::standby::stream_thread_client_id;
use crate::state::StoreHandle;
use crate::{
    ConsumedRecord, ProcessingGuarantee, ProductionExceptionHandler, StoreBuilder, StreamTask, StreamsConfig,
    StreamsError, TaskId, Topology,
};

/// How long transaction and flush operations may wait for the cluster.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
/// Records taken from the consumer per loop turn (then punctuation and the commit check run).
const MAX_BATCH: usize = 500;
/// Records buffered for one partition beyond which the consumer pauses it (Kafka's
/// `buffered.records.per.partition` default), so a task waiting for another partition does not buffer without
/// bound.
const BUFFERED_RECORDS_PER_PARTITION: usize = 1000;

struct TaskEntry {
    task: StreamTask,
    /// Input partition → next offset to consume (what a commit writes).
    offsets: BTreeMap<(String, i32), i64>,
    /// Changelog partition → last offset the stores contain (restored or written).
    changelog_offsets: Checkpoint,
    dir: PathBuf,
    has_persistent_logged: bool,
    /// Polled records not processed yet, per input partition of the task (Kafka's `PartitionGroup`): the task takes
    /// the head with the smallest timestamp.
    queues: BTreeMap<(String, i32), VecDeque<ConsumedRecord>>,
    /// Since when the task has had records on some partitions and none on others (`max.task.idle.ms` runs from it).
    waiting_since: Option<Instant>,
}

/// The next input partition a task processes from, if it is ready to (Kafka's `PartitionGroup.readyToProcess`
/// and `nextRecord`).
fn next_partition(
    entry: &mut TaskEntry,
    max_idle_ms: i64,
    now: Instant,
    lag: &mut dyn FnMut(&str, i32) -> Option<i64>,
) -> Option<(String, i32)> {
    let mut best: Option<(&(String, i32), i64)> = None;
    let mut empty = Vec::new();
    for (tp, q) in &entry.queues {
        match q.front() {
            Some(r) if best.is_none_or(|(_, ts)| r.timestamp < ts) => best = Some((tp, r.timestamp)),
            Some(_) => {}
            None => empty.push(tp),
        }
    }
    let (tp, _) = best?;
    if empty.is_empty() || max_idle_ms < 0 {
        entry.waiting_since = None;
        return Some(tp.clone());
    }
    // Records the consumer knows are on the broker will arrive with a coming poll: wait for them, whatever the
    // idle time, so the order holds.
    if empty.iter().any(|(t, p)| lag(t, *p).is_some_and(|l| l > 0)) {
        return None;
    }
    let since = *entry.waiting_since.get_or_insert(now);
    if now.duration_since(since) >= Duration::from_millis(max_idle_ms.unsigned_abs()) {
        tracing::debug!(task = %entry.task.id(), partition = ?tp, "enforced processing: an input partition has no data");
        Some(tp.clone())
    } else {
        None
    }
}

/// Everything the loop and the rebalance callback share (the callback runs inside `poll` on the same thread).
pub(crate) struct ThreadInner {
    index: usize,
    topology: Arc<Topology>,
    config: Arc<StreamsConfig>,
    plan: Arc<TopicPlan>,
    builders: HashMap<String, StoreBuilder>,
    /// The instance's global stores, shared by every task.
    global_stores: Arc<Vec<StoreHandle>>,
    shared: Arc<Shared>,
    producer: StreamsProducer,
    deliveries: DeliveryContext,
    eos: bool,
    tasks: BTreeMap<TaskId, TaskEntry>,
    /// Set by the assignment callback; tasks are created (and restored) by the loop.
    pending_assignment: Option<Vec<(String, i32)>>,
    /// Something was processed or produced since the last commit.
    dirty: bool,
    failure: Option<StreamsError>,
    /// Partitions paused because their buffer is full.
    paused: BTreeSet<(String, i32)>,
}

pub(crate) struct ThreadContext {
    inner: Arc<Mutex<ThreadInner>>,
    /// Counts rebalance callbacks, so the loop can drop records it polled before one (their tasks were committed
    /// and closed; processing them after the new assignment would process them twice).
    rebalances: AtomicU64,
}

impl ClientContext for ThreadContext {}

impl ConsumerContext for ThreadContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::AcqRel);
        if let Rebalance::Revoke(_) = rebalance {
            let mut inner = self.inner.lock();
            inner.shared.set_phase(inner.index, ThreadPhase::Rebalancing);
            // Commit what the tasks did before another member takes their partitions (under exactly-once the
            // transaction commits with the offsets), then close them: the eager protocol revokes everything.
            let result = inner.commit(consumer);
            let clean = result.is_ok();
            if let Err(e) = result {
                tracing::error!(thread = inner.index, error = %e, "commit before revocation failed");
                inner.failure.get_or_insert(e);
            }
            inner.close_tasks(clean);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::AcqRel);
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut inner = self.inner.lock();
                let parts = tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                inner.pending_assignment = Some(parts);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// Delivery offsets are kept for the thread's lifetime: a task that left and came back restored past what this
/// thread once wrote, so the larger offset wins.
fn merge_offset(offsets: &mut Checkpoint, topic: &str, partition: i32, offset: i64) {
    let e = offsets.entry((topic.to_owned(), partition)).or_insert(offset);
    *e = (*e).max(offset);
}

/// Aborts the open transaction after a failure. librdkafka's abort waits for the delivery reports of the records
/// still queued or in flight, which only polling serves: they are purged and their (failed) reports served first,
/// or the abort would wait out its whole timeout.
fn abort_transaction(producer: &StreamsProducer) {
    producer.purge(PurgeConfig::default().queue().inflight());
    let deadline = Instant::now() + OPERATION_TIMEOUT;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(10));
    }
    if let Err(e) = producer.abort_transaction(OPERATION_TIMEOUT) {
        // The next producer with this transactional id fences the transaction and aborts it anyway.
        tracing::warn!(error = %e, "aborting the transaction failed");
    }
}

/// The high watermark librdkafka last received for a partition (from fetch responses), without a request; None
/// when none was received yet. rust-rdkafka wraps only the querying variant, hence the direct call.
fn cached_high_watermark(consumer: &BaseConsumer<ThreadContext>, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the handle is valid while `consumer` lives; librdkafka reads the NUL-terminated name and writes the
    // two offsets from its local cache under its own lock.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn kafka(what: &str, e: rdkafka::error::KafkaError) -> StreamsError {
    StreamsError::Send { topic: what.to_owned(), reason: e.to_string() }
}

impl ThreadInner {
    fn collector(&self) -> ProducerCollector<'_> {
        ProducerCollector { producer: &self.producer, sent: 0 }
    }

    fn check_deliveries(&self) -> Result<(), StreamsError> {
        match self.deliveries.deliveries.lock().failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Creates (and restores) the tasks of a new assignment: one per sub-topology and partition number.
    fn create_tasks(&mut self, assigned: Vec<(String, i32)>) -> Result<(), StreamsError> {
        let mut inputs: BTreeMap<TaskId, BTreeSet<(String, i32)>> = BTreeMap::new();
        for (t, p) in &assigned {
            if let Some(sub) = self.plan.topic_sub.get(t) {
                inputs.entry(TaskId { subtopology: *sub as u32, partition: *p }).or_default().insert((t.clone(), *p));
            }
        }
        for (id, partitions) in inputs {
            if self.tasks.contains_key(&id) {
                continue;
            }
            let sub = id.subtopology as usize;
            let dir = self.config.state_dir.join(&self.config.application_id).join(id.to_string());
            let changelogs: Vec<_> = self.plan.changelogs_of(sub).collect();
            let checkpoint_path = dir.join(CHECKPOINT_FILE);
            let checkpoint = read_checkpoint(&checkpoint_path)?;
            if self.eos && checkpoint_path.exists() {
                // Kafka keeps no checkpoint while an exactly-once task runs: after a crash the stores may hold
                // uncommitted writes, so without one they are rebuilt from the committed changelog.
                std::fs::remove_file(&checkpoint_path)
                    .map_err(|e| StreamsError::store(".checkpoint", format!("{}: {e}", checkpoint_path.display())))?;
            }
            let standby = self.shared.standby.as_ref().and_then(|s| s.activate(id, &self.shared));
            let (mut task, restored) = match standby {
                // A standby kept the stores current: restore only what it has not applied.
                Some(s) => {
                    let restored = restore_task(
                        &s.task,
                        &changelogs,
                        &s.offsets,
                        &self.config,
                        &self.builders,
                        true,
                        &self.shared,
                    )?;
                    tracing::info!(thread = self.index, task = %id, "standby task promoted");
                    (s.task, restored)
                }
                None => {
                    wipe_unrecoverable(&dir, &changelogs, &checkpoint, id.partition)?;
                    let task = StreamTask::new(&self.topology, id, &self.config, Some(&self.plan.sub_nodes[sub]))?;
                    let restored = restore_task(
                        &task,
                        &changelogs,
                        &checkpoint,
                        &self.config,
                        &self.builders,
                        false,
                        &self.shared,
                    )?;
                    (task, restored)
                }
            };
            for g in self.global_stores.iter() {
                task.add_global_store(g.clone());
            }
            task.set_wall_clock(now_ms());
            let mut collector = self.collector();
            task.init(&mut collector)?;
            self.dirty |= collector.sent > 0;
            let has_persistent_logged = changelogs.iter().any(|c| c.persistent);
            let local =
                task.stores().into_iter().filter(|s| !self.topology.global_stores.contains(&s.name())).collect();
            self.shared.registry.register(id, local);
            tracing::info!(thread = self.index, task = %id, "task created");
            self.tasks.insert(
                id,
                TaskEntry {
                    task,
                    offsets: BTreeMap::new(),
                    changelog_offsets: restored,
                    dir,
                    has_persistent_logged,
                    queues: partitions.into_iter().map(|tp| (tp, VecDeque::new())).collect(),
                    waiting_since: None,
                },
            );
        }
        Ok(())
    }

    /// Queues a polled record on its task's partition.
    fn buffer(&mut self, record: ConsumedRecord) {
        let Some(sub) = self.plan.topic_sub.get(&record.topic) else { return };
        let id = TaskId { subtopology: *sub as u32, partition: record.partition };
        // A task has a handful of partitions: a scan finds the queue without building a key per record.
        let queue = self.tasks.get_mut(&id).and_then(|e| {
            e.queues.iter_mut().find(|((t, p), _)| *p == record.partition && *t == record.topic).map(|(_, q)| q)
        });
        match queue {
            Some(q) => q.push_back(record),
            None => {
                tracing::warn!(topic = %record.topic, partition = record.partition, "record for a partition without task")
            }
        }
    }

    /// Pauses the partitions whose buffer is full and resumes those drained below the limit again.
    fn update_pauses(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        let (mut pause, mut resume) = (TopicPartitionList::new(), TopicPartitionList::new());
        for (tp, queue) in self.tasks.values().flat_map(|e| e.queues.iter()) {
            let full = queue.len() >= BUFFERED_RECORDS_PER_PARTITION;
            if full && self.paused.insert(tp.clone()) {
                pause.add_partition(&tp.0, tp.1);
            } else if !full && self.paused.remove(tp) {
                resume.add_partition(&tp.0, tp.1);
            }
        }
        if pause.count() > 0 {
            if let Err(e) = consumer.pause(&pause) {
                tracing::warn!(thread = self.index, error = %e, "pausing partitions with full buffers failed");
            }
        }
        if resume.count() > 0 {
            if let Err(e) = consumer.resume(&resume) {
                tracing::warn!(thread = self.index, error = %e, "resuming partitions failed");
            }
        }
    }

    /// Processes the buffered records each task is ready for, in timestamp order across its partitions.
    fn process_buffered(&mut self, consumer: &BaseConsumer<ThreadContext>) -> Result<(), StreamsError> {
        let max_idle_ms = self.config.max_task_idle_ms;
        let now = Instant::now();
        // Fetched lag of an empty partition: the high watermark librdkafka last saw minus the consumer's position
        // (both local, no request); None when either is unknown yet. Under read_committed the high watermark also
        // counts open transactions' records, which the consumer will not return before they commit (Kafka measures
        // from the last stable offset, which librdkafka does not expose): the lag counts as unknown there, so an
        // open upstream transaction cannot hold a task back longer than max.task.idle.ms.
        let eos = self.eos;
        let mut positions: Option<HashMap<(String, i32), i64>> = None;
        let mut lag = |topic: &str, partition: i32| -> Option<i64> {
            if eos {
                return None;
            }
            let positions = positions.get_or_insert_with(|| {
                let mut m = HashMap::new();
                if let Ok(tpl) = consumer.position() {
                    for e in tpl.elements() {
                        if let Offset::Offset(o) = e.offset() {
                            m.insert((e.topic().to_owned(), e.partition()), o);
                        }
                    }
                }
                m
            });
            let position = *positions.get(&(topic.to_owned(), partition))?;
            Some(cached_high_watermark(consumer, topic, partition)? - position)
        };
        for entry in self.tasks.values_mut() {
            while let Some(tp) = next_partition(entry, max_idle_ms, now, &mut lag) {
                let Some(record) = entry.queues.get_mut(&tp).and_then(VecDeque::pop_front) else { break };
                let next = record.offset + 1;
                let mut collector = ProducerCollector { producer: &self.producer, sent: 0 };
                entry.task.process(record, &mut collector)?;
                entry.offsets.insert(tp, next);
                self.dirty = true;
            }
        }
        Ok(())
    }

    fn punctuate(&mut self) -> Result<bool, StreamsError> {
        let now = now_ms();
        let mut commit_requested = false;
        let mut collector = ProducerCollector { producer: &self.producer, sent: 0 };
        for entry in self.tasks.values_mut() {
            entry.task.advance_wall_clock(now, &mut collector)?;
            commit_requested |= entry.task.take_commit_request();
        }
        self.dirty |= collector.sent > 0;
        Ok(commit_requested)
    }

    /// Commits every task: stores flushed, then (at-least-once) records flushed and offsets committed, or
    /// (exactly-once) offsets added to the transaction and the transaction committed.
    pub(crate) fn commit(&mut self, consumer: &BaseConsumer<ThreadContext>) -> Result<(), StreamsError> {
        if !self.dirty {
            return Ok(());
        }
        for entry in self.tasks.values_mut() {
            entry.task.commit()?;
        }
        let mut tpl = TopicPartitionList::new();
        for entry in self.tasks.values() {
            for ((t, p), o) in &entry.offsets {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o)).map_err(|e| kafka(t, e))?;
            }
        }
        if self.eos {
            if tpl.count() > 0 {
                let group = consumer.group_metadata().ok_or_else(|| StreamsError::Send {
                    topic: "offsets".into(),
                    reason: "no group metadata".into(),
                })?;
                self.producer
                    .send_offsets_to_transaction(&tpl, &group, OPERATION_TIMEOUT)
                    .map_err(|e| kafka("send_offsets_to_transaction", e))?;
            }
            self.producer.commit_transaction(OPERATION_TIMEOUT).map_err(|e| kafka("commit_transaction", e))?;
            self.check_deliveries()?;
            self.producer.begin_transaction().map_err(|e| kafka("begin_transaction", e))?;
        } else {
            self.producer.flush(OPERATION_TIMEOUT).map_err(|e| kafka("flush", e))?;
            self.check_deliveries()?;
            if tpl.count() > 0 {
                consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync).map_err(|e| kafka("commit offsets", e))?;
            }
        }
        self.dirty = false;
        // Changelog offsets now durable: at-least-once keeps a checkpoint current (Kafka writes it on commit).
        let written = self.deliveries.deliveries.lock().offsets.clone();
        let plan = self.plan.clone();
        for entry in self.tasks.values_mut() {
            let id = entry.task.id();
            for ((t, p), o) in &written {
                if *p == id.partition && plan.changelogs_of(id.subtopology as usize).any(|c| &c.topic == t) {
                    merge_offset(&mut entry.changelog_offsets, t, *p, *o);
                }
            }
            if !self.eos && entry.has_persistent_logged {
                write_checkpoint(&entry.dir.join(CHECKPOINT_FILE), &entry.changelog_offsets)?;
            }
        }
        Ok(())
    }

    /// Closes every task; a clean close of persistent stores leaves a checkpoint so the next start resumes.
    fn close_tasks(&mut self, clean: bool) {
        // Closed tasks leave nothing to commit: a dirty close's work was dropped (under exactly-once, aborted).
        self.dirty = false;
        self.paused.clear();
        let written = self.deliveries.deliveries.lock().offsets.clone();
        for (id, mut entry) in std::mem::take(&mut self.tasks) {
            self.shared.registry.unregister(id);
            if let Some(s) = &self.shared.standby {
                s.deactivate(id);
            }
            entry.task.close();
            if clean && entry.has_persistent_logged {
                for ((t, p), o) in &written {
                    if *p == id.partition && self.plan.changelogs_of(id.subtopology as usize).any(|c| &c.topic == t) {
                        merge_offset(&mut entry.changelog_offsets, t, *p, *o);
                    }
                }
                if let Err(e) = write_checkpoint(&entry.dir.join(CHECKPOINT_FILE), &entry.changelog_offsets) {
                    tracing::warn!(task = %id, error = %e, "writing the checkpoint failed");
                }
            }
        }
    }
}

/// Creates the thread's clients and runs its loop until `shared.stop` or a failure.
pub(crate) fn run(
    index: usize,
    topology: Arc<Topology>,
    config: Arc<StreamsConfig>,
    plan: Arc<TopicPlan>,
    global_stores: Arc<Vec<StoreHandle>>,
    shared: Arc<Shared>,
) -> Result<(), StreamsError> {
    let eos = config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
    let deliveries = DeliveryContext {
        continue_on_error: config.production_exception_handler == ProductionExceptionHandler::Continue,
        ..DeliveryContext::default()
    };
    let mut pc = client_config(&config);
    pc.set("partitioner", "murmur2_random").set("linger.ms", "5").set("enable.idempotence", "true");
    if eos {
        let instance = config.instance_id.clone().unwrap_or_else(|| shared.process_id.clone());
        pc.set("transactional.id", format!("{}-{}-{}", config.application_id, instance, index))
            .set("transaction.timeout.ms", "10000");
    }
    let producer: StreamsProducer =
        pc.create_with_context(deliveries.clone()).map_err(|e| kafka("creating the producer", e))?;
    if eos {
        producer.init_transactions(OPERATION_TIMEOUT).map_err(|e| kafka("init_transactions", e))?;
        producer.begin_transaction().map_err(|e| kafka("begin_transaction", e))?;
    }
    let builders = topology.state_stores().map(|(n, b)| (n.to_owned(), b.clone())).collect();
    let inner = Arc::new(Mutex::new(ThreadInner {
        index,
        topology,
        config: config.clone(),
        plan: plan.clone(),
        builders,
        global_stores,
        shared: shared.clone(),
        producer,
        deliveries,
        eos,
        tasks: BTreeMap::new(),
        pending_assignment: None,
        dirty: false,
        failure: None,
        paused: BTreeSet::new(),
    }));
    let mut cc = consumer_config(&config);
    cc.set("group.id", &config.application_id)
        .set("client.id", stream_thread_client_id(&config.application_id, &shared.process_id, index))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Range assigns, per topic, the same partition numbers to the same member when topics have the same
        // partition count and every member subscribes to the same topics: co-partitioned partitions stay together.
        .set("partition.assignment.strategy", "range")
        .set("isolation.level", if eos { "read_committed" } else { "read_uncommitted" });
    let consumer: BaseConsumer<ThreadContext> = cc
        .create_with_context(ThreadContext { inner: inner.clone(), rebalances: AtomicU64::new(0) })
        .map_err(|e| kafka("creating the consumer", e))?;
    let topics = plan.subscription();
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&refs).map_err(|e| kafka("subscribe", e))?;
    // A panic in user code is a failure like an error: the same clean-up runs (no commit, transaction aborted) and
    // the uncaught exception handler decides what follows.
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_loop(&consumer, &inner, &config, &shared)))
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                Err(StreamsError::Panic {
                    thread: format!("{}-StreamThread-{}", config.application_id, index + 1),
                    message,
                })
            });
    let mut guard = inner.lock();
    let closed = match &result {
        Ok(()) => guard.commit(&consumer),
        Err(_) => Ok(()),
    };
    let clean = result.is_ok() && closed.is_ok();
    if eos && !clean {
        abort_transaction(&guard.producer);
    }
    guard.close_tasks(clean);
    drop(guard);
    // Leaving the group now hands the partitions over without waiting for the session timeout.
    consumer.unsubscribe();
    drop(consumer);
    result.and(closed)
}

fn run_loop(
    consumer: &BaseConsumer<ThreadContext>,
    inner: &Arc<Mutex<ThreadInner>>,
    config: &StreamsConfig,
    shared: &Shared,
) -> Result<(), StreamsError> {
    let interval = Duration::from_millis(config.effective_commit_interval_ms());
    let mut last_commit = Instant::now();
    let index = inner.lock().index;
    while !shared.stop.load(Ordering::Acquire) {
        let mut batch = Vec::new();
        let mut generation = consumer.context().rebalances.load(Ordering::Acquire);
        let mut timeout = POLL;
        while batch.len() < MAX_BATCH {
            let polled = consumer.poll(timeout);
            let now = consumer.context().rebalances.load(Ordering::Acquire);
            if now != generation {
                batch.clear();
                generation = now;
            }
            match polled {
                Some(Ok(m)) => batch.push(ConsumedRecord {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis().unwrap_or(-1),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m.headers().map(convert_headers).unwrap_or_default(),
                }),
                Some(Err(e)) => {
                    tracing::warn!(thread = index, error = %e, "consumer error");
                    break;
                }
                None => break,
            }
            timeout = Duration::ZERO;
        }
        let mut guard = inner.lock();
        if let Some(e) = guard.failure.take() {
            return Err(e);
        }
        if let Some(assigned) = guard.pending_assignment.take() {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &assigned {
                tpl.add_partition(t, *p);
            }
            guard.create_tasks(assigned)?;
            // A partition paused before the rebalance may come back: its buffer went with its task.
            if tpl.count() > 0 {
                if let Err(e) = consumer.resume(&tpl) {
                    tracing::warn!(thread = index, error = %e, "resuming the assigned partitions failed");
                }
            }
            shared.set_phase(index, ThreadPhase::Running);
        }
        for record in batch {
            guard.buffer(record);
        }
        guard.process_buffered(consumer)?;
        guard.update_pauses(consumer);
        let requested = guard.punctuate()?;
        guard.producer.poll(Duration::ZERO);
        guard.check_deliveries()?;
        if requested || last_commit.elapsed() >= interval {
            guard.commit(consumer)?;
            last_commit = Instant::now();
        }
    }
    Ok(())
}

fn convert_headers(h: &rdkafka::message::BorrowedHeaders) -> spate::Headers {
    let mut out = spate::Headers::new();
    for header in h.iter() {
        match header.value {
            Some(v) => out.insert(header.key, v.to_vec()),
            None => out.insert_null(header.key),
        };
    }
    out
}
