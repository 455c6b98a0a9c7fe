//! DescribeProducers: the producers a partition's log knows (`kafka-transactions.sh describe-producers`, used
//! to find hanging transactions): id, epoch, last sequence and timestamp, coordinator epoch, and the first
//! offset of an open transaction.

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::protocol::dispatch::RequestContext;

pub fn handle(ctx: &RequestContext, request: DescribeProducersRequest) -> DescribeProducersResponse {
    let s = &ctx.state;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partition_indexes
                .into_iter()
                .map(|p| match s.replicas.partition(&name, p) {
                    None => PartitionResponse::default()
                        .with_partition_index(p)
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(str_bytes("This server does not host this topic-partition."))),
                    Some(partition) => {
                        let mut producers = partition.log.producer_entries();
                        producers.sort_by_key(|e| e.producer_id);
                        PartitionResponse::default().with_partition_index(p).with_active_producers(
                            producers
                                .into_iter()
                                .map(|e| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(e.producer_id))
                                        .with_producer_epoch(i32::from(e.producer_epoch))
                                        .with_last_sequence(e.last_seq())
                                        .with_last_timestamp(e.last_timestamp)
                                        .with_coordinator_epoch(e.coordinator_epoch)
                                        .with_current_txn_start_offset(e.current_txn_first_offset.unwrap_or(-1))
                                })
                                .collect(),
                        )
                    }
                })
                .collect();
            TopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
