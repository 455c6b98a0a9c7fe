//! Persistence of groups and committed offsets in `__consumer_offsets`, as Kafka's `GroupMetadataManager`:
//! creating the topic, replaying it at start-up, and appending records.
//!
//! Each partition of the topic has one writer task fed by a queue. Requests are queued while the coordinator
//! holds its lock, so the order of records in the log is the order in which the coordinator decided them;
//! the writer appends whatever has queued up as one batch (group commit) and then runs each request's
//! completion in queue order, so the in-memory state is updated in log order too. A change is acknowledged
//! to a client only from its completion, i.e. after the append succeeded.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::internal_topic::{self, Replayed as Entry, TxnProducer};
pub use super::internal_topic::{AppendFailure, CoordinatorError};
use super::offsets_topic::{self, GroupValue, OffsetValue, RecordKey};
use crate::broker::BrokerState;
use crate::cluster::replica_manager::Partition;

/// Stop adding queued requests to one batch beyond this many bytes of keys and values, well under the
/// default `max.message.bytes` of the topic.
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Runs after the append of a request, with its outcome, on the partition's writer task.
pub type Completion = Box<dyn FnOnce(Result<(), AppendFailure>) + Send>;

/// Records for one partition: (key, value), a `None` value being a tombstone. With `producer`, the records are
/// a transactional offset commit and are written as their own transactional batch.
pub struct WriteRequest {
    pub records: Vec<(Bytes, Option<Bytes>)>,
    pub producer: Option<TxnProducer>,
    pub done: Completion,
}

/// Transactional offset commits by producer id, then group, then partition.
pub type PendingTxnOffsets = HashMap<i64, HashMap<String, HashMap<(String, i32), OffsetValue>>>;

/// State replayed from one partition: the last value of every key still present.
#[derive(Default)]
pub struct Replayed {
    pub groups: HashMap<String, GroupValue>,
    pub offsets: HashMap<String, HashMap<(String, i32), OffsetValue>>,
    /// Transactional offset commits whose transaction has no marker yet: producer id -> group -> offsets.
    pub pending_txn_offsets: PendingTxnOffsets,
}

/// Owns the writers of `__consumer_offsets`.
pub struct GroupMetadataManager {
    partitions: i32,
    writers: Vec<mpsc::UnboundedSender<WriteRequest>>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl GroupMetadataManager {
    /// Creates `__consumer_offsets` if missing (compacted, Kafka's segment size), replays every partition
    /// into `replayed`, and starts one writer per partition.
    pub async fn open(state: &Arc<BrokerState>) -> Result<(GroupMetadataManager, Replayed), CoordinatorError> {
        let topic = offsets_topic::TOPIC;
        let meta =
            internal_topic::ensure_topic(state, topic, offsets_topic::DEFAULT_PARTITIONS, offsets_topic::SEGMENT_BYTES)
                .await?;
        // An existing topic keeps its partition count, as in Kafka: groups must stay where they were written.
        let count = meta.partitions;
        let mut replayed = Replayed::default();
        let mut writers = Vec::with_capacity(count as usize);
        let mut tasks = Vec::with_capacity(count as usize);
        for p in 0..count {
            let partition =
                state.replicas.partition(topic, p).ok_or(CoordinatorError::MissingPartition { topic, partition: p })?;
            replay(&partition, &mut replayed).await?;
            let (tx, rx) = mpsc::unbounded_channel();
            writers.push(tx);
            tasks.push(tokio::spawn(write_loop(partition, rx)));
        }
        tracing::info!(
            partitions = count,
            groups = replayed.groups.len(),
            groups_with_offsets = replayed.offsets.len(),
            "loaded {topic}"
        );
        Ok((GroupMetadataManager { partitions: count, writers, tasks: parking_lot::Mutex::new(tasks) }, replayed))
    }

    pub fn partition_for(&self, group_id: &str) -> i32 {
        offsets_topic::partition_for(group_id, self.partitions)
    }

    /// Queues records of `group_id`'s partition. Must be called with the coordinator's lock held so queue
    /// order is decision order. When the writer is gone the completion runs at once with `Unavailable`.
    pub fn write(&self, group_id: &str, request: WriteRequest) {
        let p = self.partition_for(group_id) as usize;
        match self.writers.get(p) {
            Some(tx) => {
                if let Err(mpsc::error::SendError(req)) = tx.send(request) {
                    (req.done)(Err(AppendFailure::Unavailable));
                }
            }
            None => (request.done)(Err(AppendFailure::Unavailable)),
        }
    }

    /// Stops the writers. Requests still queued are dropped unanswered; their clients see the connection close.
    pub async fn shutdown(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

async fn write_loop(partition: Arc<Partition>, mut rx: mpsc::UnboundedReceiver<WriteRequest>) {
    // A transactional request met while gathering a batch of plain ones waits here for the next round.
    let mut held: Option<WriteRequest> = None;
    loop {
        let first = match held.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => return,
            },
        };
        let producer = first.producer;
        let mut size = request_size(&first);
        let mut queued = vec![first];
        // Plain requests are appended together (group commit); a transactional one is a batch of its own.
        while producer.is_none() && size < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(next) if next.producer.is_some() => {
                    held = Some(next);
                    break;
                }
                Ok(next) => {
                    size += request_size(&next);
                    queued.push(next);
                }
                Err(_) => break,
            }
        }
        let records: Vec<(Bytes, Option<Bytes>)> = queued.iter().flat_map(|r| r.records.iter().cloned()).collect();
        let outcome = internal_topic::append(&partition, &records, producer).await;
        for request in queued {
            (request.done)(outcome);
        }
    }
}

fn request_size(r: &WriteRequest) -> usize {
    r.records.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 32).sum()
}

/// Reads one partition from its start to the high watermark, keeping the last value of every key. Offsets
/// committed in a transaction are held per producer until its marker: a COMMIT applies them, an ABORT drops them.
async fn replay(partition: &Partition, out: &mut Replayed) -> Result<(), CoordinatorError> {
    let mut pending = PendingTxnOffsets::new();
    internal_topic::replay(partition, |entry| match entry {
        Entry::Record { offset, producer, key, value } => {
            apply_record(partition, offset, producer, &key, value, out, &mut pending)
        }
        Entry::Marker { producer_id, commit } => {
            if let Some(groups) = pending.remove(&producer_id) {
                if commit {
                    for (group, offsets) in groups {
                        out.offsets.entry(group).or_default().extend(offsets);
                    }
                }
            }
        }
    })
    .await?;
    for (producer_id, groups) in pending {
        let into = out.pending_txn_offsets.entry(producer_id).or_default();
        for (group, offsets) in groups {
            into.entry(group).or_default().extend(offsets);
        }
    }
    Ok(())
}

fn apply_record(
    partition: &Partition,
    offset: i64,
    producer: Option<i64>,
    key: &[u8],
    value: Option<Bytes>,
    out: &mut Replayed,
    pending: &mut PendingTxnOffsets,
) {
    let key = match offsets_topic::decode_key(key) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(partition = %partition.tp, offset, error = %e, "skipping unreadable key");
            return;
        }
    };
    match key {
        RecordKey::Offset { group, topic, partition: p } => match value {
            None => {
                if let Some(offsets) = out.offsets.get_mut(&group) {
                    offsets.remove(&(topic, p));
                    if offsets.is_empty() {
                        out.offsets.remove(&group);
                    }
                }
            }
            Some(v) => match offsets_topic::decode_offset_value(&v) {
                Ok(value) => match producer {
                    Some(pid) => {
                        pending.entry(pid).or_default().entry(group).or_default().insert((topic, p), value);
                    }
                    None => {
                        out.offsets.entry(group).or_default().insert((topic, p), value);
                    }
                },
                Err(e) => {
                    tracing::warn!(partition = %partition.tp, offset, error = %e, "skipping unreadable offset commit")
                }
            },
        },
        RecordKey::Group { group } => match value {
            None => {
                out.groups.remove(&group);
            }
            Some(v) => match offsets_topic::decode_group_value(&v) {
                Ok(value) => {
                    out.groups.insert(group, value);
                }
                Err(e) => {
                    tracing::warn!(partition = %partition.tp, offset, error = %e, "skipping unreadable group metadata")
                }
            },
        },
        RecordKey::Other(version) => {
            tracing::debug!(partition = %partition.tp, offset, version, "ignoring record of a key version this coordinator does not keep");
        }
    }
}
