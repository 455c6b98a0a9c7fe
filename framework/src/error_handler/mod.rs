//! What happens when a handler fails: Spring's `DefaultErrorHandler` — retry in place with a [`BackOff`] (chosen
//! per error type if wanted), then hand the record to a [`ConsumerRecordRecoverer`] (log, dead-letter topic, or
//! your own). Failures that retrying cannot fix (deserialization, extraction, [`ValidationError`], and the types
//! given to [`DefaultErrorHandler::add_not_retryable`]) skip the retries.
//!
//! - [`back_off`]: `FixedBackOff`, `ExponentialBackOff` (max retries, max elapsed time, jitter), `FnBackOff`;
//! - [`classify`]: which errors are retryable, `ValidationError`;
//! - [`recoverer`]: `ConsumerRecordRecoverer`, `LoggingRecoverer`, `recoverer_fn`;
//! - [`dead_letter`]: `DeadLetterPublishingRecoverer` and the reusable `publish_dead_letter`;
//! - [`batch`]: `BatchFailed`, the per-record outcome of batch listeners.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::listener::ListenerError;
use crate::record::Record;
use crate::template::ProducerFactory;

pub mod back_off;
pub mod batch;
pub mod classify;
pub mod dead_letter;
pub mod recoverer;

pub use back_off::{BackOff, BackOffExecution, ExponentialBackOff, FixedBackOff, FnBackOff, Jitter};
pub use batch::BatchFailed;
pub use classify::{error_chain, register_type_name, ValidationError};
pub use dead_letter::{
    dead_letter_headers, ensure_dead_letter_topic, publish_dead_letter, DeadLetterError, DeadLetterPublishingRecoverer,
    DltDestination, DEFAULT_DLT_SUFFIX,
};
pub use recoverer::{recoverer_fn, ConsumerRecordRecoverer, LoggingRecoverer, RecovererFn};

/// What the container does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDecision {
    /// Call the handler again with the same records after this delay.
    Retry(Duration),
    /// Consider the records handled (they were recovered) and commit past them.
    Skip,
}

/// Decides what happens when a handler fails on `records` (one record, or a batch). Spring's
/// `CommonErrorHandler`.
pub trait ErrorHandler: Send + Sync + 'static {
    /// Called after the `attempt`-th failed call (1 for the first) with the same records.
    fn handle<'a>(
        &'a self,
        records: &'a [Record],
        error: &'a ListenerError,
        attempt: u32,
    ) -> BoxFuture<'a, ErrorDecision>;

    /// Whether handling a failure reads the records' headers (dead-letter publishing copies them). `false` lets a
    /// listener that reads no headers skip their parse (see
    /// [`ListenerDefinition::reads_headers`](crate::ListenerDefinition::reads_headers)); the default, `true`, is
    /// always safe.
    fn reads_headers(&self) -> bool {
        true
    }
}

/// The listener whose failure is being handled, for recoverers (Spring keeps the group id in a thread local; here
/// it is a task local set by the container around each error handler call).
#[derive(Debug, Clone)]
pub struct FailedListener {
    /// The listener's id.
    pub listener_id: Arc<str>,
    /// Its consumer group.
    pub group_id: Arc<str>,
    /// The producer factory of the listener's cluster.
    pub producer: Option<ProducerFactory>,
}

tokio::task_local! {
    static CURRENT_LISTENER: FailedListener;
}

/// The listener whose failure is being handled, when called from a container's error handling.
pub fn current_listener() -> Option<FailedListener> {
    CURRENT_LISTENER.try_with(Clone::clone).ok()
}

/// Runs `fut` (an error handler call) with `listener` as [`current_listener`].
pub(crate) async fn with_listener<F: std::future::Future>(listener: FailedListener, fut: F) -> F::Output {
    CURRENT_LISTENER.scope(listener, fut).await
}

/// Retries with the back-off, then recovers each record; failures that are not retryable are recovered at once.
///
/// The back-off runs per record: the `n`-th failure of a record waits the `n`-th delay of a fresh
/// [`BackOffExecution`]. A failed recovery (the recoverer returned an error) is retried after
/// [`recovery_retry_interval`](Self::recovery_retry_interval): the handler is called again and, if it fails again,
/// the record goes straight back to the recoverer.
///
/// ```
/// use std::time::Duration;
/// use spate::{DefaultErrorHandler, ExponentialBackOff, FixedBackOff, LoggingRecoverer};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("rate limited by the payment provider")]
/// struct RateLimited;
///
/// let handler = DefaultErrorHandler::new()
///     .back_off(FixedBackOff { interval: Duration::from_millis(100), max_attempts: 3 })
///     // A different back-off when the error chain holds a RateLimited.
///     .back_off_for::<RateLimited>(ExponentialBackOff::new(Duration::from_secs(1), 2.0).max_retries(5))
///     // Never retry I/O errors.
///     .add_not_retryable::<std::io::Error>()
///     .recoverer(LoggingRecoverer);
/// ```
pub struct DefaultErrorHandler {
    back_off: Arc<dyn BackOff>,
    back_offs_for: Vec<classify::BackOffRule>,
    classifier: classify::Classifier,
    recoverer: Box<dyn ConsumerRecordRecoverer>,
    recovery_retry_interval: Duration,
}

impl Default for DefaultErrorHandler {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for DefaultErrorHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultErrorHandler")
            .field("back_off", &self.back_off)
            .field("back_offs_for", &self.back_offs_for.len())
            .field("recovery_retry_interval", &self.recovery_retry_interval)
            .finish_non_exhaustive()
    }
}

impl DefaultErrorHandler {
    /// [`FixedBackOff::default`] (10 calls, no delay) and [`LoggingRecoverer`].
    pub fn new() -> Self {
        DefaultErrorHandler {
            back_off: Arc::new(FixedBackOff::default()),
            back_offs_for: Vec::new(),
            classifier: classify::Classifier::default(),
            recoverer: Box::new(LoggingRecoverer),
            recovery_retry_interval: Duration::from_secs(1),
        }
    }

    /// Sets the back-off ([`FixedBackOff`], [`ExponentialBackOff`], [`FnBackOff`] or your own [`BackOff`]).
    pub fn back_off(mut self, back_off: impl BackOff) -> Self {
        self.back_off = Arc::new(back_off);
        self
    }

    /// Uses `back_off` when the error chain holds an `E` (Spring's `setBackOffFunction`). The outermost error with
    /// a rule decides; the back-off is chosen at every failure, from that failure's error.
    pub fn back_off_for<E: StdError + 'static>(mut self, back_off: impl BackOff) -> Self {
        classify::register_type_name::<E>();
        self.back_offs_for.push((classify::matcher::<E>(), Arc::new(back_off)));
        self
    }

    /// Never retries failures whose error chain holds an `E` (Spring's `addNotRetryableExceptions`).
    pub fn add_not_retryable<E: StdError + 'static>(mut self) -> Self {
        self.classifier.add::<E>(false);
        self
    }

    /// Retries failures whose error chain holds an `E` even if an earlier rule said otherwise (Spring's
    /// `addRetryableExceptions`); `add_retryable::<ValidationError>()` undoes the default. Deserialization and
    /// extraction failures are never retried.
    pub fn add_retryable<E: StdError + 'static>(mut self) -> Self {
        self.classifier.add::<E>(true);
        self
    }

    /// Sets the recoverer.
    pub fn recoverer(mut self, recoverer: impl ConsumerRecordRecoverer) -> Self {
        self.recoverer = Box::new(recoverer);
        self
    }

    /// Delay before trying again after the recoverer failed (default 1 s).
    pub fn recovery_retry_interval(mut self, interval: Duration) -> Self {
        self.recovery_retry_interval = interval;
        self
    }

    /// Whether `error` would be retried.
    pub fn is_retryable(&self, error: &ListenerError) -> bool {
        self.classifier.is_retryable(error)
    }

    /// The delay before retry number `attempt` (1 for the first failure), or `None` when exhausted.
    fn delay(&self, error: &ListenerError, attempt: u32) -> Option<Duration> {
        let back_off = classify::back_off_for(&self.back_offs_for, &self.back_off, error);
        let mut execution = back_off.start();
        let mut delay = None;
        for _ in 0..attempt.max(1) {
            delay = Some(execution.next_back_off()?);
        }
        delay
    }
}

impl ErrorHandler for DefaultErrorHandler {
    fn reads_headers(&self) -> bool {
        self.recoverer.reads_headers()
    }

    fn handle<'a>(
        &'a self,
        records: &'a [Record],
        error: &'a ListenerError,
        attempt: u32,
    ) -> BoxFuture<'a, ErrorDecision> {
        Box::pin(async move {
            let first = records.first();
            let (topic, partition, offset) =
                first.map(|r| (r.topic(), r.partition(), r.offset())).unwrap_or(("", -1, -1));
            if self.classifier.is_retryable(error) {
                if let Some(delay) = self.delay(error, attempt) {
                    tracing::warn!(topic, partition, offset, attempt, delay_ms = delay.as_millis() as u64,
                        error = %error, "listener failed; retrying");
                    return ErrorDecision::Retry(delay);
                }
            } else {
                tracing::warn!(topic, partition, offset, error = %error, "listener failed; not retryable");
            }
            // A deserialization failure names the one record that failed; recover only that one when it is
            // part of a batch.
            let failed: &[Record] = match error {
                ListenerError::Deserialization { record, .. } => std::slice::from_ref(record.as_ref()),
                _ => records,
            };
            for r in failed {
                if let Err(e) = self.recoverer.recover(r, error).await {
                    tracing::error!(topic = r.topic(), partition = r.partition(), offset = r.offset(), error = %e,
                        "recoverer failed; will retry");
                    return ErrorDecision::Retry(self.recovery_retry_interval);
                }
            }
            ErrorDecision::Skip
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("slow")]
    struct Slow;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn delay_follows_the_back_off_per_attempt() {
        let h = DefaultErrorHandler::new().back_off(ExponentialBackOff::new(ms(10), 2.0).max_retries(3));
        let e = ListenerError::handler("x");
        let d: Vec<_> = (1..=4).map(|a| h.delay(&e, a)).collect();
        assert_eq!(d, [Some(ms(10)), Some(ms(20)), Some(ms(40)), None]);
    }

    #[test]
    fn back_off_for_picks_by_error_type() {
        let h = DefaultErrorHandler::new()
            .back_off(FixedBackOff::new(ms(1), 2))
            .back_off_for::<Slow>(FixedBackOff::new(ms(500), 5));
        assert_eq!(h.delay(&ListenerError::handler(Slow), 4), Some(ms(500)));
        assert_eq!(h.delay(&ListenerError::handler("other"), 1), Some(ms(1)));
        assert_eq!(h.delay(&ListenerError::handler("other"), 2), None);
    }

    #[tokio::test]
    async fn not_retryable_errors_are_recovered_on_the_first_failure() {
        let h = DefaultErrorHandler::new().back_off(FixedBackOff::new(ms(1), 5)).add_not_retryable::<Slow>();
        let r = [Record::new("t", 0, 0)];
        assert_eq!(h.handle(&r, &ListenerError::handler(Slow), 1).await, ErrorDecision::Skip);
        assert_eq!(h.handle(&r, &ListenerError::handler("x"), 1).await, ErrorDecision::Retry(ms(1)));
    }

    #[tokio::test]
    async fn failed_recovery_is_retried_not_skipped() {
        let h = DefaultErrorHandler::new()
            .back_off(FixedBackOff::new(ms(1), 1))
            .recovery_retry_interval(ms(7))
            .recoverer(recoverer_fn(|_: &Record, _: &ListenerError| async { Err::<(), _>("dlt down") }));
        let r = [Record::new("t", 0, 0)];
        assert_eq!(h.handle(&r, &ListenerError::handler("x"), 1).await, ErrorDecision::Retry(ms(7)));
        assert_eq!(h.handle(&r, &ListenerError::handler("x"), 2).await, ErrorDecision::Retry(ms(7)));
    }
}
