//! The container's side: a `tracing` span and a current trace context around the handling of each record (and of
//! each batch, with a child span per record), and the listener metrics of each invocation.

use std::future::Future;
use std::sync::Arc;

use tracing::field::{display, Empty};
use tracing::{Instrument, Span};

use super::metrics::{Invocation, ListenerMetrics, LocalStats};
use super::trace_context::HandlingTrace;
use crate::listener::{ListenerError, Outcome};
use crate::record::Record;

/// Name of the span around one record's handling (retries and recovery included).
pub const RECORD_SPAN: &str = "spate.listener.record";
/// Name of the span around one batch's handling.
pub const BATCH_SPAN: &str = "spate.listener.batch";

/// What one consumer of a container needs to observe its handling. Created once per consumer.
pub(crate) struct ListenerObserver {
    listener_id: Arc<str>,
    group_id: Arc<str>,
    metrics: ListenerMetrics,
    /// Continue records' traces from their `traceparent` (`kafka.listener.observation_enabled`).
    continue_traces: bool,
}

/// The span and trace context of one record or batch, made current around its handling.
#[must_use]
pub(crate) struct HandlingScope {
    span: Span,
    /// `None` with listener observation off: the handling has no trace context (`current_trace()` is `None`, and
    /// a send starts a trace of its own).
    trace: Option<HandlingTrace>,
    // Per-record spans of a batch: open as long as the batch is handled.
    children: Vec<Span>,
}

impl HandlingScope {
    /// Runs `f` inside the span with the context current: the synchronous twin of [`run`](Self::run), for a
    /// handler polled once outside any future of the container's.
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.span.enter();
        match &self.trace {
            Some(trace) => trace.in_scope(f),
            None => f(),
        }
    }

    /// Runs `fut` inside the span with the context current.
    pub(crate) fn run<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        use futures::FutureExt;
        let HandlingScope { span, trace, children } = self;
        // A combinator, not an async block: the block would hold `fut` twice (captured and awaited), and this
        // wraps every record's handling.
        let inside = fut.instrument(span).map(move |out| {
            // The records' spans of a batch close with the batch.
            drop(children);
            out
        });
        match trace {
            Some(trace) => futures::future::Either::Left(trace.scope(inside)),
            None => futures::future::Either::Right(inside),
        }
    }
}

impl ListenerObserver {
    pub(crate) fn new(listener_id: Arc<str>, group_id: Arc<str>, continue_traces: bool) -> Self {
        ListenerObserver { metrics: ListenerMetrics::new(listener_id.clone()), listener_id, group_id, continue_traces }
    }

    /// The handling trace of one record: a child of its `traceparent`, or a new trace without a valid one; none
    /// with observation off.
    fn trace_of(&self, record: &Record) -> Option<HandlingTrace> {
        self.continue_traces.then(|| HandlingTrace::for_headers(record.headers()))
    }

    fn record_span(&self, record: &Record, trace: Option<&HandlingTrace>, parent: Option<&Span>) -> Span {
        let span = match parent {
            None => tracing::info_span!(
                "spate.listener.record",
                listener_id = &*self.listener_id,
                group = &*self.group_id,
                topic = record.topic(),
                partition = record.partition(),
                offset = record.offset(),
                trace_id = Empty,
                span_id = Empty,
            ),
            Some(p) => tracing::info_span!(
                parent: p,
                "spate.listener.record",
                listener_id = &*self.listener_id,
                group = &*self.group_id,
                topic = record.topic(),
                partition = record.partition(),
                offset = record.offset(),
                trace_id = Empty,
                span_id = Empty,
            ),
        };
        // Drawing and formatting ids costs only when a subscriber wants the span.
        if let (false, Some(trace)) = (span.is_disabled(), trace) {
            let context = trace.get();
            span.record("trace_id", display(context.trace_id()));
            span.record("span_id", display(context.span_id()));
        }
        span
    }

    /// The scope of one record: a child of its `traceparent` (or a new trace); no trace with observation off.
    pub(crate) fn record_scope(&self, record: &Record) -> HandlingScope {
        let trace = self.trace_of(record);
        let span = self.record_span(record, trace.as_ref(), None);
        HandlingScope { span, trace, children: Vec::new() }
    }

    /// The scope of a batch: a new trace for the batch span (a batch has no single parent, as in OpenTelemetry's
    /// batch processing), with one child span per record carrying that record's own trace id; no trace with
    /// observation off.
    pub(crate) fn batch_scope(&self, records: &[Record]) -> HandlingScope {
        let trace = self.continue_traces.then(HandlingTrace::new_root);
        let span = tracing::info_span!(
            "spate.listener.batch",
            listener_id = &*self.listener_id,
            group = &*self.group_id,
            records = records.len(),
            trace_id = Empty,
            span_id = Empty,
        );
        let mut children = Vec::new();
        if !span.is_disabled() {
            if let Some(trace) = &trace {
                let context = trace.get();
                span.record("trace_id", display(context.trace_id()));
                span.record("span_id", display(context.span_id()));
            }
            children.reserve(records.len());
            for r in records {
                let record_trace = self.trace_of(r);
                children.push(self.record_span(r, record_trace.as_ref(), Some(&span)));
            }
        } else if self.continue_traces {
            // Still count invalid headers, as for record listeners.
            for r in records {
                let _ = HandlingTrace::for_headers(r.headers());
            }
        }
        HandlingScope { span, trace, children }
    }

    /// An invocation of the listener service begins.
    pub(crate) fn invocation(&self) -> Invocation {
        self.metrics.start()
    }

    /// The invocation over `records` ended with `result` (`None`: abandoned at shutdown, not counted).
    pub(crate) fn invoked(
        &self,
        invocation: Invocation,
        records: &[Record],
        result: Option<&Result<Outcome, ListenerError>>,
    ) {
        match result {
            None => {}
            Some(Ok(_)) => self.metrics.finish(invocation, records, Ok(())),
            Some(Err(e)) => self.metrics.finish(invocation, records, Err(e)),
        }
    }

    /// A record's invocation succeeded; counted in the consumer task's `stats` until [`publish`](Self::publish).
    pub(crate) fn succeeded_local(&self, stats: &mut LocalStats, record: &Record, invocation: Invocation) {
        self.metrics.success_local(stats, record.topic_arc(), invocation);
    }

    /// Publishes what a consumer task's `stats` gathered.
    pub(crate) fn publish(&self, stats: &mut LocalStats) {
        self.metrics.publish(stats);
    }

    /// The error handler gave up on `records` and the recoverer took them.
    pub(crate) fn recovered(&self, records: &[Record]) {
        self.metrics.recovered(records);
    }
}
