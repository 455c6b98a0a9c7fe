//! Routes a decoded request to its handler in `handlers/`, one file per API.

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use super::handlers;
use crate::broker::BrokerState;

/// Everything a handler knows about the request it answers.
pub struct RequestContext {
    pub state: Arc<BrokerState>,
    pub header: RequestHeader,
    pub peer: SocketAddr,
}

impl RequestContext {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }

    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}

/// What to do after handling a request.
pub enum Reply {
    Response(Box<ResponseKind>),
    /// acks=0 produce: Kafka sends nothing back.
    NoResponse,
    /// Kafka answers some failures by closing the connection (e.g. a failed acks=0 produce).
    Close(String),
}

impl From<ResponseKind> for Reply {
    fn from(r: ResponseKind) -> Self {
        Reply::Response(Box::new(r))
    }
}

/// Handles one request. Only APIs listed in `api_versions::SUPPORTED` reach here.
pub async fn dispatch(ctx: &RequestContext, request: RequestKind) -> Reply {
    use RequestKind as Rq;
    use ResponseKind as Rs;
    match request {
        Rq::ApiVersions(r) => Rs::ApiVersions(handlers::api_versions::handle(ctx, r)).into(),
        Rq::Metadata(r) => Rs::Metadata(handlers::metadata::handle(ctx, r).await).into(),
        Rq::Produce(r) => handlers::produce::handle(ctx, r).await,
        Rq::Fetch(r) => Rs::Fetch(handlers::fetch::handle(ctx, r).await).into(),
        Rq::ListOffsets(r) => Rs::ListOffsets(handlers::list_offsets::handle(ctx, r).await).into(),
        Rq::CreateTopics(r) => Rs::CreateTopics(handlers::create_topics::handle(ctx, r).await).into(),
        Rq::DeleteTopics(r) => Rs::DeleteTopics(handlers::delete_topics::handle(ctx, r).await).into(),
        Rq::CreatePartitions(r) => Rs::CreatePartitions(handlers::create_partitions::handle(ctx, r).await).into(),
        Rq::DeleteRecords(r) => Rs::DeleteRecords(handlers::delete_records::handle(ctx, r).await).into(),
        Rq::DescribeConfigs(r) => Rs::DescribeConfigs(handlers::describe_configs::handle(ctx, r)).into(),
        Rq::AlterConfigs(r) => Rs::AlterConfigs(handlers::alter_configs::handle(ctx, r).await).into(),
        Rq::IncrementalAlterConfigs(r) => {
            Rs::IncrementalAlterConfigs(handlers::incremental_alter_configs::handle(ctx, r).await).into()
        }
        Rq::InitProducerId(r) => Rs::InitProducerId(handlers::init_producer_id::handle(ctx, r).await).into(),
        Rq::DescribeCluster(r) => Rs::DescribeCluster(handlers::describe_cluster::handle(ctx, r)).into(),
        // -- consumer groups (coordinator/) --
        Rq::FindCoordinator(r) => Rs::FindCoordinator(handlers::find_coordinator::handle(ctx, r)).into(),
        Rq::JoinGroup(r) => Rs::JoinGroup(handlers::join_group::handle(ctx, r).await).into(),
        Rq::SyncGroup(r) => Rs::SyncGroup(handlers::sync_group::handle(ctx, r).await).into(),
        Rq::Heartbeat(r) => Rs::Heartbeat(handlers::heartbeat::handle(ctx, r)).into(),
        Rq::LeaveGroup(r) => Rs::LeaveGroup(handlers::leave_group::handle(ctx, r)).into(),
        Rq::OffsetCommit(r) => Rs::OffsetCommit(handlers::offset_commit::handle(ctx, r).await).into(),
        Rq::OffsetFetch(r) => Rs::OffsetFetch(handlers::offset_fetch::handle(ctx, r)).into(),
        Rq::ListGroups(r) => Rs::ListGroups(handlers::list_groups::handle(ctx, r)).into(),
        Rq::DescribeGroups(r) => Rs::DescribeGroups(handlers::describe_groups::handle(ctx, r)).into(),
        Rq::DeleteGroups(r) => Rs::DeleteGroups(handlers::delete_groups::handle(ctx, r).await).into(),
        Rq::OffsetDelete(r) => Rs::OffsetDelete(handlers::offset_delete::handle(ctx, r).await).into(),
        // -- transactions (coordinator/transaction_coordinator.rs) --
        Rq::AddPartitionsToTxn(r) => {
            Rs::AddPartitionsToTxn(handlers::add_partitions_to_txn::handle(ctx, r).await).into()
        }
        Rq::AddOffsetsToTxn(r) => Rs::AddOffsetsToTxn(handlers::add_offsets_to_txn::handle(ctx, r).await).into(),
        Rq::EndTxn(r) => Rs::EndTxn(handlers::end_txn::handle(ctx, r).await).into(),
        Rq::TxnOffsetCommit(r) => Rs::TxnOffsetCommit(handlers::txn_offset_commit::handle(ctx, r).await).into(),
        Rq::WriteTxnMarkers(r) => Rs::WriteTxnMarkers(handlers::write_txn_markers::handle(ctx, r).await).into(),
        Rq::DescribeTransactions(r) => Rs::DescribeTransactions(handlers::describe_transactions::handle(ctx, r)).into(),
        Rq::ListTransactions(r) => Rs::ListTransactions(handlers::list_transactions::handle(ctx, r)).into(),
        Rq::DescribeProducers(r) => Rs::DescribeProducers(handlers::describe_producers::handle(ctx, r)).into(),
        other => {
            // Unreachable while api_versions::SUPPORTED and this match agree; closing is what Kafka does with a
            // request it cannot handle.
            Reply::Close(format!("no handler for {:?}", std::mem::discriminant(&other)))
        }
    }
}
