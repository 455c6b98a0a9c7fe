//! Produce: validate and append each partition's batches, all partitions of a request at once so the storage
//! threads can commit them together, and answer with base offsets (or nothing, for acks=0).
//!
//! Transactional batches of a request with a transactional id are first checked with the transaction
//! coordinator, as Kafka's produce path verifies them (KIP-890 part 1): the producer must hold the id's current
//! epoch (else INVALID_PRODUCER_EPOCH) and the partition must have been added to its open transaction with
//! AddPartitionsToTxn — else TRANSACTION_ABORTABLE from Produce v11 on, INVALID_TXN_STATE before, so a
//! transaction can never leave data in a partition its markers will not reach.

use futures::future::join_all;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name};
use crate::cluster::topic_name as names;
use crate::log::record_batch::RecordBatch;
use crate::protocol::dispatch::{Reply, RequestContext};
use crate::protocol::errors::log_error_code;

struct Outcome {
    index: i32,
    error: Option<(ResponseError, String)>,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
}

impl Outcome {
    fn failed(index: i32, code: ResponseError, message: impl Into<String>) -> Self {
        Outcome {
            index,
            error: Some((code, message.into())),
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
        }
    }
}

pub async fn handle(ctx: &RequestContext, request: ProduceRequest) -> Reply {
    let s = &ctx.state;
    let acks = request.acks;
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string()).filter(|t| !t.is_empty());
    let mut response_topics = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        // Produce v13 names topics by id (KIP-516).
        let by_id = ctx.version() >= 13;
        let name = if by_id {
            s.metadata.topic_by_id(topic.topic_id).map(|t| t.name).unwrap_or_default()
        } else {
            topic.name.0.as_str().to_string()
        };
        let topic_id = topic.topic_id;
        let outcomes: Vec<Outcome> = if by_id && name.is_empty() {
            topic
                .partition_data
                .iter()
                .map(|p| {
                    Outcome::failed(p.index, ResponseError::UnknownTopicId, format!("unknown topic id {topic_id}"))
                })
                .collect()
        } else if !(acks == -1 || acks == 0 || acks == 1) {
            topic
                .partition_data
                .iter()
                .map(|p| Outcome::failed(p.index, ResponseError::InvalidRequiredAcks, format!("acks={acks}")))
                .collect()
        } else if let Err(reason) = names::validate(&name) {
            topic
                .partition_data
                .iter()
                .map(|p| Outcome::failed(p.index, ResponseError::InvalidTopicException, &reason))
                .collect()
        } else if names::is_internal(&name) {
            topic
                .partition_data
                .iter()
                .map(|p| {
                    Outcome::failed(
                        p.index,
                        ResponseError::InvalidTopicException,
                        format!("cannot produce to internal topic {name}"),
                    )
                })
                .collect()
        } else {
            if s.metadata.topic(&name).is_none() {
                if let Err(e) = s.controller.auto_create(&name).await {
                    tracing::warn!(topic = %name, error = %e, "auto-create on produce failed");
                }
            }
            let appends = topic.partition_data.into_iter().map(|p| {
                let partition = s.replicas.partition(&name, p.index);
                let transactional_id = transactional_id.as_deref();
                let name = name.as_str();
                async move {
                    let Some(partition) = partition else {
                        return Outcome::failed(p.index, ResponseError::UnknownTopicOrPartition, "unknown partition");
                    };
                    let Some(records) = p.records else {
                        return Outcome::failed(p.index, ResponseError::CorruptMessage, "no records");
                    };
                    if let Some(tid) = transactional_id {
                        if let Err((code, message)) = verify_transaction(ctx, tid, name, p.index, &records) {
                            return Outcome::failed(p.index, code, message);
                        }
                    }
                    match partition.log.append_as_leader(records, partition.leader_epoch).await {
                        Ok(info) => Outcome {
                            index: p.index,
                            error: None,
                            base_offset: info.first_offset,
                            log_append_time: info.log_append_time,
                            log_start_offset: info.log_start_offset,
                        },
                        Err(e) => {
                            tracing::debug!(partition = %partition.tp, error = %e, "produce refused");
                            Outcome::failed(p.index, log_error_code(&e), e.to_string())
                        }
                    }
                }
            });
            join_all(appends).await
        };
        let partitions = outcomes
            .into_iter()
            .map(|o| {
                let mut r = PartitionProduceResponse::default()
                    .with_index(o.index)
                    .with_base_offset(o.base_offset)
                    .with_log_append_time_ms(o.log_append_time)
                    .with_log_start_offset(o.log_start_offset);
                if let Some((code, message)) = o.error {
                    r = r.with_error_code(code.code()).with_error_message(Some(str_bytes(message)));
                }
                r
            })
            .collect();
        response_topics.push(
            TopicProduceResponse::default()
                .with_name(topic_name(&name))
                .with_topic_id(topic_id)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        // The client expects no answer; Kafka closes the connection when an acks=0 produce fails so the client
        // notices through its next metadata refresh.
        let failed = response_topics
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.error_code != 0)
            .map(|p| p.error_code);
        return match failed {
            Some(code) => Reply::Close(format!("acks=0 produce failed with error {code}")),
            None => Reply::NoResponse,
        };
    }
    Reply::Response(Box::new(ResponseKind::Produce(ProduceResponse::default().with_responses(response_topics))))
}

/// Checks a transactional write with the transaction coordinator (Kafka's `handleVerifyPartitionsInTransaction`
/// through `AddPartitionsToTxnManager`, whose error mapping this follows). Non-transactional data passes.
fn verify_transaction(
    ctx: &RequestContext,
    transactional_id: &str,
    topic: &str,
    partition: i32,
    records: &[u8],
) -> Result<(), (ResponseError, String)> {
    let Some(batch) = RecordBatch::header_only(records) else { return Ok(()) };
    if !batch.is_transactional() {
        return Ok(());
    }
    let tp = [(topic.to_string(), partition)];
    let txns = &ctx.state.coordinators.transactions;
    match txns.verify_partitions(transactional_id, batch.producer_id(), batch.producer_epoch(), &tp) {
        Ok(found) if found.first() == Some(&true) => Ok(()),
        Ok(_) => {
            let code =
                if ctx.version() > 10 { ResponseError::TransactionAbortable } else { ResponseError::InvalidTxnState };
            Err((code, format!("partition {topic}-{partition} is not in the transaction of {transactional_id}")))
        }
        Err(ResponseError::ProducerFenced) => Err((
            ResponseError::InvalidProducerEpoch,
            format!("producer epoch {} of {transactional_id} is not the current one", batch.producer_epoch()),
        )),
        Err(e) => Err((e, format!("transaction of {transactional_id} cannot take writes now"))),
    }
}
