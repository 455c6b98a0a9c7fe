//! Standby replicas (`num.standby.replicas` ≥ 1): copies of stateful tasks kept up to date from their changelogs
//! on an instance that does not run them, so that when a task moves there it restores only what the standby has
//! not applied yet (Kafka's standby tasks).
//!
//! Kafka's assignor places the standbys. librdkafka cannot run it, so each instance places its own from what the
//! group says: about once a second, while the group is stable, the standby thread reads the group's members and
//! their assignments (`DescribeGroups`), maps each member to its instance (stream threads' client ids are
//! `<application.id>-<process id>-StreamThread-<n>`, as in Kafka) and each assigned partition to its task, orders
//! the instances by id, and keeps a standby of a task when this instance is one of the `num.standby.replicas`
//! instances following the task's active owner in that order. Every instance computes the same placement from the
//! same assignment, so each stateful task gets `min(num.standby.replicas, instances - 1)` standbys, never on its
//! owner. While the group rebalances or cannot be read the previous placement stays.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::checkpoint::{read_checkpoint, Checkpoint, CHECKPOINT_FILE};
use super::internal_topics::{consumer_config, TopicPlan};
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

/// How often the standby thread reads the group to place standbys.
const PLACEMENT_INTERVAL: Duration = Duration::from_secs(1);
const GROUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The client id of a stream thread's consumer; the part before `-StreamThread-` names the instance.
pub(crate) fn stream_thread_client_id(application_id: &str, process_id: &str, index: usize) -> String {
    format!("{application_id}-{process_id}-StreamThread-{}", index + 1)
}

/// Topic partitions of a consumer-protocol assignment (version, [topic, [partition]], user data); None when the
/// bytes do not parse.
pub(crate) fn parse_assignment(bytes: &[u8]) -> Option<Vec<(String, i32)>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (b.get(..n)?, b.get(n..)?);
        *b = tail;
        Some(head)
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        Some(i16::from_be_bytes(take(b, 2)?.try_into().ok()?))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        Some(i32::from_be_bytes(take(b, 4)?.try_into().ok()?))
    }
    let mut b = bytes;
    if b.is_empty() {
        return Some(Vec::new());
    }
    i16_(&mut b)?;
    let mut out = Vec::new();
    for _ in 0..i32_(&mut b)?.max(0) {
        let len = usize::try_from(i16_(&mut b)?).ok()?;
        let topic = String::from_utf8(take(&mut b, len)?.to_vec()).ok()?;
        for _ in 0..i32_(&mut b)?.max(0) {
            out.push((topic.clone(), i32_(&mut b)?));
        }
    }
    Some(out)
}

/// Which of `tasks` this instance (`me`) keeps standbys of, given the group's instances and each task's active
/// owner: the `replicas` instances after a task's owner in id order. None when `me` is not in the group yet.
pub(crate) fn place_standbys(
    instances: &BTreeSet<String>,
    owners: &BTreeMap<TaskId, String>,
    tasks: &[TaskId],
    me: &str,
    replicas: usize,
) -> Option<BTreeSet<TaskId>> {
    let instances: Vec<&String> = instances.iter().collect();
    let mine = instances.iter().position(|i| i.as_str() == me)?;
    let n = instances.len();
    let mut wanted = BTreeSet::new();
    for id in tasks {
        let Some(owner) = owners.get(id).and_then(|o| instances.iter().position(|i| *i == o)) else { continue };
        if (1..=replicas.min(n - 1)).any(|k| (owner + k) % n == mine) {
            wanted.insert(*id);
        }
    }
    Some(wanted)
}

/// Reads the group and places this instance's standbys; None while the group is not stable or unreadable.
fn read_placement(
    consumer: &BaseConsumer,
    config: &StreamsConfig,
    plan: &TopicPlan,
    tasks: &[TaskId],
    me: &str,
) -> Option<BTreeSet<TaskId>> {
    let app = &config.application_id;
    let groups = match consumer.fetch_group_list(Some(app), GROUP_TIMEOUT) {
        Ok(g) => g,
        Err(e) => {
            tracing::debug!(error = %e, "reading the group for standby placement");
            return None;
        }
    };
    let group = groups.groups().iter().find(|g| g.name() == app)?;
    if group.state() != "Stable" {
        return None;
    }
    let prefix = format!("{app}-");
    let mut owners = BTreeMap::new();
    let mut instances = BTreeSet::new();
    for member in group.members() {
        let Some((instance, _)) =
            member.client_id().strip_prefix(&prefix).and_then(|c| c.rsplit_once("-StreamThread-"))
        else {
            continue;
        };
        instances.insert(instance.to_owned());
        let Some(partitions) = member.assignment().map_or(Some(Vec::new()), parse_assignment) else {
            tracing::warn!(member = member.id(), "cannot parse a group member's assignment");
            return None;
        };
        for (topic, partition) in partitions {
            if let Some(sub) = plan.topic_sub.get(&topic) {
                owners.insert(TaskId { subtopology: *sub as u32, partition }, instance.to_owned());
            }
        }
    }
    place_standbys(&instances, &owners, tasks, me, config.num_standby_replicas as usize)
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
    let mut cc = consumer_config(&config);
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
    let mut wanted: BTreeSet<TaskId> = BTreeSet::new();
    let mut last_placement: Option<Instant> = None;
    while !shared.stop.load(Ordering::Acquire) {
        if last_placement.is_none_or(|t| t.elapsed() >= PLACEMENT_INTERVAL) {
            last_placement = Some(Instant::now());
            if let Some(placed) = read_placement(&consumer, &config, &plan, &all, &shared.process_id) {
                if placed != wanted {
                    tracing::info!(standbys = ?placed, "standby placement changed");
                    wanted = placed;
                }
            }
        }
        {
            let mut inner = state.inner.lock();
            let dropped: Vec<TaskId> = inner.standbys.keys().filter(|id| !wanted.contains(id)).copied().collect();
            for id in dropped {
                if let Some(mut s) = inner.standbys.remove(&id) {
                    shared.standby_registry.unregister(id);
                    s.task.close();
                    tracing::info!(task = %id, "standby task dropped");
                }
            }
            let mut add = TopicPartitionList::new();
            for id in &wanted {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn task(partition: i32) -> TaskId {
        TaskId { subtopology: 0, partition }
    }

    #[test]
    fn an_assignment_in_the_consumer_protocol_layout_parses() {
        // version 0; topics: "ev" → [0, 3], "x" → []; user data null.
        let mut b = vec![0, 0, 0, 0, 0, 2, 0, 2, b'e', b'v', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3];
        b.extend([0, 1, b'x', 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(parse_assignment(&b), Some(vec![("ev".to_owned(), 0), ("ev".to_owned(), 3)]));
        assert_eq!(parse_assignment(&[]), Some(vec![]));
        assert_eq!(parse_assignment(&b[..9]), None);
    }

    #[test]
    fn standbys_go_to_the_replicas_instances_after_the_owner() {
        let instances: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let owners: BTreeMap<TaskId, String> =
            [(task(0), "a"), (task(1), "b"), (task(2), "c")].map(|(t, o)| (t, o.to_owned())).into();
        let tasks = [task(0), task(1), task(2)];
        assert_eq!(place_standbys(&instances, &owners, &tasks, "b", 1), Some([task(0)].into()));
        assert_eq!(place_standbys(&instances, &owners, &tasks, "a", 1), Some([task(2)].into()));
        assert_eq!(place_standbys(&instances, &owners, &tasks, "a", 2), Some([task(1), task(2)].into()));
        // More replicas than other instances: one copy on each other instance, never on the owner.
        assert_eq!(place_standbys(&instances, &owners, &tasks, "c", 5), Some([task(0), task(1)].into()));
        assert_eq!(place_standbys(&instances, &owners, &tasks, "d", 1), None);
    }
}
