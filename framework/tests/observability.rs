//! Observability against the embedded broker: trace context from template to listener and across a second hop,
//! invalid traceparent headers, per-record spans in batches, the Prometheus endpoint, health and readiness.
#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Seen, WAIT};
use parking_lot::Mutex;
use spate::kafka_headers::TRACEPARENT;
use spate::observability::{current_trace, TraceContext};
use spate::test::{wait_for_assignment, EmbeddedBroker};
use spate::{kafka_listener, Batch, DefaultErrorHandler, FixedBackOff, Headers, KafkaTemplate, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: one request per connection.

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

async fn http_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(addr, path).await;
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")))
}

/// The value of the sample `name{labels...}` in a Prometheus text page, whatever the labels' order.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        if n != name {
            return None;
        }
        let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

/// Polls `path` until `check` accepts the answer.
async fn wait_http<T>(addr: SocketAddr, path: &str, what: &str, mut check: impl FnMut(u16, &str) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = http_get(addr, path).await;
        if let Some(v) = check(status, &body) {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; last answer {status}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Trace context across two hops.

type Template = KafkaTemplate<String, String>;

/// What a listener saw: its current trace id, span id and the incoming traceparent.
#[derive(Clone, Debug, Default)]
struct Observed {
    body: String,
    trace_id: String,
    span_id: String,
    incoming: Option<String>,
}

fn observe(body: String, headers: &Headers) -> Observed {
    let ctx = current_trace().expect("a handler runs with a current trace context");
    Observed {
        body,
        trace_id: ctx.trace_id().to_string(),
        span_id: ctx.span_id().to_string(),
        incoming: headers.get_str(TRACEPARENT).map(str::to_string),
    }
}

#[derive(Clone, Default)]
struct Hop1(Seen<Observed>);
#[derive(Clone, Default)]
struct Hop2(Seen<Observed>);

#[kafka_listener(topics = "trace-hop1", group_id = "trace-hop1")]
async fn on_hop1(
    body: String,
    headers: Headers,
    State(seen): State<Hop1>,
    State(template): State<Template>,
) -> Result<(), spate::SendError> {
    seen.0.push(observe(body.clone(), &headers));
    template.send("trace-hop2", None, format!("{body}-forwarded")).await?;
    Ok(())
}

#[kafka_listener(topics = "trace-hop2", group_id = "trace-hop2")]
async fn on_hop2(body: String, headers: Headers, State(seen): State<Hop2>) {
    seen.0.push(observe(body, &headers));
}

#[tokio::test]
async fn trace_id_crosses_from_template_to_listener_and_on_through_a_second_listener() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("trace-hop1", 1).topic("trace-hop2", 1).start().await.unwrap();
    let (hop1, hop2) = (Hop1::default(), Hop2::default());
    let template: Template = broker.template();
    let app = broker
        .app()
        .state(hop1.clone())
        .state(hop2.clone())
        .state(template.clone())
        .listener(on_hop1::definition())
        .listener(on_hop2::definition())
        .start()
        .await
        .unwrap();

    let root = TraceContext::new_root();
    root.clone().scope(async { template.send("trace-hop1", None, "traced".to_string()).await }).await.unwrap();
    // Sent outside any context: a new trace of its own.
    template.send("trace-hop1", None, "untraced".to_string()).await.unwrap();

    let first = hop1.0.wait_for(2, WAIT).await;
    let second = hop2.0.wait_for(2, WAIT).await;
    let by_body = |v: &[Observed], b: &str| v.iter().find(|o| o.body == b).cloned().unwrap();
    let root_trace = root.trace_id().to_string();

    let h1 = by_body(&first, "traced");
    assert_eq!(h1.trace_id, root_trace);
    let sent1 = TraceContext::parse(h1.incoming.as_deref().unwrap()).unwrap();
    assert_eq!(sent1.trace_id(), root.trace_id());
    // The template's send is a child of the scope, and the handling a child of the send.
    assert_ne!(sent1.span_id(), root.span_id());
    assert_ne!(h1.span_id, sent1.span_id().to_string());

    let h2 = by_body(&second, "traced-forwarded");
    assert_eq!(h2.trace_id, root_trace, "the second hop keeps the trace id");
    let sent2 = TraceContext::parse(h2.incoming.as_deref().unwrap()).unwrap();
    assert_ne!(sent2.span_id().to_string(), h1.span_id, "the forward is a child of the first handling");

    let u1 = by_body(&first, "untraced");
    assert_ne!(u1.trace_id, root_trace);
    assert_eq!(by_body(&second, "untraced-forwarded").trace_id, u1.trace_id);
    app.shutdown().await;
}

/// What a listener with observation off saw: the incoming `traceparent`, and whether a trace was current.
#[derive(Clone, Default)]
struct Unobserved(Seen<(Option<String>, bool)>);

#[kafka_listener(topics = "trace-unobserved", group_id = "trace-unobserved")]
async fn on_unobserved(_body: String, headers: Headers, State(seen): State<Unobserved>) {
    seen.0.push((headers.get_str(TRACEPARENT).map(str::to_string), current_trace().is_some()));
}

#[tokio::test]
async fn a_listener_handles_records_outside_any_trace_when_listener_observation_is_disabled() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("trace-unobserved", 1).start().await.unwrap();
    let seen = Unobserved::default();
    let app = broker
        .app()
        .set("kafka.listener.observation_enabled", false)
        .state(seen.clone())
        .listener(on_unobserved::definition())
        .start()
        .await
        .unwrap();
    let template: Template = broker.template();
    let root = TraceContext::new_root();
    root.clone().scope(async { template.send("trace-unobserved", None, "traced".to_string()).await }).await.unwrap();
    let got = seen.0.wait_for(1, WAIT).await;
    app.shutdown().await;
    let (incoming, traced) = got[0].clone();
    let incoming = TraceContext::parse(incoming.as_deref().unwrap()).unwrap();
    assert_eq!(incoming.trace_id(), root.trace_id(), "the record still carries its traceparent");
    assert!(!traced, "but its handling is not part of any trace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_carry_no_traceparent_when_template_observation_is_disabled() {
    let broker = EmbeddedBroker::builder().topic("trace-off", 1).start().await.unwrap();
    let app = broker.app().set("kafka.template.observation_enabled", false).start().await.unwrap();
    let template: Template = KafkaTemplate::new(app.producer_factory());
    let root = TraceContext::new_root();
    root.clone().scope(async { template.send("trace-off", None, "in a trace".to_string()).await }).await.unwrap();
    // A traceparent the application sets itself is still sent.
    let mut own = Headers::new();
    root.inject(&mut own);
    template.send_record(spate::ProducerRecord::new("trace-off", "own header".to_string()).headers(own)).await.unwrap();
    let records = broker.consume("trace-off", 2, WAIT).await.unwrap();
    assert_eq!(records[0].headers().get(TRACEPARENT), None, "no traceparent added");
    let kept = records[1].headers().get_str(TRACEPARENT).unwrap();
    assert_eq!(TraceContext::parse(kept).unwrap().trace_id(), root.trace_id());
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Invalid traceparent headers.

#[derive(Clone, Default)]
struct InvalidSeen(Seen<Observed>);

#[kafka_listener(topics = "trace-invalid", group_id = "trace-invalid")]
async fn on_invalid(body: String, headers: Headers, State(seen): State<InvalidSeen>) {
    seen.0.push(observe(body, &headers));
}

#[tokio::test]
async fn invalid_traceparent_headers_are_ignored_and_counted() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("trace-invalid", 1).start().await.unwrap();
    let seen = InvalidSeen::default();
    let before = sample(&spate::observability::render_prometheus(), spate::observability::TRACE_CONTEXT_INVALID, &[])
        .unwrap_or(0.0);
    let app = broker.app().state(seen.clone()).listener(on_invalid::definition()).start().await.unwrap();
    let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
    let zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (body, tp) in [("upper", upper), ("zero", zero), ("garbage", "not a traceparent"), ("valid", valid)] {
        let mut h = Headers::new();
        h.insert(TRACEPARENT, tp);
        broker.produce_to("trace-invalid", 0, None, body, h).await.unwrap();
    }
    let got = seen.0.wait_for(4, WAIT).await;
    let trace_of = |b: &str| got.iter().find(|o| o.body == b).unwrap().trace_id.clone();
    assert_eq!(trace_of("valid"), "4bf92f3577b34da6a3ce929d0e0e4736");
    // Handled all the same, each in a new trace.
    assert_ne!(trace_of("upper"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(trace_of("upper"), "4bf92f3577b34da6a3ce929d0e0e4736".to_uppercase());
    assert_ne!(trace_of("zero"), "00000000000000000000000000000000");
    assert_ne!(trace_of("garbage"), trace_of("upper"));
    let after =
        sample(&spate::observability::render_prometheus(), spate::observability::TRACE_CONTEXT_INVALID, &[]).unwrap();
    assert!(after - before >= 3.0, "invalid headers counted: before {before}, after {after}");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Spans: the handler runs inside a record span; a batch span has one child span per record.

/// Collects spans: name, parent name and recorded fields.
#[derive(Clone, Default)]
struct SpanLog(Arc<Mutex<HashMap<u64, LoggedSpan>>>);

/// Name, parent id, fields.
type LoggedSpan = (String, Option<u64>, HashMap<String, String>);

struct Fields<'a>(&'a mut HashMap<String, String>);
impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S> tracing_subscriber::Layer<S> for SpanLog
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx.span(id).and_then(|s| s.parent()).map(|p| p.id().into_u64());
        self.0.lock().insert(id.into_u64(), (attrs.metadata().name().to_string(), parent, fields));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some((_, _, fields)) = self.0.lock().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

#[derive(Clone, Default)]
struct BatchSpanNames(Seen<Option<String>>);
#[derive(Clone, Default)]
struct RecordSpanNames(Seen<Option<String>>);

#[kafka_listener(topics = "span-batch", group_id = "span-batch", batch = true)]
async fn on_span_batch(batch: Batch<String>, State(names): State<BatchSpanNames>) {
    let current = tracing::Span::current().metadata().map(|m| m.name().to_string());
    for _ in batch.iter() {
        names.0.push(current.clone());
    }
}

#[kafka_listener(topics = "span-record", group_id = "span-record")]
async fn on_span_record(_body: String, State(names): State<RecordSpanNames>) {
    names.0.push(tracing::Span::current().metadata().map(|m| m.name().to_string()));
}

#[tokio::test]
async fn handlers_run_in_record_spans_and_batches_get_a_child_span_per_record() {
    use tracing_subscriber::layer::SubscriberExt;
    let log = SpanLog::default();
    // The current-thread test runtime runs the containers on this thread, so a thread-local subscriber sees them.
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(log.clone()));
    let broker = EmbeddedBroker::builder().topic("span-batch", 1).topic("span-record", 1).start().await.unwrap();
    let (batch_names, record_names) = (BatchSpanNames::default(), RecordSpanNames::default());
    let template: Template = broker.template();
    let mut sent = Vec::new();
    for i in 0..3 {
        let ctx = TraceContext::new_root();
        sent.push(ctx.trace_id().to_string());
        let mut h = Headers::new();
        ctx.inject(&mut h);
        template.send_record(spate::ProducerRecord::new("span-batch", format!("b{i}")).headers(h)).await.unwrap();
    }
    template.send("span-record", None, "r".to_string()).await.unwrap();
    let app = broker
        .app()
        .state(batch_names.clone())
        .state(record_names.clone())
        .listener(on_span_batch::definition())
        .listener(on_span_record::definition())
        .start()
        .await
        .unwrap();
    let in_batch = batch_names.0.wait_for(3, WAIT).await;
    assert!(in_batch.iter().all(|n| n.as_deref() == Some("spate.listener.batch")), "{in_batch:?}");
    assert_eq!(record_names.0.wait_for(1, WAIT).await, vec![Some("spate.listener.record".to_string())]);
    app.shutdown().await;

    let spans = log.0.lock().clone();
    let name_of = |id: &Option<u64>| id.and_then(|i| spans.get(&i)).map(|(n, _, _)| n.clone());
    for trace in &sent {
        let found = spans.values().find(|(name, _, f)| {
            name == "spate.listener.record"
                && f.get("trace_id") == Some(trace)
                && f.get("topic").map(String::as_str) == Some("span-batch")
        });
        let (_, parent, fields) = found.unwrap_or_else(|| panic!("no record span with trace id {trace}"));
        assert_eq!(name_of(parent).as_deref(), Some("spate.listener.batch"));
        assert_eq!(fields.get("listener_id").map(String::as_str), Some("on_span_batch"));
        assert!(fields.contains_key("offset") && fields.contains_key("partition"), "{fields:?}");
    }
    let record_span = spans
        .values()
        .find(|(name, _, f)| {
            name == "spate.listener.record" && f.get("topic").map(String::as_str) == Some("span-record")
        })
        .unwrap();
    assert_eq!(record_span.2.get("group").map(String::as_str), Some("span-record"));
    assert_eq!(record_span.2.get("trace_id").map(String::len), Some(32));
}

// ---------------------------------------------------------------------------------------------------------------
// Prometheus metrics over HTTP.

#[kafka_listener(topics = "metered", id = "metered")]
async fn on_metered(body: String) -> Result<(), std::io::Error> {
    if body == "bad" {
        return Err(std::io::Error::other("refused"));
    }
    Ok(())
}

#[tokio::test]
async fn prometheus_endpoint_reports_records_errors_latency_lag_and_sends() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("metered", 1).start().await.unwrap();
    let handler = DefaultErrorHandler::new().back_off(FixedBackOff { interval: Duration::ZERO, max_attempts: 2 });
    let app = broker
        .app()
        .set("management.server.port", 0)
        .set("management.server.address", "127.0.0.1")
        .listener(on_metered::definition().error_handler(handler))
        .start()
        .await
        .unwrap();
    let addr = app.management_address().expect("management server runs when a port is set");
    wait_for_assignment(&app.container("metered").unwrap(), 1, WAIT).await.unwrap();
    for body in ["a", "b", "bad", "c"] {
        broker.produce("metered", None, body).await.unwrap();
    }
    let l = |result: &'static str| [("listener_id", "metered"), ("topic", "metered"), ("result", result)];
    // Three succeed; "bad" fails twice (two attempts), then is recovered (logged and skipped).
    let page = wait_http(addr, "/actuator/prometheus", "listener counts", |status, body| {
        assert_eq!(status, 200);
        let ok = sample(body, "spate_kafka_listener_records_total", &l("success")) == Some(3.0)
            && sample(body, "spate_kafka_listener_records_total", &l("recovered")) == Some(1.0);
        ok.then(|| body.to_string())
    })
    .await;
    assert_eq!(sample(&page, "spate_kafka_listener_records_total", &l("error")), Some(2.0));
    let errors = [("listener_id", "metered"), ("topic", "metered"), ("error", "handler")];
    assert_eq!(sample(&page, "spate_kafka_listener_errors_total", &errors), Some(2.0));
    assert_eq!(sample(&page, "spate_kafka_listener_seconds_count", &l("success")), Some(3.0));
    assert_eq!(sample(&page, "spate_kafka_listener_seconds_count", &l("failure")), Some(2.0));
    assert!(
        sample(&page, "spate_kafka_listener_seconds_bucket", &[("listener_id", "metered"), ("le", "+Inf")]).is_some()
    );
    // The test's sends went through a KafkaTemplate.
    let sent = sample(&page, "spate_kafka_template_records_total", &[("topic", "metered"), ("result", "success")]);
    assert!(sent.unwrap_or(0.0) >= 4.0, "template sends: {sent:?}");
    assert!(
        sample(&page, "spate_kafka_template_seconds_count", &[("topic", "metered"), ("result", "success")]).is_some()
    );
    // Lag comes from librdkafka's statistics (every 5 s): all records were handled, so it settles at 0.
    let lag = [("listener_id", "metered"), ("topic", "metered"), ("partition", "0")];
    wait_http(addr, "/actuator/prometheus", "a consumer lag of 0", |_, body| {
        (sample(body, "spate_kafka_consumer_records_lag", &lag) == Some(0.0)).then_some(())
    })
    .await;
    app.shutdown().await;
}

/// Holds the `lagging` listener on its "block" record until released.
#[derive(Clone)]
struct Gate(Arc<tokio::sync::Semaphore>, Seen<()>);

#[kafka_listener(topics = "lagging", id = "lagging")]
async fn on_lagging(body: String, State(gate): State<Gate>) {
    if body == "block" {
        gate.1.push(());
        let _ = gate.0.acquire().await.unwrap();
    }
}

#[tokio::test]
async fn consumer_lag_counts_records_behind_a_held_handler() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("lagging", 1).start().await.unwrap();
    let gate = Gate(Arc::new(tokio::sync::Semaphore::new(0)), Seen::default());
    let app = broker
        .app()
        .set("management.server.port", 0)
        .set("management.server.address", "127.0.0.1")
        .state(gate.clone())
        .listener(on_lagging::definition())
        .start()
        .await
        .unwrap();
    let addr = app.management_address().unwrap();
    wait_for_assignment(&app.container("lagging").unwrap(), 1, WAIT).await.unwrap();
    broker.produce("lagging", None, "first").await.unwrap();
    let lag = [("listener_id", "lagging"), ("topic", "lagging"), ("partition", "0")];
    wait_http(addr, "/actuator/prometheus", "lag 0 after the first record", |_, body| {
        (sample(body, "spate_kafka_consumer_records_lag", &lag) == Some(0.0)).then_some(())
    })
    .await;
    // Offset 1 holds the handler; the five records after it are not even handed to the container.
    broker.produce("lagging", None, "block").await.unwrap();
    gate.1.wait_for(1, WAIT).await;
    for i in 0..5 {
        broker.produce("lagging", None, format!("r{i}")).await.unwrap();
    }
    wait_http(addr, "/actuator/prometheus", "a lag of 5 while the handler is held", |_, body| {
        (sample(body, "spate_kafka_consumer_records_lag", &lag) == Some(5.0)).then_some(())
    })
    .await;
    gate.0.add_permits(1);
    wait_http(addr, "/actuator/prometheus", "lag back to 0", |_, body| {
        (sample(body, "spate_kafka_consumer_records_lag", &lag) == Some(0.0)).then_some(())
    })
    .await;
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Health and readiness.

#[kafka_listener(topics = "healthy", id = "healthy")]
async fn on_healthy(_body: String) {}

#[tokio::test]
async fn health_is_up_with_the_broker_and_readiness_follows_the_containers() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder().topic("healthy", 1).start().await.unwrap();
    let app = broker
        .app()
        .set("management.server.port", 0)
        .set("management.server.address", "127.0.0.1")
        .listener(on_healthy::definition())
        .start()
        .await
        .unwrap();
    let addr = app.management_address().unwrap();
    // The first metadata request opens the health client's connection: allow it time on a loaded machine.
    let health = wait_http(addr, "/actuator/health", "health UP", |status, body| {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        (status == 200).then_some(v)
    })
    .await;
    assert_eq!(health["status"], "UP");
    assert_eq!(health["components"]["kafka"]["status"], "UP");
    assert!(health["components"]["kafka"]["details"]["brokers"].as_u64().unwrap() >= 1);
    assert_eq!(health["components"]["listeners"]["status"], "UP");
    assert_eq!(health["components"]["listeners"]["details"]["healthy"]["state"], "running");
    let ready = wait_http(addr, "/actuator/health/readiness", "ready", |status, body| {
        (status == 200).then(|| serde_json::from_str::<serde_json::Value>(body).unwrap())
    })
    .await;
    assert_eq!(ready, serde_json::json!({"status": "UP"}));
    assert_eq!(http_json(addr, "/actuator/health/liveness").await, (200, serde_json::json!({"status": "UP"})));

    // A stopped container that should run makes the application not ready, though still alive.
    app.registry().stop("healthy").await.unwrap();
    let (status, ready) = http_json(addr, "/actuator/health/readiness").await;
    assert_eq!((status, ready), (503, serde_json::json!({"status": "OUT_OF_SERVICE"})));
    assert_eq!(http_json(addr, "/actuator/health/liveness").await.0, 200);
    let (_, health) = http_json(addr, "/actuator/health").await;
    assert_eq!(health["components"]["listeners"]["details"]["healthy"]["state"], "stopped");

    app.registry().start("healthy").await.unwrap();
    wait_http(addr, "/actuator/health/readiness", "ready again", |status, _| (status == 200).then_some(())).await;
    assert_eq!(http_get(addr, "/actuator/nothing-here").await.0, 404);
    app.shutdown().await;
}

#[tokio::test]
async fn health_reports_kafka_down_once_the_broker_stops() {
    common::init_tracing();
    let broker = EmbeddedBroker::start().await.unwrap();
    // No listeners: consumers of a stopped broker could not leave their group.
    let app = broker
        .app()
        .set("management.server.port", 0)
        .set("management.server.address", "127.0.0.1")
        .set("management.health.kafka.timeout_ms", 1000)
        .start()
        .await
        .unwrap();
    let addr = app.management_address().unwrap();
    let health = wait_http(addr, "/actuator/health", "health UP", |status, body| {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        (status == 200).then_some(v)
    })
    .await;
    assert_eq!(health["components"]["kafka"]["status"], "UP", "{health}");
    wait_http(addr, "/actuator/health/readiness", "ready", |status, _| (status == 200).then_some(())).await;

    broker.shutdown().await.unwrap();
    let health = wait_http(addr, "/actuator/health", "kafka DOWN", |status, body| {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        (status == 503 && v["components"]["kafka"]["status"] == "DOWN").then_some(v)
    })
    .await;
    assert_eq!(health["status"], "DOWN");
    assert!(health["components"]["kafka"]["details"]["error"].is_string());
    assert_eq!(
        http_json(addr, "/actuator/health/readiness").await,
        (503, serde_json::json!({"status": "OUT_OF_SERVICE"}))
    );
    // A broker outage does not make the application dead.
    assert_eq!(http_json(addr, "/actuator/health/liveness").await.0, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_management_key_is_a_configuration_error() {
    let broker = EmbeddedBroker::start().await.unwrap();
    let err = broker.app().set("management.server.prot", 8081).start().await.unwrap_err();
    assert!(err.to_string().contains("prot"), "{err}");
}
