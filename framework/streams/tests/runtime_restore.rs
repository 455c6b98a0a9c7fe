//! The runtime against the embedded broker: a count application restarted keeps its counts (stores restored from
//! their changelogs, in memory and persistent with a checkpoint), and the store is queryable while it runs.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use spate::test::EmbeddedBroker;
use spate_streams::runtime::{read_checkpoint, CHECKPOINT_FILE};
use spate_streams::{
    DslStoreType, Materialized, ReadOnlyKeyValueStore, State, StoreQueryParameters, StreamsBuilder, Topology,
};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

fn count_topology(store_type: DslStoreType) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("words")
        .group_by_key()
        .count_with(Materialized::as_("counts").with_store_type(store_type))
        .to_stream()
        .to("word-counts");
    builder.build()
}

async fn restart_keeps_counts(store_type: DslStoreType, app: &str) {
    let broker = EmbeddedBroker::builder().topic("words", 2).topic("word-counts", 2).start().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let words = ["a", "b", "c", "a", "b", "a", "d", "a", "c", "e"];
    for w in words {
        produce(&broker, "words", w, "x").await;
    }
    let streams = start(count_topology(store_type), config(&broker, app, state.path())).await;
    wait_for_state(&streams, State::Running).await;
    let out = read(broker.bootstrap_servers(), "word-counts", words.len(), false).await;
    let expected: BTreeMap<String, i64> =
        [("a", 4), ("b", 2), ("c", 2), ("d", 1), ("e", 1)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(last_counts(&out), expected);
    // Interactive query while running.
    let counts: ReadOnlyKeyValueStore<String, i64> = streams.store(StoreQueryParameters::from_name("counts")).unwrap();
    assert_eq!(counts.get(&"a".to_string()).unwrap(), Some(4));
    assert_eq!(counts.all().unwrap().len(), 5);
    close(streams).await;

    if store_type == DslStoreType::Persistent {
        // A clean close leaves checkpoints with the changelog offsets the local stores contain.
        let mut entries = 0;
        for task in ["0_0", "0_1"] {
            let c = read_checkpoint(&state.path().join(app).join(task).join(CHECKPOINT_FILE)).unwrap();
            entries += c.len();
        }
        assert!(entries > 0, "no checkpoint written");
    }

    // Restart with more input: counts continue from the restored state.
    for w in ["a", "e", "f"] {
        produce(&broker, "words", w, "x").await;
    }
    let streams = start(count_topology(store_type), config(&broker, app, state.path())).await;
    wait_for_state(&streams, State::Running).await;
    let out = read(broker.bootstrap_servers(), "word-counts", words.len() + 3, false).await;
    let last = last_counts(&out);
    assert_eq!(last["a"], 5);
    assert_eq!(last["e"], 2);
    assert_eq!(last["f"], 1);
    assert_eq!(out.len(), words.len() + 3, "records were counted twice: {out:?}");
    let counts: ReadOnlyKeyValueStore<String, i64> = streams.store(StoreQueryParameters::from_name("counts")).unwrap();
    assert_eq!(counts.get(&"b".to_string()).unwrap(), Some(2));
    close(streams).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_counts_are_restored_from_the_changelog_after_a_restart() {
    restart_keeps_counts(DslStoreType::InMemory, "restore-mem").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_counts_resume_from_their_checkpoint_after_a_restart() {
    restart_keeps_counts(DslStoreType::Persistent, "restore-disk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_source_topic_fails_the_start() {
    let broker = EmbeddedBroker::start().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let cfg = config(&broker, "missing", state.path());
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("nowhere").to("out");
    let topology = builder.build();
    let (result, s) = tokio::task::spawn_blocking(move || {
        let mut s = spate_streams::KafkaStreams::new(topology, cfg);
        (s.start(), s.state())
    })
    .await
    .unwrap();
    assert!(result.unwrap_err().to_string().contains("nowhere"));
    assert_eq!(s, State::Error);
}
