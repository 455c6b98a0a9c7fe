//! LeaveGroup: members leave (one per request before v3, a batch from v3, KIP-345), which starts a rebalance
//! of the rest.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::str_bytes;
use crate::protocol::dispatch::RequestContext;

pub fn handle(ctx: &RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let version = ctx.version();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string())))
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    for m in request.members.iter().filter_map(|m| m.reason.as_ref()) {
        tracing::debug!(group = %request.group_id.0.as_str(), reason = %m.as_str(), "leave reason");
    }
    match ctx.state.coordinators.groups.leave_group(request.group_id.0.as_str(), &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(outcomes) if version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(outcomes)
                .map(|((member_id, instance_id), outcome)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(member_id))
                        .with_group_instance_id(instance_id.map(str_bytes))
                        .with_error_code(outcome.map_or(0, |e| e.code()))
                })
                .collect(),
        ),
        Ok(outcomes) => {
            LeaveGroupResponse::default().with_error_code(outcomes.first().copied().flatten().map_or(0, |e| e.code()))
        }
    }
}
