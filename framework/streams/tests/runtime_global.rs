//! Global tables in the runtime: a `GlobalKTable` is read to its end before processing starts, kept up to date
//! while the application runs, joined by every task whatever the partitioning, and queryable.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use spate::test::EmbeddedBroker;
use spate_streams::{Materialized, ReadOnlyKeyValueStore, State, StoreQueryParameters, StreamsBuilder};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_table_is_bootstrapped_kept_current_and_joined_by_every_task() {
    // The table has 3 partitions, the stream 2: a global table needs no co-partitioning.
    let broker = EmbeddedBroker::builder()
        .topic("products", 3)
        .topic("sales", 2)
        .topic("priced-sales", 2)
        .start()
        .await
        .unwrap();
    for i in 0..6 {
        produce(&broker, "products", &format!("p{i}"), &format!("product-{i}")).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let builder = StreamsBuilder::new();
    let products = builder.global_table_with::<String, String>("products", Materialized::as_("products-store"));
    builder
        .stream::<String, String>("sales")
        // Sales are keyed by shop; the value names the product.
        .join_global(&products, |_shop, product| product.clone(), |product, name| format!("{product}={name}"))
        .to("priced-sales");
    let streams = start(builder.build(), config(&broker, "global", dir.path()).num_stream_threads(2)).await;
    // Bootstrapped before start() returned.
    let store: ReadOnlyKeyValueStore<String, String> =
        streams.store(StoreQueryParameters::from_name("products-store")).unwrap();
    assert_eq!(store.approximate_num_entries().unwrap(), 6);
    wait_for_state(&streams, State::Running).await;
    for (shop, product) in [("s1", "p0"), ("s2", "p5"), ("s3", "p3")] {
        produce(&broker, "sales", shop, product).await;
    }
    // A product added while running reaches the table, then a sale of it joins.
    produce(&broker, "products", "p9", "product-9").await;
    let deadline = Instant::now() + WAIT;
    while store.get(&"p9".to_string()).unwrap().is_none() {
        assert!(Instant::now() < deadline, "p9 never reached the global table");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    produce(&broker, "sales", "s4", "p9").await;
    let out = read(broker.bootstrap_servers(), "priced-sales", 4, false).await;
    let got: BTreeMap<String, String> =
        out.iter().map(|o| (o.key_str(), String::from_utf8(o.value.clone().unwrap()).unwrap())).collect();
    let want: BTreeMap<String, String> =
        [("s1", "p0=product-0"), ("s2", "p5=product-5"), ("s3", "p3=product-3"), ("s4", "p9=product-9")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    assert_eq!(got, want);
    close(streams).await;
}
