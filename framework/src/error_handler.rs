//! What happens when a handler fails: Spring's `DefaultErrorHandler` (retry in place with a back-off, then hand
//! the record to a `ConsumerRecordRecoverer`). Deserialization failures skip the retries — they would fail the
//! same way forever — and go straight to the recoverer with the raw record. The recoverer is the hook where the
//! dead-letter publisher (`DeadLetterPublishingRecoverer`, next issue) plugs in.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::listener::{BoxError, ListenerError};
use crate::record::Record;

/// What the container does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDecision {
    /// Call the handler again with the same records after this delay.
    Retry(Duration),
    /// Consider the records handled (they were recovered) and commit past them.
    Skip,
}

/// Decides what happens when a handler fails on `records` (one record, or a batch).
pub trait ErrorHandler: Send + Sync + 'static {
    /// Called after the `attempt`-th failed call (1 for the first).
    fn handle<'a>(
        &'a self,
        records: &'a [Record],
        error: &'a ListenerError,
        attempt: u32,
    ) -> BoxFuture<'a, ErrorDecision>;
}

/// Receives records whose handling failed for good (Spring's `ConsumerRecordRecoverer`).
///
/// ```
/// use futures::future::BoxFuture;
/// struct Park;
/// impl spate::ConsumerRecordRecoverer for Park {
///     fn recover<'a>(&'a self, record: &'a spate::Record, error: &'a spate::ListenerError)
///         -> BoxFuture<'a, Result<(), spate::BoxError>> {
///         Box::pin(async move { eprintln!("parking {}@{}: {error}", record.topic(), record.offset()); Ok(()) })
///     }
/// }
/// ```
pub trait ConsumerRecordRecoverer: Send + Sync + 'static {
    /// Recovers one record. An error makes the container retry the whole error-handling cycle after the back-off
    /// interval, so a record is never silently lost.
    fn recover<'a>(&'a self, record: &'a Record, error: &'a ListenerError) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// Logs the failed record at ERROR with its coordinates, then skips it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingRecoverer;

impl ConsumerRecordRecoverer for LoggingRecoverer {
    fn recover<'a>(&'a self, record: &'a Record, error: &'a ListenerError) -> BoxFuture<'a, Result<(), BoxError>> {
        tracing::error!(
            topic = record.topic(),
            partition = record.partition(),
            offset = record.offset(),
            error = %error,
            "record skipped after failed handling"
        );
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Retries at a fixed interval (Spring's `FixedBackOff`): `max_attempts` calls in total, then recover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedBackOff {
    /// Delay between attempts.
    pub interval: Duration,
    /// Calls in total, the first included.
    pub max_attempts: u32,
}

impl Default for FixedBackOff {
    /// Spring's default: 10 calls, no delay.
    fn default() -> Self {
        FixedBackOff { interval: Duration::ZERO, max_attempts: 10 }
    }
}

/// Retries with the back-off, then recovers each record; deserialization and extraction errors are recovered at
/// once.
///
/// ```
/// use std::time::Duration;
/// let handler = spate::DefaultErrorHandler::new()
///     .back_off(spate::FixedBackOff { interval: Duration::from_millis(100), max_attempts: 3 })
///     .recoverer(spate::LoggingRecoverer);
/// ```
pub struct DefaultErrorHandler {
    back_off: FixedBackOff,
    recoverer: Box<dyn ConsumerRecordRecoverer>,
}

impl Default for DefaultErrorHandler {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for DefaultErrorHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultErrorHandler").field("back_off", &self.back_off).finish_non_exhaustive()
    }
}

impl DefaultErrorHandler {
    /// [`FixedBackOff::default`] and [`LoggingRecoverer`].
    pub fn new() -> Self {
        DefaultErrorHandler { back_off: FixedBackOff::default(), recoverer: Box::new(LoggingRecoverer) }
    }

    /// Sets the back-off.
    pub fn back_off(mut self, back_off: FixedBackOff) -> Self {
        self.back_off = back_off;
        self
    }

    /// Sets the recoverer.
    pub fn recoverer(mut self, recoverer: impl ConsumerRecordRecoverer) -> Self {
        self.recoverer = Box::new(recoverer);
        self
    }
}

impl ErrorHandler for DefaultErrorHandler {
    fn handle<'a>(
        &'a self,
        records: &'a [Record],
        error: &'a ListenerError,
        attempt: u32,
    ) -> BoxFuture<'a, ErrorDecision> {
        Box::pin(async move {
            if error.is_retryable() && attempt < self.back_off.max_attempts {
                tracing::warn!(attempt, error = %error, "listener failed; retrying");
                return ErrorDecision::Retry(self.back_off.interval);
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
                    return ErrorDecision::Retry(self.back_off.interval.max(Duration::from_millis(100)));
                }
            }
            ErrorDecision::Skip
        })
    }
}
