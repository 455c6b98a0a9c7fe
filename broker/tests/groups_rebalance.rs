//! Consumer groups rebalancing under real librdkafka members: partitions split disjointly, members come and go
//! under load without losing or repeating records, and a member that dies silently is evicted after its
//! session timeout.

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;
mod groups_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{produce, uuid_like, TestBroker};
use groups_support::{assert_exactly_once, wait_processed, wait_split, Member};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

fn records(range: std::ops::Range<usize>) -> Vec<(Option<String>, String)> {
    range.map(|i| (Some(format!("k{i}")), i.to_string())).collect()
}

async fn produce_range(b: &TestBroker, topic: &str, range: std::ops::Range<usize>) {
    let p = b.producer(&[]);
    let rs = records(range);
    let borrowed: Vec<(Option<&str>, String)> = rs.iter().map(|(k, v)| (k.as_deref(), v.clone())).collect();
    produce(&p, topic, &borrowed).await;
}

/// Sum of committed offsets of `group` over `partitions` partitions, read by a fresh consumer.
fn committed_total(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = groups_support::config(bootstrap, group, &[]).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

async fn split_and_process_once(members: usize, partitions: i32, n: usize) {
    let b = TestBroker::start().await;
    let topic = format!("split-{}", uuid_like());
    b.create_topic(&topic, partitions, &[]).await;
    produce_range(&b, &topic, 0..n).await;
    let group = format!("g-{}", uuid_like());
    let sink = Arc::new(Mutex::new(Vec::new()));
    let ms: Vec<Member> =
        (0..members).map(|_| Member::spawn(&b.bootstrap, &group, &topic, &[], sink.clone())).collect();
    let refs: Vec<&Member> = ms.iter().collect();
    wait_split(&refs, partitions, Duration::from_secs(60));
    wait_processed(&sink, n, Duration::from_secs(60));
    assert_exactly_once(&sink, n);
    for m in ms {
        m.leave();
    }
    assert_eq!(committed_total(&b.bootstrap, &group, &topic, partitions), n as i64);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_owns_the_single_partition_and_commits_everything() {
    split_and_process_once(1, 1, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_split_six_partitions_and_process_each_record_once() {
    split_and_process_once(3, 6, 1200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_members_split_sixty_four_partitions_and_process_each_record_once() {
    split_and_process_once(8, 64, 3200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_and_leaving_under_load_neither_lose_nor_repeat_records() {
    let b = TestBroker::start().await;
    let topic = format!("churn-{}", uuid_like());
    b.create_topic(&topic, 12, &[]).await;
    let group = format!("g-{}", uuid_like());
    let sink = Arc::new(Mutex::new(Vec::new()));
    let spawn = || Member::spawn(&b.bootstrap, &group, &topic, &[], sink.clone());
    let first = spawn();
    let second = spawn();
    let n_per_step = 500;
    produce_range(&b, &topic, 0..n_per_step).await;
    let third = spawn();
    produce_range(&b, &topic, n_per_step..2 * n_per_step).await;
    first.leave();
    produce_range(&b, &topic, 2 * n_per_step..3 * n_per_step).await;
    let fourth = spawn();
    produce_range(&b, &topic, 3 * n_per_step..4 * n_per_step).await;
    second.leave();
    produce_range(&b, &topic, 4 * n_per_step..5 * n_per_step).await;
    let n = 5 * n_per_step;
    wait_processed(&sink, n, Duration::from_secs(90));
    // Give a duplicate time to show up before judging.
    std::thread::sleep(Duration::from_secs(1));
    let errors: Vec<String> =
        [&third, &fourth].iter().flat_map(|m| m.commit_errors.lock().expect("errors").clone()).collect();
    assert!(errors.is_empty(), "synchronous commits failed: {errors:?}");
    assert_exactly_once(&sink, n);
    wait_split(&[&third, &fourth], 12, Duration::from_secs(30));
    third.leave();
    fourth.leave();
    assert_eq!(committed_total(&b.bootstrap, &group, &topic, 12), n as i64);
    b.shutdown().await;
}

/// Run by `member_killed_without_leaving_is_evicted_after_its_session_timeout` in a child process, which it
/// then kills with SIGKILL: a member that vanishes without LeaveGroup, as a crashed process does.
#[test]
#[ignore = "child process of member_killed_without_leaving_is_evicted_after_its_session_timeout"]
fn child_member_process() {
    let (Ok(bootstrap), Ok(group), Ok(topic)) = (
        std::env::var("GROUPS_CHILD_BOOTSTRAP"),
        std::env::var("GROUPS_CHILD_GROUP"),
        std::env::var("GROUPS_CHILD_TOPIC"),
    ) else {
        return;
    };
    let c: BaseConsumer = groups_support::config(&bootstrap, &group, &[]).create().expect("consumer");
    c.subscribe(&[&topic]).expect("subscribe");
    loop {
        let _ = c.poll(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_killed_without_leaving_is_evicted_after_its_session_timeout() {
    let b = TestBroker::start().await;
    let topic = format!("evict-{}", uuid_like());
    b.create_topic(&topic, 4, &[]).await;
    let group = format!("g-{}", uuid_like());
    let sink = Arc::new(Mutex::new(Vec::new()));
    let survivor = Member::spawn(&b.bootstrap, &group, &topic, &[], sink);
    wait_split(&[&survivor], 4, Duration::from_secs(30));
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_member_process", "--ignored", "--nocapture"])
        .env("GROUPS_CHILD_BOOTSTRAP", &b.bootstrap)
        .env("GROUPS_CHILD_GROUP", &group)
        .env("GROUPS_CHILD_TOPIC", &topic)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("child member starts");
    // The child joined once the survivor is down to half of the partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    while survivor.owned().len() != 2 {
        assert!(Instant::now() < deadline, "child never joined: survivor owns {:?}", survivor.owned());
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("SIGKILL the child");
    let _ = child.wait();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(30);
    while survivor.owned().len() != 4 {
        assert!(Instant::now() < deadline, "dead member never evicted: survivor owns {:?}", survivor.owned());
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = killed.elapsed();
    // session.timeout.ms is 6000: not evicted (much) before that, and not long after.
    assert!(took >= Duration::from_secs(4), "evicted after {took:?}, before its session timed out");
    assert!(took <= Duration::from_secs(20), "evicted only after {took:?}");
    survivor.leave();
    b.shutdown().await;
}
