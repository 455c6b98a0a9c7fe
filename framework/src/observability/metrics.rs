//! Prometheus metrics through the `metrics` facade: one process-wide `metrics-exporter-prometheus` recorder,
//! handles registered once per listener and topic (recording a record is a few atomic operations, no lookup by
//! name and no allocation), consumer lag gauges, and template sends.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics::{
    Counter, Gauge, Histogram as MetricsHistogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::histogram::{Family, Histogram, LocalHistogram};
use parking_lot::RwLock;

use crate::listener::ListenerError;
use crate::record::Record;

/// Handling time of one listener invocation (Spring: `spring.kafka.listener`).
pub const LISTENER_SECONDS: &str = "spate_kafka_listener_seconds";
/// Records by how their handling ended (`result`: success, error, recovered).
pub const LISTENER_RECORDS: &str = "spate_kafka_listener_records_total";
/// Failed handling attempts by error kind.
pub const LISTENER_ERRORS: &str = "spate_kafka_listener_errors_total";
/// Consumer lag per partition: high watermark minus the consumer's position.
pub const CONSUMER_LAG: &str = "spate_kafka_consumer_records_lag";
/// Time from handing a record to the producer to its delivery report (Spring: `spring.kafka.template`).
pub const TEMPLATE_SECONDS: &str = "spate_kafka_template_seconds";
/// Records sent by topic and result (success, failure).
pub const TEMPLATE_RECORDS: &str = "spate_kafka_template_records_total";
/// `traceparent` headers that were invalid and ignored.
pub const TRACE_CONTEXT_INVALID: &str = "spate_kafka_trace_context_invalid_total";

/// Histogram buckets (seconds) of the two timers.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// [`BUCKETS`] in nanoseconds.
const BUCKETS_NANOS: &[u64] = &[
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// The two per-record timers live outside the `metrics` registry (see `histogram.rs`).
static LISTENER_TIMER: Family = Family::new(LISTENER_SECONDS, "Listener invocation time", BUCKETS, BUCKETS_NANOS);
static TEMPLATE_TIMER: Family =
    Family::new(TEMPLATE_SECONDS, "Send time until the delivery report", BUCKETS, BUCKETS_NANOS);

/// How often histogram samples are folded into their buckets when nobody scrapes (bounds memory).
const UPKEEP: Duration = Duration::from_secs(5);

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The recorder, shared between Spate (which registers on it directly) and the global `metrics` recorder slot.
#[derive(Clone)]
struct Shared(Arc<PrometheusRecorder>);

impl Recorder for Shared {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description)
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description)
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description)
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> MetricsHistogram {
        self.0.register_histogram(key, metadata)
    }
}

struct Registry {
    recorder: Shared,
    handle: PrometheusHandle,
    invalid_trace_context: Counter,
    template_topics: RwLock<Vec<(Box<str>, Arc<TemplateHandles>)>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let shared = Shared(Arc::new(recorder));
        // The application's own `metrics::counter!` & co. land in the same registry, unless it installed a
        // recorder of its own first; Spate's metrics are served at /actuator/prometheus either way.
        if metrics::set_global_recorder(shared.clone()).is_err() {
            tracing::debug!("a global metrics recorder is already installed; Spate keeps its own registry");
        }
        describe(&shared);
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new().name("spate-metrics-upkeep".into()).spawn(move || loop {
            std::thread::sleep(UPKEEP);
            upkeep.run_upkeep();
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are folded on scrape only");
        }
        let invalid_trace_context = shared.register_counter(&Key::from_static_name(TRACE_CONTEXT_INVALID), &METADATA);
        Registry { recorder: shared, handle, invalid_trace_context, template_topics: RwLock::new(Vec::new()) }
    })
}

fn describe(r: &Shared) {
    r.describe_counter(LISTENER_RECORDS.into(), Some(Unit::Count), "Records handled by a listener, by result".into());
    r.describe_counter(LISTENER_ERRORS.into(), Some(Unit::Count), "Failed listener attempts, by error kind".into());
    r.describe_gauge(CONSUMER_LAG.into(), Some(Unit::Count), "High watermark minus the consumer position".into());
    r.describe_counter(TEMPLATE_RECORDS.into(), Some(Unit::Count), "Records sent by KafkaTemplate, by result".into());
    r.describe_counter(TRACE_CONTEXT_INVALID.into(), Some(Unit::Count), "Invalid traceparent headers ignored".into());
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(name, labels.iter().map(|(k, v)| Label::new(*k, v.to_string())).collect::<Vec<_>>())
}

/// Every metric in the Prometheus text format (what `/actuator/prometheus` serves).
pub fn render() -> String {
    let mut page = registry().handle.render();
    LISTENER_TIMER.render(&mut page);
    TEMPLATE_TIMER.render(&mut page);
    page
}

/// The Prometheus handle of Spate's registry, to serve it elsewhere than the management server.
///
/// Its `render()` lacks the two per-record timers, `spate_kafka_listener_seconds` and `spate_kafka_template_seconds`,
/// which Spate keeps outside the `metrics` registry (recording a sample there costs a listener a fifth of its
/// time): serve [`render`](crate::observability::render_prometheus) for every metric.
pub fn prometheus_handle() -> PrometheusHandle {
    registry().handle.clone()
}

pub(crate) fn invalid_trace_context() {
    registry().invalid_trace_context.increment(1);
}

/// A listener's handles for one topic.
struct TopicHandles {
    topic: Arc<str>,
    success: Counter,
    error: Counter,
    recovered: Counter,
    seconds_success: Arc<Histogram>,
    seconds_failure: Arc<Histogram>,
}

/// One listener invocation in progress: when it started, as a raw reading of [`clock`].
pub(crate) struct Invocation {
    started: u64,
}

impl Invocation {
    fn elapsed_nanos(&self) -> u64 {
        let clock = clock();
        clock.delta_as_nanos(self.started, clock.raw())
    }

    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_nanos())
    }
}

/// The listener timers' clock: the CPU's time-stamp counter where it is usable. Read raw (one instruction) and
/// scaled only for a difference; `quanta::Instant::now` also looks up a thread-local mock clock and scales every
/// reading, which cost a listener 5% of its time at two readings per record.
fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Handles of one listener, by topic; shared by a consumer's tasks.
pub(crate) struct ListenerMetrics {
    listener_id: Arc<str>,
    topics: RwLock<Vec<Arc<TopicHandles>>>,
}

/// Successful invocations of one consumer task, added up without atomics and published to the shared series once
/// per poll ([`ListenerMetrics::publish`]). A record handled on the container's fast path costs two clock reads
/// and a few additions here, where the shared series cost a lock, a reference count and five atomic additions.
pub(crate) struct LocalStats {
    topics: Vec<LocalTopic>,
    /// The entry of the last record's topic: consecutive records are nearly always of one topic.
    last: usize,
}

struct LocalTopic {
    handles: Arc<TopicHandles>,
    success: u64,
    seconds: LocalHistogram,
}

impl LocalStats {
    pub(crate) fn new() -> Self {
        LocalStats { topics: Vec::new(), last: 0 }
    }
}

impl ListenerMetrics {
    pub(crate) fn new(listener_id: Arc<str>) -> Self {
        // The first use calibrates the clock (up to a fifth of a second): at start-up, not on the first record.
        clock();
        ListenerMetrics { listener_id, topics: RwLock::new(Vec::new()) }
    }

    fn topic(&self, topic: &Arc<str>) -> Arc<TopicHandles> {
        {
            let topics = self.topics.read();
            // Records of one consumer share the topic's Arc, so the pointer check nearly always decides.
            if let Some(h) = topics.iter().find(|h| Arc::ptr_eq(&h.topic, topic) || h.topic == *topic) {
                return h.clone();
            }
        }
        let r = &registry().recorder;
        let id = &*self.listener_id;
        let labels = |result: &'static str| [("listener_id", id), ("topic", &**topic), ("result", result)];
        let h = Arc::new(TopicHandles {
            topic: topic.clone(),
            success: r.register_counter(&key(LISTENER_RECORDS, &labels("success")), &METADATA),
            error: r.register_counter(&key(LISTENER_RECORDS, &labels("error")), &METADATA),
            recovered: r.register_counter(&key(LISTENER_RECORDS, &labels("recovered")), &METADATA),
            seconds_success: LISTENER_TIMER.series(&labels("success")),
            seconds_failure: LISTENER_TIMER.series(&labels("failure")),
        });
        let mut topics = self.topics.write();
        if let Some(existing) = topics.iter().find(|h| h.topic == *topic) {
            return existing.clone();
        }
        topics.push(h.clone());
        h
    }

    /// An invocation begins.
    pub(crate) fn start(&self) -> Invocation {
        Invocation { started: clock().raw() }
    }

    /// The invocation over `records` ended with `result`: counted in the shared series at once.
    pub(crate) fn finish(&self, inv: Invocation, records: &[Record], result: Result<(), &ListenerError>) {
        let Some(first) = records.first() else {
            return;
        };
        let elapsed = inv.elapsed();
        let first_handles = self.topic(first.topic_arc());
        match result {
            Ok(()) => first_handles.seconds_success.record(elapsed),
            Err(e) => {
                first_handles.seconds_failure.record(elapsed);
                let r = &registry().recorder;
                let labels =
                    [("listener_id", &*self.listener_id), ("topic", &*first_handles.topic), ("error", error_kind(e))];
                r.register_counter(&key(LISTENER_ERRORS, &labels), &METADATA).increment(records.len() as u64);
            }
        }
        // A batch's records are counted by topic; a run of one topic (the usual batch) is one increment.
        let mut handles = first_handles;
        let mut run = 0;
        for r in records {
            if !(Arc::ptr_eq(&handles.topic, r.topic_arc()) || handles.topic == *r.topic_arc()) {
                count(&handles, run, result.is_ok());
                handles = self.topic(r.topic_arc());
                run = 0;
            }
            run += 1;
        }
        count(&handles, run, result.is_ok());
    }

    /// A successful invocation of one record, counted in `stats` until [`publish`](Self::publish).
    pub(crate) fn success_local(&self, stats: &mut LocalStats, topic: &Arc<str>, inv: Invocation) {
        let elapsed = inv.elapsed_nanos();
        let same = |t: &LocalTopic| Arc::ptr_eq(&t.handles.topic, topic) || t.handles.topic == *topic;
        let i = match stats.topics.get(stats.last) {
            Some(t) if same(t) => stats.last,
            _ => match stats.topics.iter().position(same) {
                Some(i) => i,
                None => {
                    let handles = self.topic(topic);
                    stats.topics.push(LocalTopic { handles, success: 0, seconds: LocalHistogram::new(BUCKETS_NANOS) });
                    stats.topics.len() - 1
                }
            },
        };
        stats.last = i;
        let t = &mut stats.topics[i];
        t.success += 1;
        t.seconds.record_nanos(elapsed);
    }

    /// Adds what `stats` gathered to the shared series and empties it.
    pub(crate) fn publish(&self, stats: &mut LocalStats) {
        for t in &mut stats.topics {
            if t.success > 0 {
                t.handles.success.increment(std::mem::take(&mut t.success));
                t.handles.seconds_success.add(&mut t.seconds);
            }
        }
    }

    /// The error handler gave up on `records` and the recoverer took them.
    pub(crate) fn recovered(&self, records: &[Record]) {
        for r in records {
            self.topic(r.topic_arc()).recovered.increment(1);
        }
    }
}

fn count(handles: &TopicHandles, n: u64, ok: bool) {
    if n == 0 {
        return;
    }
    if ok {
        handles.success.increment(n);
    } else {
        handles.error.increment(n);
    }
}

/// Sets one partition's lag gauge (not on the record path: sampled every few seconds).
pub(crate) fn set_lag(listener_id: &str, topic: &str, partition: i32, lag: i64) {
    let part = partition.to_string();
    let labels = [("listener_id", listener_id), ("topic", topic), ("partition", &part)];
    registry().recorder.register_gauge(&key(CONSUMER_LAG, &labels), &METADATA).set(lag as f64);
}

/// The `error` label of a failed attempt (bounded: one value per kind).
fn error_kind(e: &ListenerError) -> &'static str {
    match e {
        ListenerError::Deserialization { .. } => "deserialization",
        ListenerError::Extraction(_) => "extraction",
        ListenerError::Handler(_) => "handler",
        ListenerError::Panic(_) => "panic",
        ListenerError::Reply(_) => "reply",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

struct TemplateHandles {
    success: Counter,
    failure: Counter,
    seconds_success: Arc<Histogram>,
    seconds_failure: Arc<Histogram>,
}

fn template_topic(topic: &str) -> Arc<TemplateHandles> {
    let reg = registry();
    if let Some((_, h)) = reg.template_topics.read().iter().find(|(t, _)| &**t == topic) {
        return h.clone();
    }
    let r = &reg.recorder;
    let labels = |result: &'static str| [("topic", topic), ("result", result)];
    let h = Arc::new(TemplateHandles {
        success: r.register_counter(&key(TEMPLATE_RECORDS, &labels("success")), &METADATA),
        failure: r.register_counter(&key(TEMPLATE_RECORDS, &labels("failure")), &METADATA),
        seconds_success: TEMPLATE_TIMER.series(&labels("success")),
        seconds_failure: TEMPLATE_TIMER.series(&labels("failure")),
    });
    let mut topics = reg.template_topics.write();
    if let Some((_, existing)) = topics.iter().find(|(t, _)| &**t == topic) {
        return existing.clone();
    }
    topics.push((topic.into(), h.clone()));
    h
}

/// A send's delivery report arrived (called on librdkafka's delivery thread).
pub(crate) fn template_delivered(topic: &str, ok: bool, started: Instant) {
    let h = template_topic(topic);
    let elapsed = started.elapsed();
    if ok {
        h.success.increment(1);
        h.seconds_success.record(elapsed);
    } else {
        h.failure.increment(1);
        h.seconds_failure.record(elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_in_nanoseconds_match_the_bounds_in_seconds() {
        let from_seconds: Vec<u64> = BUCKETS.iter().map(|s| Duration::from_secs_f64(*s).as_nanos() as u64).collect();
        assert_eq!(from_seconds, BUCKETS_NANOS);
    }
}
