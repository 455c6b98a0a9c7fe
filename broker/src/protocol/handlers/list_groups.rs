//! ListGroups: every group this coordinator knows, optionally filtered by state (v4+, KIP-518) and by type
//! (v5+, KIP-848: all groups here are "classic").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::protocol::dispatch::RequestContext;

const GROUP_TYPE: &str = "classic";

pub fn handle(ctx: &RequestContext, request: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_lowercase()).collect();
    if !types.is_empty() && !types.iter().any(|t| t == GROUP_TYPE) {
        return ListGroupsResponse::default();
    }
    let groups = ctx
        .state
        .coordinators
        .groups
        .list_groups()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.as_str().to_lowercase()))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_group_state(str_bytes(g.state.as_str()))
                .with_group_type(str_bytes(GROUP_TYPE))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
