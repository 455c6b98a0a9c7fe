//! JoinGroup: a member enters a group or rejoins for a new generation. The answer is parked by the
//! coordinator until the join phase ends (all members rejoined, or the rebalance timeout passed).

use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::str_bytes;
use crate::coordinator::group_coordinator::JoinParams;
use crate::protocol::dispatch::RequestContext;

pub async fn handle(ctx: &RequestContext, request: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.version();
    let params = JoinParams {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        require_known_member_id: version >= 4,
        client_id: ctx.client_id().to_string(),
        client_host: format!("/{}", ctx.peer.ip()),
        // v0 has no rebalance timeout: the session timeout served as both.
        rebalance_timeout_ms: if version == 0 { request.session_timeout_ms } else { request.rebalance_timeout_ms },
        session_timeout_ms: request.session_timeout_ms,
        protocol_type: request.protocol_type.to_string(),
        protocols: request.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        reason: request.reason.map(|r| r.to_string()),
    };
    let mut response = ctx.state.coordinators.groups.join_group(params).await;
    // The protocol name is nullable only from v7; before, an error answer carries an empty string.
    if version < 7 && response.protocol_name.is_none() {
        response.protocol_name = Some(str_bytes(""));
    }
    response
}
