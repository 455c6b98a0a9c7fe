//! `spate groups` against a real broker: what `list` and `describe` show of live librdkafka members, that
//! `reset-offsets` changes nothing without `--execute` and really moves the committed offsets with it (checked
//! through librdkafka and by consuming), that both `--execute` and `delete` are refused while the group has
//! members, and that `delete` really removes the group.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{fails_with, ok, stderr, unique_topic, TestBroker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

const WAIT: Duration = Duration::from_secs(60);

/// A librdkafka group member on its own thread: it polls (so it stays in the group) but never commits, so the
/// committed offsets are only what the test set.
struct Member {
    stop: Arc<AtomicBool>,
    assignment: Arc<Mutex<Vec<i32>>>,
    handle: Option<JoinHandle<()>>,
}

impl Member {
    fn join(bootstrap: &str, group: &str, topic: &str) -> Member {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("client.id", "groups-test-member")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "500")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let assignment = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), assignment.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                let _ = consumer.poll(Duration::from_millis(100));
                if let Ok(tpl) = consumer.assignment() {
                    *a.lock().unwrap() = tpl.elements().iter().map(|e| e.partition()).collect();
                }
            }
            // Dropping closes the consumer, which sends LeaveGroup.
            drop(consumer);
        });
        Member { stop, assignment, handle: Some(handle) }
    }

    fn owned(&self) -> Vec<i32> {
        let mut owned = self.assignment.lock().unwrap().clone();
        owned.sort_unstable();
        owned
    }

    fn leave(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
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

/// Waits until the members together own partitions `0..partitions`, each some.
fn wait_assigned(members: &[&Member], partitions: i32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let owned: Vec<Vec<i32>> = members.iter().map(|m| m.owned()).collect();
        let mut all: Vec<i32> = owned.iter().flatten().copied().collect();
        all.sort_unstable();
        if all == (0..partitions).collect::<Vec<_>>() && owned.iter().all(|o| !o.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "the group never settled: {owned:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `spate groups describe GROUP --json`, the one group it describes.
fn describe(broker: &TestBroker, group: &str) -> Value {
    let described: Value = serde_json::from_str(&ok(broker.spate(&["groups", "describe", group, "--json"]))).unwrap();
    assert_eq!(described.as_array().unwrap().len(), 1, "{described}");
    described[0].clone()
}

/// The committed offset per partition as `describe --json` reports it (`None`: no commit).
fn described_offsets(broker: &TestBroker, group: &str) -> Vec<(i32, Option<i64>)> {
    let d = describe(broker, group);
    d["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["partition"].as_i64().unwrap() as i32, o["current_offset"].as_i64()))
        .collect()
}

/// The committed offsets read by librdkafka itself, independently of the command under test.
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let answered = consumer.committed_offsets(tpl, Duration::from_secs(30)).unwrap();
    answered
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// Writes `per_partition` records to each partition, record `i` with timestamp `base_ms + i * 1000`.
fn produce_timed(bootstrap: &str, topic: &str, partitions: i32, per_partition: i64, base_ms: i64) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("acks", "all").create().unwrap();
    for p in 0..partitions {
        for i in 0..per_partition {
            let value = format!("p{p}-{i}");
            producer
                .send(BaseRecord::<(), str>::to(topic).partition(p).payload(&value).timestamp(base_ms + i * 1_000))
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Now less an hour, in whole seconds, as epoch milliseconds.
fn an_hour_ago_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (now.as_secs() as i64 - 3_600) * 1_000
}

/// `ms` as `YYYY-MM-DDTHH:MM:SS.sss` in the zone `offset_minutes` east of UTC (`Z` for 0, else `+HH:MM`).
fn iso8601(ms: i64, offset_minutes: i64) -> String {
    let local = ms + offset_minutes * 60_000;
    let (days, rest) = (local.div_euclid(86_400_000), local.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let zone = if offset_minutes == 0 {
        "Z".to_string()
    } else {
        format!("+{:02}:{:02}", offset_minutes / 60, offset_minutes % 60)
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}{zone}",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000
    )
}

fn reset(broker: &TestBroker, group: &str, args: &[&str]) -> Value {
    let mut all = vec!["groups", "reset-offsets", group];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&ok(broker.spate(&all))).unwrap()
}

fn new_offsets(report: &Value) -> Vec<(i32, i64)> {
    report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["partition"].as_i64().unwrap() as i32, p["new_offset"].as_i64().unwrap()))
        .collect()
}

#[test]
fn describe_shows_members_assignments_offsets_and_lag_and_active_groups_are_protected() {
    let broker = TestBroker::start();
    let topic = unique_topic("describe");
    let group = unique_topic("describe-group");
    let idle_group = unique_topic("idle-group");
    ok(broker.spate(&["topics", "create", &topic, "--partitions", "3"]));
    produce_timed(&broker.bootstrap, &topic, 3, 10, an_hour_ago_ms());
    // Offsets first (a group without members may be given offsets), then the members, which commit nothing.
    ok(broker.spate(&["groups", "reset-offsets", &group, "--topic", &topic, "--to-offset", "4", "--execute"]));
    ok(broker.spate(&["groups", "reset-offsets", &idle_group, "--topic", &topic, "--to-latest", "--execute"]));
    let a = Member::join(&broker.bootstrap, &group, &topic);
    let b = Member::join(&broker.bootstrap, &group, &topic);
    wait_assigned(&[&a, &b], 3);

    let d = describe(&broker, &group);
    assert_eq!(d["group"], group.as_str());
    assert_eq!(d["state"], "Stable", "{d}");
    assert_eq!(d["protocol_type"], "consumer");
    assert!(!d["protocol"].as_str().unwrap().is_empty(), "{d}");
    let members = d["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{d}");
    // The assignments the broker holds are the ones the members have, and every partition is owned once.
    let mut described_owned: Vec<Vec<i32>> = members
        .iter()
        .map(|m| {
            assert_eq!(m["client_id"], "groups-test-member");
            let mut ps: Vec<i32> = m["assignment"]
                .as_array()
                .unwrap()
                .iter()
                .map(|tp| {
                    assert_eq!(tp["topic"], topic.as_str());
                    tp["partition"].as_i64().unwrap() as i32
                })
                .collect();
            ps.sort_unstable();
            ps
        })
        .collect();
    described_owned.sort();
    let mut actual_owned = vec![a.owned(), b.owned()];
    actual_owned.sort();
    assert_eq!(described_owned, actual_owned);
    let offsets = d["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 3, "{d}");
    for (p, o) in offsets.iter().enumerate() {
        assert_eq!(o["topic"], topic.as_str());
        assert_eq!(o["partition"], p);
        assert_eq!(o["current_offset"], 4, "{d}");
        assert_eq!(o["log_end_offset"], 10, "{d}");
        assert_eq!(o["lag"], 6, "{d}");
        let owner =
            members.iter().find(|m| m["assignment"].as_array().unwrap().iter().any(|tp| tp["partition"] == p)).unwrap();
        assert_eq!(o["member_id"], owner["member_id"], "{d}");
    }

    // The text form: a state line, a members table with assignments, an offsets table with a row per partition.
    let text = ok(broker.spate(&["groups", "describe", &group]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].split_whitespace().eq(["GROUP", "STATE", "PROTOCOL-TYPE", "PROTOCOL", "MEMBERS"]), "{text}");
    assert!(lines[1].starts_with(&group) && lines[1].contains("Stable") && lines[1].ends_with(" 2"), "{text}");
    let members_header = lines.iter().position(|l| l.starts_with("CONSUMER-ID")).expect(&text);
    assert!(lines[members_header].split_whitespace().eq([
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
        "ASSIGNMENT"
    ]));
    for m in members {
        let row = lines.iter().find(|l| l.starts_with(m["member_id"].as_str().unwrap())).expect(&text);
        assert!(row.contains(&format!("{topic}(")), "{row}");
    }
    let offsets_header = lines.iter().position(|l| l.starts_with("GROUP") && l.contains("LAG")).expect(&text);
    let header: Vec<&str> = lines[offsets_header].split_whitespace().collect();
    assert_eq!(
        header,
        ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]
    );
    for p in 0..3 {
        let row: Vec<&str> = lines[offsets_header + 1 + p].split_whitespace().collect();
        assert_eq!(&row[..6], [group.as_str(), topic.as_str(), &p.to_string(), "4", "10", "6"], "{text}");
    }

    // list: both groups; the state filter tells them apart.
    let listed = ok(broker.spate(&["groups", "list"]));
    assert!(listed.lines().any(|l| l == group) && listed.lines().any(|l| l == idle_group), "{listed}");
    let stable = ok(broker.spate(&["groups", "list", "--state", "stable"]));
    assert!(stable.lines().next().unwrap().split_whitespace().eq(["GROUP", "STATE"]), "{stable}");
    assert!(stable.lines().any(|l| l.split_whitespace().eq([group.as_str(), "Stable"])), "{stable}");
    assert!(!stable.contains(&idle_group), "{stable}");
    let empty: Value =
        serde_json::from_str(&ok(broker.spate(&["groups", "list", "--state", "Empty", "--json"]))).unwrap();
    let empty = empty.as_array().unwrap();
    assert!(empty.iter().any(|g| g["group"] == idle_group.as_str() && g["state"] == "Empty"), "{empty:?}");
    assert!(!empty.iter().any(|g| g["group"] == group.as_str()), "{empty:?}");

    // While members are in the group, neither an executed reset nor a delete goes through, and nothing changes.
    let refused = fails_with(
        broker.spate(&["groups", "reset-offsets", &group, "--topic", &topic, "--to-earliest", "--execute"]),
        1,
    );
    assert!(refused.contains("active member"), "{refused}");
    let refused = fails_with(broker.spate(&["groups", "delete", &group]), 1);
    assert!(refused.contains("has active members"), "{refused}");
    assert_eq!(committed(&broker.bootstrap, &group, &topic, 3), vec![Some(4); 3]);
    // A dry run only reads, so it is allowed (with a warning).
    let dry = broker.spate(&["groups", "reset-offsets", &group, "--topic", &topic, "--to-earliest"]);
    assert!(stderr(&dry).contains("warning:"), "{}", stderr(&dry));
    assert_eq!(ok(dry).lines().count(), 4);

    // Once the members have left, the group is Empty, and delete removes it with its offsets.
    a.leave();
    b.leave();
    let deadline = Instant::now() + WAIT;
    while describe(&broker, &group)["state"] != "Empty" {
        assert!(Instant::now() < deadline, "the group never became empty");
        std::thread::sleep(Duration::from_millis(200));
    }
    let deleted = ok(broker.spate(&["groups", "delete", &group]));
    assert_eq!(deleted.trim(), format!("Deleted consumer group {group}."));
    let listed = ok(broker.spate(&["groups", "list"]));
    assert!(!listed.lines().any(|l| l == group), "{listed}");
    assert!(listed.lines().any(|l| l == idle_group), "{listed}");
    let missing = fails_with(broker.spate(&["groups", "describe", &group]), 1);
    assert!(missing.contains(&format!("consumer group '{group}' does not exist")), "{missing}");
    assert_eq!(committed(&broker.bootstrap, &group, &topic, 3), vec![None; 3], "offsets survived the delete");
    let again = fails_with(broker.spate(&["groups", "delete", &group]), 1);
    assert!(again.contains("does not exist"), "{again}");
    ok(broker.spate(&["groups", "delete", &group, "--if-exists"]));
}

#[test]
fn reset_offsets_dry_run_changes_nothing_and_execute_applies_every_target() {
    let broker = TestBroker::start();
    let topic = unique_topic("reset");
    let group = unique_topic("reset-group");
    ok(broker.spate(&["topics", "create", &topic, "--partitions", "2"]));
    // Timestamps one second apart from an hour ago (recent enough that no retention removes them), so
    // --to-datetime has a known answer.
    let base = an_hour_ago_ms();
    produce_timed(&broker.bootstrap, &topic, 2, 10, base);
    let bootstrap = broker.bootstrap.as_str();

    // No group yet: --execute creates it with these offsets.
    let report = reset(&broker, &group, &["--topic", &topic, "--to-offset", "3", "--execute"]);
    assert_eq!(report["executed"], true);
    assert_eq!(new_offsets(&report), [(0, 3), (1, 3)]);
    assert_eq!(committed(bootstrap, &group, &topic, 2), [Some(3), Some(3)]);

    // Dry run (the default, or --dry-run): the plan is shown, nothing changes.
    let text = ok(broker.spate(&["groups", "reset-offsets", &group, "--topic", &topic, "--to-earliest"]));
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]);
    assert_eq!(rows[1], [group.as_str(), topic.as_str(), "0", "3", "0"]);
    assert_eq!(rows[2], [group.as_str(), topic.as_str(), "1", "3", "0"]);
    let report = reset(&broker, &group, &["--topic", &topic, "--to-latest", "--dry-run"]);
    assert_eq!((report["executed"].clone(), new_offsets(&report)), (Value::Bool(false), vec![(0, 10), (1, 10)]));
    assert_eq!(committed(bootstrap, &group, &topic, 2), [Some(3), Some(3)]);
    assert_eq!(described_offsets(&broker, &group), [(0, Some(3)), (1, Some(3))]);

    let check = |args: &[&str], expected: [i64; 2]| {
        let mut all = args.to_vec();
        all.push("--execute");
        let report = reset(&broker, &group, &all);
        assert_eq!(report["executed"], true, "{args:?}");
        assert_eq!(committed(bootstrap, &group, &topic, 2), expected.map(Some), "after {args:?}");
    };
    check(&["--topic", &topic, "--to-earliest"], [0, 0]);
    check(&["--topic", &topic, "--to-latest"], [10, 10]);
    check(&["--all-topics", "--shift-by", "-4"], [6, 6]);
    check(&["--topic", &topic, "--shift-by", "100"], [10, 10]); // kept at the log end
    check(&["--topic", &topic, "--to-offset", "-5"], [0, 0]); // kept at the log start
    check(&["--topic", &format!("{topic}:1"), "--to-offset", "2"], [0, 2]);
    check(&["--topic", &topic, "--to-datetime", &(base + 5_000).to_string()], [5, 5]);
    check(&["--topic", &topic, "--to-datetime", &iso8601(base + 7_500, 0)], [8, 8]);
    check(&["--topic", &topic, "--to-datetime", &iso8601(base + 2_000, 60)], [2, 2]);
    check(&["--topic", &topic, "--to-datetime", "2200-01-01T00:00:00"], [10, 10]); // nothing that late: log end
    check(&["--topic", &format!("{topic}:0"), "--to-offset", "7"], [7, 10]);

    // The group really resumes from there: a member reads offsets 7..10 of partition 0 and nothing of 1.
    let printed = ok(broker.spate(&[
        "consume",
        &topic,
        "--group",
        &group,
        "--format",
        "json",
        "--max-messages",
        "3",
        "--timeout-ms",
        "30000",
    ]));
    let mut read: Vec<(i64, i64)> = printed
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap()))
        .collect();
    read.sort_unstable();
    assert_eq!(read, [(0, 7), (0, 8), (0, 9)]);
}

#[test]
fn groups_errors_name_the_cause_with_exit_codes() {
    let broker = TestBroker::start();
    let topic = unique_topic("errors");
    let group = unique_topic("errors-group");
    ok(broker.spate(&["topics", "create", &topic, "--partitions", "2"]));

    let e = fails_with(broker.spate(&["groups", "describe", &group]), 1);
    assert!(e.starts_with("error: ") && e.contains("does not exist"), "{e}");
    let e =
        fails_with(broker.spate(&["groups", "reset-offsets", &group, "--topic", "no-such-topic", "--to-earliest"]), 1);
    assert!(e.contains("topic 'no-such-topic' does not exist"), "{e}");
    let e = fails_with(
        broker.spate(&["groups", "reset-offsets", &group, "--topic", &format!("{topic}:5"), "--to-earliest"]),
        1,
    );
    assert!(e.contains("has no partition 5 (it has 2)"), "{e}");
    // Shifting needs a committed offset to shift from.
    let e = fails_with(broker.spate(&["groups", "reset-offsets", &group, "--topic", &topic, "--shift-by", "1"]), 1);
    assert!(e.contains("no committed offset"), "{e}");
    let e = fails_with(broker.spate(&["groups", "reset-offsets", &group, "--all-topics", "--to-earliest"]), 1);
    assert!(e.contains("no committed offsets"), "{e}");

    // Usage errors: no target, two targets, no scope, --execute with --dry-run, a bad date, a bad state.
    fails_with(broker.spate(&["groups", "reset-offsets", &group, "--topic", &topic]), 2);
    fails_with(
        broker.spate(&["groups", "reset-offsets", &group, "--topic", &topic, "--to-earliest", "--to-latest"]),
        2,
    );
    fails_with(broker.spate(&["groups", "reset-offsets", &group, "--to-earliest"]), 2);
    fails_with(
        broker.spate(&["groups", "reset-offsets", &group, "--all-topics", "--to-earliest", "--execute", "--dry-run"]),
        2,
    );
    fails_with(broker.spate(&["groups", "reset-offsets", &group, "--all-topics", "--to-datetime", "yesterday"]), 2);
    fails_with(broker.spate(&["groups", "list", "--state", "Sleeping"]), 2);
    fails_with(broker.spate(&["groups", "describe"]), 2);
    assert_eq!(committed(&broker.bootstrap, &group, &topic, 2), [None, None], "a failed command committed");
}
