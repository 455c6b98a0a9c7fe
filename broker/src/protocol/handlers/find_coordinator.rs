//! FindCoordinator: which broker coordinates a group (key type 0) or a transactional id (key type 1). A single
//! Spate node coordinates everything, so the answer is this node once the coordinator has loaded its topic.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::protocol::dispatch::RequestContext;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub fn handle(ctx: &RequestContext, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let version = ctx.version();
    // v4+ batches keys (KIP-699); earlier versions ask for one.
    let keys = if version >= 4 { request.coordinator_keys } else { vec![request.key] };
    let mut answers: Vec<Coordinator> = keys.into_iter().map(|k| coordinator_for(ctx, request.key_type, k)).collect();
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(answers);
    }
    let Some(c) = answers.pop() else { return FindCoordinatorResponse::default() };
    let mut response = FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port);
    if version >= 1 {
        response = response.with_error_message(c.error_message);
    }
    response
}

fn coordinator_for(ctx: &RequestContext, key_type: i8, key: StrBytes) -> Coordinator {
    let s = &ctx.state;
    let unavailable = |key: StrBytes, error: ResponseError, message: &str| {
        Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1))
            .with_host(str_bytes(""))
            .with_port(-1)
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(message)))
    };
    let available = match key_type {
        GROUP => s.coordinators.groups.is_loaded(),
        TRANSACTION => s.coordinators.transactions.is_loaded(),
        other => {
            return unavailable(key, ResponseError::InvalidRequest, &format!("unknown coordinator key type {other}"));
        }
    };
    if !available {
        tracing::debug!(key = %key.as_str(), key_type, "coordinator not available");
        return unavailable(key, ResponseError::CoordinatorNotAvailable, "The coordinator is not available.");
    }
    Coordinator::default()
        .with_key(key)
        .with_node_id(BrokerId(s.config.node_id))
        .with_host(str_bytes(s.advertised_host.clone()))
        .with_port(s.advertised_port)
}
