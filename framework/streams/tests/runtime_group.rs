//! The runtime's group behaviour against the embedded broker: a second instance joining mid-stream takes over
//! partitions with their state and the combined output is right; repartitioning after `select_key` works end to
//! end with Kafka's partitioner; several stream threads per instance; the client's state transitions.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use spate::test::EmbeddedBroker;
use spate_streams::runtime::default_partition;
use spate_streams::{Materialized, ReadOnlyKeyValueStore, State, StoreQueryParameters, StreamsBuilder, Topology};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_joining_mid_stream_takes_over_partitions_with_their_state() {
    let broker = EmbeddedBroker::builder().topic("events", 4).topic("event-counts", 4).start().await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let batch1: Vec<String> = (0..60).map(|i| format!("k{}", i % 12)).collect();
    for k in &batch1 {
        produce(&broker, "events", k, "x").await;
    }
    let a = start(count_topology(), config(&broker, "join", dir_a.path())).await;
    wait_for_state(&a, State::Running).await;
    read(broker.bootstrap_servers(), "event-counts", batch1.len(), false).await;

    let b = start(count_topology(), config(&broker, "join", dir_b.path())).await;
    // B gets partitions once the group rebalanced; both instances then run.
    let b_counts: ReadOnlyKeyValueStore<String, i64> = {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if b.state() == State::Running && a.state() == State::Running {
                let s: ReadOnlyKeyValueStore<String, i64> = b.store(StoreQueryParameters::from_name("counts")).unwrap();
                if s.approximate_num_entries().unwrap() > 0 {
                    break s;
                }
            }
            assert!(std::time::Instant::now() < deadline, "B never took over a partition with state");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let a_counts: ReadOnlyKeyValueStore<String, i64> = a.store(StoreQueryParameters::from_name("counts")).unwrap();
    let first = expected(&batch1);
    // What B holds was restored from the changelog: the counts A had reached.
    for (k, v) in b_counts.all().unwrap() {
        assert_eq!(first[&k], v, "key {k} restored on B");
    }
    assert!(a_counts.approximate_num_entries().unwrap() < 12, "A kept every partition");

    let batch2: Vec<String> = (0..40).map(|i| format!("k{}", i % 10)).collect();
    for k in &batch2 {
        produce(&broker, "events", k, "x").await;
    }
    let out = read(broker.bootstrap_servers(), "event-counts", batch1.len() + batch2.len(), false).await;
    let all: Vec<String> = batch1.iter().chain(&batch2).cloned().collect();
    assert_eq!(last_counts(&out), expected(&all));
    assert_eq!(out.len(), all.len(), "no record was counted twice across the hand-over");
    // Together the two instances answer for every key.
    let mut union: BTreeMap<String, i64> = a_counts.all().unwrap().into_iter().collect();
    union.extend(b_counts.all().unwrap());
    assert_eq!(union, expected(&all));
    close(b).await;
    close(a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_key_repartitions_with_kafkas_partitioner_and_counts_by_the_new_key() {
    let broker = EmbeddedBroker::builder().topic("clicks", 3).topic("page-counts", 3).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("clicks")
        .select_key(|_user, page| page.clone())
        .group_by_key()
        .count_with(Materialized::as_("page-counts-store"))
        .to_stream()
        .to("page-counts");
    let topology = builder.build();
    let repartition = topology.repartition_topics("pages");
    assert_eq!(repartition.len(), 1);
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let seen = transitions.clone();
    let cfg = config(&broker, "pages", dir.path()).num_stream_threads(2);
    let streams = tokio::task::spawn_blocking(move || {
        let mut s = spate_streams::KafkaStreams::new(topology, cfg);
        s.set_state_listener(move |new, old| seen.lock().push((old, new)));
        s.start().unwrap();
        s
    })
    .await
    .unwrap();
    let pages = ["home", "cart", "search", "home", "checkout", "home", "cart"];
    let mut users = Vec::new();
    for (i, p) in pages.iter().enumerate() {
        let user = format!("user-{}", i % 3);
        produce(&broker, "clicks", &user, p).await;
        users.push(p.to_string());
    }
    wait_for_state(&streams, State::Running).await;
    let out = read(broker.bootstrap_servers(), "page-counts", pages.len(), false).await;
    assert_eq!(last_counts(&out), expected(&users));
    // The repartition topic has the input's partition count, and each record sits where Kafka's default
    // partitioner (murmur2 of the serialized key) puts it, so Java producers would agree.
    let through = read(broker.bootstrap_servers(), &repartition[0], pages.len(), false).await;
    assert_eq!(through.len(), pages.len());
    for r in &through {
        assert_eq!(r.partition, default_partition(&r.key, 3), "key {}", r.key_str());
    }
    assert!(through.iter().map(|r| r.partition).max().unwrap() < 3);
    // Output records of one key all come from one task, on one partition.
    let by_key: BTreeMap<String, Vec<i32>> = out.iter().fold(BTreeMap::new(), |mut m, r| {
        m.entry(r.key_str()).or_default().push(r.partition);
        m
    });
    for (k, parts) in by_key {
        assert!(parts.windows(2).all(|w| w[0] == w[1]), "key {k} on several partitions: {parts:?}");
    }
    close(streams).await;
    let t = transitions.lock().clone();
    assert_eq!(t.first(), Some(&(State::Created, State::Rebalancing)), "{t:?}");
    assert!(t.contains(&(State::Rebalancing, State::Running)), "{t:?}");
    assert_eq!(
        t[t.len() - 2..],
        [(State::Running, State::PendingShutdown), (State::PendingShutdown, State::NotRunning)],
        "{t:?}"
    );
}
