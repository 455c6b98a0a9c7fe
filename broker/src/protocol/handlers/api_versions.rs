//! ApiVersions: the first request of every client, answered with the ranges in `protocol::api_versions`.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::protocol::api_versions::api_versions_response;
use crate::protocol::dispatch::RequestContext;

pub fn handle(_ctx: &RequestContext, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    // Feature flags are left empty: a single node with no finalized features is what KRaft reports before any
    // feature is enabled, and clients treat absent features as unsupported.
    api_versions_response(0)
}
