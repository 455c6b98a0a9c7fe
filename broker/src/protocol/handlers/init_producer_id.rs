//! InitProducerId: a producer id and epoch for an idempotent producer. Transactional producers (a
//! `transactional_id`) are answered by the transaction coordinator once it exists; until then they are told the
//! coordinator is not available.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::metadata_error_code;

pub async fn handle(ctx: &RequestContext, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let failed = |code: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        return failed(ResponseError::CoordinatorNotAvailable);
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
