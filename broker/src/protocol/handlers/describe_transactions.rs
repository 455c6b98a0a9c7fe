//! DescribeTransactions: the state of transactional ids (`kafka-transactions.sh describe`).

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId};

use super::{str_bytes, topic_name};
use crate::protocol::dispatch::RequestContext;

pub fn handle(ctx: &RequestContext, request: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let txns = &ctx.state.coordinators.transactions;
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| match txns.describe(id.0.as_str()) {
            Err(e) => TransactionState::default()
                .with_transactional_id(id)
                .with_error_code(e.code())
                .with_transaction_state(str_bytes(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1),
            Ok(d) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for (t, p) in d.partitions {
                    match topics.iter_mut().find(|x| x.topic.0.as_str() == t) {
                        Some(x) => x.partitions.push(p),
                        None => topics.push(TopicData::default().with_topic(topic_name(&t)).with_partitions(vec![p])),
                    }
                }
                TransactionState::default()
                    .with_transactional_id(id)
                    .with_transaction_state(str_bytes(d.state.name()))
                    .with_transaction_timeout_ms(d.txn_timeout_ms)
                    .with_transaction_start_time_ms(d.txn_start_timestamp)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.producer_epoch)
                    .with_topics(topics)
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
