#![allow(clippy::unwrap_used)]
//! Windowed aggregations through `KafkaStreams` against the embedded broker: a tumbling-window count suppressed
//! until its window closes, a session-window aggregation, a hopping-window count, and restarts that continue from
//! the window, session and suppression state restored from their changelogs.
//!
//! Input values are `"<event time>,<amount>"`; a timestamp extractor makes the event time (relative to `BASE`) the
//! record time, so windows are exact. The input has one partition, so one task sees every record and stream time
//! is the largest event time produced so far. Outputs are keyed `key@start-end` (relative to `BASE`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use spate::test::EmbeddedBroker;
use spate_streams::{
    BufferConfig, Consumed, DslStoreType, KStream, Materialized, ReadOnlyWindowStore, SessionWindows, State,
    StoreQueryParameters, StreamsBuilder, Suppressed, TimeWindows, Topology, Windowed,
};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

/// Event times are offsets from here: a realistic epoch time (brokers may drop or reject records dated 1970),
/// aligned to every window size used below.
const BASE: i64 = 1_700_000_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The input stream, timed by the event time in the value.
fn events(builder: &StreamsBuilder) -> KStream<String, String> {
    builder.stream_with::<String, String>(
        "events",
        Consumed::with_timestamp_extractor(|_, v: &String, record_ts, _| {
            v.split(',').next().and_then(|t| t.parse::<i64>().ok()).map_or(record_ts, |t| BASE + t)
        }),
    )
}

fn amount(v: &str) -> i64 {
    v.split(',').nth(1).and_then(|a| a.parse().ok()).unwrap_or(0)
}

fn label(k: &Windowed<String>) -> String {
    format!("{}@{}-{}", k.key, k.window.start - BASE, k.window.end - BASE)
}

async fn event(broker: &EmbeddedBroker, key: &str, time: i64, amount: i64) {
    produce(broker, "events", key, &format!("{time},{amount}")).await;
}

/// Output records as (label, value); `None` is a tombstone.
fn labelled(out: &[Out]) -> Vec<(String, Option<i64>)> {
    out.iter().map(|o| (o.key_str(), o.value.as_ref().map(|_| o.value_i64()))).collect()
}

/// The windows a windowed table's output stream leaves alive: later updates replace earlier ones, tombstones
/// remove them.
fn live(out: &[Out]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for (k, v) in labelled(out) {
        match v {
            Some(v) => m.insert(k, v),
            None => m.remove(&k),
        };
    }
    m
}

fn map_of(items: &[(&str, i64)]) -> BTreeMap<String, i64> {
    items.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

async fn broker() -> EmbeddedBroker {
    EmbeddedBroker::builder().topic("events", 1).topic("out", 1).start().await.unwrap()
}

/// Tumbling windows of 100 ms with 50 ms grace, counted and held back until each window closes.
fn suppressed_tumbling_count() -> Topology {
    let builder = StreamsBuilder::new();
    events(&builder)
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(100), ms(50)))
        .count_with(Materialized::as_("tumbling-counts"))
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    builder.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_tumbling_count_emits_one_final_result_per_window_once_grace_has_passed() {
    let broker = broker().await;
    let state = tempfile::tempdir().unwrap();
    let streams = start(suppressed_tumbling_count(), config(&broker, "win-suppress", state.path())).await;
    wait_for_state(&streams, State::Running).await;
    for (key, time) in [("a", 10), ("a", 20), ("a", 30), ("b", 40)] {
        event(&broker, key, time, 1).await;
    }
    // Stream time 120: [0,100) has ended but is open for late records until 150.
    event(&broker, "a", 120, 1).await;
    event(&broker, "a", 60, 1).await; // late, within grace: counted
                                      // Stream time 150 closes [0,100): its final counts go out, [100,200) stays buffered.
    event(&broker, "c", 150, 1).await;
    let out = read(broker.bootstrap_servers(), "out", 2, false).await;
    let mut first = labelled(&out);
    first.sort();
    assert_eq!(first, vec![("a@0-100".to_string(), Some(4)), ("b@0-100".to_string(), Some(1))]);
    // After [0,100) closed, a record for it is dropped, not counted into a second result.
    event(&broker, "a", 90, 1).await;
    // Stream time 250 closes [100,200).
    event(&broker, "d", 250, 1).await;
    let out = read(broker.bootstrap_servers(), "out", 4, false).await;
    let mut all = labelled(&out);
    all.sort();
    assert_eq!(
        all,
        vec![
            ("a@0-100".to_string(), Some(4)),
            ("a@100-200".to_string(), Some(1)),
            ("b@0-100".to_string(), Some(1)),
            ("c@100-200".to_string(), Some(1)),
        ],
        "each window's final count exactly once: {out:?}"
    );
    close(streams).await;
    broker.shutdown().await.unwrap();
}

/// Sessions with a 100 ms inactivity gap summing the amounts.
fn session_sums() -> Topology {
    let builder = StreamsBuilder::new();
    events(&builder)
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(ms(100), ms(10_000)))
        .aggregate_with(|| 0i64, |_, v, sum| sum + amount(v), |_, a, b| a + b, Materialized::as_("session-sums"))
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    builder.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_aggregation_merges_sessions_bridged_by_a_late_record() {
    let broker = broker().await;
    let state = tempfile::tempdir().unwrap();
    let streams = start(session_sums(), config(&broker, "win-session", state.path())).await;
    wait_for_state(&streams, State::Running).await;
    event(&broker, "u", 0, 1).await; // [0,0] = 1
    event(&broker, "u", 50, 10).await; // merges: [0,50] = 11, [0,0] retracted
    event(&broker, "u", 300, 100).await; // 250 after 50: a new session [300,300]
    event(&broker, "u", 200, 1000).await; // joins [300,300]: [200,300] = 1100
    event(&broker, "v", 10, 7).await; // another key, its own session
    let out = read(broker.bootstrap_servers(), "out", 7, false).await;
    assert_eq!(live(&out), map_of(&[("u@0-50", 11), ("u@200-300", 1100), ("v@10-10", 7)]), "{out:?}");
    // 120 is within the gap of both [0,50] and [200,300]: one session [0,300].
    event(&broker, "u", 120, 5).await;
    let out = read(broker.bootstrap_servers(), "out", 10, false).await;
    assert_eq!(live(&out), map_of(&[("u@0-300", 1116), ("v@10-10", 7)]), "{out:?}");
    let tombstones: Vec<String> = labelled(&out).into_iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect();
    for merged in ["u@0-0", "u@300-300", "u@0-50", "u@200-300"] {
        assert!(tombstones.contains(&merged.to_string()), "{merged} was not retracted: {out:?}");
    }
    close(streams).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hopping_window_count_counts_a_record_in_every_window_containing_it() {
    let broker = broker().await;
    let state = tempfile::tempdir().unwrap();
    let builder = StreamsBuilder::new();
    events(&builder)
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(100)).advance_by(ms(50)))
        .count_with(Materialized::as_("hops"))
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    let streams = start(builder.build(), config(&broker, "win-hopping", state.path())).await;
    wait_for_state(&streams, State::Running).await;
    event(&broker, "h", 60, 1).await; // in [0,100) and [50,150)
    event(&broker, "h", 120, 1).await; // in [50,150) and [100,200)
    let out = read(broker.bootstrap_servers(), "out", 4, false).await;
    assert_eq!(
        labelled(&out),
        vec![
            ("h@0-100".to_string(), Some(1)),
            ("h@50-150".to_string(), Some(1)),
            ("h@50-150".to_string(), Some(2)),
            ("h@100-200".to_string(), Some(1)),
        ]
    );
    let hops: ReadOnlyWindowStore<String, i64> = streams.store(StoreQueryParameters::from_name("hops")).unwrap();
    assert_eq!(hops.fetch(&"h".to_string(), BASE + 50).unwrap(), Some(2));
    // [0,100) has already left the store: its retention is size + grace (100 ms) behind stream time 120, as in
    // Kafka.
    assert_eq!(hops.fetch_range(&"h".to_string(), BASE, BASE + 100).unwrap(), vec![(BASE + 50, 2), (BASE + 100, 1)]);
    close(streams).await;
    broker.shutdown().await.unwrap();
}

fn tumbling_count(store_type: DslStoreType) -> Topology {
    let builder = StreamsBuilder::new();
    events(&builder)
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(100), ms(1_000)))
        .count_with(Materialized::as_("tumbling-counts").with_store_type(store_type))
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    builder.build()
}

async fn window_counts_continue_after_a_restart(store_type: DslStoreType, app: &str) {
    let broker = broker().await;
    let state = tempfile::tempdir().unwrap();
    for (key, time) in [("a", 10), ("a", 20), ("b", 30), ("a", 110)] {
        event(&broker, key, time, 1).await;
    }
    let streams = start(tumbling_count(store_type), config(&broker, app, state.path())).await;
    wait_for_state(&streams, State::Running).await;
    let out = read(broker.bootstrap_servers(), "out", 4, false).await;
    assert_eq!(live(&out), map_of(&[("a@0-100", 2), ("a@100-200", 1), ("b@0-100", 1)]));
    close(streams).await;

    // Within the grace period [0,100) still takes records: the restored count goes on from 2.
    for (key, time) in [("a", 40), ("a", 150), ("b", 60)] {
        event(&broker, key, time, 1).await;
    }
    let streams = start(tumbling_count(store_type), config(&broker, app, state.path())).await;
    wait_for_state(&streams, State::Running).await;
    let out = read(broker.bootstrap_servers(), "out", 7, false).await;
    assert_eq!(out.len(), 7, "records were counted twice: {out:?}");
    assert_eq!(
        labelled(&out[4..]),
        vec![("a@0-100".to_string(), Some(3)), ("a@100-200".to_string(), Some(2)), ("b@0-100".to_string(), Some(2))]
    );
    let counts: ReadOnlyWindowStore<String, i64> =
        streams.store(StoreQueryParameters::from_name("tumbling-counts")).unwrap();
    assert_eq!(counts.fetch(&"a".to_string(), BASE).unwrap(), Some(3));
    close(streams).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_window_counts_continue_from_the_changelog_after_a_restart() {
    window_counts_continue_after_a_restart(DslStoreType::InMemory, "win-restart-mem").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_window_counts_continue_after_a_restart() {
    window_counts_continue_after_a_restart(DslStoreType::Persistent, "win-restart-disk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_is_restored_after_a_restart_so_a_later_record_extends_the_session() {
    let broker = broker().await;
    let state = tempfile::tempdir().unwrap();
    event(&broker, "u", 0, 1).await;
    event(&broker, "u", 50, 10).await;
    let streams = start(session_sums(), config(&broker, "win-session-restart", state.path())).await;
    wait_for_state(&streams, State::Running).await;
    let out = read(broker.bootstrap_servers(), "out", 3, false).await;
    assert_eq!(live(&out), map_of(&[("u@0-50", 11)]));
    close(streams).await;

    // 120 is within the gap of the restored session [0,50]: it extends it rather than starting a new one.
    event(&broker, "u", 120, 5).await;
    let streams = start(session_sums(), config(&broker, "win-session-restart", state.path())).await;
    wait_for_state(&streams, State::Running).await;
    let out = read(broker.bootstrap_servers(), "out", 5, false).await;
    assert_eq!(out.len(), 5, "records were aggregated twice: {out:?}");
    assert_eq!(labelled(&out[3..]), vec![("u@0-50".to_string(), None), ("u@0-120".to_string(), Some(16))]);
    close(streams).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_results_buffered_before_a_restart_are_emitted_after_it() {
    let broker = broker().await;
    let state = tempfile::tempdir().unwrap();
    let streams = start(suppressed_tumbling_count(), config(&broker, "win-suppress-restart", state.path())).await;
    wait_for_state(&streams, State::Running).await;
    for (key, time) in [("a", 10), ("a", 20), ("b", 30), ("a", 120)] {
        event(&broker, key, time, 1).await;
    }
    // Wait until the application has processed (and committed) the input: its window store shows it.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let counts: ReadOnlyWindowStore<String, i64> =
            streams.store(StoreQueryParameters::from_name("tumbling-counts")).unwrap();
        if counts.fetch(&"a".to_string(), BASE + 100).unwrap() == Some(1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "input not processed within 60 s");
        tokio::time::sleep(ms(20)).await;
    }
    close(streams).await;

    // The buffered counts of [0,100) come back from the suppression buffer's changelog; a late record within
    // grace adds to the restored window count; stream time 150 then closes the window.
    event(&broker, "a", 90, 1).await;
    event(&broker, "c", 150, 1).await;
    let streams = start(suppressed_tumbling_count(), config(&broker, "win-suppress-restart", state.path())).await;
    wait_for_state(&streams, State::Running).await;
    let out = read(broker.bootstrap_servers(), "out", 2, false).await;
    let mut results = labelled(&out);
    results.sort();
    assert_eq!(results, vec![("a@0-100".to_string(), Some(3)), ("b@0-100".to_string(), Some(1))]);
    close(streams).await;
    broker.shutdown().await.unwrap();
}
