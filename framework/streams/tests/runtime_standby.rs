//! Standby replicas: with `num_standby_replicas(1)` an instance keeps the stores of the tasks it does not run
//! current from their changelogs, so when the other instance leaves, the tasks it takes over need no restore.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use parking_lot::Mutex;
use spate::test::EmbeddedBroker;
use spate_streams::{
    KafkaStreams, Materialized, ReadOnlyKeyValueStore, State, StoreQueryParameters, StreamsBuilder, Topology,
};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

fn count_topology() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("events")
        .group_by_key()
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to("event-counts");
    builder.build()
}

fn expected(keys: &[String]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k.clone()).or_insert(0) += 1;
    }
    m
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what} not reached within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_over_without_restoring() {
    let broker = EmbeddedBroker::builder().topic("events", 4).topic("event-counts", 4).start().await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let batch1: Vec<String> = (0..60).map(|i| format!("k{}", i % 12)).collect();
    for k in &batch1 {
        produce(&broker, "events", k, "x").await;
    }
    let a = start(count_topology(), config(&broker, "standby", dir_a.path()).num_standby_replicas(1)).await;
    wait_for_state(&a, State::Running).await;
    read(broker.bootstrap_servers(), "event-counts", batch1.len(), false).await;

    // B records what each changelog partition restore brought back.
    let restored: Arc<Mutex<Vec<(i32, u64)>>> = Arc::default();
    let seen = restored.clone();
    let cfg = config(&broker, "standby", dir_b.path()).num_standby_replicas(1);
    let b = tokio::task::spawn_blocking(move || {
        let mut s = KafkaStreams::new(count_topology(), cfg);
        s.set_global_state_restore_listener(move |_store, _topic, partition, n| seen.lock().push((partition, n)));
        s.start().unwrap();
        s
    })
    .await
    .unwrap();
    // Both run; B holds standbys of A's tasks, and with them (stale reads) the whole table as A counted it.
    let first = expected(&batch1);
    wait_until("B's standbys caught up", || {
        if a.state() != State::Running || b.state() != State::Running || b.standby_tasks().is_empty() {
            return false;
        }
        let all: ReadOnlyKeyValueStore<String, i64> =
            b.store(StoreQueryParameters::from_name("counts").enable_stale_stores()).unwrap();
        all.all().unwrap().into_iter().collect::<BTreeMap<_, _>>() == first
    })
    .await;
    let standbys: BTreeSet<i32> = b.standby_tasks().iter().map(|t| t.partition).collect();
    assert!(standbys.len() < 4, "B runs some tasks itself: {standbys:?}");
    restored.lock().clear();

    close(a).await;
    // B takes every task; the ones it had standbys of restore nothing.
    wait_until("B runs every task", || {
        if b.state() != State::Running || !b.standby_tasks().is_empty() {
            return false;
        }
        let active: ReadOnlyKeyValueStore<String, i64> = b.store(StoreQueryParameters::from_name("counts")).unwrap();
        active.approximate_num_entries().unwrap() == 12
    })
    .await;
    let after = restored.lock().clone();
    for p in &standbys {
        let r: Vec<u64> = after.iter().filter(|(q, _)| q == p).map(|(_, n)| *n).collect();
        assert_eq!(r, vec![0], "partition {p} was a standby: nothing to restore ({after:?})");
    }

    counts_cover_a_second_batch(&broker, &batch1).await;
    close(b).await;
}

/// Produces a second batch over the same twelve keys; the output's last count of each key covers both batches.
async fn counts_cover_a_second_batch(broker: &EmbeddedBroker, batch1: &[String]) {
    let batch2: Vec<String> = (0..24).map(|i| format!("k{}", i % 12)).collect();
    for k in &batch2 {
        produce(broker, "events", k, "x").await;
    }
    let out = read(broker.bootstrap_servers(), "event-counts", batch1.len() + batch2.len(), false).await;
    let all: Vec<String> = batch1.iter().chain(&batch2).cloned().collect();
    assert_eq!(last_counts(&out), expected(&all));
}

/// Every stateful task's standbys across the instances: (total copies, distinct tasks).
fn standby_copies(instances: &[&KafkaStreams]) -> (usize, usize) {
    let all: Vec<_> = instances.iter().flat_map(|s| s.standby_tasks()).collect();
    let distinct: BTreeSet<_> = all.iter().copied().collect();
    (all.len(), distinct.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_are_placed_on_as_many_instances_as_num_standby_replicas_asks() {
    let broker = EmbeddedBroker::builder().topic("events", 6).topic("event-counts", 6).start().await.unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let batch1: Vec<String> = (0..60).map(|i| format!("k{}", i % 12)).collect();
    for k in &batch1 {
        produce(&broker, "events", k, "x").await;
    }
    let mut instances = Vec::new();
    for dir in &dirs {
        let cfg = config(&broker, "placed", dir.path()).num_standby_replicas(1);
        instances.push(start(count_topology(), cfg).await);
    }
    // Three instances, six stateful tasks, one replica: one standby per task, on another instance than its owner
    // (each instance keeping a standby of every task it does not run would make twelve).
    wait_until("one standby per task", || {
        instances.iter().all(|s| s.state() == State::Running)
            && standby_copies(&instances.iter().collect::<Vec<_>>()) == (6, 6)
    })
    .await;
    read(broker.bootstrap_servers(), "event-counts", batch1.len(), false).await;

    // One instance leaves: the two left place the standbys again, one per task on the instance not running it.
    let c = instances.pop().unwrap();
    close(c).await;
    wait_until("standbys placed again on two instances", || {
        instances.iter().all(|s| s.state() == State::Running)
            && standby_copies(&instances.iter().collect::<Vec<_>>()) == (6, 6)
    })
    .await;
    counts_cover_a_second_batch(&broker, &batch1).await;
    for s in instances {
        close(s).await;
    }
}
