//! Fetch: whole record batches from each requested partition, waiting up to `max_wait_ms` for `min_bytes` to
//! arrive (long polling), within the partition and response size limits.
//!
//! Fetch sessions (KIP-227) are answered as sessionless (session id 0), which every client accepts: it then
//! sends full fetch requests. A fetch from the middle of a batch returns the whole batch, as Kafka does; the
//! client skips the records before its offset.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use super::topic_name;
use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::log_error_code;

/// Kafka's `fetch.max.bytes` default, used when a client sends nothing sensible.
const DEFAULT_FETCH_MAX_BYTES: usize = 55 * 1024 * 1024;

struct Wanted {
    topic: String,
    /// Fetch v13+ names topics by id; an id we do not know is answered UNKNOWN_TOPIC_ID.
    unknown_topic_id: bool,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
}

pub async fn handle(ctx: &RequestContext, request: FetchRequest) -> FetchResponse {
    let s = &ctx.state;
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut topic_order: Vec<(String, uuid::Uuid)> = Vec::new();
    for t in &request.topics {
        let (name, unknown_topic_id) = if ctx.version() >= 13 {
            match s.metadata.topic_by_id(t.topic_id) {
                Some(meta) => (meta.name, false),
                None => (String::new(), true),
            }
        } else {
            (t.topic.0.as_str().to_string(), false)
        };
        topic_order.push((name.clone(), t.topic_id));
        for p in &t.partitions {
            wanted.push(Wanted {
                topic: name.clone(),
                unknown_topic_id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
            });
        }
    }
    let response_max = if request.max_bytes > 0 { request.max_bytes as usize } else { DEFAULT_FETCH_MAX_BYTES };
    let min_bytes = request.min_bytes.max(0) as usize;
    // isolation_level 1 = read_committed: data only up to the last stable offset, plus the aborted transactions
    // in the returned range so the client can drop their records.
    let read_committed = request.isolation_level == 1;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);

    // Subscribe before the first read so an append between read and wait is not missed.
    let mut watchers: Vec<watch::Receiver<i64>> =
        wanted.iter().filter_map(|w| s.replicas.partition(&w.topic, w.partition)).map(|p| p.log.subscribe()).collect();
    let mut shutdown = s.shutdown.clone();
    loop {
        for w in watchers.iter_mut() {
            w.borrow_and_update();
        }
        let (partitions, bytes, any_error) = read_all(ctx, &wanted, response_max, read_committed).await;
        let done = bytes >= min_bytes
            || any_error
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline
            || *shutdown.borrow();
        if done {
            return respond(ctx, &topic_order, partitions);
        }
        let changed = futures::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn read_all(
    ctx: &RequestContext,
    wanted: &[Wanted],
    response_max: usize,
    read_committed: bool,
) -> (Vec<(String, PartitionData)>, usize, bool) {
    let s = &ctx.state;
    let mut out = Vec::with_capacity(wanted.len());
    let mut total = 0usize;
    let mut any_error = false;
    for w in wanted {
        let base = PartitionData::default()
            .with_partition_index(w.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_preferred_read_replica(BrokerId(-1))
            .with_aborted_transactions(None);
        let Some(partition) = s.replicas.partition(&w.topic, w.partition) else {
            any_error = true;
            let code =
                if w.unknown_topic_id { ResponseError::UnknownTopicId } else { ResponseError::UnknownTopicOrPartition };
            out.push((w.topic.clone(), base.with_error_code(code.code())));
            continue;
        };
        let log = &partition.log;
        let hw = log.high_watermark();
        let base = base
            .with_high_watermark(hw)
            .with_last_stable_offset(log.last_stable_offset())
            .with_log_start_offset(log.log_start_offset());
        if w.current_leader_epoch >= 0 && w.current_leader_epoch != partition.leader_epoch {
            any_error = true;
            let code = if w.current_leader_epoch > partition.leader_epoch {
                ResponseError::UnknownLeaderEpoch
            } else {
                ResponseError::FencedLeaderEpoch
            };
            out.push((w.topic.clone(), base.with_error_code(code.code())));
            continue;
        }
        let budget = w.max_bytes.min(response_max.saturating_sub(total));
        // KIP-74: the first non-empty partition may exceed the limits by one batch so a consumer always makes
        // progress past a batch larger than its limits.
        let min_one = total == 0;
        if budget == 0 && !min_one {
            out.push((w.topic.clone(), base.with_records(Some(Bytes::new()))));
            continue;
        }
        let read = if read_committed {
            log.read_committed(w.fetch_offset, budget, min_one).await.map(|(records, aborted)| {
                let aborted = aborted
                    .into_iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect();
                (records, Some(aborted))
            })
        } else {
            log.read(w.fetch_offset, budget, min_one).await.map(|records| (records, None))
        };
        match read {
            Ok((records, aborted)) => {
                total += records.len();
                out.push((w.topic.clone(), base.with_records(Some(records)).with_aborted_transactions(aborted)));
            }
            Err(e) => {
                any_error = true;
                out.push((w.topic.clone(), base.with_error_code(log_error_code(&e).code())));
            }
        }
    }
    (out, total, any_error)
}

fn respond(
    ctx: &RequestContext,
    topic_order: &[(String, uuid::Uuid)],
    partitions: Vec<(String, PartitionData)>,
) -> FetchResponse {
    let s = &ctx.state;
    let mut responses: Vec<FetchableTopicResponse> = Vec::with_capacity(topic_order.len());
    let mut parts = partitions.into_iter().peekable();
    // Partitions come back in request order; regroup them under their topics in that order.
    for (name, requested_id) in topic_order {
        let mut topic_parts = Vec::new();
        while let Some((t, _)) = parts.peek() {
            if t != name {
                break;
            }
            if let Some((_, p)) = parts.next() {
                topic_parts.push(p);
            }
        }
        let topic_id = s.metadata.topic(name).map(|t| t.topic_id).unwrap_or(*requested_id);
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic_name(name))
                .with_topic_id(topic_id)
                .with_partitions(topic_parts),
        );
    }
    FetchResponse::default().with_session_id(0).with_responses(responses)
}
