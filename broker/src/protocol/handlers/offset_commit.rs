//! OffsetCommit: store a group's consumed positions. Generation -1 with an empty member id is a simple
//! consumer (assign, no subscribe) or an admin tool, accepted while the group has no members, as in Kafka.
//! A commit is answered only after its records are in `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;

use crate::coordinator::group_coordinator::{OffsetToCommit, OFFSET_METADATA_MAX_BYTES};
use crate::protocol::dispatch::RequestContext;

pub async fn handle(ctx: &RequestContext, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let s = &ctx.state;
    // Per partition: Some(error) decided here, or None for "sent to the coordinator".
    let mut decided: Vec<(i32, Option<ResponseError>)> = Vec::new();
    let mut shape: Vec<(kafka_protocol::messages::TopicName, usize, usize)> = Vec::new();
    let mut to_commit = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let partitions_of_topic = s.metadata.topic(&name).map(|t| t.partitions);
        let start = decided.len();
        for p in topic.partitions {
            let metadata = p.committed_metadata.map(|m| m.to_string()).unwrap_or_default();
            let error = match partitions_of_topic {
                Some(n) if p.partition_index >= 0 && p.partition_index < n => {
                    if metadata.len() > OFFSET_METADATA_MAX_BYTES {
                        Some(ResponseError::OffsetMetadataTooLarge)
                    } else {
                        None
                    }
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
    let outcome = s
        .coordinators
        .groups
        .commit_offsets(
            request.group_id.0.as_str(),
            request.generation_id_or_member_epoch,
            request.member_id.as_str(),
            request.group_instance_id.as_deref(),
            to_commit,
            ctx.version(),
        )
        .await;
    if let Err(e) = outcome {
        tracing::debug!(group = %request.group_id.0.as_str(), error = ?e, "offset commit refused");
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
                    OffsetCommitResponsePartition::default().with_partition_index(*index).with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
