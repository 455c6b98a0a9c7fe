//! Listener containers against the embedded broker: ack modes, concurrency, per-key ordering, pause/resume, seek,
//! rebalance hooks, idle events, the registry, and graceful shutdown / rebalance / crash with records in flight.
#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Seen, WAIT};
use spate::test::{wait_for_assignment, wait_until, EmbeddedBroker};
use spate::{
    kafka_listener, Ack, ContainerEvent, Headers, InitialPositions, Meta, SeekPosition, State, TopicPartition,
};

/// What handlers report and how they behave: optional per-record delay, and a gate that holds one offset until
/// released.
#[derive(Clone, Default)]
struct Probe {
    seen: Seen<(i32, i64, String)>,
    delay_ms: Arc<AtomicUsize>,
    hold_offset: Arc<std::sync::atomic::AtomicI64>,
    held: Arc<AtomicBool>,
    release: Arc<tokio::sync::Notify>,
    active: Arc<AtomicUsize>,
    max_active: Arc<AtomicUsize>,
    skip_ack_offset: Arc<std::sync::atomic::AtomicI64>,
    /// Set by `expect_parallel`: the first handler waits for a second one to become active.
    rendezvous: Arc<AtomicBool>,
}

impl Probe {
    fn new() -> Self {
        common::init_tracing();
        let p = Probe::default();
        p.hold_offset.store(-1, Ordering::SeqCst);
        p.skip_ack_offset.store(-1, Ordering::SeqCst);
        p
    }
    fn hold_at(self, offset: i64) -> Self {
        self.hold_offset.store(offset, Ordering::SeqCst);
        self
    }
    fn delay(self, ms: usize) -> Self {
        self.delay_ms.store(ms, Ordering::SeqCst);
        self
    }
    /// The first handler waits (up to 5 s) until another handler is active at the same time. Parallel consumers
    /// always get there however their starts are staggered (a loaded machine); sequential handling never does,
    /// so `max_active` stays 1.
    fn expect_parallel(self) -> Self {
        self.rendezvous.store(true, Ordering::SeqCst);
        self
    }
    async fn handle(&self, meta: &Meta, body: String) {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        if self.rendezvous.swap(false, Ordering::SeqCst) {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while self.active.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            self.max_active.fetch_max(self.active.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        let d = self.delay_ms.load(Ordering::SeqCst);
        if d > 0 {
            tokio::time::sleep(Duration::from_millis(d as u64)).await;
        }
        if meta.offset == self.hold_offset.load(Ordering::SeqCst) {
            self.held.store(true, Ordering::SeqCst);
            self.release.notified().await;
        }
        self.active.fetch_sub(1, Ordering::SeqCst);
        self.seen.push((meta.partition, meta.offset, body));
    }
    async fn wait_held(&self) {
        wait_until(WAIT, "the held record", || self.held.load(Ordering::SeqCst)).await.unwrap();
    }
    fn offsets(&self) -> Vec<i64> {
        self.seen.get().iter().map(|(_, o, _)| *o).collect()
    }
}

/// Produces `n` records with keys `k0`..`k3`; spread round-robin over `partitions` partitions.
async fn produce_spread(broker: &EmbeddedBroker, topic: &str, n: usize, partitions: i32) {
    let t: spate::KafkaTemplate<String, String> = broker.template();
    for i in 0..n {
        drop(t.send_to(topic, i as i32 % partitions, Some(format!("k{}", i % 4)), format!("v{i}")));
    }
    t.flush(Duration::from_secs(10)).await.unwrap();
}

async fn produce_n(broker: &EmbeddedBroker, topic: &str, n: usize) {
    let t: spate::KafkaTemplate<String, String> = broker.template();
    for i in 0..n {
        drop(t.send(topic, Some(format!("k{}", i % 4)), format!("v{i}")));
    }
    t.flush(Duration::from_secs(10)).await.unwrap();
}

async fn committed(broker: &EmbeddedBroker, group: &str, topic: &str) -> Option<i64> {
    broker.committed_offset(group, topic, 0).await.unwrap()
}

/// Waits until the committed offset equals `want`.
async fn wait_committed(broker: &EmbeddedBroker, group: &str, topic: &str, want: Option<i64>) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let c = committed(broker, group, topic).await;
        if c == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "committed {c:?}, wanted {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------- ack modes ----------

#[kafka_listener(topics = "ack-record", group_id = "ack-record", ack_mode = "record")]
async fn ack_record(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn ack_mode_record_commits_after_each_record() {
    let broker = EmbeddedBroker::builder().topic("ack-record", 1).start().await.unwrap();
    produce_n(&broker, "ack-record", 5).await;
    let p = Probe::new().hold_at(2);
    let app = broker.app().state(p.clone()).listener(ack_record::definition()).start().await.unwrap();
    p.wait_held().await;
    wait_committed(&broker, "ack-record", "ack-record", Some(2)).await;
    p.release.notify_one();
    wait_committed(&broker, "ack-record", "ack-record", Some(5)).await;
    app.shutdown().await;
}

#[kafka_listener(topics = "ack-batch", group_id = "ack-batch")]
async fn ack_batch(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn ack_mode_batch_is_the_default_and_commits_after_the_polls_records() {
    let broker = EmbeddedBroker::builder().topic("ack-batch", 1).start().await.unwrap();
    produce_n(&broker, "ack-batch", 5).await;
    let p = Probe::new().hold_at(2);
    let app = broker.app().state(p.clone()).listener(ack_batch::definition()).start().await.unwrap();
    p.wait_held().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(committed(&broker, "ack-batch", "ack-batch").await, None, "nothing committed mid-batch");
    p.release.notify_one();
    wait_committed(&broker, "ack-batch", "ack-batch", Some(5)).await;
    app.shutdown().await;
}

#[kafka_listener(topics = "ack-count", group_id = "ack-count", ack_mode = "count")]
async fn ack_count(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn ack_mode_count_commits_every_ack_count_records() {
    let broker = EmbeddedBroker::builder().topic("ack-count", 1).start().await.unwrap();
    produce_n(&broker, "ack-count", 5).await;
    let p = Probe::new().hold_at(3);
    let app = broker
        .app()
        .set("kafka.listener.ack_count", 2)
        .state(p.clone())
        .listener(ack_count::definition())
        .start()
        .await
        .unwrap();
    p.wait_held().await;
    // Records 0..=2 done: a commit after 2 records, none yet after the third.
    wait_committed(&broker, "ack-count", "ack-count", Some(2)).await;
    p.release.notify_one();
    wait_committed(&broker, "ack-count", "ack-count", Some(4)).await;
    p.seen.wait_for(5, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        committed(&broker, "ack-count", "ack-count").await,
        Some(4),
        "the fifth record alone is below ack_count"
    );
    app.shutdown().await;
    assert_eq!(committed(&broker, "ack-count", "ack-count").await, Some(5), "stop commits the rest");
}

#[kafka_listener(topics = "ack-time", group_id = "ack-time", ack_mode = "time")]
async fn ack_time(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn ack_mode_time_commits_when_ack_time_has_passed() {
    let broker = EmbeddedBroker::builder().topic("ack-time", 1).start().await.unwrap();
    let p = Probe::new();
    let app = broker
        .app()
        .set("kafka.listener.ack_time_ms", 1500)
        .state(p.clone())
        .listener(ack_time::definition())
        .start()
        .await
        .unwrap();
    wait_for_assignment(&app.container("ack_time").unwrap(), 1, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await; // the timer restarts after the idle commit check
    produce_n(&broker, "ack-time", 3).await;
    p.seen.wait_for(3, WAIT).await;
    let early = committed(&broker, "ack-time", "ack-time").await;
    wait_committed(&broker, "ack-time", "ack-time", Some(3)).await;
    assert_eq!(early, None, "not committed before ack_time");
    app.shutdown().await;
}

#[kafka_listener(topics = "ack-count-time", group_id = "ack-count-time", ack_mode = "count_time")]
async fn ack_count_time(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn ack_mode_count_time_commits_on_whichever_comes_first() {
    let broker = EmbeddedBroker::builder().topic("ack-count-time", 1).start().await.unwrap();
    let p = Probe::new().hold_at(4);
    let app = broker
        .app()
        .set("kafka.listener.ack_count", 3)
        .set("kafka.listener.ack_time_ms", 600_000)
        .state(p.clone())
        .listener(ack_count_time::definition())
        .start()
        .await
        .unwrap();
    produce_n(&broker, "ack-count-time", 6).await;
    p.wait_held().await;
    // Count reached after 3 records; the time is far away.
    wait_committed(&broker, "ack-count-time", "ack-count-time", Some(3)).await;
    p.release.notify_one();
    p.seen.wait_for(6, WAIT).await;
    app.shutdown().await;
    // The final commit at stop covers the rest.
    assert_eq!(committed(&broker, "ack-count-time", "ack-count-time").await, Some(6));
}

#[kafka_listener(topics = "ack-manual", group_id = "ack-manual", ack_mode = "manual")]
async fn ack_manual(meta: Meta, body: String, ack: Ack, State(p): State<Probe>) {
    let skip = p.skip_ack_offset.load(Ordering::SeqCst) == meta.offset;
    p.handle(&meta, body).await;
    if !skip {
        ack.acknowledge();
    }
}

#[tokio::test]
async fn ack_mode_manual_commits_only_acknowledged_contiguous_records() {
    let broker = EmbeddedBroker::builder().topic("ack-manual", 1).start().await.unwrap();
    produce_n(&broker, "ack-manual", 6).await;
    let p = Probe::new();
    p.skip_ack_offset.store(3, Ordering::SeqCst);
    let app = broker.app().state(p.clone()).listener(ack_manual::definition()).start().await.unwrap();
    p.seen.wait_for(6, WAIT).await;
    wait_committed(&broker, "ack-manual", "ack-manual", Some(3)).await;
    app.shutdown().await;
    assert_eq!(committed(&broker, "ack-manual", "ack-manual").await, Some(3));
    // The unacknowledged record (and those after it) come again.
    let p2 = Probe::new();
    let app = broker.app().state(p2.clone()).listener(ack_manual::definition()).start().await.unwrap();
    p2.seen.wait_for(3, WAIT).await;
    assert_eq!(p2.offsets(), vec![3, 4, 5]);
    wait_committed(&broker, "ack-manual", "ack-manual", Some(6)).await;
    app.shutdown().await;
}

#[kafka_listener(topics = "ack-immediate", group_id = "ack-immediate", ack_mode = "manual_immediate")]
async fn ack_immediate(meta: Meta, body: String, ack: Ack, State(p): State<Probe>) {
    if meta.offset == p.hold_offset.load(Ordering::SeqCst) {
        ack.acknowledge();
        p.handle(&meta, body).await;
    } else {
        p.handle(&meta, body).await;
        ack.acknowledge();
    }
}

#[tokio::test]
async fn ack_mode_manual_immediate_commits_at_acknowledge() {
    let broker = EmbeddedBroker::builder().topic("ack-immediate", 1).start().await.unwrap();
    produce_n(&broker, "ack-immediate", 5).await;
    let p = Probe::new().hold_at(2);
    let app = broker.app().state(p.clone()).listener(ack_immediate::definition()).start().await.unwrap();
    p.wait_held().await;
    // Record 2 is acknowledged but its handler is still running: committed at once.
    wait_committed(&broker, "ack-immediate", "ack-immediate", Some(3)).await;
    p.release.notify_one();
    wait_committed(&broker, "ack-immediate", "ack-immediate", Some(5)).await;
    app.shutdown().await;
}

#[kafka_listener(topics = "ack-manual-batch", group_id = "ack-manual-batch", ack_mode = "manual", batch = true)]
async fn ack_manual_batch(bodies: Vec<String>, ack: Ack, State(p): State<Seen<String>>) {
    for b in bodies {
        p.push(b);
    }
    ack.acknowledge();
}

#[tokio::test]
async fn batch_listener_acknowledges_the_whole_batch() {
    let broker = EmbeddedBroker::builder().topic("ack-manual-batch", 1).start().await.unwrap();
    produce_n(&broker, "ack-manual-batch", 7).await;
    let seen = Seen::<String>::default();
    let app = broker.app().state(seen.clone()).listener(ack_manual_batch::definition()).start().await.unwrap();
    seen.wait_for(7, WAIT).await;
    wait_committed(&broker, "ack-manual-batch", "ack-manual-batch", Some(7)).await;
    app.shutdown().await;
}

#[tokio::test]
async fn config_manual_ack_mode_without_ack_argument_fails_start() {
    let broker = EmbeddedBroker::start().await.unwrap();
    let err = broker
        .app()
        .set("kafka.listener.ack_mode", "manual")
        .state(Probe::new())
        .listener(ack_batch::definition())
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("takes no `Ack`"), "{err}");
}

// ---------- concurrency and ordering ----------

#[kafka_listener(topics = "conc", group_id = "conc", concurrency = 4, auto_startup = false)]
async fn conc(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn concurrency_runs_one_consumer_per_partition_in_parallel_keeping_partition_order() {
    let broker = EmbeddedBroker::builder().topic("conc", 4).start().await.unwrap();
    let p = Probe::new().delay(20).expect_parallel();
    let app = broker.app().state(p.clone()).listener(conc::definition()).start().await.unwrap();
    let container = app.container("conc").unwrap();
    // Subscribed before the start so no assignment is missed. The embedded broker has no initial rebalance
    // delay, so the first consumer may own every partition until the others join: wait until all four hold one.
    let mut events = container.events();
    container.start().await.unwrap();
    let mut owned: BTreeMap<usize, BTreeSet<i32>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while owned.values().filter(|p| !p.is_empty()).count() < 4 {
        let e = tokio::time::timeout_at(deadline, events.recv()).await.expect("four consumers assigned").unwrap();
        match e {
            ContainerEvent::PartitionsAssigned { consumer, partitions, .. } => {
                owned.entry(consumer).or_default().extend(partitions.iter().map(|t| t.partition));
            }
            ContainerEvent::PartitionsRevoked { consumer, partitions, .. } => {
                let mine = owned.entry(consumer).or_default();
                for t in &partitions {
                    mine.remove(&t.partition);
                }
            }
            _ => {}
        }
    }
    wait_for_assignment(&container, 4, WAIT).await.unwrap();
    produce_spread(&broker, "conc", 80, 4).await;
    let seen = p.seen.wait_for(80, WAIT).await;
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (part, off, _) in &seen {
        by_partition.entry(*part).or_default().push(*off);
    }
    for offs in by_partition.values() {
        assert!(offs.windows(2).all(|w| w[0] < w[1]), "partition order kept: {offs:?}");
    }
    assert!(p.max_active.load(Ordering::SeqCst) >= 2, "handled in parallel");
    assert_eq!(by_partition.len(), 4);
    app.shutdown().await;
    let mut stopped = BTreeSet::new();
    while let Ok(e) = events.try_recv() {
        if let ContainerEvent::ConsumerStopped { consumer, .. } = e {
            stopped.insert(consumer);
        }
    }
    assert_eq!(stopped, (0..4).collect::<BTreeSet<_>>(), "four consumers, each on its own task");
}

#[kafka_listener(topics = "per-key", group_id = "per-key", ordering = "key", key_concurrency = 8)]
async fn per_key(meta: Meta, key: spate::Key<String>, body: String, State(p): State<Probe>) {
    p.handle(&meta, format!("{}:{body}", key.0)).await;
}

#[tokio::test]
async fn per_key_ordering_runs_keys_in_parallel_on_one_partition_and_commits_contiguously() {
    let broker = EmbeddedBroker::builder().topic("per-key", 1).start().await.unwrap();
    let p = Probe::new().delay(30);
    let app = broker.app().state(p.clone()).listener(per_key::definition()).start().await.unwrap();
    produce_n(&broker, "per-key", 40).await;
    let seen = p.seen.wait_for(40, WAIT).await;
    let mut by_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (_, off, body) in &seen {
        by_key.entry(body.split(':').next().unwrap().to_string()).or_default().push(*off);
    }
    assert_eq!(by_key.len(), 4);
    for offs in by_key.values() {
        assert!(offs.windows(2).all(|w| w[0] < w[1]), "key order kept: {offs:?}");
    }
    assert!(p.max_active.load(Ordering::SeqCst) >= 2, "different keys ran in parallel on one partition");
    wait_committed(&broker, "per-key", "per-key", Some(40)).await;
    app.shutdown().await;
}

// ---------- pause, resume, seek ----------

#[kafka_listener(topics = "pausable", group_id = "pausable")]
async fn pausable(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn pause_and_resume_the_container_and_single_partitions() {
    let broker = EmbeddedBroker::builder().topic("pausable", 2).start().await.unwrap();
    let p = Probe::new();
    let app = broker.app().state(p.clone()).listener(pausable::definition()).start().await.unwrap();
    let c = app.container("pausable").unwrap();
    wait_for_assignment(&c, 2, WAIT).await.unwrap();
    let mut events = c.events();
    c.pause().await.unwrap();
    assert!(c.is_paused());
    broker.produce_to("pausable", 0, None, "a", Headers::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(p.seen.len(), 0, "paused container handles nothing");
    c.resume().await.unwrap();
    p.seen.wait_for(1, WAIT).await;
    let mut saw_pause = false;
    while let Ok(e) = events.try_recv() {
        saw_pause |= matches!(e, ContainerEvent::ConsumerPaused { .. });
    }
    assert!(saw_pause);

    let p0 = TopicPartition::new("pausable", 0);
    c.pause_partition(p0.clone()).await.unwrap();
    assert!(c.is_partition_paused(&p0));
    broker.produce_to("pausable", 0, None, "b", Headers::new()).await.unwrap();
    broker.produce_to("pausable", 1, None, "c", Headers::new()).await.unwrap();
    p.seen.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.seen.get().iter().map(|(_, _, b)| b.clone()).collect::<Vec<_>>(), vec!["a", "c"]);
    c.resume_partition(&p0).await.unwrap();
    assert_eq!(p.seen.wait_for(3, WAIT).await[2].2, "b");
    app.shutdown().await;
}

#[kafka_listener(topics = "seekable", group_id = "seekable")]
async fn seekable(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn seek_to_beginning_offset_timestamp_and_end() {
    let broker = EmbeddedBroker::builder().topic("seekable", 1).start().await.unwrap();
    let t: spate::KafkaTemplate<(), String> = broker.template();
    for i in 0..5 {
        t.send_record(spate::ProducerRecord::new("seekable", format!("v{i}")).timestamp(1_000 * (i + 1)))
            .await
            .unwrap();
    }
    let p = Probe::new();
    let app = broker.app().state(p.clone()).listener(seekable::definition()).start().await.unwrap();
    let c = app.container("seekable").unwrap();
    p.seen.wait_for(5, WAIT).await;
    let tp = TopicPartition::new("seekable", 0);
    c.seek_to_beginning(tp.clone()).await.unwrap();
    p.seen.wait_for(10, WAIT).await;
    c.seek(tp.clone(), SeekPosition::Offset(3)).await.unwrap();
    p.seen.wait_for(12, WAIT).await;
    c.seek_to_timestamp(tp.clone(), 4_000).await.unwrap();
    p.seen.wait_for(14, WAIT).await;
    assert_eq!(p.offsets(), vec![0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 3, 4, 3, 4]);
    c.seek_to_end(tp.clone()).await.unwrap();
    let err = c.seek(TopicPartition::new("seekable", 7), SeekPosition::Beginning).await.unwrap_err();
    assert!(matches!(err, spate::ContainerError::NotAssigned(_)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.seen.len(), 14);
    app.shutdown().await;
    // The committed position follows what was handled after the seeks.
    assert_eq!(committed(&broker, "seekable", "seekable").await, Some(5));
}

// ---------- rebalance hooks, idle events, registry ----------

#[derive(Clone, Default)]
struct Hooks {
    log: Seen<String>,
}

impl spate::RebalanceListener for Hooks {
    fn on_partitions_assigned(&self, partitions: &[TopicPartition], positions: &mut InitialPositions) {
        for p in partitions {
            self.log.push(format!("assigned {p}"));
            positions.seek(p.clone(), SeekPosition::Offset(2));
        }
    }
    fn on_partitions_revoked(&self, partitions: &[TopicPartition]) {
        for p in partitions {
            self.log.push(format!("revoked {p}"));
        }
    }
}

#[kafka_listener(topics = "hooked", group_id = "hooked")]
async fn hooked(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn rebalance_listener_sees_assignments_and_sets_initial_positions() {
    let broker = EmbeddedBroker::builder().topic("hooked", 1).start().await.unwrap();
    produce_n(&broker, "hooked", 4).await;
    let p = Probe::new();
    let hooks = Hooks::default();
    let app = broker
        .app()
        .state(p.clone())
        .listener(hooked::definition().rebalance_listener(hooks.clone()))
        .start()
        .await
        .unwrap();
    p.seen.wait_for(2, WAIT).await;
    assert_eq!(p.offsets(), vec![2, 3]);
    app.shutdown().await;
    assert_eq!(hooks.log.get(), vec!["assigned hooked-0", "revoked hooked-0"]);
}

#[kafka_listener(topics = "idle", group_id = "idle")]
async fn idle(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn idle_events_are_published_when_nothing_arrives() {
    let broker = EmbeddedBroker::builder().topic("idle", 1).start().await.unwrap();
    let app = broker
        .app()
        .set("kafka.listener.idle_event_interval_ms", 200)
        .state(Probe::new())
        .listener(idle::definition())
        .start()
        .await
        .unwrap();
    let mut events = app.registry().subscribe();
    let deadline = tokio::time::Instant::now() + WAIT;
    let idle_for = loop {
        match tokio::time::timeout_at(deadline, events.recv()).await.unwrap().unwrap() {
            ContainerEvent::ListenerIdle { listener_id, idle_for, .. } => {
                assert_eq!(listener_id, "idle");
                break idle_for;
            }
            _ => continue,
        }
    };
    assert!(idle_for >= Duration::from_millis(200));
    app.shutdown().await;
}

#[tokio::test]
async fn registry_lists_stops_and_restarts_containers_without_repeating_records() {
    let broker = EmbeddedBroker::builder().topic("pausable", 1).topic("idle", 1).start().await.unwrap();
    let p = Probe::new();
    let app = broker
        .app()
        .state(p.clone())
        .listener(pausable::definition())
        .listener(idle::definition())
        .start()
        .await
        .unwrap();
    let reg = app.registry();
    assert_eq!(reg.listener_container_ids(), vec!["idle", "pausable"]);
    produce_n(&broker, "pausable", 3).await;
    p.seen.wait_for(3, WAIT).await;
    reg.stop("pausable").await.unwrap();
    assert!(!reg.listener_container("pausable").unwrap().is_running());
    assert!(reg.listener_container("idle").unwrap().is_running());
    produce_n(&broker, "pausable", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.seen.len(), 3);
    reg.start("pausable").await.unwrap();
    p.seen.wait_for(5, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.offsets(), vec![0, 1, 2, 3, 4]);
    assert!(matches!(reg.start("nope").await, Err(spate::ContainerError::UnknownId(_))));
    app.shutdown().await;
}

// ---------- shutdown, rebalance and crash with records in flight ----------

#[kafka_listener(topics = "inflight", group_id = "inflight")]
async fn inflight(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_in_flight_record_and_a_restart_repeats_nothing() {
    let broker = EmbeddedBroker::builder().topic("inflight", 1).start().await.unwrap();
    produce_n(&broker, "inflight", 10).await;
    let p = Probe::new().delay(150);
    let app = broker.app().state(p.clone()).listener(inflight::definition()).start().await.unwrap();
    p.seen.wait_for(2, WAIT).await;
    // A record is in flight now (handlers take 150 ms each).
    app.shutdown().await;
    let first = p.offsets();
    assert!(first.len() >= 3 && first.len() < 10, "in-flight record finished, the rest left: {first:?}");
    assert_eq!(committed(&broker, "inflight", "inflight").await, Some(first.len() as i64));
    let p2 = Probe::new();
    let app = broker.app().state(p2.clone()).listener(inflight::definition()).start().await.unwrap();
    p2.seen.wait_for(10 - first.len(), WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut all = first.clone();
    all.extend(p2.offsets());
    assert_eq!(all, (0..10).collect::<Vec<_>>(), "every record exactly once");
    app.shutdown().await;
}

#[tokio::test]
async fn shutdown_abandons_a_record_that_outlives_the_timeout_and_it_is_redelivered() {
    let broker = EmbeddedBroker::builder().topic("inflight", 1).start().await.unwrap();
    produce_n(&broker, "inflight", 3).await;
    let p = Probe::new().hold_at(1);
    let app = broker
        .app()
        .set("kafka.listener.shutdown_timeout_ms", 300)
        .state(p.clone())
        .listener(inflight::definition())
        .start()
        .await
        .unwrap();
    p.wait_held().await;
    let started = std::time::Instant::now();
    app.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(p.offsets(), vec![0]);
    assert_eq!(committed(&broker, "inflight", "inflight").await, Some(1));
    let p2 = Probe::new();
    let app = broker.app().state(p2.clone()).listener(inflight::definition()).start().await.unwrap();
    p2.seen.wait_for(2, WAIT).await;
    assert_eq!(p2.offsets(), vec![1, 2]);
    app.shutdown().await;
}

async fn rebalance_with_records_in_flight(listener: fn() -> spate::ListenerDefinition, topic: &str) {
    let broker = EmbeddedBroker::builder().topic(topic, 4).start().await.unwrap();
    produce_spread(&broker, topic, 200, 4).await;
    let pa = Probe::new().delay(25);
    // Small polls, so the busy instance rejoins the group between polls while records are still being handled.
    let a = broker
        .app()
        .set("kafka.consumer.max_poll_records", 5)
        .state(pa.clone())
        .listener(listener())
        .start()
        .await
        .unwrap();
    pa.seen.wait_for(5, WAIT).await;
    // A second instance joins while the first is busy: the group rebalances with records in flight.
    let pb = Probe::new().delay(25);
    let b = broker
        .app()
        .set("kafka.consumer.max_poll_records", 5)
        .state(pb.clone())
        .listener(listener())
        .start()
        .await
        .unwrap();
    wait_until(WAIT, "all records", || pa.seen.len() + pb.seen.len() >= 200).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut all: Vec<(i32, i64)> = pa.seen.get().iter().chain(pb.seen.get().iter()).map(|(p, o, _)| (*p, *o)).collect();
    assert!(pb.seen.len() > 0, "the second instance took partitions over");
    all.sort();
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(unique.len(), 200, "nothing lost");
    assert_eq!(all.len(), 200, "nothing handled twice");
    a.shutdown().await;
    b.shutdown().await;
}

#[kafka_listener(topics = "rebalance", group_id = "rebalance")]
async fn rebalance_listener(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test]
async fn rebalance_with_records_in_flight_loses_and_repeats_nothing() {
    rebalance_with_records_in_flight(rebalance_listener::definition, "rebalance").await;
}

#[kafka_listener(topics = "rebalance-key", group_id = "rebalance-key", ordering = "key")]
async fn rebalance_key_listener(meta: Meta, body: String, State(p): State<Probe>) {
    p.handle(&meta, body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebalance_with_per_key_records_in_flight_loses_and_repeats_nothing() {
    rebalance_with_records_in_flight(rebalance_key_listener::definition, "rebalance-key").await;
}

#[tokio::test]
async fn a_crash_loses_nothing() {
    let broker = EmbeddedBroker::builder().topic("inflight", 1).start().await.unwrap();
    produce_n(&broker, "inflight", 10).await;
    let p = Probe::new().delay(50);
    let app = broker.app().state(p.clone()).listener(inflight::definition()).start().await.unwrap();
    p.seen.wait_for(3, WAIT).await;
    // Abort the consumer tasks as a crash would: nothing finishes, nothing more is committed.
    app.container("inflight").unwrap().abort_for_tests().await;
    let done_before = p.offsets();
    let p2 = Probe::new();
    let app2 = broker.app().state(p2.clone()).listener(inflight::definition()).start().await.unwrap();
    wait_until(WAIT, "the rest", || p2.offsets().last() == Some(&9)).await.unwrap();
    let mut all: BTreeSet<i64> = done_before.into_iter().collect();
    all.extend(p2.offsets());
    assert_eq!(all, (0..10).collect::<BTreeSet<_>>(), "at least once");
    app2.shutdown().await;
    app.shutdown().await;
}
