//! Heartbeat: keeps a member's session alive and tells it when the group is rebalancing.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::protocol::dispatch::RequestContext;

pub fn handle(ctx: &RequestContext, request: HeartbeatRequest) -> HeartbeatResponse {
    let outcome = ctx.state.coordinators.groups.heartbeat(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_deref(),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(outcome.map_or(0, |e| e.code()))
}
