//! librdkafka's callbacks for a container's consumer. Rebalances are handled here, on the consumer's own task
//! (librdkafka calls back from inside the poll): before partitions are revoked, the offsets of every record
//! handled from them are committed synchronously, so the next owner starts exactly after them — a rebalance
//! neither loses nor repeats a handled record.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::broadcast;

use super::{ContainerEvent, InitialPositions, OffsetTracker, RebalanceListener, SeekPosition};
use crate::record::TopicPartition;

/// State shared by all consumers of one container.
pub(crate) struct Shared {
    pub listener_id: Arc<str>,
    pub paused: AtomicBool,
    pub paused_partitions: Mutex<BTreeSet<TopicPartition>>,
    pub events: broadcast::Sender<ContainerEvent>,
    pub rebalance_listener: Option<Arc<dyn RebalanceListener>>,
    pub per_key: bool,
    pub shutdown_timeout: Duration,
}

impl Shared {
    pub(crate) fn publish(&self, event: ContainerEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }
}

/// State of one consumer, shared by its task, its callbacks and its `Ack`s.
pub(crate) struct ConsumerState {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub assigned: Mutex<BTreeSet<TopicPartition>>,
    /// Bumped on every assignment change, so the task knows to drop fetched records of revoked partitions.
    pub generation: AtomicU64,
    pub paused_now: Mutex<BTreeSet<TopicPartition>>,
    /// Where assigned partitions' messages go (the worker's batch queue).
    pub forward: Arc<super::batch_queue::ForwardTarget>,
}

impl ConsumerState {
    pub(crate) fn new(index: usize, shared: Arc<Shared>) -> Self {
        ConsumerState {
            index,
            shared,
            tracker: Arc::new(Mutex::new(OffsetTracker::default())),
            assigned: Mutex::new(BTreeSet::new()),
            generation: AtomicU64::new(0),
            paused_now: Mutex::new(BTreeSet::new()),
            forward: Arc::default(),
        }
    }

    pub(crate) fn manually_assigned(&self, parts: &[TopicPartition]) {
        self.assigned.lock().extend(parts.iter().cloned());
        self.generation.fetch_add(1, AtomicOrdering::AcqRel);
        self.shared.publish(ContainerEvent::PartitionsAssigned {
            listener_id: self.shared.listener_id.to_string(),
            consumer: self.index,
            partitions: parts.to_vec(),
        });
    }

    /// Partitions that should be paused right now.
    pub(crate) fn desired_paused(&self) -> BTreeSet<TopicPartition> {
        let assigned = self.assigned.lock();
        if self.shared.paused.load(AtomicOrdering::Acquire) {
            return assigned.clone();
        }
        let wanted = self.shared.paused_partitions.lock();
        assigned.intersection(&wanted).cloned().collect()
    }
}

/// The consumer context of a container's consumer.
pub(crate) struct ContainerContext {
    pub state: Arc<ConsumerState>,
}

impl ContainerContext {
    pub(crate) fn new(state: Arc<ConsumerState>) -> Self {
        ContainerContext { state }
    }

    fn on_assign(&self, base: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let parts = partitions_of(tpl);
        let shared = &self.state.shared;
        if let Some(l) = &shared.rebalance_listener {
            let mut positions = InitialPositions::default();
            l.on_partitions_assigned(&parts, &mut positions);
            for (tp, pos) in positions.seeks {
                let offset = match pos {
                    SeekPosition::Beginning => Offset::Beginning,
                    SeekPosition::End => Offset::End,
                    SeekPosition::Offset(o) => Offset::Offset(o),
                    SeekPosition::Timestamp(ts) => match run_blocking(|| offset_for_time(base, &tp, ts)) {
                        Ok(o) => o,
                        Err(e) => {
                            tracing::warn!(partition = %tp, error = %e, "cannot find offset for timestamp");
                            continue;
                        }
                    },
                };
                if let Err(e) = tpl.set_partition_offset(&tp.topic, tp.partition, offset) {
                    tracing::warn!(partition = %tp, error = %e, "initial position not applied");
                }
            }
        }
        // Before assigning, so no message of these partitions reaches the consumer queue.
        self.state.forward.forward(base.client().native_ptr(), &parts);
        let result = match base.rebalance_protocol() {
            RebalanceProtocol::Cooperative => base.incremental_assign(tpl),
            _ => base.assign(tpl),
        };
        if let Err(e) = result {
            tracing::error!(listener = %shared.listener_id, error = %e, "assign failed");
        }
        {
            let keys: Vec<(String, i32)> = parts.iter().map(|p| (p.topic.clone(), p.partition)).collect();
            self.state.tracker.lock().forget(&keys);
        }
        self.state.assigned.lock().extend(parts.iter().cloned());
        self.state.generation.fetch_add(1, AtomicOrdering::AcqRel);
        // librdkafka forgets pauses across assignments; re-apply the container's.
        let paused = self.state.desired_paused();
        let to_pause: Vec<&TopicPartition> = parts.iter().filter(|p| paused.contains(*p)).collect();
        if !to_pause.is_empty() {
            let tpl = tpl_of(to_pause.iter().copied());
            if let Err(e) = base.pause(&tpl) {
                tracing::warn!(error = %e, "re-pausing assigned partitions failed");
            }
            self.state.paused_now.lock().extend(to_pause.into_iter().cloned());
        }
        tracing::info!(listener = %shared.listener_id, consumer = self.state.index, partitions = ?parts, "partitions assigned");
        shared.publish(ContainerEvent::PartitionsAssigned {
            listener_id: shared.listener_id.to_string(),
            consumer: self.state.index,
            partitions: parts,
        });
    }

    fn on_revoke(&self, base: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let parts = partitions_of(tpl);
        let keys: Vec<(String, i32)> = parts.iter().map(|p| (p.topic.clone(), p.partition)).collect();
        let shared = &self.state.shared;
        let lost = base.assignment_lost();
        if !lost {
            if shared.per_key {
                self.wait_for_in_flight(&keys);
            }
            let commits = self.state.tracker.lock().take_commits_for(&keys);
            if !commits.is_empty() {
                let mut c = TopicPartitionList::new();
                for (t, p, o) in &commits {
                    let _ = c.add_partition_offset(t, *p, Offset::Offset(*o));
                }
                // A synchronous commit blocks this thread until the broker answers. On a current-thread runtime that
                // thread may be the one serving an in-process broker, so commit asynchronously there: the commit
                // is still sent before this consumer's JoinGroup on the same connection.
                let result = match runtime_flavor() {
                    Some(tokio::runtime::RuntimeFlavor::CurrentThread) => base.commit(&c, CommitMode::Async),
                    _ => run_blocking(|| base.commit(&c, CommitMode::Sync)),
                };
                match result {
                    Ok(()) => {
                        tracing::debug!(listener = %shared.listener_id, offsets = ?commits, "committed before revocation")
                    }
                    Err(e) => {
                        tracing::warn!(listener = %shared.listener_id, error = %e, "commit before revocation failed")
                    }
                }
            }
        }
        if let Some(l) = &shared.rebalance_listener {
            if lost {
                l.on_partitions_lost(&parts);
            } else {
                l.on_partitions_revoked(&parts);
            }
        }
        self.state.tracker.lock().forget(&keys);
        let result = match base.rebalance_protocol() {
            RebalanceProtocol::Cooperative => base.incremental_unassign(tpl),
            _ => base.unassign(),
        };
        if let Err(e) = result {
            tracing::error!(listener = %shared.listener_id, error = %e, "unassign failed");
        }
        {
            let mut a = self.state.assigned.lock();
            let mut p = self.state.paused_now.lock();
            for tp in &parts {
                a.remove(tp);
                p.remove(tp);
            }
        }
        self.state.generation.fetch_add(1, AtomicOrdering::AcqRel);
        tracing::info!(listener = %shared.listener_id, consumer = self.state.index, partitions = ?parts, lost, "partitions revoked");
        shared.publish(ContainerEvent::PartitionsRevoked {
            listener_id: shared.listener_id.to_string(),
            consumer: self.state.index,
            partitions: parts,
        });
    }

    /// With per-key ordering, records of the revoked partitions may still be running on other tasks: give them
    /// up to the shutdown timeout to finish so their offsets can be committed now. Only possible on a
    /// multi-threaded runtime (the lanes need another thread while this one waits).
    fn wait_for_in_flight(&self, keys: &[(String, i32)]) {
        if self.state.tracker.lock().in_flight_in(keys) == 0 {
            return;
        }
        let multi = runtime_flavor() == Some(tokio::runtime::RuntimeFlavor::MultiThread);
        let deadline = Instant::now() + self.state.shared.shutdown_timeout;
        let wait = || {
            while self.state.tracker.lock().in_flight_in(keys) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        if multi {
            tokio::task::block_in_place(wait);
        } else if tokio::runtime::Handle::try_current().is_err() {
            // Called from a plain thread (consumer close in spawn_blocking): waiting blocks nothing else.
            wait();
        }
    }
}

fn runtime_flavor() -> Option<tokio::runtime::RuntimeFlavor> {
    tokio::runtime::Handle::try_current().ok().map(|h| h.runtime_flavor())
}

/// Runs a blocking librdkafka call from a callback: on a multi-threaded runtime's worker, tells tokio so other
/// tasks (an in-process broker among them) keep running.
pub(crate) fn run_blocking<R>(f: impl FnOnce() -> R) -> R {
    if runtime_flavor() == Some(tokio::runtime::RuntimeFlavor::MultiThread) {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

fn offset_for_time(base: &BaseConsumer<ContainerContext>, tp: &TopicPartition, ts: i64) -> KafkaResult<Offset> {
    let mut q = TopicPartitionList::new();
    q.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(ts))?;
    let r = base.offsets_for_times(q, Duration::from_secs(10))?;
    r.find_partition(&tp.topic, tp.partition)
        .map(|e| e.offset())
        .ok_or_else(|| KafkaError::Seek(format!("no offset for {tp} at {ts}")))
}

pub(crate) fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())).collect()
}

pub(crate) fn tpl_of<'a>(parts: impl IntoIterator<Item = &'a TopicPartition>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        tpl.add_partition(&p.topic, p.partition);
    }
    tpl
}

impl ClientContext for ContainerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::log_rdkafka(level, fac, log_message, "consumer");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(listener = %self.state.shared.listener_id, %error, reason, "consumer client error");
    }
}

impl ConsumerContext for ContainerContext {
    fn rebalance(&self, base: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.on_assign(base, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.on_revoke(base, tpl),
            other => {
                tracing::error!(listener = %self.state.shared.listener_id, error = ?other, "rebalance error");
                let _ = base.unassign();
                self.state.assigned.lock().clear();
                self.state.generation.fetch_add(1, AtomicOrdering::AcqRel);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // Offsets are re-committed by the next successful commit of the same partitions.
            tracing::warn!(listener = %self.state.shared.listener_id, error = %e, partitions = offsets.count(), "offset commit failed");
        }
    }
}
