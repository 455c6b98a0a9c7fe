//! AddPartitionsToTxn: a transactional producer names the partitions it is about to write (v0-3, one
//! transaction). v4+ is the batched form brokers use to verify partitions before a transactional write
//! (KIP-890): each transaction is added, or with `verify_only` checked, and answered on its own.

use std::collections::BTreeSet;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TransactionalId};
use kafka_protocol::ResponseError;

use super::topic_name;
use crate::protocol::dispatch::RequestContext;

pub async fn handle(ctx: &RequestContext, request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let version = ctx.version();
    if version < 4 {
        let result = one_transaction(
            ctx,
            request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            false,
            request.v3_and_below_topics,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(result.topic_results);
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for t in request.transactions {
        results.push(
            one_transaction(ctx, t.transactional_id, t.producer_id.0, t.producer_epoch, t.verify_only, t.topics).await,
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

async fn one_transaction(
    ctx: &RequestContext,
    transactional_id: TransactionalId,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: Vec<AddPartitionsToTxnTopic>,
) -> AddPartitionsToTxnResult {
    let s = &ctx.state;
    let version = ctx.version();
    let tid = transactional_id.0.to_string();
    let wanted: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect();
    // Partitions of unknown topics fail the whole request: they get UNKNOWN_TOPIC_OR_PARTITION and every other
    // partition OPERATION_NOT_ATTEMPTED, as in Kafka.
    let exists = |(t, p): &(String, i32)| s.metadata.topic(t).is_some_and(|m| *p >= 0 && *p < m.partitions);
    let codes: Vec<i16> = if !wanted.iter().all(exists) {
        wanted
            .iter()
            .map(|tp| {
                if exists(tp) {
                    ResponseError::OperationNotAttempted.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                }
            })
            .collect()
    } else if verify_only {
        let txns = &s.coordinators.transactions;
        match txns.verify_partitions(&tid, producer_id, producer_epoch, &wanted) {
            Ok(found) => {
                found.into_iter().map(|ok| if ok { 0 } else { ResponseError::TransactionAbortable.code() }).collect()
            }
            Err(e) => vec![e.code(); wanted.len()],
        }
    } else {
        let partitions: BTreeSet<(String, i32)> = wanted.iter().cloned().collect();
        let outcome = s.coordinators.transactions.add_partitions(&tid, producer_id, producer_epoch, partitions).await;
        let code = match outcome {
            Ok(()) => 0,
            // Clients before v2 do not know PRODUCER_FENCED.
            Err(ResponseError::ProducerFenced) if version < 2 => ResponseError::InvalidProducerEpoch.code(),
            Err(e) => {
                tracing::debug!(transactional_id = %tid, error = ?e, "AddPartitionsToTxn refused");
                e.code()
            }
        };
        vec![code; wanted.len()]
    };
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, p), code) in wanted.into_iter().zip(codes) {
        let r = AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(code);
        match results.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(r),
            None => results.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(topic_name(&topic))
                    .with_results_by_partition(vec![r]),
            ),
        }
    }
    AddPartitionsToTxnResult::default().with_transactional_id(transactional_id).with_topic_results(results)
}
