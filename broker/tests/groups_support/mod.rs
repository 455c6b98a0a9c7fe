//! Group members for the `groups_*` tests: each member is a librdkafka consumer on its own thread that polls,
//! records what it processed, and commits each record synchronously before polling again.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::Message;

/// A record as a member processed it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Processed {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

pub type Sink = Arc<Mutex<Vec<Processed>>>;

pub struct Member {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    /// Partitions this member owns, as librdkafka last reported.
    pub assignment: Arc<Mutex<Vec<i32>>>,
    /// Commit failures seen (a duplicate can only follow one).
    pub commit_errors: Arc<Mutex<Vec<String>>>,
}

pub fn config(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

impl Member {
    pub fn spawn(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)], sink: Sink) -> Member {
        let consumer: BaseConsumer = config(bootstrap, group, extra).create().expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let assignment = Arc::new(Mutex::new(Vec::new()));
        let commit_errors = Arc::new(Mutex::new(Vec::new()));
        let (s, a, e) = (stop.clone(), assignment.clone(), commit_errors.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    let value = m.payload().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
                    sink.lock().expect("sink").push(Processed { partition: m.partition(), offset: m.offset(), value });
                    if let Err(err) = consumer.commit_message(&m, CommitMode::Sync) {
                        e.lock().expect("errors").push(err.to_string());
                    }
                }
                if let Ok(tpl) = consumer.assignment() {
                    *a.lock().expect("assignment") = tpl.elements().iter().map(|t| t.partition()).collect();
                }
            }
            // Dropping the consumer closes it: librdkafka revokes, commits nothing more (auto commit is off)
            // and sends LeaveGroup.
            drop(consumer);
        });
        Member { stop, handle: Some(handle), assignment, commit_errors }
    }

    pub fn owned(&self) -> Vec<i32> {
        let mut v = self.assignment.lock().expect("assignment").clone();
        v.sort_unstable();
        v
    }

    /// Stops polling and leaves the group.
    pub fn leave(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.join().expect("member thread");
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Waits until `members` together own exactly `partitions` distinct partitions, each member some.
pub fn wait_split(members: &[&Member], partitions: i32, timeout: Duration) -> Vec<Vec<i32>> {
    let deadline = Instant::now() + timeout;
    loop {
        let owned: Vec<Vec<i32>> = members.iter().map(|m| m.owned()).collect();
        let mut all: Vec<i32> = owned.iter().flatten().copied().collect();
        all.sort_unstable();
        let disjoint_and_complete = all == (0..partitions).collect::<Vec<_>>();
        let everyone_has_some = owned.iter().all(|o| !o.is_empty()) || members.len() as i32 > partitions;
        if disjoint_and_complete && everyone_has_some {
            return owned;
        }
        assert!(Instant::now() < deadline, "group never settled: {owned:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the sink holds `n` records.
pub fn wait_processed(sink: &Sink, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while sink.lock().expect("sink").len() < n {
        assert!(Instant::now() < deadline, "processed {} of {n}", sink.lock().expect("sink").len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts every value `0..n` was processed exactly once.
pub fn assert_exactly_once(sink: &Sink, n: usize) {
    let mut values: Vec<usize> =
        sink.lock().expect("sink").iter().map(|p| p.value.parse().expect("numeric value")).collect();
    values.sort_unstable();
    let mut dups = values.clone();
    dups.dedup();
    let missing: Vec<usize> = (0..n).filter(|v| values.binary_search(v).is_err()).take(10).collect();
    assert!(missing.is_empty(), "{} records missing, e.g. {missing:?}", n - dups.len());
    assert_eq!(values.len(), n, "{} records processed twice", values.len() - dups.len());
}
