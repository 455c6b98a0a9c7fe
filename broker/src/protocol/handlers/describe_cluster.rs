//! DescribeCluster: the cluster id, controller and brokers (the admin client's view of the cluster).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, AUTHORIZED_OPERATIONS_OMITTED};
use crate::protocol::dispatch::RequestContext;

/// `endpoint_type` 1 asks for brokers; 2 asks for controllers (KIP-919), which a combined node also is.
pub fn handle(ctx: &RequestContext, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let s = &ctx.state;
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(s.metadata.cluster_id()))
        .with_controller_id(BrokerId(s.config.node_id))
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(s.config.node_id))
            .with_host(str_bytes(s.advertised_host.clone()))
            .with_port(s.advertised_port)
            .with_rack(None)]);
    if request.endpoint_type != 1 && request.endpoint_type != 2 {
        response = response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(format!("unsupported endpoint type {}", request.endpoint_type))))
            .with_brokers(vec![]);
    }
    response
}
