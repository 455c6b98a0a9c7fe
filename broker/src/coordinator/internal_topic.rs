//! What both coordinators do with their compacted internal topic (`__consumer_offsets`, `__transaction_state`):
//! create it on first start, append key/value records to one of its partitions, and replay a partition from its
//! start at load time, including the transaction markers and transactional batches that `TxnOffsetCommit` leaves
//! in `__consumer_offsets`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::broker::BrokerState;
use crate::cluster::replica_manager::Partition;
use crate::cluster::{MetadataError, NewTopic, TopicMetadata};
use crate::log::batch_builder::{parse_control_key, ControlType};
use crate::log::{AppendOrigin, LogError};
use crate::protocol::handlers::now_ms;

/// How much of the log one read during replay returns.
const REPLAY_READ_BYTES: usize = 4 * 1024 * 1024;

/// Why a coordinator could not load or persist its state.
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

/// Why an append to an internal topic failed, reduced to what decides the client's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFailure {
    /// The records exceed the topic's `max.message.bytes`.
    TooLarge,
    /// The log is offline, the disk failed, or the writer is gone (shutting down).
    Unavailable,
    /// A transactional append whose producer epoch is older than one the partition has seen (a zombie).
    ProducerFenced,
}

/// The producer of a transactional batch (TxnOffsetCommit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Creates `topic` (compacted, `segment_bytes`) with `partitions` partitions if it does not exist. An existing
/// topic keeps its partition count, as in Kafka: keys must stay in the partition they were written to.
pub async fn ensure_topic(
    state: &Arc<BrokerState>,
    topic: &'static str,
    partitions: i32,
    segment_bytes: &str,
) -> Result<TopicMetadata, CoordinatorError> {
    if let Some(t) = state.metadata.topic(topic) {
        return Ok(t);
    }
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), segment_bytes.to_string()),
    ]);
    let new = NewTopic { name: topic.to_string(), partitions, replication_factor: 1, configs };
    match state.controller.create_topic(new, false).await {
        Ok(t) => Ok(t),
        Err(MetadataError::TopicExists(_)) => {
            state.metadata.topic(topic).ok_or(CoordinatorError::MissingPartition { topic, partition: 0 })
        }
        Err(source) => Err(CoordinatorError::CreateTopic { topic, source }),
    }
}

/// Appends `records` (key, value; `None` is a tombstone) as one uncompressed batch. With `producer`, the batch
/// is transactional for that producer (Kafka writes TxnOffsetCommit records so) and is appended with the
/// coordinator's origin, which checks the producer epoch but not sequences.
pub async fn append(
    partition: &Partition,
    records: &[(Bytes, Option<Bytes>)],
    producer: Option<TxnProducer>,
) -> Result<(), AppendFailure> {
    if records.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let (producer_id, producer_epoch) = producer.map_or((-1, -1), |p| (p.producer_id, p.producer_epoch));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: partition.leader_epoch,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch wherever offset - sequence changes; keeping it constant keeps one
            // batch. Its base sequence is -1 for a plain batch, 0 for a transactional one (as Kafka's).
            sequence: if producer.is_some() { i as i32 } else { i as i32 - 1 },
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
    let origin = if producer.is_some() { AppendOrigin::Coordinator } else { AppendOrigin::Client };
    match partition.log.append(buf.freeze(), partition.leader_epoch, origin).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(partition = %partition.tp, error = %e, records = records.len(), "coordinator append failed");
            Err(match e {
                LogError::RecordTooLarge { .. } => AppendFailure::TooLarge,
                LogError::InvalidProducerEpoch(_) => AppendFailure::ProducerFenced,
                _ => AppendFailure::Unavailable,
            })
        }
    }
}

/// One entry met while replaying an internal topic partition.
pub enum Replayed {
    /// A data record; `producer` is set for a record of a transactional batch.
    Record { offset: i64, producer: Option<i64>, key: Bytes, value: Option<Bytes> },
    /// A COMMIT (`commit`) or ABORT marker of `producer_id`.
    Marker { producer_id: i64, commit: bool },
}

/// Reads one partition from its log start to the high watermark, handing every record and marker to `apply`.
pub async fn replay(partition: &Partition, mut apply: impl FnMut(Replayed)) -> Result<(), CoordinatorError> {
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
        let next = apply_batches(partition, data, &mut apply)?;
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(())
}

/// Applies every whole batch in `data`; returns the offset after the last one.
fn apply_batches(
    partition: &Partition,
    mut data: Bytes,
    apply: &mut impl FnMut(Replayed),
) -> Result<i64, CoordinatorError> {
    let mut next = -1;
    // Batch header: base offset (8), length (4), leader epoch (4), magic (1), crc (4), attributes (2), last
    // offset delta (4), ..., producer id at 43. Read by hand so empty (fully compacted) batches still advance.
    while data.len() >= 61 {
        let base_offset = i64::from_be_bytes(header_bytes(&data, 0));
        let length = i32::from_be_bytes(header_bytes(&data, 8));
        let total = 12 + length.max(0) as usize;
        if length < 0 || total > data.len() {
            break;
        }
        let attributes = i16::from_be_bytes(header_bytes(&data, 21));
        let last_delta = i32::from_be_bytes(header_bytes(&data, 23));
        let producer_id = i64::from_be_bytes(header_bytes(&data, 43));
        let transactional = attributes & 0x10 != 0;
        let control = attributes & 0x20 != 0;
        let mut batch = data.split_to(total);
        next = base_offset + i64::from(last_delta) + 1;
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| CoordinatorError::CorruptBatch {
            partition: partition.tp.to_string(),
            offset: base_offset,
            reason: e.to_string(),
        })?;
        for record in set.records {
            if control {
                match parse_control_key(record.key.as_deref()) {
                    Some(ControlType::Commit) => apply(Replayed::Marker { producer_id, commit: true }),
                    Some(ControlType::Abort) => apply(Replayed::Marker { producer_id, commit: false }),
                    _ => {}
                }
                continue;
            }
            let Some(key) = record.key else { continue };
            apply(Replayed::Record {
                offset: record.offset,
                producer: transactional.then_some(producer_id),
                key,
                value: record.value,
            });
        }
    }
    Ok(next)
}

fn header_bytes<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&data[at..at + N]);
    a
}
