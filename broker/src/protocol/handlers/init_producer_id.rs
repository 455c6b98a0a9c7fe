//! InitProducerId: a producer id and epoch. Without a transactional id, a fresh id for an idempotent producer;
//! with one, the transaction coordinator's answer — that id's producer id with a bumped epoch, fencing earlier
//! holders (see `coordinator/transaction_coordinator.rs`). `producer_id`/`producer_epoch` (v3+, KIP-360) are
//! given by a producer recovering from an error; one without the other is INVALID_REQUEST.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::metadata_error_code;

pub async fn handle(ctx: &RequestContext, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let version = ctx.version();
    let failed = |code: ResponseError| {
        // Clients before v4 do not know PRODUCER_FENCED.
        let code = if code == ResponseError::ProducerFenced && version < 4 {
            ResponseError::InvalidProducerEpoch
        } else {
            code
        };
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let expected = match (request.producer_id.0, request.producer_epoch) {
        (-1, -1) => None,
        (-1, _) | (_, -1) => return failed(ResponseError::InvalidRequest),
        (id, epoch) => Some((id, epoch)),
    };
    if let Some(tid) = request.transactional_id {
        let outcome = ctx
            .state
            .coordinators
            .transactions
            .init_producer_id(&ctx.state.producer_ids, tid.0.as_str(), request.transaction_timeout_ms, expected)
            .await;
        return match outcome {
            Ok((id, epoch)) => {
                InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
            }
            Err(e) => {
                tracing::debug!(transactional_id = %tid.0.as_str(), error = ?e, "InitProducerId refused");
                failed(e)
            }
        };
    }
    // An idempotent producer re-initialising (KIP-360, after a fatal sequence error) gets a new id, as Kafka's
    // broker does for producers without a transactional id: the old id's state simply expires.
    match ctx.state.producer_ids.generate().await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            failed(metadata_error_code(&e))
        }
    }
}
