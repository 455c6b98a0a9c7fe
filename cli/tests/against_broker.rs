//! The client commands (`topics`, `produce`, `consume`, `perf`) run as a user runs them, against a real broker.

mod common;

use common::{fails_with, ok, stderr, unique_topic, TestBroker};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

#[test]
fn topics_create_list_describe_alter_delete_round_trip() {
    let broker = TestBroker::start();
    let topic = unique_topic("round-trip");

    let created =
        ok(broker.spate(&["topics", "create", &topic, "--partitions", "2", "--config", "retention.ms=60000"]));
    assert!(created.contains(&format!("Created topic {topic}")), "{created}");

    let listed = ok(broker.spate(&["topics", "list"]));
    assert!(listed.lines().any(|l| l == topic), "{listed}");

    let described: serde_json::Value =
        serde_json::from_str(&ok(broker.spate(&["topics", "describe", &topic, "--json"]))).unwrap();
    let described = &described[0];
    assert_eq!(described["topic"], topic.as_str());
    assert_eq!(described["partition_count"], 2);
    assert_eq!(described["partitions"].as_array().unwrap().len(), 2);
    assert!(described["partitions"][0]["leader"].as_i64().unwrap() >= 0);
    let config = |view: &serde_json::Value, name: &str| {
        view["configs"].as_array().unwrap().iter().find(|c| c["name"] == name).map(|c| c["value"].clone())
    };
    assert_eq!(config(described, "retention.ms"), Some("60000".into()));

    ok(broker.spate(&[
        "topics",
        "alter",
        &topic,
        "--config",
        "cleanup.policy=compact",
        "--delete-config",
        "retention.ms",
        "--partitions",
        "3",
    ]));
    let altered: serde_json::Value =
        serde_json::from_str(&ok(broker.spate(&["topics", "describe", &topic, "--json"]))).unwrap();
    assert_eq!(altered[0]["partition_count"], 3);
    assert_eq!(config(&altered[0], "cleanup.policy"), Some("compact".into()));
    assert_eq!(config(&altered[0], "retention.ms"), None);

    let text = ok(broker.spate(&["topics", "describe", &topic]));
    assert!(text.contains(&format!("Topic: {topic}\tPartitionCount: 3")), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("\tPartition: ")).count(), 3, "{text}");

    ok(broker.spate(&["topics", "delete", &topic]));
    // Deletion may take a moment to show in metadata on some brokers.
    let gone = (0..50).any(|_| {
        let listed = ok(broker.spate(&["topics", "list"]));
        let present = listed.lines().any(|l| l == topic);
        if present {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        !present
    });
    assert!(gone, "topic still listed after delete");
}

#[test]
fn creating_an_existing_topic_fails_unless_if_not_exists() {
    let broker = TestBroker::start();
    let topic = unique_topic("exists");
    ok(broker.spate(&["topics", "create", &topic]));

    let error = fails_with(broker.spate(&["topics", "create", &topic]), 1);
    assert!(error.contains("already exists"), "{error}");
    ok(broker.spate(&["topics", "create", &topic, "--if-not-exists"]));
}

#[test]
fn produce_then_consume_keeps_keys_values_and_headers() {
    let broker = TestBroker::start();
    let topic = unique_topic("records");
    ok(broker.spate(&["topics", "create", &topic, "--partitions", "1"]));

    ok(broker.spate_with_input(
        &["produce", &topic, "--key-separator", ":", "--header", "source=test", "--header", "trace=abc"],
        "k1:first\nk2:second\n",
    ));
    let out = ok(broker.spate(&["consume", &topic, "--from-beginning", "--max-messages", "2", "--format", "json"]));
    let records: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2, "{out}");
    assert_eq!(records[0]["key"], "k1");
    assert_eq!(records[0]["value"], "first");
    assert_eq!(records[0]["offset"], 0);
    assert_eq!(records[0]["partition"], 0);
    assert_eq!(records[0]["topic"], topic.as_str());
    assert!(records[0]["timestamp"].as_i64().unwrap() > 0);
    assert_eq!(records[1]["key"], "k2");
    assert_eq!(records[1]["value"], "second");
    assert_eq!(records[1]["offset"], 1);
    let headers = records[1]["headers"].as_array().unwrap();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[0]["key"], "source");
    assert_eq!(headers[0]["value"], "test");
    assert_eq!(headers[1]["key"], "trace");

    let text = ok(broker.spate(&[
        "consume",
        &topic,
        "--from-beginning",
        "--max-messages",
        "1",
        "--format",
        "key-value",
        "--print-headers",
    ]));
    assert_eq!(text, "source:test,trace:abc\tk1\tfirst\n");
}

#[test]
fn consume_from_beginning_stops_after_max_messages() {
    let broker = TestBroker::start();
    let topic = unique_topic("max-messages");
    ok(broker.spate(&["topics", "create", &topic, "--partitions", "1"]));
    let input: String = (1..=10).map(|i| format!("value-{i}\n")).collect();
    ok(broker.spate_with_input(&["produce", &topic], &input));

    let output = broker.spate(&["consume", &topic, "--from-beginning", "--max-messages", "4"]);
    let printed = ok(output.clone());
    assert_eq!(printed, "value-1\nvalue-2\nvalue-3\nvalue-4\n");
    assert!(stderr(&output).contains("Processed a total of 4 messages"), "{}", stderr(&output));
}

#[test]
fn consume_at_an_offset_of_one_partition_reads_to_the_end() {
    let broker = TestBroker::start();
    let topic = unique_topic("offset");
    ok(broker.spate(&["topics", "create", &topic, "--partitions", "2"]));
    ok(broker.spate_with_input(&["produce", &topic, "--partition", "1"], "a\nb\nc\n"));

    let printed = ok(broker.spate(&["consume", &topic, "--partition", "1", "--offset", "1", "--exit-at-end"]));
    assert_eq!(printed, "b\nc\n");
}

#[test]
fn consumer_group_resumes_after_what_it_printed() {
    let broker = TestBroker::start();
    let topic = unique_topic("group");
    let group = unique_topic("group");
    ok(broker.spate(&["topics", "create", &topic, "--partitions", "1"]));
    ok(broker.spate_with_input(&["produce", &topic], "one\ntwo\nthree\n"));

    let first = ok(broker.spate(&["consume", &topic, "--group", &group, "--from-beginning", "--max-messages", "2"]));
    assert_eq!(first, "one\ntwo\n");
    let rest =
        ok(broker.spate(&["consume", &topic, "--group", &group, "--max-messages", "1", "--timeout-ms", "20000"]));
    assert_eq!(rest, "three\n");
}

#[test]
fn a_line_without_the_key_separator_is_reported_and_fails_the_command() {
    let broker = TestBroker::start();
    let topic = unique_topic("separator");
    ok(broker.spate(&["topics", "create", &topic]));

    let error = fails_with(broker.spate_with_input(&["produce", &topic, "--key-separator", ":"], "k:v\nno-key\n"), 1);
    assert!(error.contains("record 2 not sent: no key separator"), "{error}");
    assert!(error.contains("1 of 2 records not written"), "{error}");
    // The good line was still written.
    let printed = ok(broker.spate(&["consume", &topic, "--from-beginning", "--exit-at-end"]));
    assert_eq!(printed, "v\n");
}

#[test]
fn consuming_a_missing_topic_fails_with_a_clear_message() {
    let broker = TestBroker::start();
    let topic = unique_topic("missing");
    let error = fails_with(broker.spate(&["consume", &topic, "--from-beginning"]), 1);
    assert!(error.contains(&format!("topic '{topic}' does not exist")), "{error}");

    let error = fails_with(broker.spate(&["topics", "describe", &topic]), 1);
    assert!(error.contains(&format!("topic '{topic}' does not exist")), "{error}");
    let error = fails_with(broker.spate(&["topics", "delete", &topic]), 1);
    assert!(error.contains("does not exist"), "{error}");
    ok(broker.spate(&["topics", "delete", &topic, "--if-exists"]));
}

#[test]
fn an_unreachable_broker_fails_with_exit_code_1_and_names_the_address() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let mut command = common::spate_command();
    command.args(["topics", "list", "--bootstrap-server", "127.0.0.1:1", "--request-timeout-ms", "10000"]);
    let error = fails_with(common::run(command, ""), 1);
    assert!(error.contains("cannot reach the broker at 127.0.0.1:1"), "{error}");
    assert_eq!(error.lines().count(), 1, "one line, not a log dump: {error}");
}

#[test]
fn a_bad_flag_is_a_usage_error_with_exit_code_2() {
    let mut command = common::spate_command();
    command.args(["consume", "some-topic", "--no-such-flag"]);
    let error = fails_with(common::run(command, ""), 2);
    assert!(error.contains("--no-such-flag"), "{error}");

    let mut command = common::spate_command();
    command.args(["produce", "some-topic", "--acks", "2"]);
    let error = fails_with(common::run(command, ""), 2);
    assert!(error.contains("--acks"), "{error}");
}

#[test]
fn perf_produce_and_consume_report_throughput_and_latency() {
    let broker = TestBroker::start();
    let topic = unique_topic("perf");
    ok(broker.spate(&["topics", "create", &topic, "--partitions", "2"]));

    let produced: serde_json::Value = serde_json::from_str(&ok(broker.spate(&[
        "perf",
        "produce",
        "--topic",
        &topic,
        "--num-records",
        "2000",
        "--record-size",
        "64",
        "--compression",
        "lz4",
        "--json",
    ])))
    .unwrap();
    assert_eq!(produced["records_sent"], 2000);
    assert_eq!(produced["records_failed"], 0);
    assert!(produced["records_per_sec"].as_f64().unwrap() > 0.0);
    assert!(produced["mb_per_sec"].as_f64().unwrap() > 0.0);
    let latency = &produced["latency_ms"];
    let p = |name: &str| latency[name].as_f64().unwrap();
    assert!(p("p50") > 0.0);
    assert!(p("p50") <= p("p95") && p("p95") <= p("p99") && p("p99") <= p("p99_9") && p("p99_9") <= p("max"));

    let consumed: serde_json::Value = serde_json::from_str(&ok(broker.spate(&[
        "perf",
        "consume",
        "--topic",
        &topic,
        "--num-records",
        "2000",
        "--json",
    ])))
    .unwrap();
    assert_eq!(consumed["records"], 2000);
    assert_eq!(consumed["bytes"], 2000 * 64);
    assert!(consumed["records_per_sec"].as_f64().unwrap() > 0.0);
    assert!(consumed["elapsed_secs"].as_f64().unwrap() > 0.0);

    let text = ok(broker.spate(&["perf", "produce", "--topic", &topic, "--num-records", "10"]));
    assert!(text.starts_with("10 records sent, ") && text.contains("ms 99.9th."), "{text}");
}

#[test]
fn perf_produce_in_transactions_commits_every_n_records() {
    let broker = TestBroker::start();
    let topic = unique_topic("perf-txn");
    ok(broker.spate(&["topics", "create", &topic, "--partitions", "2"]));
    let produced: serde_json::Value = serde_json::from_str(&ok(broker.spate(&[
        "perf",
        "produce",
        "--topic",
        &topic,
        "--num-records",
        "2500",
        "--transactional-id",
        &format!("perf-{topic}"),
        "--transaction-records",
        "1000",
        "--json",
    ])))
    .unwrap();
    assert_eq!(produced["records_sent"], 2500);
    assert_eq!(produced["transactions"], 3, "2500 records at 1000 per transaction");
    // Committed, so a read_committed consumer sees them all.
    let consumed: serde_json::Value = serde_json::from_str(&ok(broker.spate(&[
        "perf",
        "consume",
        "--topic",
        &topic,
        "--num-records",
        "2500",
        "-X",
        "isolation.level=read_committed",
        "--json",
    ])))
    .unwrap();
    assert_eq!(consumed["records"], 2500);
}
