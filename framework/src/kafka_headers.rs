//! Names of the record headers the framework reads and writes, spelled as Spring Kafka's `KafkaHeaders` and
//! `RetryTopicHeaders` spell them, so Spate and Spring applications can share dead-letter, retry and reply topics.
//! Numbers are written as Spring writes them: partitions as 4-byte and offsets and timestamps as 8-byte big-endian
//! integers; strings as UTF-8.

/// Topic the dead-lettered record was consumed from.
pub const DLT_ORIGINAL_TOPIC: &str = "kafka_dlt-original-topic";
/// Partition it was consumed from (i32, big-endian).
pub const DLT_ORIGINAL_PARTITION: &str = "kafka_dlt-original-partition";
/// Its offset (i64, big-endian).
pub const DLT_ORIGINAL_OFFSET: &str = "kafka_dlt-original-offset";
/// Its timestamp in milliseconds (i64, big-endian).
pub const DLT_ORIGINAL_TIMESTAMP: &str = "kafka_dlt-original-timestamp";
/// `CreateTime` or `LogAppendTime`.
pub const DLT_ORIGINAL_TIMESTAMP_TYPE: &str = "kafka_dlt-original-timestamp-type";
/// The consumer group that failed to handle it.
pub const DLT_ORIGINAL_CONSUMER_GROUP: &str = "kafka_dlt-original-consumer-group";
/// The error's class (Spring: the exception's fully qualified class name).
pub const DLT_EXCEPTION_FQCN: &str = "kafka_dlt-exception-fqcn";
/// The class of the error's source, when it has one.
pub const DLT_EXCEPTION_CAUSE_FQCN: &str = "kafka_dlt-exception-cause-fqcn";
/// The error message.
pub const DLT_EXCEPTION_MESSAGE: &str = "kafka_dlt-exception-message";
/// The error's chain of sources, one per line (Spring: the stack trace).
pub const DLT_EXCEPTION_STACKTRACE: &str = "kafka_dlt-exception-stacktrace";

/// Delivery attempts so far on retry topics (i32, big-endian).
pub const RETRY_TOPIC_ATTEMPTS: &str = "retry_topic-attempts";
/// When the record becomes due on a retry topic, epoch milliseconds (i64, big-endian).
pub const RETRY_TOPIC_BACKOFF_TIMESTAMP: &str = "retry_topic-backoff-timestamp";
/// The timestamp of the record on its original topic (i64, big-endian).
pub const RETRY_TOPIC_ORIGINAL_TIMESTAMP: &str = "retry_topic-original-timestamp";

/// Correlates a reply with its request (opaque bytes).
pub const CORRELATION_ID: &str = "kafka_correlationId";
/// Where the replier sends the reply.
pub const REPLY_TOPIC: &str = "kafka_replyTopic";
/// Partition of the reply topic the requester reads (i32, big-endian).
pub const REPLY_PARTITION: &str = "kafka_replyPartition";

/// W3C trace context (<https://www.w3.org/TR/trace-context/>).
pub const TRACEPARENT: &str = "traceparent";
/// W3C vendor trace state.
pub const TRACESTATE: &str = "tracestate";
