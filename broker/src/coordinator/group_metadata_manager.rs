//! Persistence of groups and committed offsets in `__consumer_offsets`, as Kafka's `GroupMetadataManager`:
//! creating the topic, replaying it at start-up, and appending records.
//!
//! Each partition of the topic has one writer task fed by a queue. Requests are queued while the coordinator
//! holds its lock, so the order of records in the log is the order in which the coordinator decided them;
//! the writer appends whatever has queued up as one batch (group commit) and then runs each request's
//! completion in queue order, so the in-memory state is updated in log order too. A change is acknowledged
//! to a client only from its completion, i.e. after the append succeeded.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::offsets_topic::{self, GroupValue, OffsetValue, RecordKey};
use crate::broker::BrokerState;
use crate::cluster::replica_manager::Partition;
use crate::cluster::{MetadataError, NewTopic};
use crate::log::LogError;
use crate::protocol::handlers::now_ms;

/// Stop adding queued requests to one batch beyond this many bytes of keys and values, well under the
/// default `max.message.bytes` of the topic.
const MAX_BATCH_BYTES: usize = 512 * 1024;
/// How much of the log one read during replay returns.
const REPLAY_READ_BYTES: usize = 4 * 1024 * 1024;

/// Why the coordinator could not load or persist its state.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("cannot create {topic}: {source}")]
    CreateTopic {
        topic: &'static str,
        #[source]
        source: MetadataError,
    },
    #[error("{topic} partition {partition} is not hosted on this broker")]
    MissingPartition { topic: &'static str, partition: i32 },
    #[error("cannot read {partition} at offset {offset}: {source}")]
    Read {
        partition: String,
        offset: i64,
        #[source]
        source: LogError,
    },
    #[error("corrupt record batch in {partition} at offset {offset}: {reason}")]
    CorruptBatch { partition: String, offset: i64, reason: String },
}

/// Why an append to `__consumer_offsets` failed, reduced to what decides the client's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFailure {
    /// The records exceed the topic's `max.message.bytes`.
    TooLarge,
    /// The log is offline, the disk failed, or the writer is gone (shutting down).
    Unavailable,
}

/// Runs after the append of a request, with its outcome, on the partition's writer task.
pub type Completion = Box<dyn FnOnce(Result<(), AppendFailure>) + Send>;

/// Records for one partition: (key, value), a `None` value being a tombstone.
pub struct WriteRequest {
    pub records: Vec<(Bytes, Option<Bytes>)>,
    pub done: Completion,
}

/// State replayed from one partition: the last value of every key still present.
#[derive(Default)]
pub struct Replayed {
    pub groups: HashMap<String, GroupValue>,
    pub offsets: HashMap<String, HashMap<(String, i32), OffsetValue>>,
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
        let meta = match state.metadata.topic(topic) {
            Some(t) => t,
            None => {
                let configs = BTreeMap::from([
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    ("segment.bytes".to_string(), offsets_topic::SEGMENT_BYTES.to_string()),
                ]);
                let new = NewTopic {
                    name: topic.to_string(),
                    partitions: offsets_topic::DEFAULT_PARTITIONS,
                    replication_factor: 1,
                    configs,
                };
                match state.controller.create_topic(new, false).await {
                    Ok(t) => t,
                    Err(MetadataError::TopicExists(_)) => {
                        state.metadata.topic(topic).ok_or(CoordinatorError::MissingPartition { topic, partition: 0 })?
                    }
                    Err(source) => return Err(CoordinatorError::CreateTopic { topic, source }),
                }
            }
        };
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
    while let Some(first) = rx.recv().await {
        let mut size = request_size(&first);
        let mut queued = vec![first];
        while size < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(next) => {
                    size += request_size(&next);
                    queued.push(next);
                }
                Err(_) => break,
            }
        }
        let records: Vec<(Bytes, Option<Bytes>)> = queued.iter().flat_map(|r| r.records.iter().cloned()).collect();
        let outcome = append(&partition, &records).await;
        for request in queued {
            (request.done)(outcome);
        }
    }
}

fn request_size(r: &WriteRequest) -> usize {
    r.records.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 32).sum()
}

async fn append(partition: &Partition, records: &[(Bytes, Option<Bytes>)]) -> Result<(), AppendFailure> {
    if records.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: partition.leader_epoch,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch wherever offset - sequence changes; keeping it constant keeps
            // one batch, whose base sequence is then -1 as a non-idempotent batch must have.
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    if let Err(e) = RecordBatchEncoder::encode(&mut buf, &records, &options) {
        tracing::error!(partition = %partition.tp, error = %e, "cannot encode coordinator records");
        return Err(AppendFailure::Unavailable);
    }
    match partition.log.append_as_leader(buf.freeze(), partition.leader_epoch).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(partition = %partition.tp, error = %e, records = records.len(), "coordinator append failed");
            Err(match e {
                LogError::RecordTooLarge { .. } => AppendFailure::TooLarge,
                _ => AppendFailure::Unavailable,
            })
        }
    }
}

/// Reads one partition from its start to the high watermark, keeping the last value of every key.
async fn replay(partition: &Partition, out: &mut Replayed) -> Result<(), CoordinatorError> {
    let log = &partition.log;
    let end = log.high_watermark();
    let mut offset = log.log_start_offset();
    while offset < end {
        let data = log.read(offset, REPLAY_READ_BYTES, true).await.map_err(|source| CoordinatorError::Read {
            partition: partition.tp.to_string(),
            offset,
            source,
        })?;
        if data.is_empty() {
            // Nothing readable below the high watermark (e.g. compacted away): done.
            break;
        }
        let next = apply_batches(partition, data, out)?;
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(())
}

/// Applies every whole batch in `data`; returns the offset after the last one.
fn apply_batches(partition: &Partition, mut data: Bytes, out: &mut Replayed) -> Result<i64, CoordinatorError> {
    let mut next = -1;
    // Batch header: base offset (8), length (4), leader epoch (4), magic (1), crc (4), attributes (2),
    // last offset delta (4). Read by hand so empty (fully compacted) batches still advance the offset.
    while data.len() >= 27 {
        let base_offset = i64::from_be_bytes(header_bytes(&data, 0));
        let length = i32::from_be_bytes(header_bytes(&data, 8));
        let total = 12 + length.max(0) as usize;
        if length < 0 || total > data.len() {
            break;
        }
        let attributes = i16::from_be_bytes(header_bytes(&data, 21));
        let last_delta = i32::from_be_bytes(header_bytes(&data, 23));
        let mut batch = data.split_to(total);
        next = base_offset + i64::from(last_delta) + 1;
        if attributes & 0x20 != 0 {
            continue; // control batch (transaction marker)
        }
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| CoordinatorError::CorruptBatch {
            partition: partition.tp.to_string(),
            offset: base_offset,
            reason: e.to_string(),
        })?;
        for record in set.records {
            apply_record(partition, record, out);
        }
    }
    Ok(next)
}

fn header_bytes<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&data[at..at + N]);
    a
}

fn apply_record(partition: &Partition, record: Record, out: &mut Replayed) {
    let Some(key) = record.key else { return };
    let key = match offsets_topic::decode_key(&key) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(partition = %partition.tp, offset = record.offset, error = %e, "skipping unreadable key");
            return;
        }
    };
    match key {
        RecordKey::Offset { group, topic, partition: p } => match record.value {
            None => {
                if let Some(offsets) = out.offsets.get_mut(&group) {
                    offsets.remove(&(topic, p));
                    if offsets.is_empty() {
                        out.offsets.remove(&group);
                    }
                }
            }
            Some(v) => match offsets_topic::decode_offset_value(&v) {
                Ok(value) => {
                    out.offsets.entry(group).or_default().insert((topic, p), value);
                }
                Err(e) => {
                    tracing::warn!(partition = %partition.tp, offset = record.offset, error = %e, "skipping unreadable offset commit")
                }
            },
        },
        RecordKey::Group { group } => match record.value {
            None => {
                out.groups.remove(&group);
            }
            Some(v) => match offsets_topic::decode_group_value(&v) {
                Ok(value) => {
                    out.groups.insert(group, value);
                }
                Err(e) => {
                    tracing::warn!(partition = %partition.tp, offset = record.offset, error = %e, "skipping unreadable group metadata")
                }
            },
        },
        RecordKey::Other(version) => {
            tracing::debug!(partition = %partition.tp, offset = record.offset, version, "ignoring record of a key version this coordinator does not keep");
        }
    }
}
