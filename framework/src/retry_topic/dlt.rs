//! The dead-letter side: [`DltInfo`], an extractor of the `kafka_dlt-*` headers for DLT handlers (Spring's
//! `@DltHandler` methods reading `@Header(KafkaHeaders.ORIGINAL_TOPIC)` & co), and the handler used when a
//! listener names none: log the record.

use crate::extract::FromRecord;
use crate::kafka_headers as kh;
use crate::listener::{Delivery, ListenerContext, ListenerError, ListenerService, Outcome};
use crate::record::Record;

/// Where a dead-lettered record came from and why it failed, read from its `kafka_dlt-*` headers; an argument
/// of a DLT handler. Fields are `None` when the header is absent (a record produced to the DLT by hand).
///
/// ```
/// #[spate::dlt_handler]
/// async fn on_order_dlt(order: String, dlt: spate::DltInfo) {
///     eprintln!("gave up on {order} from {:?}@{:?}: {:?}", dlt.original_topic, dlt.original_offset, dlt.exception_message);
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DltInfo {
    /// The main topic the record was first consumed from.
    pub original_topic: Option<String>,
    /// Its partition there.
    pub original_partition: Option<i32>,
    /// Its offset there.
    pub original_offset: Option<i64>,
    /// Its timestamp there (ms since the epoch).
    pub original_timestamp: Option<i64>,
    /// The consumer group that failed to handle it.
    pub original_consumer_group: Option<String>,
    /// The class of the last error (`spate::ListenerError::Handler`, ...).
    pub exception_fqcn: Option<String>,
    /// The last error's message.
    pub exception_message: Option<String>,
    /// The number of its last delivery, on the last retry topic (`retry_topic-attempts`: 3 when `attempts = 3`
    /// were all used); `None` when it went to the DLT from the main topic.
    pub attempts: Option<i32>,
}

impl DltInfo {
    /// Reads the headers of `record`.
    pub fn of(record: &Record) -> Self {
        let h = record.headers();
        DltInfo {
            original_topic: h.get_str(kh::DLT_ORIGINAL_TOPIC).map(str::to_string),
            original_partition: h.get_i32(kh::DLT_ORIGINAL_PARTITION),
            original_offset: h.get_i64(kh::DLT_ORIGINAL_OFFSET),
            original_timestamp: h.get_i64(kh::DLT_ORIGINAL_TIMESTAMP),
            original_consumer_group: h.get_str(kh::DLT_ORIGINAL_CONSUMER_GROUP).map(str::to_string),
            exception_fqcn: h.get_str(kh::DLT_EXCEPTION_FQCN).map(str::to_string),
            exception_message: h.get_str(kh::DLT_EXCEPTION_MESSAGE).map(str::to_string),
            attempts: h.get_i32(kh::RETRY_TOPIC_ATTEMPTS),
        }
    }
}

impl FromRecord for DltInfo {
    fn from_record(record: &Record, _ctx: &ListenerContext) -> Result<Self, ListenerError> {
        Ok(DltInfo::of(record))
    }
}

/// The DLT handler of listeners without one: log each record at ERROR with its origin.
pub(crate) fn logging_dlt_handler() -> ListenerService {
    ListenerService::new(tower::service_fn(|d: Delivery| async move {
        for r in d.records() {
            let info = DltInfo::of(r);
            tracing::error!(
                topic = r.topic(),
                partition = r.partition(),
                offset = r.offset(),
                original_topic = info.original_topic.as_deref().unwrap_or(""),
                original_offset = info.original_offset.unwrap_or(-1),
                error = info.exception_message.as_deref().unwrap_or(""),
                "record reached the dead-letter topic"
            );
        }
        Ok::<_, ListenerError>(Outcome::done())
    }))
}
