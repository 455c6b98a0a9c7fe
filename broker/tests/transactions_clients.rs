//! Transactions as librdkafka producers and consumers see them: committed and aborted transactions under both
//! isolation levels, open transactions hidden from read_committed readers, zombie fencing by transactional.id,
//! a killed producer's transaction aborted after its timeout, and transaction state across a broker restart.

#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;

use std::time::{Duration, Instant};

use common::{consume, uuid_like, value_str, TestBroker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);

fn txn_producer(b: &TestBroker, transactional_id: &str) -> FutureProducer {
    let p = b.producer(&[("transactional.id", transactional_id), ("transaction.timeout.ms", "30000")]);
    tokio::task::block_in_place(|| p.init_transactions(T)).expect("init_transactions");
    p
}

async fn send(p: &FutureProducer, topic: &str, partition: i32, value: &str) {
    p.send(FutureRecord::<(), _>::to(topic).payload(value).partition(partition), T).await.expect("delivered");
}

fn block<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

fn values(b: &TestBroker, topic: &str, partitions: &[i32], n: usize, isolation: &str, wait: Duration) -> Vec<String> {
    let c = b.consumer(&[("isolation.level", isolation)]);
    block(|| consume(&c, topic, partitions, n, wait)).iter().map(value_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_and_aborted_transactions_are_seen_correctly_by_both_isolation_levels() {
    let b = TestBroker::start().await;
    let topic = format!("txn-{}", uuid_like());
    b.create_topic(&topic, 2, &[]).await;
    let p = txn_producer(&b, &format!("tx-{}", uuid_like()));
    for (label, commit) in [("commit-a", true), ("abort", false), ("commit-b", true)] {
        p.begin_transaction().unwrap();
        for i in 0..40 {
            send(&p, &topic, i % 2, &format!("{label}-{i}")).await;
        }
        if commit {
            block(|| p.commit_transaction(T)).unwrap();
        } else {
            block(|| p.abort_transaction(T)).unwrap();
        }
    }
    let committed = values(&b, &topic, &[0, 1], 80, "read_committed", Duration::from_secs(20));
    assert_eq!(committed.len(), 80);
    assert!(committed.iter().all(|v| !v.starts_with("abort")), "read_committed saw aborted records");
    // Nothing more arrives for read_committed: the aborted records are filtered, markers are never records.
    let more = values(&b, &topic, &[0, 1], 81, "read_committed", Duration::from_secs(2));
    assert_eq!(more.len(), 80);
    let all = values(&b, &topic, &[0, 1], 120, "read_uncommitted", Duration::from_secs(20));
    assert_eq!(all.len(), 120);
    assert_eq!(all.iter().filter(|v| v.starts_with("abort")).count(), 40);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_transaction_is_invisible_to_read_committed_until_it_commits() {
    let b = TestBroker::start().await;
    let topic = format!("open-{}", uuid_like());
    b.create_topic(&topic, 1, &[]).await;
    let p = txn_producer(&b, &format!("tx-{}", uuid_like()));
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, "pending").await;
    let reader = b.consumer(&[("isolation.level", "read_committed")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning).unwrap();
    reader.assign(&tpl).unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if let Some(Ok(m)) = block(|| reader.poll(Duration::from_millis(200))) {
            panic!("read_committed consumer saw {:?} of an open transaction", m.payload());
        }
    }
    // read_uncommitted sees it at once.
    assert_eq!(values(&b, &topic, &[0], 1, "read_uncommitted", Duration::from_secs(10)), ["pending"]);
    block(|| p.commit_transaction(T)).unwrap();
    let deadline = Instant::now() + T;
    let mut seen = None;
    while seen.is_none() && Instant::now() < deadline {
        if let Some(Ok(m)) = block(|| reader.poll(Duration::from_millis(200))) {
            seen = Some(m.payload().map(|p| p.to_vec()));
        }
    }
    assert_eq!(seen, Some(Some(b"pending".to_vec())));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_zombie_producer_is_fenced_by_a_new_producer_with_the_same_transactional_id() {
    let b = TestBroker::start().await;
    let topic = format!("fence-{}", uuid_like());
    b.create_topic(&topic, 1, &[]).await;
    let tid = format!("fence-{}", uuid_like());
    let zombie = txn_producer(&b, &tid);
    zombie.begin_transaction().unwrap();
    send(&zombie, &topic, 0, "zombie-before").await;
    // The new instance aborts the zombie's open transaction and takes the id with a higher epoch.
    let fresh = txn_producer(&b, &tid);
    let late = zombie.send(FutureRecord::<(), _>::to(&topic).payload("zombie-after").partition(0), T).await;
    let commit = block(|| zombie.commit_transaction(T));
    assert!(late.is_err() || commit.is_err(), "the zombie could still write and commit");
    if let Err(KafkaError::Transaction(e)) = &commit {
        assert!(e.is_fatal() || e.txn_requires_abort(), "unexpected zombie error {e:?}");
    }
    fresh.begin_transaction().unwrap();
    send(&fresh, &topic, 0, "alive").await;
    block(|| fresh.commit_transaction(T)).unwrap();
    assert_eq!(values(&b, &topic, &[0], 2, "read_committed", Duration::from_secs(5)), ["alive"]);
    b.shutdown().await;
}

/// Run by `a_killed_producers_transaction_is_aborted_after_its_timeout` in a child process, which it kills with
/// SIGKILL in the middle of a transaction.
#[test]
#[ignore = "child process of a_killed_producers_transaction_is_aborted_after_its_timeout"]
fn child_transactional_producer() {
    let (Ok(bootstrap), Ok(topic), Ok(tid)) =
        (std::env::var("TXN_CHILD_BOOTSTRAP"), std::env::var("TXN_CHILD_TOPIC"), std::env::var("TXN_CHILD_TID"))
    else {
        return;
    };
    let p: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", &tid)
        .set("transaction.timeout.ms", "3000")
        .create()
        .unwrap();
    p.init_transactions(T).unwrap();
    p.begin_transaction().unwrap();
    for i in 0..10 {
        p.send(rdkafka::producer::BaseRecord::<(), _>::to(&topic).payload(&format!("abandoned-{i}")).partition(0))
            .unwrap();
    }
    p.flush(T).unwrap();
    println!("produced");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_producers_transaction_is_aborted_after_its_timeout() {
    let b = TestBroker::start_with(|c| c.transaction_abort_timed_out_transaction_cleanup_interval_ms = 200).await;
    let topic = format!("abandon-{}", uuid_like());
    b.create_topic(&topic, 1, &[]).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_transactional_producer", "--ignored", "--nocapture"])
        .env("TXN_CHILD_BOOTSTRAP", &b.bootstrap)
        .env("TXN_CHILD_TOPIC", &topic)
        .env("TXN_CHILD_TID", format!("abandon-{}", uuid_like()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    while !line.contains("produced") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "child ended before producing");
    }
    child.kill().unwrap();
    let _ = child.wait();
    let killed = Instant::now();
    // Another producer commits after the abandoned records: read_committed can only see them once the abandoned
    // transaction is aborted (until then the last stable offset stays at its first record).
    let p = txn_producer(&b, &format!("after-{}", uuid_like()));
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, "committed-after").await;
    block(|| p.commit_transaction(T)).unwrap();
    let early = values(&b, &topic, &[0], 1, "read_committed", Duration::from_millis(500));
    assert!(early.is_empty() || killed.elapsed() >= Duration::from_millis(2500), "visible before the timeout");
    let got = values(&b, &topic, &[0], 1, "read_committed", Duration::from_secs(20));
    assert_eq!(got, ["committed-after"], "the abandoned transaction was never aborted");
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(15), "aborted only after {took:?}");
    let all = values(&b, &topic, &[0], 11, "read_uncommitted", Duration::from_secs(10));
    assert_eq!(all.iter().filter(|v| v.starts_with("abandoned-")).count(), 10);
    // ...and nothing of the abandoned transaction ever reaches a read_committed reader.
    let again = values(&b, &topic, &[0], 2, "read_committed", Duration::from_secs(2));
    assert_eq!(again, ["committed-after"]);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transaction_state_survives_a_broker_restart() {
    let mut b = TestBroker::start().await;
    let topic = format!("restart-{}", uuid_like());
    let src = format!("src-{}", uuid_like());
    b.create_topic(&topic, 1, &[]).await;
    b.create_topic(&src, 1, &[]).await;
    let tid = format!("restart-{}", uuid_like());
    let group = format!("g-{}", uuid_like());
    {
        let p = txn_producer(&b, &tid);
        // A committed transaction with offsets of a group...
        p.begin_transaction().unwrap();
        send(&p, &topic, 0, "committed").await;
        let c: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", &b.bootstrap).set("group.id", &group).create().unwrap();
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(&src, 0, Offset::Offset(7)).unwrap();
        block(|| p.send_offsets_to_transaction(&offsets, &c.group_metadata().unwrap(), T)).unwrap();
        block(|| p.commit_transaction(T)).unwrap();
        // ...then one left open when the broker stops.
        p.begin_transaction().unwrap();
        send(&p, &topic, 0, "open-at-restart").await;
    }
    b.restart(|_| {}).await;
    // The coordinator knows the open transaction after the restart: initialising the id aborts it (were it
    // forgotten, it would stay open and hold back every read_committed reader forever).
    let p = txn_producer(&b, &tid);
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, "after-restart").await;
    block(|| p.commit_transaction(T)).unwrap();
    let got = values(&b, &topic, &[0], 2, "read_committed", Duration::from_secs(20));
    assert_eq!(got, ["committed", "after-restart"]);
    let probe: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &b.bootstrap).set("group.id", &group).create().unwrap();
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(&src, 0);
    let committed = block(|| probe.committed_offsets(wanted, T)).unwrap();
    assert_eq!(committed.find_partition(&src, 0).unwrap().offset(), Offset::Offset(7));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offsets_sent_in_a_transaction_are_committed_only_if_it_commits() {
    let b = TestBroker::start().await;
    let src = format!("src-{}", uuid_like());
    b.create_topic(&src, 1, &[]).await;
    let group = format!("g-{}", uuid_like());
    let p = txn_producer(&b, &format!("tx-{}", uuid_like()));
    let c: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &b.bootstrap).set("group.id", &group).create().unwrap();
    let committed = |c: &BaseConsumer| {
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition(&src, 0);
        block(|| c.committed_offsets(wanted, T)).unwrap().find_partition(&src, 0).unwrap().offset()
    };
    for (offset, commit) in [(5, false), (9, true), (12, false)] {
        p.begin_transaction().unwrap();
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(&src, 0, Offset::Offset(offset)).unwrap();
        block(|| p.send_offsets_to_transaction(&offsets, &c.group_metadata().unwrap(), T)).unwrap();
        if commit {
            block(|| p.commit_transaction(T)).unwrap();
        } else {
            block(|| p.abort_transaction(T)).unwrap();
        }
        let expected = if offset >= 9 { Offset::Offset(9) } else { Offset::Invalid };
        assert_eq!(committed(&c), expected, "after the transaction with offset {offset} (commit: {commit})");
    }
    b.shutdown().await;
}
