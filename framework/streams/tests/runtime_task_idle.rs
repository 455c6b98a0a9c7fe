//! Timestamp-ordered processing in the runtime (Kafka's `PartitionGroup` and `max.task.idle.ms`): a task reading
//! two topics takes the buffered record with the smallest timestamp across its partitions, waits for a partition
//! the consumer knows has unfetched records, and waits at most `max.task.idle.ms` for an empty one.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use spate::test::EmbeddedBroker;
use spate_streams::{ProcessingGuarantee, State, StreamsBuilder, Topology};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

/// Both topics into one stream (one task per partition number, reading both): the value is the record's
/// timestamp, written out as is.
fn merge_topology() -> Topology {
    let builder = StreamsBuilder::new();
    builder.stream_from_topics::<String, String>(&["left", "right"]).to("out");
    builder.build()
}

/// Produces (topic, timestamp) records whose value is the timestamp.
fn produce_timestamped(bootstrap: &str, records: &[(&str, i64)]) {
    let producer: BaseProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).set("linger.ms", "5").create().unwrap();
    for (topic, ts) in records {
        let value = ts.to_string();
        let mut record = BaseRecord::to(topic).key("k").payload(&value).timestamp(*ts);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(10));
                    record = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn timestamps(out: &[Out]) -> Vec<i64> {
    out.iter().map(|o| String::from_utf8_lossy(o.value.as_deref().unwrap()).parse().unwrap()).collect()
}

async fn timestamp_order_case(guarantee: ProcessingGuarantee) {
    let broker = EmbeddedBroker::builder().topic("left", 1).topic("right", 1).topic("out", 1).start().await.unwrap();
    // Interleaved timestamps: even ones on the left, odd ones on the right; each topic alone is in order, and the
    // consumer fetches them in per-partition batches.
    let n = 1500;
    let left: Vec<(&str, i64)> = (0..n).map(|i| ("left", 1_000 + 2 * i)).collect();
    let right: Vec<(&str, i64)> = (0..n).map(|i| ("right", 1_001 + 2 * i)).collect();
    let bootstrap = broker.bootstrap_servers().to_owned();
    tokio::task::spawn_blocking(move || produce_timestamped(&bootstrap, &[left, right].concat())).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker, "ordered", dir.path()).max_task_idle_ms(10_000).processing_guarantee(guarantee);
    let streams = start(merge_topology(), config).await;
    let read_committed = guarantee == ProcessingGuarantee::ExactlyOnceV2;
    let out = read(broker.bootstrap_servers(), "out", 2 * n as usize, read_committed).await;
    let got = timestamps(&out);
    let expected: Vec<i64> = (0..2 * n).map(|i| 1_000 + i).collect();
    assert_eq!(got.len(), expected.len());
    if let Some(i) = got.iter().zip(&expected).position(|(g, e)| g != e) {
        panic!("out of timestamp order at output {i}: {:?}", &got[i.saturating_sub(3)..(i + 3).min(got.len())]);
    }
    close(streams).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_processes_the_records_of_its_partitions_in_timestamp_order() {
    timestamp_order_case(ProcessingGuarantee::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_processes_the_records_of_its_partitions_in_timestamp_order_under_exactly_once() {
    timestamp_order_case(ProcessingGuarantee::ExactlyOnceV2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_partition_holds_the_task_back_at_most_max_task_idle_ms() {
    let broker = EmbeddedBroker::builder().topic("left", 1).topic("right", 1).topic("out", 1).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker, "idle", dir.path()).max_task_idle_ms(1_000);
    let streams = start(merge_topology(), config).await;
    wait_for_state(&streams, State::Running).await;
    // Only the left topic gets data: after max.task.idle.ms without data on the right, the task processes it.
    let bootstrap = broker.bootstrap_servers().to_owned();
    tokio::task::spawn_blocking(move || produce_timestamped(&bootstrap, &[("left", 5), ("left", 7)])).await.unwrap();
    let out = read(broker.bootstrap_servers(), "out", 2, false).await;
    assert_eq!(timestamps(&out), [5, 7]);
    close(streams).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_waits_for_an_empty_partition_and_takes_its_earlier_record_first() {
    let broker = EmbeddedBroker::builder().topic("left", 1).topic("right", 1).topic("out", 1).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker, "wait", dir.path()).max_task_idle_ms(30_000);
    let streams = start(merge_topology(), config).await;
    wait_for_state(&streams, State::Running).await;
    // The left record (t=10) comes first but waits for the right partition; the right one (t=5) produced after it
    // is processed before it.
    let bootstrap = broker.bootstrap_servers().to_owned();
    tokio::task::spawn_blocking(move || {
        produce_timestamped(&bootstrap, &[("left", 10)]);
        produce_timestamped(&bootstrap, &[("right", 5)]);
    })
    .await
    .unwrap();
    let out = read(broker.bootstrap_servers(), "out", 2, false).await;
    assert_eq!(timestamps(&out), [5, 10]);
    close(streams).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_table_join_sees_the_table_as_of_the_stream_records_timestamp() {
    let broker =
        EmbeddedBroker::builder().topic("orders", 1).topic("customers", 1).topic("out", 1).start().await.unwrap();
    // The order (t=100) is written before the customer it names (t=50) and before a later update (t=200): in
    // timestamp order the join sees the first customer record, whatever order the consumer fetched them in.
    let bootstrap = broker.bootstrap_servers().to_owned();
    tokio::task::spawn_blocking(move || {
        let producer: BaseProducer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
        for (topic, value, ts) in [("orders", "o1", 100), ("customers", "alice", 50), ("customers", "bob", 200)] {
            producer.send(BaseRecord::to(topic).key("c1").payload(value).timestamp(ts)).map_err(|(e, _)| e).unwrap();
            producer.flush(Duration::from_secs(30)).unwrap();
        }
    })
    .await
    .unwrap();
    let builder = StreamsBuilder::new();
    let customers = builder.table::<String, String>("customers");
    builder
        .stream::<String, String>("orders")
        .left_join(&customers, |order, customer| format!("{order}|{}", customer.map_or("none", String::as_str)))
        .to("out");
    let dir = tempfile::tempdir().unwrap();
    let streams = start(builder.build(), config(&broker, "join-order", dir.path()).max_task_idle_ms(10_000)).await;
    let out = read(broker.bootstrap_servers(), "out", 1, false).await;
    let values: Vec<String> = out.iter().map(|o| String::from_utf8_lossy(o.value.as_deref().unwrap()).into()).collect();
    assert_eq!(values, ["o1|alice"]);
    close(streams).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_paused_for_a_full_buffer_resumes_as_its_task_catches_up() {
    let broker = EmbeddedBroker::builder().topic("left", 1).topic("right", 1).topic("out", 1).start().await.unwrap();
    // Far more than a partition's buffer holds (1000), with nothing on the right: the left partition is paused
    // while the task waits max.task.idle.ms, then resumed as enforced processing drains it.
    let n = 5000;
    let left: Vec<(&str, i64)> = (0..n).map(|i| ("left", 1_000 + i)).collect();
    let bootstrap = broker.bootstrap_servers().to_owned();
    tokio::task::spawn_blocking(move || produce_timestamped(&bootstrap, &left)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let streams = start(merge_topology(), config(&broker, "paused", dir.path()).max_task_idle_ms(2_000)).await;
    let out = read(broker.bootstrap_servers(), "out", n as usize, false).await;
    let expected: Vec<i64> = (0..n).map(|i| 1_000 + i).collect();
    assert_eq!(timestamps(&out), expected);
    close(streams).await;
}
