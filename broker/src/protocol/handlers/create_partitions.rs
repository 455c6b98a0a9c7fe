//! CreatePartitions: grow a topic's partition count (never shrink it).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::metadata_error_code;

pub async fn handle(ctx: &RequestContext, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let s = &ctx.state;
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.0.as_str().to_string();
        let base = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if let Some(assignments) = &t.assignments {
            let bad = assignments.iter().flat_map(|a| a.broker_ids.iter()).any(|b| b.0 != s.config.node_id);
            if bad {
                results.push(
                    base.with_error_code(ResponseError::InvalidReplicaAssignment.code())
                        .with_error_message(Some(str_bytes("Replica assignment names a broker that does not exist"))),
                );
                continue;
            }
        }
        let result = match s.controller.create_partitions(&name, t.count, request.validate_only).await {
            Ok(()) => base,
            Err(e) => {
                base.with_error_code(metadata_error_code(&e).code()).with_error_message(Some(str_bytes(e.to_string())))
            }
        };
        results.push(result);
    }
    CreatePartitionsResponse::default().with_results(results)
}
