//! Co-partitioning in the runtime: a stream–table join split over two instances finds every table entry
//! (partitions with the same number of the joined topics land on the same instance), and joined topics with
//! different partition counts stop the start.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use spate::test::EmbeddedBroker;
use spate_streams::{
    KafkaStreams, Materialized, ReadOnlyKeyValueStore, State, StoreQueryParameters, StreamsBuilder, Topology,
};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

fn join_topology() -> Topology {
    let builder = StreamsBuilder::new();
    let customers = builder.table_with::<String, String>("customers", Materialized::as_("customers-store"));
    builder
        .stream::<String, String>("orders")
        .join(&customers, |order, name| format!("{order} for {name}"))
        .to("enriched-orders");
    builder.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_split_over_two_instances_finds_every_table_entry() {
    let broker = EmbeddedBroker::builder()
        .topic("customers", 4)
        .topic("orders", 4)
        .topic("enriched-orders", 4)
        .start()
        .await
        .unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(join_topology(), config(&broker, "enrich", dir_a.path())).await;
    let b = start(join_topology(), config(&broker, "enrich", dir_b.path())).await;
    for i in 0..20 {
        produce(&broker, "customers", &format!("c{i}"), &format!("name-{i}")).await;
    }
    // Wait until both instances run and together hold the whole table, each a part of it.
    let deadline = Instant::now() + WAIT;
    loop {
        if a.state() == State::Running && b.state() == State::Running {
            let sa: ReadOnlyKeyValueStore<String, String> =
                a.store(StoreQueryParameters::from_name("customers-store")).unwrap();
            let sb: ReadOnlyKeyValueStore<String, String> =
                b.store(StoreQueryParameters::from_name("customers-store")).unwrap();
            let (na, nb) = (sa.approximate_num_entries().unwrap(), sb.approximate_num_entries().unwrap());
            if na + nb == 20 && na > 0 && nb > 0 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the table was not loaded over both instances: {:?} {:?}",
            a.state(),
            b.state()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..20 {
        produce(&broker, "orders", &format!("c{i}"), &format!("order-{i}")).await;
    }
    let out = read(broker.bootstrap_servers(), "enriched-orders", 20, false).await;
    let got: BTreeMap<String, String> =
        out.iter().map(|o| (o.key_str(), String::from_utf8(o.value.clone().unwrap()).unwrap())).collect();
    let want: BTreeMap<String, String> =
        (0..20).map(|i| (format!("c{i}"), format!("order-{i} for name-{i}"))).collect();
    assert_eq!(got, want);
    assert_eq!(out.len(), 20);
    close(a).await;
    close(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_topics_with_different_partition_counts_fail_the_start() {
    let broker = EmbeddedBroker::builder().topic("customers", 3).topic("orders", 4).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&broker, "mismatch", dir.path());
    let (result, state) = tokio::task::spawn_blocking(move || {
        let mut s = KafkaStreams::new(join_topology(), cfg);
        (s.start(), s.state())
    })
    .await
    .unwrap();
    let message = result.unwrap_err().to_string();
    assert!(message.contains("co-partitioned"), "{message}");
    assert_eq!(state, State::Error);
}
