//! The consumer's message queue: librdkafka delivers the assigned partitions' messages to a queue of the
//! container's own, which the worker empties a batch per call (`rd_kafka_consume_batch_queue`), as a Java
//! consumer's `poll()` returns a batch.
//!
//! Why not the consumer queue: rdkafka's consumer poll returns one message per call, each wrapped in an event
//! with an `Arc` of its own, with a clock read and a queue lock per message; at a million records a second that
//! is a third of a listener's time. And why not batch-consume the consumer queue itself: it also carries
//! rebalances, which `rd_kafka_consume_batch_queue` would serve on its own (an unassign behind the container's
//! back). So only partition queues are forwarded here, and they carry nothing but fetched messages and
//! per-partition consumer errors; rebalances, errors of the client and commit results stay on the consumer
//! queue, which the worker keeps polling through the `StreamConsumer`.
//!
//! A partition is forwarded in the rebalance callback, before it is assigned, so its messages never arrive on
//! both queues. librdkafka keeps an application's forwarding across later assignments of the partition.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::bindings as rd;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::sync::Notify;

use super::ContainerContext;
use crate::record::{body_len, Copier, CopyCache, RawMessage, Record, TopicPartition};

type Consumer_ = StreamConsumer<ContainerContext>;

/// A librdkafka queue pointer that may cross threads (librdkafka queues are thread-safe).
#[derive(Clone, Copy)]
struct QueuePtr(NonNull<rd::rd_kafka_queue_t>);

// SAFETY: librdkafka's queue functions lock the queue themselves.
unsafe impl Send for QueuePtr {}
// SAFETY: as above.
unsafe impl Sync for QueuePtr {}

/// Where the rebalance callback forwards newly assigned partitions. It does not own the queue: the
/// [`BatchQueue`] sets it when created and clears it, under the same lock, before destroying the queue.
#[derive(Default)]
pub(crate) struct ForwardTarget(Mutex<Option<QueuePtr>>);

impl ForwardTarget {
    /// Sends the messages of `partitions` of the consumer `rk` to the batch queue, if there is one. A partition
    /// that cannot be forwarded keeps delivering to the consumer queue, which the worker also reads.
    pub(crate) fn forward(&self, rk: *mut rd::rd_kafka_t, partitions: &[TopicPartition]) {
        let target = self.0.lock();
        let Some(queue) = *target else {
            return;
        };
        for tp in partitions {
            let Ok(topic) = CString::new(tp.topic.as_str()) else {
                continue;
            };
            // SAFETY: `rk` is the live consumer whose rebalance callback is running; the partition queue handle
            // is released right after forwarding (the forward keeps its own reference).
            unsafe {
                let partition_queue = rd::rd_kafka_queue_get_partition(rk, topic.as_ptr(), tp.partition);
                if partition_queue.is_null() {
                    tracing::warn!(partition = %tp, "no partition queue; its records arrive one per poll");
                    continue;
                }
                rd::rd_kafka_queue_forward(partition_queue, queue.0.as_ptr());
                rd::rd_kafka_queue_destroy(partition_queue);
            }
        }
    }
}

extern "C" fn wake(_rk: *mut rd::rd_kafka_t, opaque: *mut std::ffi::c_void) {
    // SAFETY: `opaque` is the `Notify` of a live `BatchQueue`, which disables this callback before releasing it
    // (librdkafka calls it under the queue's lock and disabling takes that lock).
    let ready = unsafe { &*(opaque as *const Notify) };
    ready.notify_one();
}

/// A consumer's own message queue. Owns a reference to the consumer, so librdkafka outlives the queue; it must be
/// dropped before the consumer is closed (closing revokes partitions, which unforwards them).
pub(crate) struct BatchQueue {
    queue: QueuePtr,
    target: Arc<ForwardTarget>,
    ready: Arc<Notify>,
    /// Reused between calls: the message pointers of one call, and what copying keeps between polls.
    scratch: Mutex<(Vec<*mut rd::rd_kafka_message_t>, CopyCache)>,
    /// Keeps librdkafka alive until the queue is destroyed (fields drop after `drop` runs).
    _consumer: Arc<Consumer_>,
}

// SAFETY: the scratch slots hold no pointers between calls of `take`; the queue is thread-safe.
unsafe impl Send for BatchQueue {}
// SAFETY: as above; `take` holds the scratch lock while it uses the slots.
unsafe impl Sync for BatchQueue {}

impl BatchQueue {
    /// Creates the queue and makes it the target of `target` (the consumer's rebalance callback forwards to it).
    /// Records get their headers when `read_headers` (see `ContainerSpec::read_headers`).
    pub(crate) fn new(consumer: Arc<Consumer_>, target: Arc<ForwardTarget>, read_headers: bool) -> Option<Self> {
        let rk = consumer.client().native_ptr();
        // SAFETY: a live client; the queue is destroyed in `drop`, before the consumer reference is released.
        let queue = NonNull::new(unsafe { rd::rd_kafka_queue_new(rk) })?;
        let ready = Arc::new(Notify::new());
        // SAFETY: `ready` outlives the registration (see `wake`).
        unsafe { rd::rd_kafka_queue_cb_event_enable(queue.as_ptr(), Some(wake), Arc::as_ptr(&ready) as *mut _) };
        let queue = QueuePtr(queue);
        *target.0.lock() = Some(queue);
        Some(BatchQueue {
            queue,
            target,
            ready,
            scratch: Mutex::new((Vec::new(), CopyCache::new(read_headers))),
            _consumer: consumer,
        })
    }

    /// Resolves when messages may be waiting. librdkafka wakes the queue when it goes from empty to not empty, so
    /// after a `take` that filled its batch, this resolves at once.
    pub(crate) async fn ready(&self) {
        // SAFETY: a live queue.
        if unsafe { rd::rd_kafka_queue_length(self.queue.0.as_ptr()) } > 0 {
            return;
        }
        // A message enqueued since the check leaves a permit, so this cannot miss it.
        self.ready.notified().await;
    }

    /// Takes up to `max` messages without waiting and appends them to `out` as records; returns how many
    /// messages were taken (consumer errors among them are logged, not returned).
    pub(crate) fn take(&self, max: usize, out: &mut Vec<Record>) -> usize {
        let max = max.max(1);
        let mut scratch = self.scratch.lock();
        let (slots, copies) = &mut *scratch;
        slots.clear();
        slots.reserve(max);
        // SAFETY: `slots` has room for `max` pointers; librdkafka writes `n` of them.
        let n = unsafe { rd::rd_kafka_consume_batch_queue(self.queue.0.as_ptr(), 0, slots.as_mut_ptr(), max) };
        if n <= 0 {
            return 0;
        }
        let n = (n as usize).min(max);
        // SAFETY: librdkafka initialised the first `n` slots.
        unsafe { slots.set_len(n) };
        let taken = Taken(slots);
        let (mut count, mut bytes) = (0, 0);
        for &ptr in taken.0.iter() {
            // SAFETY: returned by librdkafka and not destroyed yet.
            let Some(m) = (unsafe { RawMessage::from_ptr(ptr) }) else {
                continue;
            };
            match m.error() {
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {
                    count += 1;
                    bytes += body_len(m);
                }
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => {}
                err => {
                    let error = rdkafka::error::RDKafkaErrorCode::from(err);
                    tracing::warn!(topic = %m.topic(), partition = m.partition(), %error, "consumer error");
                }
            }
        }
        let mut copier = Copier::new(copies, out, count, bytes);
        for slot in taken.0.iter_mut() {
            let ptr = std::mem::replace(slot, std::ptr::null_mut());
            // SAFETY: returned by librdkafka and not destroyed yet; `m` is not used after the destroy below.
            if let Some(m) = unsafe { RawMessage::from_ptr(ptr) } {
                if m.error() == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    copier.push(m);
                }
                // Each message goes as soon as it is copied: the blocks librdkafka allocated parsing its headers
                // are then freed into this thread's cache and reused for the next message's, where destroying the
                // poll's messages together sent hundreds of them through the allocator's shared free lists (and
                // made the next large allocation consolidate them).
                // SAFETY: destroyed once; its slot is null now, so `taken` skips it.
                unsafe { rd::rd_kafka_message_destroy(ptr) };
            }
        }
        copier.finish();
        n
    }
}

/// Destroys the messages of one `take` not destroyed yet, even if copying them panicked.
struct Taken<'a>(&'a mut Vec<*mut rd::rd_kafka_message_t>);

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        for ptr in self.0.drain(..).filter(|p| !p.is_null()) {
            // SAFETY: each pointer came from `rd_kafka_consume_batch_queue` and is destroyed once (slots of
            // destroyed messages are null).
            unsafe { rd::rd_kafka_message_destroy(ptr) };
        }
    }
}

impl Drop for BatchQueue {
    fn drop(&mut self) {
        // No forward to a queue about to go; partitions already forwarded lose theirs when revoked (closing the
        // consumer revokes them), and until then their messages are discarded by the destroyed queue.
        *self.target.0.lock() = None;
        // SAFETY: disabling takes the queue's lock, so no `wake` runs once it returns; then the handle is
        // released while the consumer (held by `self._consumer`) is still alive.
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(self.queue.0.as_ptr(), None, std::ptr::null_mut());
            rd::rd_kafka_queue_destroy(self.queue.0.as_ptr());
        }
    }
}
