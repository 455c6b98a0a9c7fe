//! AddOffsetsToTxn: a transactional producer is about to commit a group's offsets in its transaction
//! (`send_offsets_to_transaction`); the group's `__consumer_offsets` partition joins the transaction, so the
//! transaction's marker reaches it and makes the offsets visible.

use std::collections::BTreeSet;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use kafka_protocol::ResponseError;

use crate::coordinator::offsets_topic;
use crate::protocol::dispatch::RequestContext;

pub async fn handle(ctx: &RequestContext, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let s = &ctx.state;
    let group_id = request.group_id.0.as_str();
    let outcome = match s.coordinators.groups.partition_for(group_id) {
        None => Err(ResponseError::CoordinatorLoadInProgress),
        Some(p) => {
            let partitions = BTreeSet::from([(offsets_topic::TOPIC.to_string(), p)]);
            s.coordinators
                .transactions
                .add_partitions(
                    request.transactional_id.0.as_str(),
                    request.producer_id.0,
                    request.producer_epoch,
                    partitions,
                )
                .await
        }
    };
    let code = match outcome {
        Ok(()) => 0,
        Err(ResponseError::ProducerFenced) if ctx.version() < 2 => ResponseError::InvalidProducerEpoch.code(),
        Err(e) => {
            tracing::debug!(transactional_id = %request.transactional_id.0.as_str(), error = ?e, "AddOffsetsToTxn refused");
            e.code()
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
