//! Observability: a `tracing` span per record (per record inside batches too), W3C trace context carried in
//! record headers from `KafkaTemplate` to listeners, Prometheus metrics for listeners and the template, and a
//! management HTTP server with Spring Boot's actuator paths (`/actuator/health`, `.../liveness`,
//! `.../readiness`, `/actuator/prometheus`). The user guide is `docs/src/framework-observability.md`.
//!
//! Files: `trace_context.rs` (the `traceparent` type and the current context), `spans.rs` (what the container
//! does around each record), `metrics.rs` (the registry and metric names), `lag.rs` (the consumer lag sampler), `health.rs` (health indicators),
//! `server.rs` (the HTTP server and the `management` configuration section).
//!
//! ```no_run
//! # async fn f(template: spate::KafkaTemplate<String, String>) {
//! #[spate::kafka_listener(topics = "orders", group_id = "billing")]
//! async fn on_order(order: String) {
//!     // The record's trace id, also a field of the `spate.listener.record` span around this call.
//!     let trace = spate::observability::current_trace().unwrap();
//!     tracing::info!(%order, trace_id = %trace.trace_id(), "billing");
//! }
//! # }
//! ```

mod health;
mod histogram;
mod lag;
mod metrics;
mod server;
mod spans;
mod trace_context;

pub use self::metrics::{
    prometheus_handle, render as render_prometheus, CONSUMER_LAG, LISTENER_ERRORS, LISTENER_RECORDS, LISTENER_SECONDS,
    TEMPLATE_RECORDS, TEMPLATE_SECONDS, TRACE_CONTEXT_INVALID,
};
pub use health::{Component, HealthIndicator, Status};
pub use server::{
    HealthProperties, KafkaHealthProperties, ManagementProperties, ManagementServer, ManagementServerProperties,
};
pub use spans::{BATCH_SPAN, RECORD_SPAN};
pub use trace_context::{current_trace, SpanId, TraceContext, TraceId, TraceParentError, FLAG_SAMPLED};

pub(crate) use self::metrics::template_delivered;
pub(crate) use self::metrics::{Invocation, LocalStats};
pub(crate) use lag::LagSampler;
pub use lag::LAG_SAMPLE_INTERVAL;
pub(crate) use spans::{HandlingScope, ListenerObserver};
pub(crate) use trace_context::inject_for_send;

/// The trace context a record carries in its `traceparent` header (`None` when absent or invalid). A batch
/// listener can run the work for one record in a child of it:
///
/// ```
/// use spate::observability::{record_trace, TraceContext};
/// async fn handle_each(records: &[spate::Record]) {
///     for r in records {
///         let ctx = record_trace(r).map(|c| c.child()).unwrap_or_else(TraceContext::new_root);
///         ctx.scope(async { /* sends here carry the record's trace id */ }).await;
///     }
/// }
/// ```
pub fn record_trace(record: &crate::record::Record) -> Option<TraceContext> {
    TraceContext::from_headers(record.headers()).ok().flatten()
}
