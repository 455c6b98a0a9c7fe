//! DeleteGroups: removes empty groups and their committed offsets (tombstones in `__consumer_offsets`).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};

use super::str_bytes;
use crate::protocol::dispatch::RequestContext;

pub async fn handle(ctx: &RequestContext, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let ids = request.groups_names.into_iter().map(|g| g.0.to_string()).collect();
    let results = ctx.state.coordinators.groups.delete_groups(ids).await;
    DeleteGroupsResponse::default().with_results(
        results
            .into_iter()
            .map(|(id, outcome)| {
                DeletableGroupResult::default()
                    .with_group_id(GroupId(str_bytes(id)))
                    .with_error_code(outcome.map_or(0, |e| e.code()))
            })
            .collect(),
    )
}
