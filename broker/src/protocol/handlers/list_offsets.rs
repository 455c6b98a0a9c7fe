//! ListOffsets: the earliest, latest, or first-at-a-timestamp offset of each partition.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::topic_name;
use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::log_error_code;

/// Kafka's special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn handle(ctx: &RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let s = &ctx.state;
    // isolation_level 1 (read_committed): "latest" is the last stable offset, and look-ups stop there.
    let read_committed = request.isolation_level == 1;
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.0.as_str().to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            let Some(partition) = s.replicas.partition(&name, p.partition_index) else {
                partitions.push(r.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            if p.current_leader_epoch >= 0 && p.current_leader_epoch != partition.leader_epoch {
                let code = if p.current_leader_epoch > partition.leader_epoch {
                    ResponseError::UnknownLeaderEpoch
                } else {
                    ResponseError::FencedLeaderEpoch
                };
                partitions.push(r.with_error_code(code.code()));
                continue;
            }
            let log = &partition.log;
            let epoch = partition.leader_epoch;
            let answer = match p.timestamp {
                LATEST => {
                    Ok(Some((-1, if read_committed { log.last_stable_offset() } else { log.high_watermark() }, epoch)))
                }
                EARLIEST | EARLIEST_LOCAL => Ok(Some((-1, log.log_start_offset(), epoch))),
                // No tiered storage: nothing is tiered.
                LATEST_TIERED => Ok(None),
                ts if ts >= 0 || ts == MAX_TIMESTAMP => log
                    .fetch_offset_for_timestamp_with_isolation(ts, read_committed)
                    .await
                    .map(|found| found.map(|f| (f.timestamp, f.offset, f.leader_epoch))),
                other => {
                    partitions.push(r.with_error_code(ResponseError::InvalidRequest.code()));
                    tracing::debug!(timestamp = other, "ListOffsets with an unknown special timestamp");
                    continue;
                }
            };
            partitions.push(match answer {
                Ok(Some((timestamp, offset, leader_epoch))) => {
                    let r = r.with_timestamp(timestamp).with_offset(offset);
                    // The codec refuses a non-default leader epoch below v4, where the field does not exist.
                    if ctx.version() >= 4 {
                        r.with_leader_epoch(leader_epoch)
                    } else {
                        r
                    }
                }
                Ok(None) => r,
                Err(e) => r.with_error_code(log_error_code(&e).code()),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic_name(&name)).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}
