//! Recoverers (Spring's `ConsumerRecordRecoverer`): what happens to a record whose handling failed for good.

use std::future::Future;

use futures::future::BoxFuture;

use crate::listener::{BoxError, ListenerError};
use crate::record::Record;

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
    /// Recovers one record. An error means "not recovered": the container calls the handler again after
    /// [`DefaultErrorHandler::recovery_retry_interval`](super::DefaultErrorHandler::recovery_retry_interval) and,
    /// if it fails again, recovers again — the record is never silently lost, and its offset is not committed
    /// meanwhile.
    fn recover<'a>(&'a self, record: &'a Record, error: &'a ListenerError) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Whether recovering reads the record's headers (as
    /// [`ErrorHandler::reads_headers`](super::ErrorHandler::reads_headers)); the default, `true`, is always safe.
    fn reads_headers(&self) -> bool {
        true
    }
}

/// Logs the failed record at ERROR with its coordinates, then skips it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingRecoverer;

impl ConsumerRecordRecoverer for LoggingRecoverer {
    fn reads_headers(&self) -> bool {
        false
    }

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

/// A recoverer made of a closure (see [`recoverer_fn`]).
pub struct RecovererFn<F>(F);

impl<F> std::fmt::Debug for RecovererFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecovererFn")
    }
}

/// A recoverer from a closure. The closure gets the record and the error by reference and returns a `'static`
/// future, so clone what the future needs.
///
/// ```
/// let parked = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
/// let p = parked.clone();
/// let recoverer = spate::error_handler::recoverer_fn(move |record: &spate::Record, error: &spate::ListenerError| {
///     let (p, offset, why) = (p.clone(), record.offset(), error.to_string());
///     async move {
///         p.lock().push((offset, why));
///         Ok::<_, spate::BoxError>(())
///     }
/// });
/// let handler = spate::DefaultErrorHandler::new().recoverer(recoverer);
/// # let _ = handler;
/// ```
pub fn recoverer_fn<F, Fut, E>(f: F) -> RecovererFn<F>
where
    F: Fn(&Record, &ListenerError) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    RecovererFn(f)
}

impl<F, Fut, E> ConsumerRecordRecoverer for RecovererFn<F>
where
    F: Fn(&Record, &ListenerError) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn recover<'a>(&'a self, record: &'a Record, error: &'a ListenerError) -> BoxFuture<'a, Result<(), BoxError>> {
        let fut = (self.0)(record, error);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}
