//! Standby replicas (`num.standby.replicas` ≥ 1): copies of stateful tasks kept up to date from their changelogs
//! on an instance that does not run them, so that when a task moves there it restores only what the standby has
//! not applied yet (Kafka's standby tasks).
//!
//! With the classic group protocol an instance cannot see which other instance runs a task, so Spate cannot
//! place exactly `num.standby.replicas` copies as Kafka's assignor does: an instance with the setting at 1 or
//! more keeps a standby of **every** stateful task it does not run itself. With two instances that is Kafka's
//! placement for one replica; with more it keeps more copies than asked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::checkpoint::{read_checkpoint, Checkpoint, CHECKPOINT_FILE};
use super::internal_topics::{client_config, TopicPlan};
use super::kafka_streams::Shared;
use super::restore::wipe_unrecoverable;
use crate::{ProcessingGuarantee, StreamTask, StreamsConfig, StreamsError, TaskId, Topology};

/// A standby task: the task's stores and the last changelog offset applied per changelog partition.
pub(crate) struct Standby {
    pub(crate) task: StreamTask,
    pub(crate) offsets: Checkpoint,
}

#[derive(Default)]
struct Inner {
    active: BTreeSet<TaskId>,
    standbys: BTreeMap<TaskId, Standby>,
}

/// Which tasks run here, and the standbys of the others; one lock so a task is never both.
#[derive(Default)]
pub(crate) struct StandbyState {
    inner: Mutex<Inner>,
}

impl StandbyState {
    /// A stream thread is about to run `id`: the standby of it, if any, is handed over.
    pub(crate) fn activate(&self, id: TaskId, shared: &Shared) -> Option<Standby> {
        let mut inner = self.inner.lock();
        inner.active.insert(id);
        let standby = inner.standbys.remove(&id);
        if standby.is_some() {
            shared.standby_registry.unregister(id);
        }
        standby
    }

    /// A stream thread closed `id`.
    pub(crate) fn deactivate(&self, id: TaskId) {
        self.inner.lock().active.remove(&id);
    }

    /// The tasks this instance keeps standbys of.
    pub(crate) fn standby_tasks(&self) -> Vec<TaskId> {
        self.inner.lock().standbys.keys().copied().collect()
    }
}

fn kafka(e: rdkafka::error::KafkaError) -> StreamsError {
    StreamsError::Store { store: "standby".into(), reason: e.to_string() }
}

/// Keeps the standbys: creates one for each stateful task not running here, and applies changelog records to
/// them, until the application stops.
pub(crate) fn run(
    topology: Arc<Topology>,
    config: Arc<StreamsConfig>,
    plan: Arc<TopicPlan>,
    state: Arc<StandbyState>,
    shared: Arc<Shared>,
) -> Result<(), StreamsError> {
    let mut cc = client_config(&config);
    cc.set("group.id", format!("{}-standby", config.application_id)).set("enable.auto.commit", "false").set(
        "isolation.level",
        match config.processing_guarantee {
            ProcessingGuarantee::ExactlyOnceV2 => "read_committed",
            ProcessingGuarantee::AtLeastOnce => "read_uncommitted",
        },
    );
    let consumer: BaseConsumer = cc.create().map_err(kafka)?;
    let all: Vec<TaskId> = (0..plan.sub_nodes.len())
        .filter(|sub| plan.changelogs_of(*sub).next().is_some())
        .flat_map(|sub| (0..plan.sub_partitions[sub]).map(move |p| TaskId { subtopology: sub as u32, partition: p }))
        .collect();
    // Changelog partition → (task, store).
    let mut assigned: BTreeMap<(String, i32), (TaskId, String)> = BTreeMap::new();
    while !shared.stop.load(Ordering::Acquire) {
        {
            let mut inner = state.inner.lock();
            let mut add = TopicPartitionList::new();
            for id in &all {
                if inner.active.contains(id) || inner.standbys.contains_key(id) {
                    continue;
                }
                let sub = id.subtopology as usize;
                let dir = config.state_dir.join(&config.application_id).join(id.to_string());
                let checkpoint = read_checkpoint(&dir.join(CHECKPOINT_FILE))?;
                let changelogs: Vec<_> = plan.changelogs_of(sub).collect();
                wipe_unrecoverable(&dir, &changelogs, &checkpoint, id.partition)?;
                let task = StreamTask::new(&topology, *id, &config, Some(&plan.sub_nodes[sub]))?;
                let mut offsets = Checkpoint::new();
                for c in &changelogs {
                    let key = (c.topic.clone(), id.partition);
                    let from = match checkpoint.get(&key).filter(|_| c.persistent) {
                        Some(o) => {
                            offsets.insert(key.clone(), *o);
                            Offset::Offset(o + 1)
                        }
                        None => Offset::Beginning,
                    };
                    add.add_partition_offset(&c.topic, id.partition, from).map_err(kafka)?;
                    assigned.insert(key, (*id, c.store.clone()));
                }
                let local = task.stores().into_iter().filter(|s| !topology.global_stores.contains(&s.name())).collect();
                shared.standby_registry.register(*id, local);
                tracing::info!(task = %id, "standby task created");
                inner.standbys.insert(*id, Standby { task, offsets });
            }
            let mut remove = TopicPartitionList::new();
            assigned.retain(|(t, p), (id, _)| {
                let keep = inner.standbys.contains_key(id);
                if !keep {
                    remove.add_partition(t, *p);
                }
                keep
            });
            if remove.count() > 0 {
                consumer.incremental_unassign(&remove).map_err(kafka)?;
            }
            if add.count() > 0 {
                consumer.incremental_assign(&add).map_err(kafka)?;
            }
        }
        if let Some(polled) = consumer.poll(Duration::from_millis(50)) {
            let m = match polled {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "standby consumer error");
                    continue;
                }
            };
            let key = (m.topic().to_owned(), m.partition());
            let mut inner = state.inner.lock();
            let Some((id, store)) = assigned.get(&key) else { continue };
            // Handed over to a stream thread since it was fetched: the thread restores from the offsets taken.
            let Some(standby) = inner.standbys.get_mut(id) else { continue };
            if let (Some(s), Some(k)) = (standby.task.store(store), m.key()) {
                s.restore(k, m.payload(), m.timestamp().to_millis().unwrap_or(0))?;
            }
            standby.offsets.insert(key, m.offset());
        }
    }
    let mut inner = state.inner.lock();
    for (id, mut s) in std::mem::take(&mut inner.standbys) {
        shared.standby_registry.unregister(id);
        s.task.close();
    }
    Ok(())
}
