//! What a listener is at run time: a [`ListenerDefinition`] (the endpoint: topics, group, concurrency, ...) and a
//! `tower::Service<Delivery>` that handles one record or one batch. `#[kafka_listener]` generates both; they can
//! also be written by hand (Spring's programmatic endpoint registration), and any tower layer (timeout, rate limit,
//! tracing) wraps the service.

use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use sync_wrapper::SyncWrapper;
use tower::{Layer, Service, ServiceExt};

use crate::codec::DeserializationError;
use crate::container::poll::Poll;
use crate::container::{AckMode, Ordering, RebalanceListener};
use crate::error_handler::ErrorHandler;
use crate::record::Record;
use crate::template::{ProducerFactory, SendError};
use crate::Ack;

/// A boxed error from a handler.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a record (or batch) was not handled. The error handler decides what happens next; see
/// [`ListenerError::is_retryable`].
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The key or value could not be deserialized for the handler's argument. Never retried; `record` is the raw
    /// record, as it came from the broker.
    #[error("{error} (record {}-{}@{})", record.topic(), record.partition(), record.offset())]
    Deserialization {
        /// What failed.
        error: DeserializationError,
        /// The raw record.
        record: Box<Record>,
    },
    /// An argument could not be provided (missing `State<T>`, `Ack` outside manual ack modes, ...).
    #[error("cannot provide handler argument: {0}")]
    Extraction(String),
    /// The handler returned an error.
    #[error("handler failed: {0}")]
    Handler(BoxError),
    /// The handler panicked.
    #[error("handler panicked: {0}")]
    Panic(String),
    /// The handler's reply (`#[send_to]`) could not be sent.
    #[error("sending the reply failed: {0}")]
    Reply(#[from] SendError),
}

impl ListenerError {
    /// Whether retrying the same record could succeed: false for deserialization and extraction failures, which
    /// would fail the same way forever.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ListenerError::Deserialization { .. } | ListenerError::Extraction(_))
    }

    /// Wraps any handler error.
    pub fn handler(e: impl Into<BoxError>) -> Self {
        ListenerError::Handler(e.into())
    }
}

/// Application state for `State<T>` arguments, by type.
#[derive(Default, Clone)]
pub struct StateMap {
    // A handful of values, looked up for every record: a scan of type ids beats hashing them.
    values: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl std::fmt::Debug for StateMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateMap({} values)", self.values.len())
    }
}

impl StateMap {
    /// Adds (or replaces) the value of type `T`.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        self.values.retain(|(t, _)| *t != id);
        self.values.push((id, Arc::new(value)));
    }

    /// The value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        let id = TypeId::of::<T>();
        self.values.iter().find(|(t, _)| *t == id).and_then(|(_, v)| v.downcast_ref::<T>()).cloned()
    }

    pub(crate) fn contains(&self, id: TypeId) -> bool {
        self.values.iter().any(|(t, _)| *t == id)
    }
}

/// What a handler's arguments are extracted from, besides the record.
#[derive(Clone)]
pub struct ListenerContext {
    // One reference count per delivery: the parts every delivery of a listener shares.
    pub(crate) shared: Arc<ListenerShared>,
    pub(crate) ack: Option<Ack>,
}

/// The parts of a [`ListenerContext`] that are the same for every delivery of a listener.
pub(crate) struct ListenerShared {
    pub(crate) listener_id: Arc<str>,
    pub(crate) group_id: Arc<str>,
    pub(crate) state: Arc<StateMap>,
    pub(crate) producer: Option<ProducerFactory>,
}

impl std::fmt::Debug for ListenerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerContext")
            .field("listener_id", &self.shared.listener_id)
            .field("group_id", &self.shared.group_id)
            .finish()
    }
}

impl ListenerContext {
    /// A context for calling a listener service directly in a unit test.
    pub fn for_tests(listener_id: &str, state: StateMap) -> Self {
        ListenerContext {
            shared: Arc::new(ListenerShared {
                listener_id: Arc::from(listener_id),
                group_id: Arc::from(listener_id),
                state: Arc::new(state),
                producer: None,
            }),
            ack: None,
        }
    }

    /// The listener's id.
    pub fn listener_id(&self) -> &str {
        &self.shared.listener_id
    }

    /// The consumer group.
    pub fn group_id(&self) -> &str {
        &self.shared.group_id
    }

    /// Application state.
    pub fn state(&self) -> &StateMap {
        &self.shared.state
    }

    /// The acknowledgment of this delivery (manual ack modes only).
    pub fn ack(&self) -> Option<&Ack> {
        self.ack.as_ref()
    }

    /// The producer factory of the listener's cluster.
    pub fn producer_factory(&self) -> Option<&ProducerFactory> {
        self.shared.producer.as_ref()
    }
}

/// Boxed but for the container's own deliveries: a handler's future holds its delivery, and is moved for every
/// record, so the common case is kept to two words.
enum Payload {
    One(Box<(Record, ListenerContext)>),
    Many(Box<(Vec<Record>, ListenerContext)>),
    /// A record of a poll the container shares between the deliveries of its records.
    Polled(Arc<Poll>, usize),
}

/// One call of a listener: a record (record listeners) or the records of one poll (batch listeners), with the
/// context.
pub struct Delivery {
    payload: Payload,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("records", &self.records())
            .field("batch", &self.is_batch())
            .field("context", self.context())
            .finish()
    }
}

impl Delivery {
    /// A record delivery.
    pub fn record(record: Record, ctx: ListenerContext) -> Self {
        Delivery { payload: Payload::One(Box::new((record, ctx))) }
    }

    /// A batch delivery.
    pub fn batch(records: Vec<Record>, ctx: ListenerContext) -> Self {
        Delivery { payload: Payload::Many(Box::new((records, ctx))) }
    }

    /// The record at `index` of a poll, with the poll's context.
    pub(crate) fn polled(poll: Arc<Poll>, index: usize) -> Self {
        Delivery { payload: Payload::Polled(poll, index) }
    }

    /// The records: one for a record delivery.
    pub fn records(&self) -> &[Record] {
        match &self.payload {
            Payload::One(one) => std::slice::from_ref(&one.0),
            Payload::Many(many) => &many.0,
            Payload::Polled(poll, i) => std::slice::from_ref(&poll.records[*i]),
        }
    }

    /// Whether this is a batch delivery.
    pub fn is_batch(&self) -> bool {
        matches!(self.payload, Payload::Many(..))
    }

    /// The context.
    pub fn context(&self) -> &ListenerContext {
        match &self.payload {
            Payload::One(one) => &one.1,
            Payload::Many(many) => &many.1,
            Payload::Polled(poll, _) => &poll.ctx,
        }
    }

    /// The record and context of a record delivery.
    pub fn record_parts(&self) -> Result<(&Record, &ListenerContext), ListenerError> {
        match &self.payload {
            Payload::One(one) => Ok((&one.0, &one.1)),
            Payload::Polled(poll, i) => Ok((&poll.records[*i], &poll.ctx)),
            Payload::Many(_) => Err(ListenerError::Extraction("a record listener was given a batch".into())),
        }
    }

    /// The records and context of a batch delivery.
    pub fn batch_parts(&self) -> Result<(&[Record], &ListenerContext), ListenerError> {
        match &self.payload {
            Payload::Many(many) => Ok((&many.0, &many.1)),
            Payload::One(_) | Payload::Polled(..) => {
                Err(ListenerError::Extraction("a batch listener was given a single record".into()))
            }
        }
    }
}

/// A reply to send (`#[send_to]`), already serialized.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) key: Option<Vec<u8>>,
}

impl Reply {
    /// A reply with this serialized value (the key is the incoming record's key).
    pub fn from_bytes(value: Option<Vec<u8>>) -> Self {
        Reply { value, key: None }
    }
}

/// What a successful call produced: nothing, or a reply.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub(crate) reply: Option<Reply>,
}

impl Outcome {
    /// Handled, nothing to send.
    pub fn done() -> Self {
        Outcome { reply: None }
    }

    /// Handled; send `reply` to the listener's `send_to` topic.
    pub fn reply(reply: Reply) -> Self {
        Outcome { reply: Some(reply) }
    }
}

/// The service type every listener becomes: a cloneable, type-erased `tower::Service<Delivery>` whose future
/// is one boxed [`HandlerFuture`].
///
/// `#[kafka_listener]` handlers are called directly (no readiness check), and the container's first poll of a
/// handler's future reuses one allocation; any other service's future is boxed once. Built with
/// [`ListenerService::new`] or [`ListenerService::from_fn`].
pub struct ListenerService(Box<dyn ErasedService>);

/// What calling a service and polling its future once gave.
pub(crate) enum FirstPoll {
    /// The handler finished on that poll.
    Ready(Result<Outcome, ListenerError>),
    /// The handler waits; its future, boxed, goes on from where the poll left it.
    Pending(HandlerFuture),
}

trait ErasedService: Send + Sync {
    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), ListenerError>>;
    fn call(&mut self, delivery: Delivery) -> HandlerFuture;
    /// Calls and polls the future once. A service whose future is known reuses one allocation for every call that
    /// finishes on its first poll; the others box each future, as [`call`](Self::call).
    fn call_and_poll(&mut self, delivery: Delivery, cx: &mut std::task::Context<'_>) -> FirstPoll {
        let mut call = self.call(delivery);
        match call.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => FirstPoll::Ready(r),
            std::task::Poll::Pending => FirstPoll::Pending(call),
        }
    }
    fn clone_box(&self) -> Box<dyn ErasedService>;
}

#[derive(Clone)]
struct Boxing<S>(S);

impl<S> ErasedService for Boxing<S>
where
    S: Service<Delivery, Response = Outcome, Error = ListenerError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), ListenerError>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, delivery: Delivery) -> HandlerFuture {
        Box::pin(self.0.call(delivery))
    }
    fn clone_box(&self) -> Box<dyn ErasedService> {
        Box::new(self.clone())
    }
}

/// A handler function (what `#[kafka_listener]` generates), always ready. Most handlers finish on their first
/// poll: the box their future was polled in is kept and the next call's future is written into it, so such a
/// handler costs no allocation per record.
struct HandlerFn<F, Fut> {
    f: F,
    /// The box of the last future that finished on its first poll; only touched through `&mut self`.
    spare: SyncWrapper<Option<Pin<Box<Fut>>>>,
}

impl<F: Clone, Fut> Clone for HandlerFn<F, Fut> {
    fn clone(&self) -> Self {
        HandlerFn { f: self.f.clone(), spare: SyncWrapper::new(None) }
    }
}

impl<F, Fut> ErasedService for HandlerFn<F, Fut>
where
    F: Fn(Delivery) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, ListenerError>> + Send + 'static,
{
    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), ListenerError>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, delivery: Delivery) -> HandlerFuture {
        Box::pin((self.f)(delivery))
    }
    fn call_and_poll(&mut self, delivery: Delivery, cx: &mut std::task::Context<'_>) -> FirstPoll {
        let call = (self.f)(delivery);
        // Taken out first: if the poll panics, the box is dropped with its future, not kept half-run.
        let mut boxed = match self.spare.get_mut().take() {
            Some(mut spare) => {
                spare.as_mut().set(call);
                spare
            }
            None => Box::pin(call),
        };
        match boxed.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => {
                *self.spare.get_mut() = Some(boxed);
                FirstPoll::Ready(r)
            }
            std::task::Poll::Pending => FirstPoll::Pending(boxed),
        }
    }
    fn clone_box(&self) -> Box<dyn ErasedService> {
        Box::new(self.clone())
    }
}

impl ListenerService {
    /// Erases a tower service.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Delivery, Response = Outcome, Error = ListenerError> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        ListenerService(Box::new(Boxing(service)))
    }

    /// A service calling a handler function, as `#[kafka_listener]` generates: always ready, and a call that
    /// finishes on its first poll allocates nothing.
    pub fn from_fn<F, Fut>(f: F) -> Self
    where
        F: Fn(Delivery) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, ListenerError>> + Send + 'static,
    {
        ListenerService(Box::new(HandlerFn { f, spare: SyncWrapper::new(None) }))
    }

    /// Calls the service and polls its future once (the container's first attempt of a record); the caller has
    /// seen the service ready.
    pub(crate) fn call_and_poll(&mut self, delivery: Delivery, cx: &mut std::task::Context<'_>) -> FirstPoll {
        self.0.call_and_poll(delivery, cx)
    }
}

impl Clone for ListenerService {
    fn clone(&self) -> Self {
        ListenerService(self.0.clone_box())
    }
}

impl std::fmt::Debug for ListenerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerService")
    }
}

impl Service<Delivery> for ListenerService {
    type Response = Outcome;
    type Error = ListenerError;
    type Future = HandlerFuture;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), ListenerError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, delivery: Delivery) -> HandlerFuture {
        self.0.call(delivery)
    }
}

/// Keeps a record (`true`) or skips it (`false`) before the handler runs.
pub type RecordFilter = fn(&Record) -> bool;

/// Where a listener reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// Subscribe to topics (names may hold `${...}` placeholders).
    Topics(Vec<String>),
    /// Subscribe to every topic matching a regular expression.
    Pattern(String),
    /// Assign partitions explicitly, no group rebalancing: `"topic:partition"` or `"topic:partition@offset"`
    /// where offset is a number, `-N` (N before the end), `beginning` or `end`; partitions may be a range
    /// `0-3` or a list `0,2`.
    Partitions(Vec<String>),
}

/// A listener endpoint: everything `#[kafka_listener(...)]` says, plus the service that handles deliveries.
/// String settings may hold `${key}` placeholders, resolved from configuration at start-up.
///
/// ```
/// use spate::{Delivery, ListenerDefinition, ListenerError, Outcome};
/// let def = ListenerDefinition::new(
///     "audit",
///     tower::service_fn(|d: Delivery| async move {
///         println!("{} records", d.records().len());
///         Ok::<_, ListenerError>(Outcome::done())
///     }),
/// )
/// .topics(["audit-log"])
/// .group_id("auditors")
/// .concurrency("2");
/// assert_eq!(def.id(), "audit");
/// ```
#[derive(Clone)]
pub struct ListenerDefinition {
    pub(crate) id: String,
    pub(crate) id_explicit: bool,
    pub(crate) subscription: Subscription,
    pub(crate) group_id: Option<String>,
    pub(crate) concurrency: Option<String>,
    pub(crate) auto_startup: Option<String>,
    pub(crate) batch: bool,
    pub(crate) ack_mode: Option<AckMode>,
    pub(crate) ordering: Option<Ordering>,
    pub(crate) key_concurrency: Option<String>,
    pub(crate) properties: Vec<String>,
    pub(crate) client_id_prefix: Option<String>,
    pub(crate) filter: Option<RecordFilter>,
    pub(crate) error_handler: Option<Arc<dyn ErrorHandler>>,
    pub(crate) rebalance_listener: Option<Arc<dyn RebalanceListener>>,
    pub(crate) cluster: Option<String>,
    pub(crate) send_to: Option<String>,
    pub(crate) uses_ack: bool,
    pub(crate) required_state: Vec<(TypeId, &'static str)>,
    pub(crate) retry_topic: Option<crate::retry_topic::RetryTopicConfiguration>,
    pub(crate) reads_headers: bool,
    pub(crate) service: ListenerService,
}

impl std::fmt::Debug for ListenerDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerDefinition")
            .field("id", &self.id)
            .field("subscription", &self.subscription)
            .field("group_id", &self.group_id)
            .field("concurrency", &self.concurrency)
            .field("batch", &self.batch)
            .field("ack_mode", &self.ack_mode)
            .finish_non_exhaustive()
    }
}

impl ListenerDefinition {
    /// A listener with this id and service, subscribed to nothing yet.
    pub fn new<S>(id: impl Into<String>, service: S) -> Self
    where
        S: Service<Delivery, Response = Outcome, Error = ListenerError> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        ListenerDefinition {
            id: id.into(),
            id_explicit: true,
            subscription: Subscription::Topics(Vec::new()),
            group_id: None,
            concurrency: None,
            auto_startup: None,
            batch: false,
            ack_mode: None,
            ordering: None,
            key_concurrency: None,
            properties: Vec::new(),
            client_id_prefix: None,
            filter: None,
            error_handler: None,
            rebalance_listener: None,
            cluster: None,
            send_to: None,
            uses_ack: false,
            required_state: Vec::new(),
            retry_topic: None,
            reads_headers: true,
            service: ListenerService::new(service),
        }
    }

    /// A listener whose handler is a function returning a future (what `#[kafka_listener]` generates): called
    /// directly, through [`ListenerService::from_fn`].
    #[doc(hidden)]
    pub fn from_fn<F, Fut>(id: impl Into<String>, f: F) -> Self
    where
        F: Fn(Delivery) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, ListenerError>> + Send + 'static,
    {
        let mut def = ListenerDefinition::new(id, tower::service_fn(f.clone()));
        def.service = ListenerService::from_fn(f);
        def
    }

    /// The id (the function name when `#[kafka_listener]` sets none).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self.id_explicit = true;
        self
    }

    #[doc(hidden)]
    pub fn default_id(mut self) -> Self {
        self.id_explicit = false;
        self
    }

    /// Subscribes to topics.
    pub fn topics<I: IntoIterator<Item = S>, S: Into<String>>(mut self, topics: I) -> Self {
        self.subscription = Subscription::Topics(topics.into_iter().map(Into::into).collect());
        self
    }

    /// Subscribes to topics matching a regular expression.
    pub fn topic_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.subscription = Subscription::Pattern(pattern.into());
        self
    }

    /// Assigns partitions explicitly (see [`Subscription::Partitions`]).
    pub fn topic_partitions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, specs: I) -> Self {
        self.subscription = Subscription::Partitions(specs.into_iter().map(Into::into).collect());
        self
    }

    /// Consumer group (default: the explicit id, else `kafka.consumer.group_id`).
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }

    /// Consumers in this listener's container (text, so it may be a placeholder).
    pub fn concurrency(mut self, n: impl Into<String>) -> Self {
        self.concurrency = Some(n.into());
        self
    }

    /// Whether the container starts with the application (`"true"` / `"false"` or a placeholder).
    pub fn auto_startup(mut self, v: impl Into<String>) -> Self {
        self.auto_startup = Some(v.into());
        self
    }

    /// Delivers the records of a poll together.
    pub fn batch(mut self, batch: bool) -> Self {
        self.batch = batch;
        self
    }

    /// When offsets are committed.
    pub fn ack_mode(mut self, mode: AckMode) -> Self {
        self.ack_mode = Some(mode);
        self
    }

    /// Partition or per-key ordering.
    pub fn ordering(mut self, ordering: Ordering) -> Self {
        self.ordering = Some(ordering);
        self
    }

    /// Keys handled at once per consumer with per-key ordering.
    pub fn key_concurrency(mut self, n: impl Into<String>) -> Self {
        self.key_concurrency = Some(n.into());
        self
    }

    /// A librdkafka consumer property for this listener only, as `"key=value"`.
    pub fn property(mut self, kv: impl Into<String>) -> Self {
        self.properties.push(kv.into());
        self
    }

    /// Prefix of the consumers' `client.id` (`{prefix}-{n}`).
    pub fn client_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.client_id_prefix = Some(prefix.into());
        self
    }

    /// Keeps only records for which `filter` returns true; the others are skipped (and committed).
    pub fn filter(mut self, filter: RecordFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// The error handler (default: [`DefaultErrorHandler`](crate::DefaultErrorHandler)).
    pub fn error_handler(mut self, handler: impl ErrorHandler) -> Self {
        self.error_handler = Some(Arc::new(handler));
        self
    }

    /// Told of partition assignments and revocations; may choose initial positions.
    pub fn rebalance_listener(mut self, listener: impl RebalanceListener) -> Self {
        self.rebalance_listener = Some(Arc::new(listener));
        self
    }

    /// A named cluster from `kafka.clusters`.
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.cluster = Some(name.into());
        self
    }

    /// Sends each successful result to this topic.
    pub fn send_to(mut self, topic: impl Into<String>) -> Self {
        self.send_to = Some(topic.into());
        self
    }

    /// Declares that the handler takes an `Ack` (so an ack mode without one is refused at start-up).
    pub fn uses_ack(mut self) -> Self {
        self.uses_ack = true;
        self
    }

    /// Declares that the handler takes `State<T>`, checked at start-up.
    pub fn requires_state<T: 'static>(mut self) -> Self {
        self.required_state.push((TypeId::of::<T>(), std::any::type_name::<T>()));
        self
    }

    /// Non-blocking retries through retry topics, then a dead-letter topic (Spring's `@RetryableTopic`); see
    /// [`RetryTopicConfiguration`](crate::RetryTopicConfiguration).
    pub fn retryable_topic(mut self, config: crate::retry_topic::RetryTopicConfiguration) -> Self {
        self.retry_topic = Some(config);
        self
    }

    /// Whether the service reads records' headers (default `true`; `#[kafka_listener]` sets it from its arguments'
    /// [`FromRecord::READS_HEADERS`](crate::FromRecord::READS_HEADERS)).
    ///
    /// librdkafka parses a record's headers when asked, allocating even for a record without any, so a container
    /// whose listener reads none skips the lookup: with several consumers it is most of what separates a fast
    /// listener from a bare rdkafka loop (see docs/benchmarks.md). It is skipped only when nothing else needs the
    /// headers either: no filter, a [`DefaultErrorHandler`](crate::DefaultErrorHandler) whose recoverer reads none
    /// (the default logging one), no `#[send_to]` (a reply honours the request's reply topic and correlation id),
    /// no retry topics, no layer, and `kafka.listener.observation_enabled = false` (trace continuation reads
    /// `traceparent`). Records of such a
    /// container have no headers: declare `false` only for a service that never looks at them.
    ///
    /// ```
    /// use spate::{Delivery, ListenerDefinition, ListenerError, Outcome};
    /// let def = ListenerDefinition::from_fn("count", |d: Delivery| async move {
    ///     let _bytes = d.records().iter().map(|r| r.value().map_or(0, <[u8]>::len)).sum::<usize>();
    ///     Ok::<_, ListenerError>(Outcome::done())
    /// })
    /// .topics(["events"])
    /// .reads_headers(false);
    /// # let _ = def;
    /// ```
    pub fn reads_headers(mut self, reads: bool) -> Self {
        self.reads_headers = reads;
        self
    }

    /// Wraps the service in a tower layer (timeout, rate limit, tracing, ...). A layer sees whole deliveries, so
    /// the listener reads headers from then on ([`reads_headers`](Self::reads_headers)).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<ListenerService>,
        L::Service: Service<Delivery, Response = Outcome, Error = ListenerError> + Clone + Send + Sync + 'static,
        <L::Service as Service<Delivery>>::Future: Send + 'static,
    {
        self.reads_headers = true;
        self.service = ListenerService::new(layer.layer(self.service));
        self
    }

    /// Calls the service once, as the container would (for unit tests of handlers).
    pub async fn call(&self, delivery: Delivery) -> Result<Outcome, ListenerError> {
        self.service.clone().oneshot(delivery).await
    }

    pub(crate) fn service(&self) -> ListenerService {
        self.service.clone()
    }
}

/// A listener registered by `#[kafka_listener]`, found by [`App`](crate::App) at start-up.
pub struct ListenerRegistration {
    /// Builds the definition.
    pub definition: fn() -> ListenerDefinition,
    /// `module_path!()` of the handler, for diagnostics.
    pub module: &'static str,
}

inventory::collect!(ListenerRegistration);

/// Every listener `#[kafka_listener]` registered in this program.
pub fn registered_listeners() -> Vec<ListenerDefinition> {
    inventory::iter::<ListenerRegistration>.into_iter().map(|r| (r.definition)()).collect()
}

/// Boxes a handler future (used by generated code).
#[doc(hidden)]
pub type HandlerFuture = BoxFuture<'static, Result<Outcome, ListenerError>>;
