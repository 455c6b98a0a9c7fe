//! ListTransactions: transactional ids known to this coordinator, filtered by state names, producer ids and
//! (v1, KIP-994) by running longer than a duration (`kafka-transactions.sh list`).

use std::collections::HashSet;

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};

use super::str_bytes;
use crate::protocol::dispatch::RequestContext;

pub fn handle(ctx: &RequestContext, request: ListTransactionsRequest) -> ListTransactionsResponse {
    let states: Vec<String> = request.state_filters.iter().map(|s| s.to_string()).collect();
    let producers: HashSet<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if ctx.version() >= 1 { request.duration_filter } else { -1 };
    match ctx.state.coordinators.transactions.list(&states, &producers, duration) {
        Err(e) => ListTransactionsResponse::default().with_error_code(e.code()),
        Ok((listed, unknown)) => ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown.into_iter().map(str_bytes).collect())
            .with_transaction_states(
                listed
                    .into_iter()
                    .map(|t| {
                        TransactionState::default()
                            .with_transactional_id(TransactionalId(str_bytes(t.transactional_id)))
                            .with_producer_id(ProducerId(t.producer_id))
                            .with_transaction_state(str_bytes(t.state.name()))
                    })
                    .collect(),
            ),
    }
}
