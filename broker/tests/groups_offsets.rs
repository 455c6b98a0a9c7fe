//! Committed offsets: kept in `__consumer_offsets` so they and the group survive a broker restart, usable by
//! simple consumers (assign without subscribe), and gone for good when the group is deleted.

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;
mod groups_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{produce, uuid_like, TestBroker};
use groups_support::{assert_exactly_once, wait_processed, wait_split, Member};
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<(i32, Offset, String)> {
    let c: BaseConsumer = groups_support::config(bootstrap, group, &[]).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
    got.elements().iter().map(|e| (e.partition(), e.offset(), e.metadata().to_string())).collect()
}

async fn produce_values(b: &TestBroker, topic: &str, range: std::ops::Range<usize>) {
    let p = b.producer(&[]);
    let rs: Vec<(Option<&str>, String)> = range.map(|i| (None, i.to_string())).collect();
    produce(&p, topic, &rs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_and_group_survive_a_broker_restart() {
    let mut b = TestBroker::start().await;
    let topic = format!("restart-{}", uuid_like());
    b.create_topic(&topic, 3, &[]).await;
    produce_values(&b, &topic, 0..150).await;
    let group = format!("g-{}", uuid_like());
    let sink = Arc::new(Mutex::new(Vec::new()));
    let m = Member::spawn(&b.bootstrap, &group, &topic, &[], sink.clone());
    wait_split(&[&m], 3, Duration::from_secs(30));
    wait_processed(&sink, 150, Duration::from_secs(30));
    m.leave();
    let before = committed(&b.bootstrap, &group, &topic, 3);
    let total: i64 = before.iter().map(|(_, o, _)| if let Offset::Offset(o) = o { *o } else { 0 }).sum();
    assert_eq!(total, 150);

    b.restart(|_| {}).await;

    assert_eq!(committed(&b.bootstrap, &group, &topic, 3), before, "offsets after restart");
    // The group itself was rebuilt from __consumer_offsets: known, empty, a consumer group.
    let described = b.broker.as_ref().and_then(|br| br.state().coordinators.groups.describe_group(&group));
    let described = described.expect("group known after restart");
    assert_eq!(described.state.as_str(), "Empty");
    assert_eq!(described.protocol_type, "consumer");
    assert!(described.generation_id >= 2, "generation {} was not kept", described.generation_id);
    // A new member resumes where the old one committed: only new records are processed.
    produce_values(&b, &topic, 150..180).await;
    let m = Member::spawn(&b.bootstrap, &group, &topic, &[], sink.clone());
    wait_processed(&sink, 180, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    m.leave();
    assert_exactly_once(&sink, 180);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_consumer_commits_and_fetches_offsets_without_joining() {
    let mut b = TestBroker::start().await;
    let topic = format!("simple-{}", uuid_like());
    b.create_topic(&topic, 2, &[]).await;
    let group = format!("simple-{}", uuid_like());
    let c: BaseConsumer = groups_support::config(&b.bootstrap, &group, &[]).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(7)).expect("tpl");
    tpl.add_partition_offset(&topic, 1, Offset::Offset(11)).expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut with_meta = TopicPartitionList::new();
    with_meta.add_partition_offset(&topic, 0, Offset::Offset(7)).expect("tpl");
    with_meta.add_partition_offset(&topic, 1, Offset::Offset(11)).expect("tpl");
    c.commit(&with_meta, CommitMode::Sync).expect("simple commit accepted");
    drop(c);
    let got = committed(&b.bootstrap, &group, &topic, 2);
    assert_eq!(
        got.iter().map(|(p, o, _)| (*p, *o)).collect::<Vec<_>>(),
        vec![(0, Offset::Offset(7)), (1, Offset::Offset(11))]
    );

    // A group that only stores offsets survives a restart too.
    b.restart(|_| {}).await;
    let got = committed(&b.bootstrap, &group, &topic, 2);
    assert_eq!(
        got.iter().map(|(p, o, _)| (*p, *o)).collect::<Vec<_>>(),
        vec![(0, Offset::Offset(7)), (1, Offset::Offset(11))]
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_a_deleted_group_stay_deleted_after_a_restart() {
    let mut b = TestBroker::start().await;
    let topic = format!("del-{}", uuid_like());
    b.create_topic(&topic, 1, &[]).await;
    let group = format!("del-{}", uuid_like());
    let c: BaseConsumer = groups_support::config(&b.bootstrap, &group, &[]).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(5)).expect("tpl");
    c.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(c);
    let deleted = b.admin().delete_groups(&[&group], &AdminOptions::new()).await.expect("delete_groups");
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    assert_eq!(committed(&b.bootstrap, &group, &topic, 1)[0].1, Offset::Invalid);
    b.restart(|_| {}).await;
    assert_eq!(committed(&b.bootstrap, &group, &topic, 1)[0].1, Offset::Invalid);
    let deleted_again = b.admin().delete_groups(&[&group], &AdminOptions::new()).await.expect("delete_groups");
    assert!(deleted_again.iter().all(|r| r.is_err()), "a deleted group is not found: {deleted_again:?}");
    b.shutdown().await;
}
