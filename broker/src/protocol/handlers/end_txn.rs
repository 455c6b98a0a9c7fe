//! EndTxn: commit or abort the producer's transaction. Answered once PrepareCommit/PrepareAbort is in
//! `__transaction_state`; the markers follow in the background (see `coordinator/transaction_coordinator.rs`).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::protocol::dispatch::RequestContext;

pub async fn handle(ctx: &RequestContext, request: EndTxnRequest) -> EndTxnResponse {
    let outcome = ctx
        .state
        .coordinators
        .transactions
        .end_transaction(
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
        )
        .await;
    match outcome {
        Ok((producer_id, producer_epoch)) => {
            EndTxnResponse::default().with_producer_id(ProducerId(producer_id)).with_producer_epoch(producer_epoch)
        }
        Err(e) => {
            tracing::debug!(transactional_id = %request.transactional_id.0.as_str(), committed = request.committed, error = ?e, "EndTxn refused");
            // Clients before v2 do not know PRODUCER_FENCED.
            let e = if e == ResponseError::ProducerFenced && ctx.version() < 2 {
                ResponseError::InvalidProducerEpoch
            } else {
                e
            };
            EndTxnResponse::default().with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
        }
    }
}
