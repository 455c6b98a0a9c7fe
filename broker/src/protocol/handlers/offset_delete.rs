//! OffsetDelete (KIP-496): removes a group's committed offsets for partitions its members no longer consume.

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::topic_name;
use crate::protocol::dispatch::RequestContext;

pub async fn handle(ctx: &RequestContext, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions.iter().map(move |p| (name.clone(), p.partition_index))
        })
        .collect();
    let outcome = ctx.state.coordinators.groups.delete_offsets(request.group_id.0.as_str(), partitions).await;
    let results = match outcome {
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(r) => r,
    };
    // Answer in the request's topic order, one entry per topic.
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for ((topic, partition), error) in results {
        let entry = OffsetDeleteResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(error.map_or(0, |e| e.code()));
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics
                .push(OffsetDeleteResponseTopic::default().with_name(topic_name(&topic)).with_partitions(vec![entry])),
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
