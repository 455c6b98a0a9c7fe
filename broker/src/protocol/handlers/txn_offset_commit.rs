//! TxnOffsetCommit: a transactional producer commits a group's offsets inside its transaction. The offsets are
//! written to the group's `__consumer_offsets` partition as a transactional batch and become the group's
//! committed offsets only when the transaction's COMMIT marker reaches that partition (an ABORT drops them).
//! The partition must have been added with AddOffsetsToTxn (checked as Kafka's KIP-890 verification does).

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError;

use crate::coordinator::group_coordinator::{OffsetToCommit, OFFSET_METADATA_MAX_BYTES};
use crate::coordinator::internal_topic::TxnProducer;
use crate::coordinator::offsets_topic;
use crate::protocol::dispatch::RequestContext;

pub async fn handle(ctx: &RequestContext, request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let s = &ctx.state;
    let version = ctx.version();
    let group_id = request.group_id.0.as_str();
    let tid = request.transactional_id.0.as_str();
    // Per partition: Some(error) decided here, or None for "sent to the coordinator".
    let mut decided: Vec<(i32, Option<ResponseError>)> = Vec::new();
    let mut shape: Vec<(TopicName, usize, usize)> = Vec::new();
    let mut to_commit = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let partitions_of_topic = s.metadata.topic(&name).map(|t| t.partitions);
        let start = decided.len();
        for p in topic.partitions {
            let metadata = p.committed_metadata.map(|m| m.to_string()).unwrap_or_default();
            let error = match partitions_of_topic {
                Some(n) if p.partition_index >= 0 && p.partition_index < n => {
                    (metadata.len() > OFFSET_METADATA_MAX_BYTES).then_some(ResponseError::OffsetMetadataTooLarge)
                }
                _ => Some(ResponseError::UnknownTopicOrPartition),
            };
            if error.is_none() {
                to_commit.push(OffsetToCommit {
                    topic: name.clone(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                });
            }
            decided.push((p.partition_index, error));
        }
        shape.push((topic.name, start, decided.len()));
    }
    let producer = TxnProducer { producer_id: request.producer_id.0, producer_epoch: request.producer_epoch };
    let outcome = if to_commit.is_empty() {
        Ok(())
    } else {
        match s.coordinators.groups.partition_for(group_id) {
            None => Err(ResponseError::CoordinatorLoadInProgress),
            Some(p) => {
                let offsets_partition = [(offsets_topic::TOPIC.to_string(), p)];
                let verified = s.coordinators.transactions.verify_partitions(
                    tid,
                    producer.producer_id,
                    producer.producer_epoch,
                    &offsets_partition,
                );
                match verified {
                    Ok(found) if found.first() == Some(&true) => {
                        s.coordinators
                            .groups
                            .commit_transactional_offsets(
                                group_id,
                                producer,
                                request.generation_id,
                                request.member_id.as_str(),
                                request.group_instance_id.as_deref(),
                                to_commit,
                            )
                            .await
                    }
                    // The group's partition was not added with AddOffsetsToTxn.
                    Ok(_) => Err(ResponseError::InvalidTxnState),
                    // Producers expect INVALID_PRODUCER_EPOCH here (Kafka's AddPartitionsToTxnManager).
                    Err(ResponseError::ProducerFenced) => Err(ResponseError::InvalidProducerEpoch),
                    Err(e) => Err(e),
                }
            }
        }
    };
    let outcome = match outcome {
        // Clients before v2 (Kafka 2.0) could crash on COORDINATOR_LOAD_IN_PROGRESS (KAFKA-7296).
        Err(ResponseError::CoordinatorLoadInProgress) if version < 2 => Err(ResponseError::CoordinatorNotAvailable),
        other => other,
    };
    if let Err(e) = outcome {
        tracing::debug!(group = %group_id, transactional_id = %tid, error = ?e, "transactional offset commit refused");
    }
    let topics = shape
        .into_iter()
        .map(|(name, start, end)| {
            let partitions = decided[start..end]
                .iter()
                .map(|(index, error)| {
                    let code = match (error, outcome) {
                        (Some(e), _) => e.code(),
                        (None, Err(e)) => e.code(),
                        (None, Ok(())) => 0,
                    };
                    TxnOffsetCommitResponsePartition::default().with_partition_index(*index).with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
