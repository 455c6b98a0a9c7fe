//! Forwards a failed record to its next topic (a retry topic or the DLT) with its raw key, value and headers,
//! plus the headers that say where it came from, why it failed and when it is due — the same header set as the
//! blocking `DeadLetterPublishingRecoverer`. The forward is awaited: the failed record counts as handled (and its
//! offset may be committed) only once the broker has the copy.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;

use super::configuration::{DltStrategy, RetryTopicConfiguration};
use super::naming::{Destination, TopicChain};
use crate::error_handler::dead_letter::failure_headers;
use crate::error_handler::{ErrorDecision, ErrorHandler};
use crate::kafka_headers as kh;
use crate::listener::ListenerError;
use crate::record::Record;
use crate::template::{OutgoingRecord, ProducerFactory, SendError};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The record to send to `destination`: the failed record's key, value, timestamp and headers; the
/// `kafka_dlt-original-*` headers are added only when absent, so after several hops they still name the main
/// topic; exception and retry headers are replaced.
pub(crate) fn forward_record(
    record: &Record,
    error: &ListenerError,
    group_id: &str,
    destination: &Destination,
    now_ms: i64,
) -> OutgoingRecord {
    let (topic, retry) = match destination {
        Destination::Retry { topic, delay_ms, attempt } => (topic.clone(), Some((*attempt, *delay_ms))),
        Destination::Dlt(topic) => (topic.clone(), None),
    };
    let old = record.headers();
    let mut headers = failure_headers(record, error, Some(group_id), true);
    let timestamp = record.timestamp();
    if retry.is_some() {
        // Retry headers are replaced on the way to the next retry topic, and kept (the last hop's) on the DLT.
        for name in [kh::RETRY_TOPIC_ATTEMPTS, kh::RETRY_TOPIC_BACKOFF_TIMESTAMP, kh::RETRY_TOPIC_ORIGINAL_TIMESTAMP] {
            headers.remove(name);
        }
    }
    if let Some((attempt, delay_ms)) = retry {
        // The main topic's timestamp survives every hop.
        let original_ts = old.get_i64(kh::RETRY_TOPIC_ORIGINAL_TIMESTAMP).or(timestamp).unwrap_or(now_ms);
        headers.insert(kh::RETRY_TOPIC_ATTEMPTS, (attempt as i32).to_be_bytes().to_vec());
        headers.insert(kh::RETRY_TOPIC_BACKOFF_TIMESTAMP, (now_ms + delay_ms as i64).to_be_bytes().to_vec());
        headers.insert(kh::RETRY_TOPIC_ORIGINAL_TIMESTAMP, original_ts.to_be_bytes().to_vec());
    }
    OutgoingRecord {
        topic,
        // Same partition as the failed record: the retry topics and the DLT have the main topic's partition
        // count, so a key keeps its partition.
        partition: Some(record.partition()),
        key: record.key().map(|k| k.to_vec()),
        value: record.value().map(|v| v.to_vec()),
        timestamp,
        headers,
    }
}

/// The error handler of a retryable listener's containers (main, retry topics and DLT): instead of retrying in
/// place, forwards the failed record to its next topic and skips it once the broker has it, or drops it where the
/// [`DltStrategy`] says the chain ends.
pub(crate) struct RetryTopicForwarder {
    pub config: RetryTopicConfiguration,
    pub chains: Vec<TopicChain>,
    pub producer: ProducerFactory,
    pub group_id: Arc<str>,
}

/// What becomes of a record that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Forwarded to a retry topic or the DLT.
    Forward(Destination),
    /// Logged and dropped, for this reason.
    GiveUp(&'static str),
}

/// Where a record that failed goes next: along its chain, and at the end as the DLT strategy says.
pub(crate) fn next(
    config: &RetryTopicConfiguration,
    chains: &[TopicChain],
    record: &Record,
    error: &ListenerError,
) -> Next {
    let Some(chain) = chains.iter().find(|c| c.owns(record.topic())) else {
        return Next::GiveUp("record from a topic outside the retry chain");
    };
    if record.topic() == chain.dlt {
        return match config.dlt_strategy {
            // Spring sends a fatal failure (one no retry can mend) nowhere, not round the DLT for ever.
            DltStrategy::AlwaysRetryOnError if error.is_retryable() => {
                Next::Forward(Destination::Dlt(chain.dlt.clone()))
            }
            DltStrategy::AlwaysRetryOnError => Next::GiveUp("the DLT handler failed with an error no retry can mend"),
            DltStrategy::FailOnError | DltStrategy::NoDlt => {
                Next::GiveUp("the DLT handler failed (DltStrategy::FailOnError)")
            }
        };
    }
    let delivered = if record.topic() == chain.main {
        1
    } else {
        record.headers().get_i32(kh::RETRY_TOPIC_ATTEMPTS).map(|a| a.max(2) as u32).unwrap_or(2)
    };
    match chain.next(delivered, config.is_retryable(error)) {
        Destination::Dlt(_) if config.dlt_strategy == DltStrategy::NoDlt => {
            Next::GiveUp("no retry left and no DLT (DltStrategy::NoDlt)")
        }
        destination => Next::Forward(destination),
    }
}

impl RetryTopicForwarder {
    async fn forward(&self, record: &Record, error: &ListenerError) -> Result<(), SendError> {
        let destination = match next(&self.config, &self.chains, record, error) {
            Next::Forward(d) => d,
            Next::GiveUp(reason) => {
                tracing::error!(
                    topic = record.topic(),
                    partition = record.partition(),
                    offset = record.offset(),
                    error = %error,
                    reason,
                    "failed record dropped"
                );
                return Ok(());
            }
        };
        let out = forward_record(record, error, &self.group_id, &destination, now_ms());
        let to = out.topic.clone();
        self.producer.send_bytes(out).await?;
        match destination {
            Destination::Retry { attempt, delay_ms, .. } => tracing::info!(
                topic = record.topic(), partition = record.partition(), offset = record.offset(),
                retry_topic = %to, attempt, delay_ms, error = %error, "record forwarded to retry topic"),
            Destination::Dlt(_) => tracing::warn!(
                topic = record.topic(), partition = record.partition(), offset = record.offset(),
                dlt = %to, error = %error, "record forwarded to dead-letter topic"),
        }
        Ok(())
    }
}

impl ErrorHandler for RetryTopicForwarder {
    fn handle<'a>(
        &'a self,
        records: &'a [Record],
        error: &'a ListenerError,
        _attempt: u32,
    ) -> BoxFuture<'a, ErrorDecision> {
        Box::pin(async move {
            for r in records {
                if let Err(e) = self.forward(r, error).await {
                    // Not forwarded, so not skipped: the record is delivered again here rather than lost.
                    tracing::error!(topic = r.topic(), partition = r.partition(), offset = r.offset(), error = %e,
                        "forwarding a failed record failed; it will be handled again");
                    return ErrorDecision::Retry(std::time::Duration::from_secs(1));
                }
            }
            ErrorDecision::Skip
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Headers;

    fn failed() -> Record {
        let mut h = Headers::new();
        h.insert("trace", "t1");
        Record::new("orders", 2, 41).with_key("k").with_value("v").with_timestamp(1_000).with_headers(h)
    }

    fn chain_end(strategy: DltStrategy, on: Record, error: ListenerError) -> Next {
        let config = RetryTopicConfiguration::new().attempts(2).dlt_strategy(strategy);
        let chains = [TopicChain::new("orders", &config)];
        next(&config, &chains, &on, &error)
    }

    fn on_retry_topic() -> Record {
        let mut h = Headers::new();
        h.insert(kh::RETRY_TOPIC_ATTEMPTS, 2i32.to_be_bytes().to_vec());
        Record::new("orders-retry-1000", 0, 3).with_headers(h)
    }

    fn fatal() -> ListenerError {
        ListenerError::Deserialization {
            error: crate::DeserializationError {
                part: crate::RecordPart::Value,
                type_name: "t",
                message: "bad".into(),
            },
            record: Box::new(Record::new("orders-dlt", 0, 0)),
        }
    }

    #[test]
    fn the_dlt_strategy_decides_where_the_chain_ends() {
        let boom = || ListenerError::handler("boom");
        let dlt = || Record::new("orders-dlt", 0, 9);
        let to_dlt = Next::Forward(Destination::Dlt("orders-dlt".into()));
        // The last retry failed: the DLT, unless there is none.
        assert_eq!(chain_end(DltStrategy::AlwaysRetryOnError, on_retry_topic(), boom()), to_dlt);
        assert_eq!(chain_end(DltStrategy::FailOnError, on_retry_topic(), boom()), to_dlt);
        assert!(matches!(chain_end(DltStrategy::NoDlt, on_retry_topic(), boom()), Next::GiveUp(_)));
        assert!(matches!(chain_end(DltStrategy::NoDlt, Record::new("orders", 0, 1), fatal()), Next::GiveUp(_)));
        // The DLT handler failed: back to the DLT, given up, or (fatal) given up whatever the strategy.
        assert_eq!(chain_end(DltStrategy::AlwaysRetryOnError, dlt(), boom()), to_dlt);
        assert!(matches!(chain_end(DltStrategy::AlwaysRetryOnError, dlt(), fatal()), Next::GiveUp(_)));
        assert!(matches!(chain_end(DltStrategy::FailOnError, dlt(), boom()), Next::GiveUp(_)));
        // Still a retry ahead: the strategy does not matter.
        assert!(matches!(
            chain_end(DltStrategy::NoDlt, Record::new("orders", 0, 1), boom()),
            Next::Forward(Destination::Retry { attempt: 2, .. })
        ));
        assert!(matches!(chain_end(DltStrategy::NoDlt, Record::new("elsewhere", 0, 1), boom()), Next::GiveUp(_)));
    }

    #[test]
    fn retry_forward_carries_attempt_due_time_and_original_coordinates() {
        let d = Destination::Retry { topic: "orders-retry-500".into(), delay_ms: 500, attempt: 2 };
        let out = forward_record(&failed(), &ListenerError::handler("boom"), "billing", &d, 10_000);
        assert_eq!(out.topic, "orders-retry-500");
        assert_eq!(out.partition, Some(2));
        assert_eq!(out.key.as_deref(), Some(&b"k"[..]));
        let h = &out.headers;
        assert_eq!(h.get_str("trace"), Some("t1"));
        assert_eq!(h.get_i32(kh::RETRY_TOPIC_ATTEMPTS), Some(2));
        assert_eq!(h.get_i64(kh::RETRY_TOPIC_BACKOFF_TIMESTAMP), Some(10_500));
        assert_eq!(h.get_i64(kh::RETRY_TOPIC_ORIGINAL_TIMESTAMP), Some(1_000));
        assert_eq!(h.get_str(kh::DLT_ORIGINAL_TOPIC), Some("orders"));
        assert_eq!(h.get_i64(kh::DLT_ORIGINAL_OFFSET), Some(41));
        assert_eq!(h.get_str(kh::DLT_EXCEPTION_MESSAGE), Some("boom"));
    }

    #[test]
    fn second_hop_keeps_the_main_topic_coordinates_and_replaces_retry_headers() {
        let d = Destination::Retry { topic: "orders-retry-500".into(), delay_ms: 500, attempt: 2 };
        let first = forward_record(&failed(), &ListenerError::handler("boom"), "billing", &d, 10_000);
        let on_retry = Record::new("orders-retry-500", 2, 7).with_timestamp(1_000).with_headers(first.headers);
        let dlt = forward_record(
            &on_retry,
            &ListenerError::handler("again"),
            "billing",
            &Destination::Dlt("orders-dlt".into()),
            20_000,
        );
        let h = &dlt.headers;
        assert_eq!(h.get_str(kh::DLT_ORIGINAL_TOPIC), Some("orders"));
        assert_eq!(h.get_i64(kh::DLT_ORIGINAL_OFFSET), Some(41));
        assert_eq!(h.iter().filter(|(n, _)| *n == kh::DLT_ORIGINAL_TOPIC).count(), 1);
        assert_eq!(h.get_str(kh::DLT_EXCEPTION_MESSAGE), Some("again"));
        assert_eq!(h.iter().filter(|(n, _)| *n == kh::DLT_EXCEPTION_MESSAGE).count(), 1);
        assert_eq!(h.get_i32(kh::RETRY_TOPIC_ATTEMPTS), Some(2));
        assert_eq!(h.iter().filter(|(n, _)| *n == kh::RETRY_TOPIC_ATTEMPTS).count(), 1);
    }
}
