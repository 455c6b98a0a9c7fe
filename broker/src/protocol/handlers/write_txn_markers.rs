//! WriteTxnMarkers: the inter-broker request a transaction coordinator sends to partition leaders, and what
//! `kafka-transactions.sh abort` sends to end a hanging transaction. This node's own coordinator writes its
//! markers directly; this handler serves the request for anyone else, as Kafka's `handleWriteTxnMarkersRequest`:
//! each marker is appended to each partition named, and markers written to `__consumer_offsets` complete the
//! producer's transactional offset commits in the group coordinator.

use futures::future::join_all;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::ResponseError;

use crate::coordinator::offsets_topic;
use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::log_error_code;

pub async fn handle(ctx: &RequestContext, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let s = &ctx.state;
    let mut results = Vec::with_capacity(request.markers.len());
    for marker in request.markers {
        let producer_id = marker.producer_id.0;
        let commit = marker.transaction_result;
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in marker.topics {
            let name = topic.name.0.to_string();
            let writes = topic.partition_indexes.iter().map(|&p| {
                let name = name.clone();
                async move {
                    let Some(partition) = s.replicas.partition(&name, p) else {
                        return (p, ResponseError::UnknownTopicOrPartition.code());
                    };
                    let written = partition
                        .log
                        .append_control_marker(
                            producer_id,
                            marker.producer_epoch,
                            commit,
                            marker.coordinator_epoch,
                            partition.leader_epoch,
                        )
                        .await;
                    match written {
                        Ok(_) => {
                            if name == offsets_topic::TOPIC {
                                s.coordinators.groups.complete_transaction(producer_id, p, commit);
                            }
                            (p, 0)
                        }
                        Err(e) => {
                            tracing::debug!(partition = %partition.tp, producer_id, error = %e, "marker refused");
                            (p, log_error_code(&e).code())
                        }
                    }
                }
            });
            let partitions = join_all(writes)
                .await
                .into_iter()
                .map(|(p, code)| {
                    WritableTxnMarkerPartitionResult::default().with_partition_index(p).with_error_code(code)
                })
                .collect();
            topics.push(WritableTxnMarkerTopicResult::default().with_name(topic.name).with_partitions(partitions));
        }
        results.push(WritableTxnMarkerResult::default().with_producer_id(marker.producer_id).with_topics(topics));
    }
    WriteTxnMarkersResponse::default().with_markers(results)
}
