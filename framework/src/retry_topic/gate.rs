//! The due-time gate of retry-topic containers. A record on a retry topic carries the time it becomes due
//! (`retry_topic-backoff-timestamp`); one that is not due yet is not handled: the container pauses its
//! partition, seeks back to it and resumes the partition when it is due (see `container/worker.rs`,
//! `DueHolds`). Nothing sleeps on the handler path, and the consumer's other partitions keep flowing.

use std::time::Duration;

use super::forwarding::now_ms;
use crate::kafka_headers::RETRY_TOPIC_BACKOFF_TIMESTAMP;
use crate::record::Record;

/// How long until `record` is due; `None` when it is due now (or carries no due time). Due means strictly past
/// the due millisecond, so a delivery never comes earlier than the back-off even with millisecond truncation.
pub(crate) fn not_due_for(record: &Record) -> Option<Duration> {
    let due = record.headers().get_i64(RETRY_TOPIC_BACKOFF_TIMESTAMP)?;
    let wait = due - now_ms();
    (wait >= 0).then(|| Duration::from_millis(wait as u64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Headers;

    #[test]
    fn records_without_a_future_due_time_pass() {
        assert_eq!(not_due_for(&Record::new("t", 0, 0)), None);
        let mut h = Headers::new();
        h.insert(RETRY_TOPIC_BACKOFF_TIMESTAMP, (now_ms() - 1).to_be_bytes().to_vec());
        assert_eq!(not_due_for(&Record::new("t", 0, 0).with_headers(h)), None);
        let mut h = Headers::new();
        h.insert(RETRY_TOPIC_BACKOFF_TIMESTAMP, (now_ms() + 60_000).to_be_bytes().to_vec());
        let wait = not_due_for(&Record::new("t", 0, 0).with_headers(h));
        assert!(wait.is_some_and(|w| w > Duration::from_secs(50)));
    }
}
