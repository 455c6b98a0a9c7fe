//! What `#[retryable_topic(...)]` says, as a builder (Spring's `RetryTopicConfigurationBuilder`): how many
//! deliveries, the back-off between them, topic suffixes and creation, which errors are never retried, and the
//! DLT handler.

use std::sync::Arc;
use std::time::Duration;

use tower::Service;

use crate::listener::{Delivery, ListenerError, ListenerService, Outcome};

/// The delays between deliveries (Spring's `@Backoff`): the first retry waits `delay_ms`, each next one
/// `multiplier` times longer, never more than `max_delay_ms`.
///
/// ```
/// let b = spate::RetryBackOff::exponential(500, 2.0, 1500);
/// assert_eq!(b.delays(4), vec![500, 1000, 1500]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBackOff {
    /// Delay before the first retry, in milliseconds.
    pub delay_ms: u64,
    /// Factor applied to each next delay (1.0: fixed delay).
    pub multiplier: f64,
    /// Upper bound of a delay, in milliseconds (0: no bound).
    pub max_delay_ms: u64,
}

impl Default for RetryBackOff {
    /// Spring's `@Backoff` default: a fixed 1000 ms.
    fn default() -> Self {
        RetryBackOff { delay_ms: 1000, multiplier: 1.0, max_delay_ms: 0 }
    }
}

impl RetryBackOff {
    /// The same delay before every retry.
    pub fn fixed(delay_ms: u64) -> Self {
        RetryBackOff { delay_ms, multiplier: 1.0, max_delay_ms: 0 }
    }

    /// Growing delays.
    pub fn exponential(delay_ms: u64, multiplier: f64, max_delay_ms: u64) -> Self {
        RetryBackOff { delay_ms, multiplier, max_delay_ms }
    }

    /// The delay before each retry when a record is delivered `attempts` times in all (one per retry topic
    /// delivery: `attempts - 1` values).
    pub fn delays(&self, attempts: u32) -> Vec<u64> {
        let mut out = Vec::new();
        let mut d = self.delay_ms as f64;
        for _ in 1..attempts {
            let mut v = d.round() as u64;
            if self.max_delay_ms > 0 {
                v = v.min(self.max_delay_ms);
            }
            out.push(v);
            if self.multiplier > 0.0 {
                d *= self.multiplier;
            }
        }
        out
    }
}

/// What happens at the end of the chain (Spring's `DltStrategy`): whether there is a DLT, and what a failure of
/// the DLT handler does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DltStrategy {
    /// A record whose DLT handler fails is forwarded to the end of the DLT again, so it does not hold up the
    /// records behind it; a record that can never succeed (a deserialization or extraction error) is logged and
    /// dropped instead. Spring's default.
    #[default]
    AlwaysRetryOnError,
    /// A record whose DLT handler fails is logged and dropped.
    FailOnError,
    /// No DLT: no topic, no container; a record that used up its retries (or failed with an error that is not
    /// retried) is logged and dropped.
    NoDlt,
}

/// How retry topics are named (Spring's `TopicSuffixingStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicSuffixingStrategy {
    /// `<topic>-retry-<delay_ms>`: one topic per distinct delay; deliveries with the same delay (once
    /// `max_delay_ms` is reached, or with a fixed back-off) share it.
    #[default]
    SuffixWithDelayValue,
    /// `<topic>-retry-0`, `<topic>-retry-1`, ...: one topic per retry delivery.
    SuffixWithIndexValue,
}

/// Kinds of listener errors, for [`RetryTopicConfiguration::exclude`] / [`include`](RetryTopicConfiguration::include).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The key or value could not be deserialized ([`ListenerError::Deserialization`]); never retried.
    Deserialization,
    /// An argument could not be provided ([`ListenerError::Extraction`]); never retried.
    Extraction,
    /// The handler returned an error.
    Handler,
    /// The handler panicked.
    Panic,
    /// A `#[send_to]` reply could not be sent.
    Reply,
}

impl ErrorKind {
    /// The kind of an error.
    pub fn of(error: &ListenerError) -> Self {
        match error {
            ListenerError::Deserialization { .. } => ErrorKind::Deserialization,
            ListenerError::Extraction(_) => ErrorKind::Extraction,
            ListenerError::Handler(_) => ErrorKind::Handler,
            ListenerError::Panic(_) => ErrorKind::Panic,
            ListenerError::Reply(_) => ErrorKind::Reply,
        }
    }

    /// Parses `deserialization`, `extraction`, `handler`, `panic` or `reply`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "deserialization" => ErrorKind::Deserialization,
            "extraction" => ErrorKind::Extraction,
            "handler" => ErrorKind::Handler,
            "panic" => ErrorKind::Panic,
            "reply" => ErrorKind::Reply,
            _ => return None,
        })
    }
}

type ErrorPredicate = Arc<dyn Fn(&ListenerError) -> bool + Send + Sync>;

/// Non-blocking retries of one listener (Spring's `@RetryableTopic` / `RetryTopicConfigurationBuilder`): a
/// record whose handling fails is forwarded to a retry topic and delivered again from there once its back-off
/// has passed, up to `attempts` deliveries in all; then it goes to the dead-letter topic.
///
/// ```
/// use spate::{ListenerDefinition, RetryBackOff, RetryTopicConfiguration};
/// # fn build(def: ListenerDefinition) -> ListenerDefinition {
/// def.retryable_topic(
///     RetryTopicConfiguration::new()
///         .attempts(4)
///         .back_off(RetryBackOff::exponential(1000, 2.0, 5000))
///         .dlt_suffix("-dead"),
/// )
/// # }
/// ```
#[derive(Clone)]
pub struct RetryTopicConfiguration {
    pub(crate) attempts: u32,
    pub(crate) back_off: RetryBackOff,
    pub(crate) retry_topic_suffix: String,
    pub(crate) dlt_suffix: String,
    pub(crate) auto_create_topics: bool,
    pub(crate) num_partitions: Option<i32>,
    pub(crate) replication_factor: i32,
    pub(crate) suffixing: TopicSuffixingStrategy,
    pub(crate) exclude: Vec<ErrorKind>,
    pub(crate) include: Option<Vec<ErrorKind>>,
    pub(crate) not_retryable: Vec<ErrorPredicate>,
    pub(crate) dlt_handler: Option<ListenerService>,
    pub(crate) dlt_strategy: DltStrategy,
}

impl std::fmt::Debug for RetryTopicConfiguration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryTopicConfiguration")
            .field("attempts", &self.attempts)
            .field("back_off", &self.back_off)
            .field("retry_topic_suffix", &self.retry_topic_suffix)
            .field("dlt_suffix", &self.dlt_suffix)
            .field("auto_create_topics", &self.auto_create_topics)
            .field("num_partitions", &self.num_partitions)
            .field("replication_factor", &self.replication_factor)
            .field("suffixing", &self.suffixing)
            .field("exclude", &self.exclude)
            .field("include", &self.include)
            .field("dlt_handler", &self.dlt_handler.is_some())
            .field("dlt_strategy", &self.dlt_strategy)
            .finish_non_exhaustive()
    }
}

impl Default for RetryTopicConfiguration {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryTopicConfiguration {
    /// Spring's defaults: 3 deliveries, a fixed 1000 ms back-off, `-retry` and `-dlt` suffixes, topics created
    /// with the main topic's partition count and the broker's default replication factor.
    pub fn new() -> Self {
        RetryTopicConfiguration {
            attempts: 3,
            back_off: RetryBackOff::default(),
            retry_topic_suffix: "-retry".into(),
            dlt_suffix: "-dlt".into(),
            auto_create_topics: true,
            num_partitions: None,
            replication_factor: -1,
            suffixing: TopicSuffixingStrategy::default(),
            exclude: Vec::new(),
            include: None,
            not_retryable: Vec::new(),
            dlt_handler: None,
            dlt_strategy: DltStrategy::default(),
        }
    }

    /// Deliveries in all, the first (on the main topic) included; at least 1 (1: straight to the DLT).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The back-off between deliveries.
    pub fn back_off(mut self, back_off: RetryBackOff) -> Self {
        self.back_off = back_off;
        self
    }

    /// Shorthand for a fixed back-off.
    pub fn fixed_back_off(self, delay: Duration) -> Self {
        self.back_off(RetryBackOff::fixed(delay.as_millis() as u64))
    }

    /// Suffix of retry topics (default `-retry`).
    pub fn retry_topic_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.retry_topic_suffix = suffix.into();
        self
    }

    /// Suffix of the dead-letter topic (default `-dlt`).
    pub fn dlt_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.dlt_suffix = suffix.into();
        self
    }

    /// Whether retry topics and the DLT are created at start-up (default true).
    pub fn auto_create_topics(mut self, create: bool) -> Self {
        self.auto_create_topics = create;
        self
    }

    /// Partitions of created topics (default: the main topic's count).
    pub fn num_partitions(mut self, n: i32) -> Self {
        self.num_partitions = Some(n);
        self
    }

    /// Replication factor of created topics (default -1: the broker's default).
    pub fn replication_factor(mut self, n: i32) -> Self {
        self.replication_factor = n;
        self
    }

    /// How retry topics are named.
    pub fn suffixing_strategy(mut self, strategy: TopicSuffixingStrategy) -> Self {
        self.suffixing = strategy;
        self
    }

    /// Errors of these kinds go straight to the DLT. Deserialization and extraction errors always do.
    pub fn exclude(mut self, kinds: impl IntoIterator<Item = ErrorKind>) -> Self {
        self.exclude.extend(kinds);
        self
    }

    /// Only errors of these kinds are retried; the others go straight to the DLT.
    pub fn include(mut self, kinds: impl IntoIterator<Item = ErrorKind>) -> Self {
        self.include.get_or_insert_with(Vec::new).extend(kinds);
        self
    }

    /// Handler errors of type `E` go straight to the DLT (Spring's `exclude = E.class`).
    ///
    /// ```
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("invalid order")]
    /// struct Invalid;
    /// let c = spate::RetryTopicConfiguration::new().exclude_error::<Invalid>();
    /// ```
    pub fn exclude_error<E: std::error::Error + 'static>(mut self) -> Self {
        self.not_retryable.push(Arc::new(|e: &ListenerError| match e {
            ListenerError::Handler(b) => source_chain(b.as_ref()).any(|s| s.is::<E>()),
            _ => false,
        }));
        self
    }

    /// Handles records arriving on the DLT (Spring's `@DltHandler`); without one they are logged.
    pub fn dlt_handler<S>(mut self, service: S) -> Self
    where
        S: Service<Delivery, Response = Outcome, Error = ListenerError> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        self.dlt_handler = Some(ListenerService::new(service));
        self
    }

    /// Whether there is a DLT, and what a failing DLT handler does (default
    /// [`DltStrategy::AlwaysRetryOnError`]).
    pub fn dlt_strategy(mut self, strategy: DltStrategy) -> Self {
        self.dlt_strategy = strategy;
        self
    }

    /// Whether an error may be retried on a retry topic.
    pub fn is_retryable(&self, error: &ListenerError) -> bool {
        if !error.is_retryable() {
            return false;
        }
        let kind = ErrorKind::of(error);
        if self.exclude.contains(&kind) {
            return false;
        }
        if let Some(include) = &self.include {
            if !include.contains(&kind) {
                return false;
            }
        }
        !self.not_retryable.iter().any(|p| p(error))
    }

    /// The delay before each retry delivery.
    pub(crate) fn delays(&self) -> Vec<u64> {
        self.back_off.delays(self.attempts)
    }
}

fn source_chain<'a>(
    e: &'a (dyn std::error::Error + Send + Sync + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let first: &'a (dyn std::error::Error + 'static) = e;
    std::iter::successors(Some(first), |e| e.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_delays_are_capped() {
        assert_eq!(RetryBackOff::exponential(500, 2.0, 0).delays(3), vec![500, 1000]);
        assert_eq!(RetryBackOff::exponential(1000, 3.0, 5000).delays(5), vec![1000, 3000, 5000, 5000]);
        assert_eq!(RetryBackOff::default().delays(3), vec![1000, 1000]);
        assert!(RetryBackOff::default().delays(1).is_empty());
    }

    #[test]
    fn deserialization_errors_are_never_retried() {
        let c = RetryTopicConfiguration::new().include([ErrorKind::Deserialization, ErrorKind::Handler]);
        let e = ListenerError::Deserialization {
            error: crate::DeserializationError {
                part: crate::RecordPart::Value,
                type_name: "t",
                message: "bad".into(),
            },
            record: Box::new(crate::Record::new("t", 0, 0)),
        };
        assert!(!c.is_retryable(&e));
        assert!(c.is_retryable(&ListenerError::handler("x")));
        assert!(!c.is_retryable(&ListenerError::Panic("p".into())));
        let c = RetryTopicConfiguration::new().exclude([ErrorKind::Panic]);
        assert!(!c.is_retryable(&ListenerError::Panic("p".into())));
        assert!(c.is_retryable(&ListenerError::handler("x")));
    }

    #[test]
    fn excluded_error_types_are_found_in_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("invalid")]
        struct Invalid;
        let c = RetryTopicConfiguration::new().exclude_error::<Invalid>();
        assert!(!c.is_retryable(&ListenerError::handler(Invalid)));
        assert!(c.is_retryable(&ListenerError::handler("other")));
    }
}
