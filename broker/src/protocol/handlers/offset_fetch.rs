//! OffsetFetch: a group's committed offsets, for the partitions asked for or (topics = null, v2+) all of them.
//! v8+ asks for several groups at once (KIP-709). A partition without a committed offset answers -1.
//! With `require_stable` (v7+, KIP-447) a partition with a commit still in flight — a transactional one before its
//! marker — answers UNSTABLE_OFFSET_COMMIT, and the consumer retries.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name};
use crate::coordinator::group_coordinator::FetchedOffset;
use crate::protocol::dispatch::RequestContext;

pub fn handle(ctx: &RequestContext, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let version = ctx.version();
    let require_stable = version >= 7 && request.require_stable;
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .flat_map(|t| {
                            let name = t.name.0.to_string();
                            t.partition_indexes.into_iter().map(move |p| (name.clone(), p))
                        })
                        .collect()
                });
                let (error, offsets) = fetch(ctx, g.group_id.0.as_str(), wanted, require_stable);
                let topics = by_topic(offsets)
                    .into_iter()
                    .map(|(name, parts)| {
                        OffsetFetchResponseTopics::default().with_name(topic_name(&name)).with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, offset, epoch, metadata, code)| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(str_bytes(metadata)))
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(g.group_id.0))
                    .with_topics(topics)
                    .with_error_code(error.map_or(0, |e| e.code()))
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|ts| {
        ts.into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes.into_iter().map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let (error, offsets) = fetch(ctx, request.group_id.0.as_str(), wanted, require_stable);
    // v0-1 have no top-level error code: the group's error goes on every partition.
    let partition_error = if version < 2 { error.map_or(0, |e| e.code()) } else { 0 };
    let topics = by_topic(offsets)
        .into_iter()
        .map(|(name, parts)| {
            OffsetFetchResponseTopic::default().with_name(topic_name(&name)).with_partitions(
                parts
                    .into_iter()
                    .map(|(p, offset, epoch, metadata, code)| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(str_bytes(metadata)))
                            .with_error_code(if partition_error != 0 { partition_error } else { code })
                    })
                    .collect(),
            )
        })
        .collect();
    let mut response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response = response.with_error_code(error.map_or(0, |e| e.code()));
    }
    response
}

fn fetch(
    ctx: &RequestContext,
    group_id: &str,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> (Option<ResponseError>, Vec<FetchedOffset>) {
    let groups = &ctx.state.coordinators.groups;
    if group_id.is_empty() {
        return (Some(ResponseError::InvalidGroupId), Vec::new());
    }
    if !groups.is_loaded() {
        return (Some(ResponseError::CoordinatorLoadInProgress), Vec::new());
    }
    (None, groups.fetch_offsets_with(group_id, wanted, require_stable))
}

/// partition, offset, leader epoch, metadata, error code.
type PartitionRow = (i32, i64, i32, String, i16);

/// Groups offsets by topic, keeping the order in which topics first appear.
fn by_topic(offsets: Vec<FetchedOffset>) -> Vec<(String, Vec<PartitionRow>)> {
    let mut order: Vec<String> = Vec::new();
    let mut rows: BTreeMap<String, Vec<PartitionRow>> = BTreeMap::new();
    for f in offsets {
        if !rows.contains_key(&f.topic) {
            order.push(f.topic.clone());
        }
        let code = if f.unstable { ResponseError::UnstableOffsetCommit.code() } else { 0 };
        let row = match f.offset {
            Some(o) => (f.partition, o.offset, o.leader_epoch, o.metadata, code),
            None => (f.partition, -1, -1, String::new(), code),
        };
        rows.entry(f.topic).or_default().push(row);
    }
    order
        .into_iter()
        .map(|t| {
            let r = rows.remove(&t).unwrap_or_default();
            (t, r)
        })
        .collect()
}
