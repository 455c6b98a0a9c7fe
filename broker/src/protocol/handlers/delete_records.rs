//! DeleteRecords: move a partition's log start offset forward; whole segments below it are deleted.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::log_error_code;

pub async fn handle(ctx: &RequestContext, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let s = &ctx.state;
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.0.as_str().to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let r =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
            let Some(partition) = s.replicas.partition(&name, p.partition_index) else {
                partitions.push(r.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let hw = partition.log.high_watermark();
            // -1 means "up to the high watermark".
            let offset = if p.offset == -1 { hw } else { p.offset };
            if offset < 0 || offset > hw {
                partitions.push(r.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            partitions.push(match partition.log.delete_records_before(offset).await {
                Ok(low) => r.with_low_watermark(low),
                Err(e) => r.with_error_code(log_error_code(&e).code()),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
