//! SyncGroup: the leader hands in the assignment it computed; every member gets its share. Followers' answers
//! are parked until the leader's assignment has been persisted.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use crate::coordinator::group_coordinator::SyncParams;
use crate::protocol::dispatch::RequestContext;

pub async fn handle(ctx: &RequestContext, request: SyncGroupRequest) -> SyncGroupResponse {
    let params = SyncParams {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        protocol_type: request.protocol_type.map(|s| s.to_string()),
        protocol_name: request.protocol_name.map(|s| s.to_string()),
        assignments: request.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    ctx.state.coordinators.groups.sync_group(params).await
}
