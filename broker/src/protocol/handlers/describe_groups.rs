//! DescribeGroups: state, protocol and members (with metadata and assignment when stable) of each group.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, AUTHORIZED_OPERATIONS_OMITTED};
use crate::protocol::dispatch::RequestContext;

/// READ, DELETE and DESCRIBE as Kafka's `AclOperation` bits: with no authorizer, all a group supports.
const ALL_GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub fn handle(ctx: &RequestContext, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let version = ctx.version();
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            let name = id.0.to_string();
            let base = DescribedGroup::default().with_group_id(id);
            if name.is_empty() {
                return base.with_error_code(ResponseError::InvalidGroupId.code()).with_group_state(str_bytes(""));
            }
            match ctx.state.coordinators.groups.describe_group(&name) {
                // Kafka 4 answers GROUP_ID_NOT_FOUND from v6; older versions describe an unknown group as Dead.
                None if version >= 6 => base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(format!("Group {name} not found.")))),
                None => base.with_group_state(str_bytes("Dead")),
                Some(d) => base
                    .with_group_state(str_bytes(d.state.as_str()))
                    .with_protocol_type(str_bytes(d.protocol_type))
                    .with_protocol_data(str_bytes(d.protocol_data))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(str_bytes))
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    )
                    .with_authorized_operations(if version >= 3 && request.include_authorized_operations {
                        ALL_GROUP_OPERATIONS
                    } else {
                        AUTHORIZED_OPERATIONS_OMITTED
                    }),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
