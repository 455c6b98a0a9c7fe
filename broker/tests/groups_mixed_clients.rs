//! One consumer group made of three client implementations on one topic: librdkafka (rdkafka, in this process),
//! kafka-python and KafkaJS (child processes). The broker must let them agree on a protocol, hand each member a
//! disjoint share of the partitions, keep the offsets each commits, and hand a leaving member's partitions, with
//! their committed offsets, to members of the other implementations: every record is processed exactly once.
//!
//! The Python members use the shared interop kit's venv (`${XDG_CACHE_HOME:-$HOME/.cache}/spate-interop-venv`, or
//! `INTEROP_VENV`), created as `/work/shared/interop/run` creates it when it is missing; the KafkaJS members use
//! `kafkajs` installed with npm into `${XDG_CACHE_HOME:-$HOME/.cache}/spate-interop-node` (or
//! `SPATE_INTEROP_NODE`) when it is missing. A missing `python3`, `node` or `npm`, or a failed install, fails the
//! test with the reason: it never passes without all three implementations in the group.
//!
//! Protocol: every member offers only `roundrobin`. librdkafka and kafka-python implement it natively. KafkaJS
//! names its own round-robin assignor `RoundRobinAssigner`, a name no other client offers, so the KafkaJS
//! members carry Kafka's round-robin assignor under the name `roundrobin` (below, in `MEMBER_JS`). The leader
//! computes everyone's assignment: a KafkaJS member joins first so it leads phase 1; it then leaves, so another
//! implementation leads phase 2.

#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;
mod groups_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{produce, uuid_like, TestBroker};
use groups_support::{Member, Processed, Sink};

const PARTITIONS: i32 = 12;
const WAIT: Duration = Duration::from_secs(120);

const MEMBER_PY: &str = r#"
import json, sys, threading
from kafka import KafkaConsumer, OffsetAndMetadata
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

bootstrap, group, topic, name = sys.argv[1:5]
lock = threading.Lock()

def emit(**event):
    event["member"] = name
    with lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

stop = threading.Event()

def watch_stdin():
    sys.stdin.read()  # returns at end of file: the test closed our stdin
    stop.set()

threading.Thread(target=watch_stdin, daemon=True).start()

class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        emit(event="revoked", partitions=sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned):
        emit(event="assigned", partitions=sorted(tp.partition for tp in assigned))

consumer = KafkaConsumer(
    bootstrap_servers=bootstrap,
    group_id=group,
    client_id=name,
    enable_auto_commit=False,
    auto_offset_reset="earliest",
    partition_assignment_strategy=[RoundRobinPartitionAssignor],
    session_timeout_ms=10000,
    heartbeat_interval_ms=500,
    max_poll_records=50,
)
consumer.subscribe([topic], listener=Listener())
emit(event="started")
while not stop.is_set():
    for tp, records in consumer.poll(timeout_ms=100).items():
        for r in records:
            emit(event="record", partition=tp.partition, offset=r.offset, value=r.value.decode())
            try:
                consumer.commit({tp: OffsetAndMetadata(r.offset + 1, "", -1)})
            except Exception as e:
                emit(event="commit_failed", error=repr(e))
consumer.close()
emit(event="closed")
"#;

const MEMBER_JS: &str = r#"
const { Kafka, logLevel, AssignerProtocol: { MemberMetadata, MemberAssignment } } = require('kafkajs')
const [bootstrap, group, topic, name] = process.argv.slice(2)
const emit = (event) => process.stdout.write(JSON.stringify({ member: name, ...event }) + '\n')

// Kafka's RoundRobinAssignor under Kafka's protocol name: members sorted by id, partitions of the sorted topics
// dealt out in turn.
const RoundRobin = ({ cluster }) => ({
  name: 'roundrobin',
  version: 0,
  async assign({ members, topics }) {
    const ids = members.map((m) => m.memberId).sort()
    const plan = Object.fromEntries(ids.map((id) => [id, {}]))
    let next = 0
    for (const t of [...topics].sort()) {
      const partitions = cluster.findTopicPartitionMetadata(t).map((m) => m.partitionId).sort((a, b) => a - b)
      for (const p of partitions) {
        const owner = plan[ids[next++ % ids.length]]
        ;(owner[t] = owner[t] || []).push(p)
      }
    }
    return ids.map((id) => ({
      memberId: id,
      memberAssignment: MemberAssignment.encode({ version: 0, assignment: plan[id], userData: Buffer.alloc(0) }),
    }))
  },
  protocol({ topics }) {
    return { name: 'roundrobin', metadata: MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) }
  },
})

const toStderr = () => ({ level, log }) => {
  if (level <= logLevel.WARN) process.stderr.write(JSON.stringify(log) + '\n')
}

let commit = Promise.resolve()

async function main() {
  const kafka = new Kafka({ clientId: name, brokers: [bootstrap], logLevel: logLevel.WARN, logCreator: toStderr })
  const consumer = kafka.consumer({
    groupId: group,
    partitionAssigners: [RoundRobin],
    sessionTimeout: 10000,
    rebalanceTimeout: 30000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  })
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const mine = (payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
    emit({ event: 'assigned', partitions: mine, protocol: payload.groupProtocol })
  })
  consumer.on(consumer.events.CRASH, ({ payload }) => emit({ event: 'crash', error: String(payload.error) }))
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      emit({ event: 'record', partition, offset: Number(message.offset), value: message.value.toString() })
      commit = consumer
        .commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }])
        .catch((e) => emit({ event: 'commit_failed', error: String(e) }))
      await commit
    },
  })
  emit({ event: 'started' })
  process.stdin.on('end', async () => {
    await commit // the last record's commit, before leaving
    await consumer.disconnect()
    emit({ event: 'closed' })
    process.exit(0)
  })
  process.stdin.resume()
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n')
  process.exit(1)
})
"#;

fn cache_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"),
    }
}

/// Runs a set-up command, failing the test with its output when it does not succeed.
fn setup(command: &mut Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", command.get_program()));
    assert!(
        output.status.success(),
        "{what} failed ({})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The interop kit's venv, with kafka-python importable: created like `/work/shared/interop/run` does when
/// missing.
fn python_with_kafka_python() -> PathBuf {
    let venv = std::env::var_os("INTEROP_VENV").map_or_else(|| cache_dir().join("spate-interop-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    let has_kafka = |python: &Path| {
        Command::new(python).args(["-c", "import kafka"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    };
    if python.exists() && has_kafka(&python) {
        return python;
    }
    eprintln!("creating the Python venv {} for kafka-python", venv.display());
    setup(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "creating a venv for kafka-python (needs python3 with the venv module)",
    );
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/interop/requirements.txt");
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "-q"]);
    if requirements.exists() {
        pip.arg("-r").arg(&requirements);
    } else {
        pip.arg("kafka-python>=2.0.2");
    }
    setup(&mut pip, "installing kafka-python with pip");
    assert!(has_kafka(&python), "kafka-python is still not importable by {}", python.display());
    python
}

/// A directory whose `node_modules` holds kafkajs, installed with npm when missing.
fn node_modules_with_kafkajs() -> PathBuf {
    let dir =
        std::env::var_os("SPATE_INTEROP_NODE").map_or_else(|| cache_dir().join("spate-interop-node"), PathBuf::from);
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(node_ok, "the KafkaJS members need Node.js: `node` is not on PATH (install Node.js 18 or newer)");
    let modules = dir.join("node_modules");
    if !modules.join("kafkajs/package.json").exists() {
        eprintln!("installing kafkajs into {}", dir.display());
        std::fs::create_dir_all(&dir).unwrap();
        setup(
            Command::new("npm").args(["install", "--no-audit", "--no-fund", "--prefix"]).arg(&dir).arg("kafkajs@2"),
            "installing kafkajs with npm",
        );
    }
    modules
}

/// What a child member reported, line by line on its stdout.
#[derive(Default)]
struct Reports {
    assignment: Option<Vec<i32>>,
    processed: Vec<Processed>,
    commit_failures: Vec<String>,
    closed: bool,
    other: Vec<String>,
}

/// A kafka-python or KafkaJS member running as a child process.
struct ChildMember {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    reports: Arc<Mutex<Reports>>,
    stderr: Arc<Mutex<String>>,
}

impl ChildMember {
    fn spawn(mut command: Command, name: &str) -> ChildMember {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("starting member {name}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let reports = Arc::new(Mutex::new(Reports::default()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let r = reports.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    r.lock().unwrap().other.push(line);
                    continue;
                };
                let mut r = r.lock().unwrap();
                match event["event"].as_str() {
                    Some("assigned") => {
                        r.assignment = Some(
                            event["partitions"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|p| p.as_i64().unwrap() as i32)
                                .collect(),
                        )
                    }
                    Some("revoked") => r.assignment = None,
                    Some("record") => r.processed.push(Processed {
                        partition: event["partition"].as_i64().unwrap() as i32,
                        offset: event["offset"].as_i64().unwrap(),
                        value: event["value"].as_str().unwrap().to_string(),
                    }),
                    Some("commit_failed") => r.commit_failures.push(event["error"].to_string()),
                    Some("closed") => r.closed = true,
                    _ => r.other.push(line),
                }
            }
        });
        let e = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                e.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        ChildMember { name: name.to_string(), child, stdin, reports, stderr }
    }

    fn python(python: &Path, script: &Path, bootstrap: &str, group: &str, topic: &str, name: &str) -> ChildMember {
        let mut command = Command::new(python);
        command.arg(script).args([bootstrap, group, topic, name]);
        ChildMember::spawn(command, name)
    }

    fn node(modules: &Path, script: &Path, bootstrap: &str, group: &str, topic: &str, name: &str) -> ChildMember {
        let mut command = Command::new("node");
        command.env("NODE_PATH", modules).arg(script).args([bootstrap, group, topic, name]);
        ChildMember::spawn(command, name)
    }

    fn owned(&self) -> Vec<i32> {
        let mut owned = self.reports.lock().unwrap().assignment.clone().unwrap_or_default();
        owned.sort_unstable();
        owned
    }

    /// Fails the test, with the member's stderr, if it has exited.
    fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            std::thread::sleep(Duration::from_millis(200)); // let the reader threads drain the pipes
            panic!(
                "member {} exited with {status}\nstderr:\n{}\nunparsed stdout:\n{}",
                self.name,
                self.stderr.lock().unwrap(),
                self.reports.lock().unwrap().other.join("\n")
            );
        }
    }

    /// Closes stdin, which the member takes as the request to leave the group, and waits for it to exit.
    fn leave(mut self) -> Reports {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "member {} exited with {status}: {}", self.name, self.stderr.lock().unwrap());
                break;
            }
            assert!(Instant::now() < deadline, "member {} did not leave", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200)); // the reader threads see end of file
        let reports = std::mem::take(&mut *self.reports.lock().unwrap());
        assert!(reports.closed, "member {} exited without closing its consumer", self.name);
        reports
    }
}

impl Drop for ChildMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One member of any implementation, as the checks see it.
enum Any<'a> {
    Rust(&'a str, &'a Member),
    Child(&'a ChildMember),
}

impl Any<'_> {
    fn name(&self) -> &str {
        match self {
            Any::Rust(name, _) => name,
            Any::Child(c) => &c.name,
        }
    }
    fn owned(&self) -> Vec<i32> {
        match self {
            Any::Rust(_, m) => m.owned(),
            Any::Child(c) => c.owned(),
        }
    }
}

/// Waits until the members together own every partition, each some and none twice, and the split is the same on
/// two looks a second apart (so no member still reports a previous generation's assignment).
fn wait_settled(members: &mut [ChildMember], rust: &[(&str, &Member)]) -> BTreeMap<String, Vec<i32>> {
    let deadline = Instant::now() + WAIT;
    let mut previous: Option<BTreeMap<String, Vec<i32>>> = None;
    loop {
        for m in members.iter_mut() {
            m.assert_alive();
        }
        let all: Vec<Any<'_>> =
            rust.iter().map(|(n, m)| Any::Rust(n, m)).chain(members.iter().map(Any::Child)).collect();
        let split: BTreeMap<String, Vec<i32>> = all.iter().map(|m| (m.name().to_string(), m.owned())).collect();
        let mut union: Vec<i32> = split.values().flatten().copied().collect();
        union.sort_unstable();
        let settled = union == (0..PARTITIONS).collect::<Vec<_>>() && split.values().all(|p| !p.is_empty());
        if settled && previous.as_ref() == Some(&split) {
            eprintln!("settled: {split:?}");
            return split;
        }
        previous = settled.then_some(split.clone());
        assert!(Instant::now() < deadline, "the mixed group never settled: {split:?}");
        std::thread::sleep(Duration::from_millis(if settled { 1_000 } else { 100 }));
    }
}

async fn produce_values(b: &TestBroker, topic: &str, range: std::ops::Range<usize>) {
    let p = b.producer(&[]);
    let records: Vec<(String, String)> = range.map(|i| (format!("k{i}"), i.to_string())).collect();
    let borrowed: Vec<(Option<&str>, String)> = records.iter().map(|(k, v)| (Some(k.as_str()), v.clone())).collect();
    produce(&p, topic, &borrowed).await;
}

fn processed_by(children: &[ChildMember], sinks: &[(&str, &Sink)]) -> BTreeMap<String, Vec<Processed>> {
    let mut out: BTreeMap<String, Vec<Processed>> =
        sinks.iter().map(|(n, s)| (n.to_string(), s.lock().unwrap().clone())).collect();
    for c in children {
        out.insert(c.name.clone(), c.reports.lock().unwrap().processed.clone());
    }
    out
}

/// Waits until `n` records were processed in all, then checks every value `0..n` was processed exactly once.
fn wait_exactly_once(
    children: &mut [ChildMember],
    sinks: &[(&str, &Sink)],
    earlier: &BTreeMap<String, Vec<Processed>>,
    n: usize,
) -> BTreeMap<String, Vec<Processed>> {
    let deadline = Instant::now() + WAIT;
    loop {
        for c in children.iter_mut() {
            c.assert_alive();
        }
        let mut now = processed_by(children, sinks);
        for (name, records) in earlier {
            now.entry(name.clone()).or_default().extend(records.iter().cloned());
        }
        let total: usize = now.values().map(Vec::len).sum();
        if total >= n {
            // Let a duplicate that is about to be reported show up.
            std::thread::sleep(Duration::from_millis(500));
            let mut now = processed_by(children, sinks);
            for (name, records) in earlier {
                now.entry(name.clone()).or_default().extend(records.iter().cloned());
            }
            let mut values: Vec<usize> = now.values().flatten().map(|p| p.value.parse().unwrap()).collect();
            values.sort_unstable();
            let mut seen = BTreeMap::<usize, Vec<&str>>::new();
            for (name, records) in &now {
                for r in records {
                    seen.entry(r.value.parse().unwrap()).or_default().push(name);
                }
            }
            let twice: Vec<_> = seen.iter().filter(|(_, by)| by.len() > 1).take(10).collect();
            assert!(twice.is_empty(), "records processed more than once (value: members): {twice:?}");
            assert_eq!(values, (0..n).collect::<Vec<_>>(), "not every record was processed");
            return now;
        }
        assert!(Instant::now() < deadline, "processed {total} of {n} records");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_kafka_python_and_kafkajs_members_share_a_group_and_process_each_record_once() {
    let python = python_with_kafka_python();
    let node_modules = node_modules_with_kafkajs();
    let scripts = tempfile::tempdir().unwrap();
    let member_py = scripts.path().join("member.py");
    let member_js = scripts.path().join("member.js");
    std::fs::write(&member_py, MEMBER_PY).unwrap();
    std::fs::write(&member_js, MEMBER_JS).unwrap();

    let b = TestBroker::start().await;
    let topic = format!("mixed-{}", uuid_like());
    let group = format!("mixed-{}", uuid_like());
    b.create_topic(&topic, PARTITIONS, &[]).await;

    // Two members of each implementation; librdkafka's offers only roundrobin too (its default is range,roundrobin).
    // A KafkaJS member comes first and alone, so it leads the group and its assignor computes everyone's share.
    let mut children = vec![ChildMember::node(&node_modules, &member_js, &b.bootstrap, &group, &topic, "kafkajs-1")];
    let alone = wait_settled(&mut children, &[]);
    assert_eq!(alone["kafkajs-1"], (0..PARTITIONS).collect::<Vec<_>>());
    let rr = [("partition.assignment.strategy", "roundrobin")];
    let (sink_a, sink_b): (Sink, Sink) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let rdkafka_a = Member::spawn(&b.bootstrap, &group, &topic, &rr, sink_a.clone());
    children.push(ChildMember::python(&python, &member_py, &b.bootstrap, &group, &topic, "kafka-python-1"));
    let rdkafka_b = Member::spawn(&b.bootstrap, &group, &topic, &rr, sink_b.clone());
    children.push(ChildMember::python(&python, &member_py, &b.bootstrap, &group, &topic, "kafka-python-2"));
    children.push(ChildMember::node(&node_modules, &member_js, &b.bootstrap, &group, &topic, "kafkajs-2"));

    // All six in one generation: 12 partitions, two each.
    let split = wait_settled(&mut children, &[("librdkafka-1", &rdkafka_a), ("librdkafka-2", &rdkafka_b)]);
    assert_eq!(split.len(), 6);
    assert!(split.values().all(|p| p.len() == 2), "roundrobin gives 12 partitions to 6 members two each: {split:?}");

    // Phase 1: records written once the group is stable; each processed once, by the member owning its partition.
    let n1 = 1_200;
    produce_values(&b, &topic, 0..n1).await;
    let sinks = [("librdkafka-1", &sink_a), ("librdkafka-2", &sink_b)];
    let phase1 = wait_exactly_once(&mut children, &sinks, &BTreeMap::new(), n1);
    for (name, records) in &phase1 {
        assert!(!records.is_empty(), "{name} processed nothing: {split:?}");
        for r in records {
            assert!(split[name].contains(&r.partition), "{name} processed partition {} it does not own", r.partition);
        }
    }

    // Phase 2: the KafkaJS leader and one librdkafka member leave, so another member leads. Their partitions go
    // to the others, which must start at the offsets the leavers committed: nothing processed again or skipped.
    let leaving_js = children.remove(0);
    let left = leaving_js.leave();
    assert!(left.commit_failures.is_empty(), "kafkajs-1 commits failed: {:?}", left.commit_failures);
    let failures = rdkafka_a.commit_errors.lock().unwrap().clone();
    assert!(failures.is_empty(), "librdkafka-1 commits failed: {failures:?}");
    rdkafka_a.leave();
    let resplit = wait_settled(&mut children, &[("librdkafka-2", &rdkafka_b)]);
    assert_eq!(resplit.len(), 4);
    // Phase 1's records of the leavers stay counted; the sinks of the remaining members are read afresh.
    let mut earlier = BTreeMap::new();
    earlier.insert("kafkajs-1".to_string(), left.processed);
    earlier.insert("librdkafka-1".to_string(), sink_a.lock().unwrap().clone());
    let n2 = 2_400;
    produce_values(&b, &topic, n1..n2).await;
    let phase2 = wait_exactly_once(&mut children, &[("librdkafka-2", &sink_b)], &earlier, n2);
    for name in ["librdkafka-2", "kafka-python-1", "kafka-python-2", "kafkajs-2"] {
        let after = phase2[name].iter().filter(|r| r.value.parse::<usize>().unwrap() >= n1).count();
        assert!(after > 0, "{name} processed none of phase 2's records: {resplit:?}");
    }

    for c in &children {
        let failures = &c.reports.lock().unwrap().commit_failures;
        assert!(failures.is_empty(), "{} commits failed: {failures:?}", c.name);
    }
    let failures = rdkafka_b.commit_errors.lock().unwrap().clone();
    assert!(failures.is_empty(), "librdkafka-2 commits failed: {failures:?}");
    for c in children {
        c.leave();
    }
    rdkafka_b.leave();
    b.shutdown().await;
}
