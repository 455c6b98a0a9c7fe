//! One consumer of a container: poll, hand records to the listener service (in order per partition, or per key
//! on lanes), apply the error handler, commit by ack mode, obey pause/seek commands, and on stop finish what is
//! in flight, commit and leave the group.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tower::{Service, ServiceExt};

use super::batch_queue::BatchQueue;
use super::context::tpl_of;
use super::offsets::CommitPosition;
use super::poll::{Poll, PollSlot, PolledRecord};
use super::{Ack, AckMode, Command, ConsumerState, ContainerContext, ContainerEvent, ContainerSpec, OffsetTracker};
use super::{Ordering, SeekPosition};
use crate::error_handler::ErrorDecision;
use crate::listener::{Delivery, FirstPoll, ListenerContext, ListenerError, ListenerService, ListenerShared, Outcome};
use crate::observability::{HandlingScope, Invocation, LocalStats};
use crate::record::{CopyCache, RawMessage, Record, TopicPartition};
use crate::template::OutgoingRecord;
use crate::transaction::ListenerTransactions;

type Consumer_ = StreamConsumer<ContainerContext>;

/// Commits positions; on failure they are marked uncommitted again so a later commit retries them.
pub(crate) fn commit(
    consumer: &Consumer_,
    tracker: &Mutex<OffsetTracker>,
    commits: Vec<CommitPosition>,
    mode: CommitMode,
) -> bool {
    if commits.is_empty() {
        return true;
    }
    let mut tpl = TopicPartitionList::with_capacity(commits.len());
    for (t, p, o) in &commits {
        if tpl.add_partition_offset(t, *p, Offset::Offset(*o)).is_err() {
            tracing::warn!(topic = %t, partition = p, offset = o, "invalid commit position");
        }
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "offset commit failed; will retry");
            tracker.lock().restore(&commits);
            false
        }
    }
}

/// Turns a caught panic into the error the error handler sees.
fn panic_error(panic: Box<dyn std::any::Any + Send>) -> ListenerError {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    ListenerError::Panic(msg)
}

/// How [`Handler::begin`] left a record.
enum Begun {
    /// Handled: a success with nothing to send.
    Done,
    /// [`Handler::handle_record`] goes on from here.
    Continue(FirstAttempt),
}

/// The first attempt of a record, as [`Handler::begin`] left it.
enum FirstAttempt {
    /// Not called (transactional, or the service was not ready).
    NotBegun,
    /// Called and finished with this result (metrics already taken).
    Completed(Result<Outcome, ListenerError>),
    /// Called; the handler is waiting.
    Waiting(crate::listener::HandlerFuture, Invocation),
}

/// Handles one record: begins it synchronously and, unless that finished it, continues in its handling future.
/// `begun`: the offset tracker already has the record in flight (otherwise [`Handler::begin`] marks it).
async fn handle_one(
    handler: &Handler,
    svc: &mut ListenerService,
    stats: &mut LocalStats,
    record: PollSlot<'_>,
    begun: bool,
) -> Handled {
    let scope = handler.observe.record_scope(&record);
    let first =
        std::future::poll_fn(|cx| std::task::Poll::Ready(handler.begin(svc, record, begun, &scope, stats, cx))).await;
    match first {
        Begun::Done => Handled::Done,
        Begun::Continue(first) => scope.run(handler.handle_record(svc, record.to_owned(), first)).await,
    }
}

/// How a delivery ended.
enum Handled {
    /// Handled or recovered: its offsets may be committed (in manual modes, once acknowledged).
    Done,
    /// Abandoned at shutdown (timeout, or retries pending): not committed, so redelivered.
    Abandoned,
}

/// What the handling of deliveries needs; shared by the consumer task and its per-key lanes.
struct Handler {
    spec: ContainerSpec,
    /// What every delivery's context shares.
    shared: Arc<ListenerShared>,
    tracker: Arc<Mutex<OffsetTracker>>,
    consumer: std::sync::Weak<Consumer_>,
    stop: watch::Receiver<Option<Instant>>,
    /// Stop was asked before this handler existed.
    stopped_at_start: bool,
    observe: crate::observability::ListenerObserver,
    /// Set when the listener's cluster is transactional: each delivery runs in a transaction.
    txn: Option<Arc<ListenerTransactions>>,
}

impl Handler {
    fn manual(&self) -> bool {
        self.spec.ack_mode.is_manual()
    }

    /// The context of one delivery; `positions` is only called (and allocates) in manual ack modes.
    fn context(&self, positions: impl FnOnce() -> Vec<(Arc<str>, i32, i64)>) -> ListenerContext {
        let ack = if self.manual() {
            let immediate = (self.spec.ack_mode == AckMode::ManualImmediate).then(|| self.consumer.clone());
            Some(Ack::new(positions(), self.tracker.clone(), immediate))
        } else {
            None
        };
        ListenerContext { shared: self.shared.clone(), ack }
    }

    /// The context the deliveries of a poll share (automatic ack modes).
    fn poll_context(&self) -> ListenerContext {
        ListenerContext { shared: self.shared.clone(), ack: None }
    }

    /// A delivery of one polled record: the poll's, or in manual ack modes a copy with an `Ack` of its own.
    fn delivery(&self, record: PollSlot<'_>) -> Delivery {
        if self.manual() {
            let ctx = self.context(|| vec![(record.topic_arc().clone(), record.partition(), record.offset())]);
            Delivery::record(Record::clone(&record), ctx)
        } else {
            record.delivery()
        }
    }

    fn stopping(&self) -> bool {
        // Asked twice per record: the version check is one atomic load, the value's lock is taken only once it
        // changed (the value goes from `None` to `Some` once per start).
        self.stopped_at_start || (!matches!(self.stop.has_changed(), Ok(false)) && self.stop.borrow().is_some())
    }

    /// The transactional producer failed for good: stop handling.
    fn transaction_failed(&self) -> bool {
        self.txn.as_ref().is_some_and(|t| t.failed())
    }

    /// Runs one attempt, in a transaction with the offsets of `records` when transactional.
    ///
    /// Not an `async fn`: one would keep `work` twice in its state (as argument and as the awaited future), and
    /// this future is built for every record.
    fn attempt<'a, F>(
        &'a self,
        records: &'a [Record],
        work: F,
    ) -> impl std::future::Future<Output = Option<Result<(), ListenerError>>> + 'a
    where
        F: std::future::Future<Output = Option<Result<(), ListenerError>>> + Send + 'a,
    {
        match &self.txn {
            Some(t) => futures::future::Either::Left(Box::pin(t.run(records, &self.consumer, work))),
            None => futures::future::Either::Right(work),
        }
    }

    /// Asks the error handler, in a transaction committing the offsets of `offsets_of` on recovery when
    /// transactional.
    async fn decide(
        &self,
        records: &[Record],
        offsets_of: &[Record],
        error: &ListenerError,
        attempt: u32,
    ) -> ErrorDecision {
        let decide = self.on_error(records, error, attempt);
        match &self.txn {
            Some(t) => t.decide(offsets_of, &self.consumer, decide).await,
            None => decide.await,
        }
    }

    /// Resolves when the shutdown timeout after a stop request has passed.
    async fn shutdown_deadline(&self) {
        let mut stop = self.stop.clone();
        let at = match stop.wait_for(Option::is_some).await {
            Ok(v) => v.unwrap_or_else(Instant::now),
            Err(_) => Instant::now(),
        };
        tokio::time::sleep_until((at + self.spec.shutdown_timeout).into()).await;
    }

    /// Calls the service once with `delivery` (of `records`); `None` when the shutdown deadline passed first. A
    /// panic becomes an error.
    async fn call(
        &self,
        svc: &mut ListenerService,
        delivery: Delivery,
        records: &[Record],
    ) -> Option<Result<Outcome, ListenerError>> {
        let invocation = self.observe.invocation();
        if let Err(e) = svc.ready().await {
            let result = Some(Err(e));
            self.observe.invoked(invocation, records, result.as_ref());
            return result;
        }
        let call = svc.call(delivery);
        self.finish_call(call, invocation, records).await
    }

    /// Awaits a handler's future, racing the shutdown deadline; `None` when the deadline passed first.
    async fn finish_call(
        &self,
        call: crate::listener::HandlerFuture,
        invocation: Invocation,
        records: &[Record],
    ) -> Option<Result<Outcome, ListenerError>> {
        let call = AssertUnwindSafe(call).catch_unwind().map(|r| r.unwrap_or_else(|panic| Err(panic_error(panic))));
        // Most calls complete on their first poll: only one still pending races the shutdown deadline (boxed, so
        // the per-record future does not carry a timer it rarely needs).
        let mut call = std::pin::pin!(call);
        let result = match futures::poll!(call.as_mut()) {
            std::task::Poll::Ready(r) => Some(r),
            std::task::Poll::Pending => tokio::select! {
                biased;
                r = call => Some(r),
                _ = Box::pin(self.shutdown_deadline()) => None,
            },
        };
        self.observe.invoked(invocation, records, result.as_ref());
        result
    }

    /// Begins the first attempt of `record` outside any future: calls the handler and polls it once, inside the
    /// record's span and trace context. Most handlers finish on that poll with nothing to send; such a record is
    /// finished here, without the per-record future of [`handle_record`](Self::handle_record) (building and moving
    /// that future was a tenth of a listener's time), its metrics added up in the consumer task's `stats`, and
    /// (when not `begun`) marked handled with one visit to the offset tracker. Anything else is marked in flight
    /// and continues there, from where this left off.
    ///
    /// Marking a record in flight only after this first poll is safe outside manual ack modes: nothing reads the
    /// tracker while the poll runs on the consumer's task (rebalances are served by the same task's consumer
    /// poll), and until then the commit position stays at this record.
    fn begin(
        &self,
        svc: &mut ListenerService,
        record: PollSlot<'_>,
        begun: bool,
        scope: &HandlingScope,
        stats: &mut LocalStats,
        cx: &mut std::task::Context<'_>,
    ) -> Begun {
        let in_flight = || {
            if !begun {
                self.tracker.lock().begin(record.topic_arc(), record.partition(), record.offset());
            }
        };
        // A transactional attempt runs inside its transaction, which is a future of its own.
        if self.txn.is_some() || !matches!(svc.poll_ready(cx), std::task::Poll::Ready(Ok(()))) {
            in_flight();
            return Begun::Continue(FirstAttempt::NotBegun);
        }
        let delivery = self.delivery(record);
        let invocation = self.observe.invocation();
        let polled = scope.in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| svc.call_and_poll(delivery, cx))));
        let result = match polled {
            Ok(FirstPoll::Ready(r)) => r,
            Ok(FirstPoll::Pending(waiting)) => {
                in_flight();
                return Begun::Continue(FirstAttempt::Waiting(waiting, invocation));
            }
            Err(panic) => Err(panic_error(panic)),
        };
        match result {
            Ok(outcome) if outcome.reply.is_none() => {
                self.observe.succeeded_local(stats, &record, invocation);
                if self.manual() {
                    // Completed when acknowledged.
                } else if begun {
                    self.complete(std::slice::from_ref(&*record));
                } else {
                    self.tracker.lock().handled(record.topic_arc(), record.partition(), record.offset());
                }
                Begun::Done
            }
            other => {
                self.observe.invoked(invocation, std::slice::from_ref(&*record), Some(&other));
                in_flight();
                Begun::Continue(FirstAttempt::Completed(other))
            }
        }
    }

    /// Sends the reply, if any. Not an `async fn`, and the send boxed: most listeners reply nothing, and the
    /// send's state would otherwise be part of every record's future.
    fn reply<'a>(
        &'a self,
        outcome: Outcome,
        incoming: Option<&'a Record>,
    ) -> impl std::future::Future<Output = Result<(), ListenerError>> + 'a {
        match outcome.reply {
            None => futures::future::Either::Left(std::future::ready(Ok(()))),
            Some(_) => futures::future::Either::Right(Box::pin(self.send_reply(outcome, incoming))),
        }
    }

    async fn send_reply(&self, outcome: Outcome, incoming: Option<&Record>) -> Result<(), ListenerError> {
        let (Some(reply), Some(producer)) = (outcome.reply, &self.spec.producer) else {
            return Ok(());
        };
        let Some(to) = crate::reply::reply_destination(self.spec.send_to.as_deref(), incoming.map(Record::headers))
        else {
            return Ok(());
        };
        let key = reply.key.or_else(|| incoming.and_then(Record::key).map(|k| k.to_vec()));
        producer
            .send_bytes(OutgoingRecord {
                topic: to.topic,
                partition: to.partition,
                key,
                value: reply.value,
                timestamp: None,
                headers: to.headers,
            })
            .await
            .map(|_| ())
            .map_err(ListenerError::Reply)
    }

    fn complete(&self, records: &[Record]) {
        let mut t = self.tracker.lock();
        for r in records {
            t.complete(r.topic_arc(), r.partition(), r.offset());
        }
    }

    /// Asks the error handler, with this listener as the recoverers' `current_listener()`.
    async fn on_error(&self, records: &[Record], error: &ListenerError, attempt: u32) -> ErrorDecision {
        let listener = crate::error_handler::FailedListener {
            listener_id: self.spec.listener_id.clone(),
            group_id: self.spec.group_id.clone(),
            producer: self.spec.producer.clone(),
        };
        crate::error_handler::with_listener(listener, self.spec.error_handler.handle(records, error, attempt)).await
    }

    /// Handles one record with retries and recovery, continuing from its `first` attempt.
    async fn handle_record(&self, svc: &mut ListenerService, polled: PolledRecord, first: FirstAttempt) -> Handled {
        let record: &Record = &polled;
        let mut attempt = 1;
        let mut first = Some(first);
        loop {
            let work = async {
                let one = std::slice::from_ref(record);
                let called = match first.take() {
                    Some(FirstAttempt::Completed(result)) => Some(result),
                    Some(FirstAttempt::Waiting(call, invocation)) => self.finish_call(call, invocation, one).await,
                    Some(FirstAttempt::NotBegun) | None => self.call(svc, self.delivery(polled.slot()), one).await,
                };
                match called {
                    None => None,
                    Some(Ok(outcome)) => Some(self.reply(outcome, Some(record)).await),
                    Some(Err(e)) => Some(Err(e)),
                }
            };
            let Some(result) = self.attempt(std::slice::from_ref(record), work).await else {
                return Handled::Abandoned;
            };
            if self.transaction_failed() {
                return Handled::Abandoned;
            }
            let error = match result {
                Ok(()) => {
                    if !self.manual() {
                        self.complete(std::slice::from_ref(record));
                    }
                    return Handled::Done;
                }
                Err(e) => e,
            };
            let one = std::slice::from_ref(record);
            let decision = Box::pin(self.decide(one, one, &error, attempt)).await;
            if self.transaction_failed() {
                return Handled::Abandoned;
            }
            match decision {
                ErrorDecision::Skip => {
                    // Recovered: handled for good, acknowledged or not.
                    self.observe.recovered(one);
                    self.complete(one);
                    return Handled::Done;
                }
                ErrorDecision::Retry(delay) => {
                    if self.stopping() {
                        return Handled::Abandoned;
                    }
                    // Boxed: error paths stay out of the per-record future's size.
                    Box::pin(tokio::time::sleep(delay)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Handles a batch with retries. A record that cannot be deserialized is recovered alone and removed, then the
    /// rest is delivered again. When the handler names the records that failed (`BatchFailed`), the others are
    /// handled and only the failed ones are retried (the handler is called with just them) or, once their
    /// back-off is exhausted, recovered one by one.
    async fn handle_batch(&self, svc: &mut ListenerService, mut records: Vec<Record>) -> Handled {
        use crate::error_handler::batch::{split, BatchFailure};
        let mut attempt = 1;
        // Failures so far of each record named in a `BatchFailed`, by (partition, offset) within this poll.
        let mut record_attempts: std::collections::HashMap<(Arc<str>, i32, i64), u32> = Default::default();
        loop {
            if records.is_empty() {
                return Handled::Done;
            }
            let ctx =
                self.context(|| records.iter().map(|r| (r.topic_arc().clone(), r.partition(), r.offset())).collect());
            let work = async {
                match self.call(svc, Delivery::batch(records.clone(), ctx), &records).await {
                    None => None,
                    Some(Ok(outcome)) => Some(self.reply(outcome, None).await),
                    Some(Err(e)) => Some(Err(e)),
                }
            };
            let Some(result) = self.attempt(&records, work).await else {
                return Handled::Abandoned;
            };
            if self.transaction_failed() {
                return Handled::Abandoned;
            }
            let error = match result {
                Ok(()) => {
                    if !self.manual() {
                        self.complete(&records);
                    }
                    return Handled::Done;
                }
                Err(e) => e,
            };
            let transactional = self.txn.is_some();
            let delay = match split(&records, error) {
                BatchFailure::Poison(i, error) => {
                    let bad = records[i].clone();
                    // Transactional: its offset commits with the rest of the batch; committing it alone could skip
                    // records before it.
                    let decision = Box::pin(self.decide(std::slice::from_ref(&bad), &[], &error, 1)).await;
                    if self.transaction_failed() {
                        return Handled::Abandoned;
                    }
                    match decision {
                        ErrorDecision::Skip => {
                            self.observe.recovered(std::slice::from_ref(&bad));
                            self.complete(std::slice::from_ref(&bad));
                            records.remove(i);
                            continue;
                        }
                        ErrorDecision::Retry(delay) => delay,
                    }
                }
                BatchFailure::Records(failed) => {
                    // Without transactions the records not named are handled for good and only the failed ones are
                    // delivered again. With transactions the attempt's transaction was aborted, outputs of the
                    // succeeded records included, so they stay in the batch and are delivered again with it; only
                    // recovered records leave it.
                    let mut retry = Vec::with_capacity(records.len());
                    let mut delay = Duration::ZERO;
                    let mut failed = failed.into_iter().peekable();
                    for (i, r) in records.iter().enumerate() {
                        let error = match failed.next_if(|(j, _)| *j == i) {
                            Some((_, e)) => e,
                            None => {
                                if transactional {
                                    retry.push(r.clone());
                                } else if !self.manual() {
                                    self.complete(std::slice::from_ref(r));
                                }
                                continue;
                            }
                        };
                        let n = record_attempts.entry((r.topic_arc().clone(), r.partition(), r.offset())).or_insert(0);
                        *n += 1;
                        let decision = Box::pin(self.decide(std::slice::from_ref(r), &[], &error, *n)).await;
                        if self.transaction_failed() {
                            return Handled::Abandoned;
                        }
                        match decision {
                            ErrorDecision::Skip => {
                                self.observe.recovered(std::slice::from_ref(r));
                                self.complete(std::slice::from_ref(r));
                            }
                            ErrorDecision::Retry(d) => {
                                delay = delay.max(d);
                                retry.push(r.clone());
                            }
                        }
                    }
                    records = retry;
                    if records.is_empty() {
                        return Handled::Done;
                    }
                    delay
                }
                BatchFailure::Whole(error) => {
                    let decision = Box::pin(self.decide(&records, &records, &error, attempt)).await;
                    if self.transaction_failed() {
                        return Handled::Abandoned;
                    }
                    match decision {
                        ErrorDecision::Skip => {
                            self.observe.recovered(&records);
                            self.complete(&records);
                            return Handled::Done;
                        }
                        ErrorDecision::Retry(delay) => {
                            attempt += 1;
                            delay
                        }
                    }
                }
            };
            if self.stopping() {
                return Handled::Abandoned;
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// Per-key lanes: one task per lane, a key always on the same lane.
struct Lanes {
    senders: Vec<mpsc::UnboundedSender<(PolledRecord, OwnedSemaphorePermit)>>,
    joins: Vec<tokio::task::JoinHandle<()>>,
    permits: Arc<Semaphore>,
    done: Arc<Notify>,
}

impl Lanes {
    fn start(handler: &Arc<Handler>, lanes: usize, max_in_flight: usize) -> Lanes {
        let done = Arc::new(Notify::new());
        let mut senders = Vec::new();
        let mut joins = Vec::new();
        for _ in 0..lanes.max(1) {
            let (tx, mut rx) = mpsc::unbounded_channel::<(PolledRecord, OwnedSemaphorePermit)>();
            let h = handler.clone();
            let done = done.clone();
            let mut svc = h.spec.service.clone();
            joins.push(tokio::spawn(async move {
                let mut stats = LocalStats::new();
                while let Some((record, permit)) = rx.recv().await {
                    // Begun when dispatched: completions may come out of order.
                    let _ = handle_one(&h, &mut svc, &mut stats, record.slot(), true).await;
                    if rx.is_empty() {
                        h.observe.publish(&mut stats);
                    }
                    drop(permit);
                    done.notify_one();
                }
                h.observe.publish(&mut stats);
            }));
            senders.push(tx);
        }
        Lanes { senders, joins, permits: Arc::new(Semaphore::new(max_in_flight.max(1))), done }
    }

    async fn dispatch(&self, record: PolledRecord) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let mut h = DefaultHasher::new();
        match record.key() {
            Some(k) => k.hash(&mut h),
            // Records without a key keep their partition's order.
            None => (record.topic(), record.partition()).hash(&mut h),
        }
        let lane = (h.finish() as usize) % self.senders.len();
        if self.senders[lane].send((record, permit)).is_err() {
            tracing::error!("per-key lane ended unexpectedly");
        }
    }

    async fn finish(self) {
        drop(self.senders);
        for j in self.joins {
            let _ = j.await;
        }
    }
}

/// Holds a consumer and its batch queue so that, if the task is dropped without finishing (runtime shut down, task
/// aborted), the consumer is closed on its own thread instead of blocking a runtime thread, after the queue is
/// destroyed.
struct CloseGuard {
    consumer: Option<Arc<Consumer_>>,
    queue: Option<BatchQueue>,
}

impl std::ops::Deref for CloseGuard {
    type Target = Consumer_;
    fn deref(&self) -> &Consumer_ {
        match &self.consumer {
            Some(c) => c,
            // Taken only at the very end of `Worker::run`, after the last use.
            None => unreachable!("consumer used after close"),
        }
    }
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        let queue = self.queue.take();
        if let Some(c) = self.consumer.take() {
            let _ = std::thread::Builder::new().name("spate-consumer-close".into()).spawn(move || {
                drop(queue);
                drop(c)
            });
        }
    }
}

/// Partitions of a retry-topic container held until their next record is due (`ContainerSpec::due_gate`): the
/// partition is paused and its position moved back to the held record, so nothing sleeps on the handler path and
/// the consumer's other partitions keep flowing.
#[derive(Default)]
struct DueHolds {
    /// Partition → (offset of the held record, when it is due).
    held: std::collections::HashMap<TopicPartition, (i64, Instant)>,
}

impl DueHolds {
    fn next_due(&self) -> Option<Instant> {
        self.held.values().map(|(_, at)| *at).min()
    }
}

pub(crate) struct Worker {
    spec: ContainerSpec,
    index: usize,
    consumer: CloseGuard,
    state: Arc<ConsumerState>,
    stop: watch::Receiver<Option<Instant>>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Stops every consumer of the container (a transactional producer failed for good).
    stop_container: Option<watch::Sender<Option<Instant>>>,
}

impl Worker {
    pub(crate) fn new(
        spec: ContainerSpec,
        index: usize,
        consumer: Arc<Consumer_>,
        queue: Option<BatchQueue>,
        state: Arc<ConsumerState>,
        stop: watch::Receiver<Option<Instant>>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        let consumer = CloseGuard { consumer: Some(consumer), queue };
        Worker { spec, index, consumer, state, stop, commands, stop_container: None }
    }

    /// Lets this consumer stop the whole container.
    pub(crate) fn stopping_container_with(mut self, stop: watch::Sender<Option<Instant>>) -> Self {
        self.stop_container = Some(stop);
        self
    }

    fn publish(&self, event: ContainerEvent) {
        self.state.shared.publish(event);
    }

    fn commit_now(&self, mode: CommitMode) -> bool {
        let commits = self.state.tracker.lock().take_commits();
        commit(&self.consumer, &self.state.tracker, commits, mode)
    }

    /// Whether `r` may be handled now; if it is not due, its partition is held (paused, position moved back to
    /// it) until it is.
    fn pass_due_gate(&self, gate: super::DueGate, holds: &mut DueHolds, r: &Record) -> bool {
        let tp = r.topic_partition();
        if let Some(&(held, at)) = holds.held.get(&tp) {
            if r.offset() > held {
                // Fetched before the seek back took effect: it is read again after the held record.
                self.hold(holds, tp, held, at);
                return false;
            }
            holds.held.remove(&tp);
        }
        match gate(r) {
            None => true,
            Some(wait) => !self.hold(holds, tp, r.offset(), Instant::now() + wait),
        }
    }

    /// Pauses `tp` and seeks it back to `offset`; false (handle the record now rather than lose it) when the
    /// seek is refused.
    fn hold(&self, holds: &mut DueHolds, tp: TopicPartition, offset: i64, until: Instant) -> bool {
        let tpl = tpl_of([&tp]);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(listener = %self.spec.listener_id, partition = %tp, error = %e, "pause for a due time failed");
        }
        if let Err(e) = self.consumer.seek(&tp.topic, tp.partition, Offset::Offset(offset), Duration::ZERO) {
            tracing::warn!(listener = %self.spec.listener_id, partition = %tp, offset, error = %e,
                "cannot seek back to a record that is not due; handling it early");
            let _ = self.consumer.resume(&tpl);
            return false;
        }
        if holds.held.insert(tp.clone(), (offset, until)).is_none() {
            self.publish(ContainerEvent::ConsumerPaused {
                listener_id: self.spec.listener_id.to_string(),
                consumer: self.index,
                partitions: vec![tp],
            });
        }
        true
    }

    /// Resumes held partitions whose record is due (unless the application paused them).
    fn release_due(&self, holds: &mut DueHolds) {
        let now = Instant::now();
        let due: Vec<TopicPartition> =
            holds.held.iter().filter(|(_, (_, at))| *at <= now).map(|(p, _)| p.clone()).collect();
        if due.is_empty() {
            return;
        }
        for p in &due {
            holds.held.remove(p);
        }
        let paused = self.state.desired_paused();
        let assigned = self.state.assigned.lock().clone();
        let resume: Vec<&TopicPartition> =
            due.iter().filter(|p| assigned.contains(*p) && !paused.contains(*p)).collect();
        if !resume.is_empty() {
            match self.consumer.resume(&tpl_of(resume.iter().copied())) {
                Ok(()) => self.publish(ContainerEvent::ConsumerResumed {
                    listener_id: self.spec.listener_id.to_string(),
                    consumer: self.index,
                    partitions: resume.into_iter().cloned().collect(),
                }),
                Err(e) => {
                    tracing::warn!(listener = %self.spec.listener_id, error = %e, "resume of due partitions failed")
                }
            }
        }
    }

    /// Pauses/resumes partitions to match the container's pause state.
    fn reconcile_pause(&self) {
        let desired = self.state.desired_paused();
        let (to_pause, to_resume) = {
            let now = self.state.paused_now.lock();
            let p: Vec<TopicPartition> = desired.difference(&now).cloned().collect();
            let r: Vec<TopicPartition> = now.difference(&desired).cloned().collect();
            (p, r)
        };
        let id = self.spec.listener_id.to_string();
        if !to_pause.is_empty() {
            match self.consumer.pause(&tpl_of(&to_pause)) {
                Ok(()) => {
                    self.state.paused_now.lock().extend(to_pause.iter().cloned());
                    self.publish(ContainerEvent::ConsumerPaused {
                        listener_id: id.clone(),
                        consumer: self.index,
                        partitions: to_pause,
                    });
                }
                Err(e) => tracing::warn!(listener = %id, error = %e, "pause failed"),
            }
        }
        if !to_resume.is_empty() {
            match self.consumer.resume(&tpl_of(&to_resume)) {
                Ok(()) => {
                    let mut now = self.state.paused_now.lock();
                    for p in &to_resume {
                        now.remove(p);
                    }
                    drop(now);
                    self.publish(ContainerEvent::ConsumerResumed {
                        listener_id: id,
                        consumer: self.index,
                        partitions: to_resume,
                    });
                }
                Err(e) => tracing::warn!(listener = %id, error = %e, "resume failed"),
            }
        }
    }

    async fn seek(
        &self,
        tp: &TopicPartition,
        position: SeekPosition,
        lanes: Option<&Lanes>,
    ) -> Result<bool, KafkaError> {
        if !self.state.assigned.lock().contains(tp) {
            return Ok(false);
        }
        let offset = match position {
            SeekPosition::Beginning => Offset::Beginning,
            SeekPosition::End => Offset::End,
            SeekPosition::Offset(o) => Offset::Offset(o),
            SeekPosition::Timestamp(ts) => {
                let consumer = self.consumer.consumer.clone();
                let tp2 = tp.clone();
                // offsets_for_times blocks on a broker round trip.
                let found = tokio::task::spawn_blocking(move || {
                    let mut q = TopicPartitionList::new();
                    q.add_partition_offset(&tp2.topic, tp2.partition, Offset::Offset(ts))?;
                    match consumer {
                        Some(c) => c.offsets_for_times(q, Duration::from_secs(10)),
                        None => Err(KafkaError::Canceled),
                    }
                })
                .await
                .unwrap_or(Err(KafkaError::Canceled))?;
                found.find_partition(&tp.topic, tp.partition).map(|e| e.offset()).unwrap_or(Offset::End)
            }
        };
        if let Some(l) = lanes {
            // Records of this partition still on lanes finish first, so the seek cannot race them.
            let key = [(tp.topic.clone(), tp.partition)];
            while self.state.tracker.lock().in_flight_in(&key) > 0 {
                l.done.notified().await;
            }
        }
        // Timeout zero: an asynchronous seek, applied before the next fetch of this partition.
        self.consumer.seek(&tp.topic, tp.partition, offset, Duration::ZERO)?;
        self.state.tracker.lock().reset(&tp.topic, tp.partition);
        Ok(true)
    }

    pub(crate) async fn run(mut self) {
        let spec = self.spec.clone();
        let mut commands = std::mem::replace(&mut self.commands, mpsc::unbounded_channel().1);
        let mut stop = self.stop.clone();
        // A transactional consumer first fences its previous incarnation; if it cannot, it must not poll.
        let stop_container = self.stop_container.take();
        let (txn, txn_start_failed) =
            match ListenerTransactions::start(&spec, self.index, &self.state.shared, stop_container).await {
                Ok(t) => (t, false),
                Err(()) => (None, true),
            };
        if txn.is_some() {
            self.state.tracker.lock().set_transactional();
        }
        let mut handler_stop = self.stop.clone();
        let stopped_at_start = handler_stop.borrow_and_update().is_some();
        let handler = Arc::new(Handler {
            spec: spec.clone(),
            shared: Arc::new(ListenerShared {
                listener_id: spec.listener_id.clone(),
                group_id: spec.group_id.clone(),
                state: spec.state.clone(),
                producer: spec.producer.clone(),
            }),
            tracker: self.state.tracker.clone(),
            consumer: self.consumer.consumer.as_ref().map(Arc::downgrade).unwrap_or_default(),
            stop: handler_stop,
            stopped_at_start,
            observe: crate::observability::ListenerObserver::new(
                spec.listener_id.clone(),
                spec.group_id.clone(),
                spec.observation,
            ),
            txn,
        });
        let lanes = (spec.ordering == Ordering::Key && !spec.batch)
            .then(|| Lanes::start(&handler, spec.key_concurrency, spec.max_poll_records.max(spec.key_concurrency) * 2));
        let mut svc = spec.service.clone();
        let lag = self
            .consumer
            .consumer
            .as_ref()
            .map(|c| crate::observability::LagSampler::start(spec.listener_id.clone(), Arc::downgrade(c)));
        let mut stream = self.consumer.stream();
        let mut buffer: Vec<Record> = Vec::with_capacity(spec.max_poll_records);
        let mut copy_cache = CopyCache::new(spec.read_headers);
        let mut generation = self.state.generation.load(AtomicOrdering::Acquire);
        let mut last_commit = Instant::now();
        let mut since_commit = 0usize;
        let mut last_record = Instant::now();
        let mut last_idle_event = Instant::now();
        let time_based = matches!(spec.ack_mode, AckMode::Time | AckMode::CountTime);
        let mut holds = DueHolds::default();
        let mut stats = LocalStats::new();
        let id = spec.listener_id.to_string();
        self.publish(ContainerEvent::ConsumerStarted { listener_id: id.clone(), consumer: self.index });
        tracing::debug!(listener = %id, consumer = self.index, "consumer started");

        loop {
            if stop.borrow().is_some() || txn_start_failed || handler.transaction_failed() {
                break;
            }
            // Wake up for idle events and time-based commits even when nothing arrives.
            let mut wake = Instant::now() + Duration::from_secs(3600);
            if let Some(idle) = spec.idle_interval {
                wake = wake.min(last_record.max(last_idle_event) + idle);
            }
            if time_based {
                wake = wake.min(last_commit + spec.ack_time);
            }
            // Checked on every turn, not only on the timer: a busy stream would starve the timer branch.
            if let Some(due) = holds.next_due() {
                if due <= Instant::now() {
                    self.release_due(&mut holds);
                }
                wake = wake.min(holds.next_due().unwrap_or(wake));
            }
            let batch_ready = async {
                match &self.consumer.queue {
                    Some(q) => q.ready().await,
                    None => std::future::pending().await,
                }
            };
            let lanes_done = async {
                match &lanes {
                    Some(l) => l.done.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stop.changed() => continue,
                cmd = commands.recv() => {
                    match cmd {
                        Some(Command::Reconcile) => self.reconcile_pause(),
                        Some(Command::Seek { partition, position, reply }) => {
                            let r = self.seek(&partition, position, lanes.as_ref()).await;
                            if let Some(t) = &handler.txn {
                                t.forget(&partition);
                            }
                            let _ = reply.send(r);
                        }
                        None => {}
                    }
                    continue;
                }
                msg = stream.next() => {
                    let mut polled = Vec::with_capacity(spec.max_poll_records);
                    match msg {
                        Some(Ok(m)) => polled.push(m),
                        Some(Err(e)) => {
                            tracing::warn!(listener = %id, consumer = self.index, error = %e, "poll error");
                            continue;
                        }
                        None => break,
                    }
                    // Take what else is ready, up to max_poll_records: this is "one poll".
                    while polled.len() < spec.max_poll_records {
                        match stream.next().now_or_never() {
                            Some(Some(Ok(m))) => polled.push(m),
                            Some(Some(Err(e))) => tracing::warn!(listener = %id, error = %e, "poll error"),
                            _ => break,
                        }
                    }
                    crate::record::copy_messages(polled.iter().map(RawMessage::of), &mut copy_cache, &mut buffer);
                }
                // Assigned partitions' records arrive here, a batch per call (the consumer queue above brings
                // rebalances, errors, and records of partitions that could not be forwarded).
                _ = batch_ready => {
                    if let Some(q) = &self.consumer.queue {
                        q.take(spec.max_poll_records, &mut buffer);
                    }
                    if buffer.is_empty() {
                        continue;
                    }
                }
                _ = lanes_done => {
                    self.commit_by_mode(&mut last_commit, &mut since_commit, true);
                    continue;
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    if time_based && last_commit.elapsed() >= spec.ack_time {
                        self.commit_now(CommitMode::Async);
                        last_commit = Instant::now();
                        since_commit = 0;
                    }
                    if let Some(idle) = spec.idle_interval {
                        let since = last_record.elapsed();
                        if since >= idle && last_idle_event.elapsed() >= idle {
                            last_idle_event = Instant::now();
                            self.publish(ContainerEvent::ListenerIdle { listener_id: id.clone(), consumer: self.index, idle_for: since });
                        }
                    }
                    continue;
                }
            }
            last_record = Instant::now();
            // A rebalance during the poll may have revoked partitions whose records are in the buffer: their new
            // owner will handle them.
            let g = self.state.generation.load(AtomicOrdering::Acquire);
            if g != generation {
                generation = g;
                let assigned = self.state.assigned.lock().clone();
                buffer.retain(|r| assigned.contains(&r.topic_partition()));
                holds.held.retain(|p, _| assigned.contains(p));
            }
            let records = std::mem::take(&mut buffer);
            if spec.batch {
                buffer = Vec::with_capacity(spec.max_poll_records);
                self.process_batch(&handler, &mut svc, records, &mut last_commit, &mut since_commit).await;
            } else {
                let poll = Poll::new(records, handler.poll_context());
                if let Some(l) = &lanes {
                    for r in Poll::each(&poll) {
                        if handler.stopping() {
                            break;
                        }
                        if spec.filter.is_some_and(|f| !f(&r)) {
                            handler.tracker.lock().handled(r.topic_arc(), r.partition(), r.offset());
                            continue;
                        }
                        handler.tracker.lock().begin(r.topic_arc(), r.partition(), r.offset());
                        l.dispatch(r.to_owned()).await;
                    }
                } else {
                    for r in Poll::each(&poll) {
                        if handler.stopping() {
                            // Fetched but not begun: not committed, so the next owner handles it.
                            break;
                        }
                        if handler.txn.as_ref().is_some_and(|t| t.already_committed(&r)) {
                            continue;
                        }
                        if let Some(gate) = spec.due_gate {
                            if !self.pass_due_gate(gate, &mut holds, &r) {
                                continue;
                            }
                        }
                        if spec.filter.is_some_and(|f| !f(&r)) {
                            handler.tracker.lock().handled(r.topic_arc(), r.partition(), r.offset());
                            continue;
                        }
                        // Manual modes: acknowledgments complete records, so they must be in flight before the
                        // handler runs; otherwise `begin` marks them.
                        let begun = handler.manual();
                        if begun {
                            handler.tracker.lock().begin(r.topic_arc(), r.partition(), r.offset());
                        }
                        match handle_one(&handler, &mut svc, &mut stats, r, begun).await {
                            Handled::Done => {
                                since_commit += 1;
                                self.commit_by_mode(&mut last_commit, &mut since_commit, false);
                            }
                            Handled::Abandoned => break,
                        }
                    }
                    handler.observe.publish(&mut stats);
                }
                // Records still with lanes (or retried there) keep the poll; otherwise its buffer is reused.
                buffer = Poll::recycle(poll).unwrap_or_else(|| Vec::with_capacity(spec.max_poll_records));
            }
            // End of the poll's records.
            if matches!(spec.ack_mode, AckMode::Batch | AckMode::Manual) || lanes.is_some() {
                self.commit_now(CommitMode::Async);
                last_commit = Instant::now();
                since_commit = 0;
            }
        }

        // Stop: per-key lanes finish what was dispatched (each call bounded by the shutdown deadline).
        if let Some(l) = lanes {
            l.finish().await;
        }
        drop(lag);
        drop(stream);
        drop(handler);
        let index = self.index;
        let state = self.state.clone();
        let timeout = spec.shutdown_timeout + Duration::from_secs(10);
        // The queue goes first: the consumer must outlive it, and closing revokes (unforwards) the partitions.
        drop(self.consumer.queue.take());
        let Some(consumer) = self.consumer.consumer.take() else {
            return;
        };
        drop(self);
        // Everything handled is committed synchronously, then the consumer closes (final revoke callback, leave
        // group). Both block on the broker, so they run off the runtime's threads — an in-process broker may need
        // them.
        let tracker = state.tracker.clone();
        let id2 = id.clone();
        let close = tokio::task::spawn_blocking(move || {
            let commits = tracker.lock().take_commits();
            if !commit(&consumer, &tracker, commits, CommitMode::Sync) {
                tracing::warn!(listener = %id2, consumer = index, "final commit failed; some records may be redelivered");
            }
            drop(consumer);
        });
        if tokio::time::timeout(timeout, close).await.is_err() {
            tracing::warn!(listener = %id, consumer = index, "consumer did not close in time; leaving it to finish in the background");
        }
        tracing::debug!(listener = %id, consumer = index, "consumer stopped");
        state.shared.publish(ContainerEvent::ConsumerStopped { listener_id: id, consumer: index });
    }

    /// Commits according to the ack mode after a record (or, for lanes, after completions).
    fn commit_by_mode(&self, last_commit: &mut Instant, since_commit: &mut usize, from_lanes: bool) {
        let due = match self.spec.ack_mode {
            AckMode::Record => true,
            AckMode::Count => *since_commit >= self.spec.ack_count,
            AckMode::Time => last_commit.elapsed() >= self.spec.ack_time,
            AckMode::CountTime => *since_commit >= self.spec.ack_count || last_commit.elapsed() >= self.spec.ack_time,
            AckMode::Batch | AckMode::Manual => from_lanes,
            AckMode::ManualImmediate => false,
        };
        if due {
            self.commit_now(CommitMode::Async);
            *last_commit = Instant::now();
            *since_commit = 0;
        }
    }

    async fn process_batch(
        &self,
        handler: &Arc<Handler>,
        svc: &mut ListenerService,
        records: Vec<Record>,
        last_commit: &mut Instant,
        since_commit: &mut usize,
    ) {
        if records.is_empty() || handler.stopping() {
            return;
        }
        let mut records = records;
        if let Some(t) = &handler.txn {
            records.retain(|r| !t.already_committed(r));
        }
        let mut keep = Vec::with_capacity(records.len());
        {
            let mut t = handler.tracker.lock();
            for r in records {
                t.begin(r.topic_arc(), r.partition(), r.offset());
                match self.spec.filter {
                    Some(f) if !f(&r) => t.complete(r.topic_arc(), r.partition(), r.offset()),
                    _ => keep.push(r),
                }
            }
        }
        let n = keep.len();
        let scope = handler.observe.batch_scope(&keep);
        if let Handled::Done = scope.run(handler.handle_batch(svc, keep)).await {
            *since_commit += n;
            self.commit_by_mode(last_commit, since_commit, false);
        }
    }
}
