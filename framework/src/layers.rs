//! tower layers for listeners, ready for [`ListenerDefinition::layer`](crate::ListenerDefinition::layer): each
//! keeps the listener's error type ([`ListenerError`]), so what a layer refuses (a timeout's `Elapsed`, ...)
//! reaches the error handler as a retryable handler error — retried with the back-off, then recovered (dead-lettered)
//! like any other failure. Layers apply per call, so a retry is timed (or limited) afresh.
//!
//! ```
//! use std::time::Duration;
//! use spate::{layers, Delivery, ListenerDefinition, ListenerError, Outcome};
//! let def = ListenerDefinition::new("audit", tower::service_fn(|_d: Delivery| async {
//!         Ok::<_, ListenerError>(Outcome::done())
//!     }))
//!     .topics(["audit-log"])
//!     .layer(layers::timeout(Duration::from_secs(5)))
//!     .layer(layers::concurrency_limit(4))
//!     .layer(layers::rate_limit(100, Duration::from_secs(1)));
//! # let _ = def;
//! ```
//!
//! Other tower layers whose service error is a `BoxError` compose through [`MapListenerError`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};

use crate::listener::{BoxError, ListenerError};

/// Turns a boxed error back into a [`ListenerError`]: the original one when the box holds it (the inner
/// service's error passed through a layer), otherwise a [`ListenerError::Handler`] (the layer's own error).
pub fn into_listener_error(e: BoxError) -> ListenerError {
    match e.downcast::<ListenerError>() {
        Ok(le) => *le,
        Err(e) => ListenerError::Handler(e),
    }
}

/// Wraps a layer whose service fails with `BoxError` (most tower middleware) so its service fails with
/// [`ListenerError`] again.
///
/// ```
/// use std::time::Duration;
/// let layer = spate::layers::MapListenerError::new(tower::timeout::TimeoutLayer::new(Duration::from_secs(1)));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct MapListenerError<L>(L);

impl<L> MapListenerError<L> {
    /// Wraps `layer`.
    pub fn new(layer: L) -> Self {
        MapListenerError(layer)
    }
}

impl<L: Layer<S>, S> Layer<S> for MapListenerError<L> {
    type Service = tower::util::MapErr<L::Service, fn(BoxError) -> ListenerError>;

    fn layer(&self, inner: S) -> Self::Service {
        tower::util::MapErr::new(self.0.layer(inner), into_listener_error as fn(BoxError) -> ListenerError)
    }
}

/// Fails a call that takes longer than `timeout` with tower's `Elapsed` (as a retryable
/// [`ListenerError::Handler`]); the handler's future is dropped.
pub fn timeout(timeout: Duration) -> MapListenerError<tower::timeout::TimeoutLayer> {
    MapListenerError::new(tower::timeout::TimeoutLayer::new(timeout))
}

/// At most `max` calls in progress at once, across every consumer of the listener (tower's
/// `ConcurrencyLimitLayer`).
pub fn concurrency_limit(max: usize) -> tower::limit::ConcurrencyLimitLayer {
    tower::limit::ConcurrencyLimitLayer::new(max)
}

/// At most `num` calls per `per`, evenly spaced, across every consumer of the listener. A call waits for its
/// slot (nothing fails); unlike tower's `RateLimit`, the service stays `Clone`, as listener services must.
pub fn rate_limit(num: u64, per: Duration) -> RateLimitLayer {
    RateLimitLayer { interval: per / num.clamp(1, u32::MAX as u64) as u32 }
}

/// See [`rate_limit`].
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    interval: Duration,
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit { inner, interval: self.interval, next: Arc::new(parking_lot::Mutex::new(None)) }
    }
}

/// See [`rate_limit`].
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    interval: Duration,
    next: Arc<parking_lot::Mutex<Option<tokio::time::Instant>>>,
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let at = {
            let mut next = self.next.lock();
            let now = tokio::time::Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.interval);
            at
        };
        // Created now (on the readied service), run once the slot comes.
        let fut = self.inner.call(req);
        Box::pin(async move {
            tokio::time::sleep_until(at).await;
            fut.await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn rate_limit_spaces_calls_across_clones() {
        let svc = rate_limit(10, Duration::from_secs(1))
            .layer(tower::service_fn(|_: ()| async { Ok::<_, ListenerError>(tokio::time::Instant::now()) }));
        let start = tokio::time::Instant::now();
        let mut at = Vec::new();
        for _ in 0..4 {
            // A clone per call, as the container's consumers have: the schedule is shared.
            at.push(svc.clone().oneshot(()).await.unwrap());
        }
        for (i, t) in at.iter().enumerate() {
            assert!(*t - start >= Duration::from_millis(100) * i as u32, "call {i} at {:?}", *t - start);
        }
    }

    #[tokio::test]
    async fn timeout_errors_become_handler_errors_and_inner_errors_stay_themselves() {
        let slow = timeout(Duration::from_millis(10)).layer(tower::service_fn(|_: ()| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, ListenerError>(())
        }));
        match slow.oneshot(()).await {
            Err(ListenerError::Handler(e)) => assert!(e.is::<tower::timeout::error::Elapsed>()),
            other => panic!("unexpected {other:?}"),
        }
        let failing = timeout(Duration::from_secs(10))
            .layer(tower::service_fn(|_: ()| async { Err::<(), _>(ListenerError::Extraction("x".into())) }));
        assert!(matches!(failing.oneshot(()).await, Err(ListenerError::Extraction(_))));
    }
}
