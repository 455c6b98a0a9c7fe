#![allow(clippy::unwrap_used)]
//! Windowed aggregations and suppression through the test driver.

use std::time::Duration;

use spate_streams::{
    BufferConfig, Materialized, SessionWindows, SlidingWindows, StreamsBuilder, StreamsConfig, Suppressed, TimeWindows,
    TopologyTestDriver,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Output key: `key@start-end`.
fn label(k: &spate_streams::Windowed<String>) -> String {
    format!("{}@{}-{}", k.key, k.window.start, k.window.end)
}

fn results(d: &TopologyTestDriver) -> Vec<(String, Option<i64>)> {
    d.create_output_topic::<String, Option<i64>>("out")
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

fn pairs(items: &[(&str, Option<i64>)]) -> Vec<(String, Option<i64>)> {
    items.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn tumbling_windows_are_aligned_to_the_epoch_and_end_exclusive() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
        .count()
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    for ts in [3, 9, 10] {
        input.pipe_input_with_timestamp("a".into(), "x".into(), ts).unwrap();
    }
    assert_eq!(results(&d), pairs(&[("a@0-10", Some(1)), ("a@0-10", Some(2)), ("a@10-20", Some(1))]));
}

#[test]
fn tumbling_window_counts_drop_records_later_than_the_grace_period() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input_with_timestamp("a".into(), "x".into(), 2).unwrap();
    input.pipe_input_with_timestamp("a".into(), "x".into(), 14).unwrap(); // stream time 14: [0,10) open until 15
    input.pipe_input_with_timestamp("a".into(), "x".into(), 8).unwrap(); // late but within grace: counted
    input.pipe_input_with_timestamp("a".into(), "x".into(), 15).unwrap(); // stream time 15: [0,10) closes
    input.pipe_input_with_timestamp("a".into(), "x".into(), 9).unwrap(); // dropped
    assert_eq!(
        results(&d),
        pairs(&[("a@0-10", Some(1)), ("a@10-20", Some(1)), ("a@0-10", Some(2)), ("a@10-20", Some(2))])
    );
    let store = d.get_window_store::<String, i64>("counts").unwrap();
    assert_eq!(store.fetch(&"a".into(), 0).unwrap(), Some(2));
}

#[test]
fn hopping_windows_count_a_record_in_every_window_containing_it() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(5)))
        .count()
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input_with_timestamp("a".into(), "x".into(), 7).unwrap();
    input.pipe_input_with_timestamp("a".into(), "x".into(), 12).unwrap();
    assert_eq!(
        results(&d),
        pairs(&[("a@0-10", Some(1)), ("a@5-15", Some(1)), ("a@5-15", Some(2)), ("a@10-20", Some(1))])
    );
}

#[test]
fn windowed_reduce_and_aggregate_start_fresh_in_each_window() {
    let b = StreamsBuilder::new();
    let w = b.stream::<String, i64>("in").group_by_key().windowed_by(TimeWindows::of_size_with_no_grace(ms(10)));
    w.reduce(|a, v| a + v).to_stream().map(|k, v| (label(k), *v)).to("out");
    w.aggregate(|| 100i64, |_, v, agg| agg - v).to_stream().map(|k, v| (label(k), *v)).to("agg");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, i64>("in");
    for (ts, v) in [(1, 5), (2, 6), (11, 7)] {
        input.pipe_input_with_timestamp("a".into(), v, ts).unwrap();
    }
    assert_eq!(results(&d), pairs(&[("a@0-10", Some(5)), ("a@0-10", Some(11)), ("a@10-20", Some(7))]));
    let agg: Vec<Option<i64>> = d.create_output_topic::<String, Option<i64>>("agg").read_values_to_list().unwrap();
    assert_eq!(agg, vec![Some(95), Some(89), Some(93)]);
}

#[test]
fn suppression_emits_only_the_final_count_once_the_window_and_grace_have_passed() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    for ts in [1, 3, 12, 14] {
        input.pipe_input_with_timestamp("a".into(), "x".into(), ts).unwrap();
    }
    assert!(results(&d).is_empty(), "nothing before [0,10) closes at stream time 15");
    input.pipe_input_with_timestamp("b".into(), "x".into(), 15).unwrap();
    let out = d.create_output_topic::<String, Option<i64>>("out").read_records_to_list().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].key.as_str(), out[0].value, out[0].timestamp), ("a@0-10", Some(2), 3));
    input.pipe_input_with_timestamp("b".into(), "x".into(), 40).unwrap();
    assert_eq!(results(&d), pairs(&[("a@10-20", Some(2)), ("b@10-20", Some(1))]));
}

#[test]
fn session_windows_merge_records_closer_than_the_gap_and_retract_the_merged_sessions() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(ms(10), ms(100)))
        .count()
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input_with_timestamp("a".into(), "x".into(), 0).unwrap();
    input.pipe_input_with_timestamp("a".into(), "x".into(), 18).unwrap(); // a new session: 18 > 0 + gap
    input.pipe_input_with_timestamp("a".into(), "x".into(), 15).unwrap(); // 15 is 15 after 0: joins only 18's
    input.pipe_input_with_timestamp("a".into(), "x".into(), 9).unwrap(); // within the gap of both: one session
    assert_eq!(
        results(&d),
        pairs(&[
            ("a@0-0", Some(1)),
            ("a@18-18", Some(1)),
            ("a@18-18", None),
            ("a@15-18", Some(2)),
            ("a@0-0", None),
            ("a@15-18", None),
            ("a@0-18", Some(4)),
        ])
    );
}

#[test]
fn session_windows_drop_records_whose_session_closed_before_the_grace_period() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(ms(5), ms(10)))
        .count()
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input_with_timestamp("a".into(), "x".into(), 100).unwrap();
    input.pipe_input_with_timestamp("b".into(), "x".into(), 80).unwrap(); // end 80 >= 100 - 10? no: dropped
    input.pipe_input_with_timestamp("b".into(), "x".into(), 95).unwrap(); // within grace
    assert_eq!(results(&d), pairs(&[("a@100-100", Some(1)), ("b@95-95", Some(1))]));
}

#[test]
fn session_aggregate_uses_the_merger_for_bridged_sessions() {
    let b = StreamsBuilder::new();
    b.stream::<String, i64>("in")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(ms(10), ms(100)))
        .aggregate(|| 0i64, |_, v, agg| agg + v, |_, a, b| a + b)
        .to_stream()
        .filter(|_, v| v.is_some())
        .map(|k, v| (label(k), *v))
        .to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, i64>("in");
    for (ts, v) in [(0, 1), (20, 10), (10, 100)] {
        input.pipe_input_with_timestamp("a".into(), v, ts).unwrap();
    }
    assert_eq!(results(&d), pairs(&[("a@0-0", Some(1)), ("a@20-20", Some(10)), ("a@0-20", Some(111))]));
}

fn sliding_count(grace: u64) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(ms(10), ms(grace)))
        .count()
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap()
}

#[test]
fn sliding_windows_create_a_left_window_per_record_and_a_right_window_once_a_later_record_falls_in_it() {
    let d = sliding_count(100);
    let input = d.create_input_topic::<String, String>("in");
    for ts in [10, 15, 30] {
        input.pipe_input_with_timestamp("a".into(), "x".into(), ts).unwrap();
    }
    assert_eq!(
        results(&d),
        pairs(&[("a@0-10", Some(1)), ("a@11-21", Some(1)), ("a@5-15", Some(2)), ("a@20-30", Some(1))])
    );
}

#[test]
fn sliding_windows_place_an_out_of_order_record_in_every_window_that_holds_it() {
    let d = sliding_count(100);
    let input = d.create_input_topic::<String, String>("in");
    for ts in [10, 15] {
        input.pipe_input_with_timestamp("a".into(), "x".into(), ts).unwrap();
    }
    results(&d);
    input.pipe_input_with_timestamp("a".into(), "x".into(), 12).unwrap();
    assert_eq!(
        results(&d),
        pairs(&[("a@5-15", Some(3)), ("a@11-21", Some(2)), ("a@2-12", Some(2)), ("a@13-23", Some(1))])
    );
}

#[test]
fn sliding_windows_drop_a_record_whose_windows_all_closed() {
    let d = sliding_count(5);
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input_with_timestamp("a".into(), "x".into(), 100).unwrap();
    input.pipe_input_with_timestamp("b".into(), "x".into(), 84).unwrap(); // 84 + 1 + 10 <= 100 - 5: dropped
    input.pipe_input_with_timestamp("b".into(), "x".into(), 90).unwrap(); // its left window [80,90] has closed
    input.pipe_input_with_timestamp("b".into(), "x".into(), 96).unwrap(); // [86,96] is still open
    assert_eq!(results(&d), pairs(&[("a@90-100", Some(1)), ("b@86-96", Some(1))]));
}

#[test]
fn session_reduce_combines_values_of_merged_sessions() {
    let b = StreamsBuilder::new();
    b.stream::<String, i64>("in")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(ms(10), ms(100)))
        .reduce(|a, b| a.max(b).to_owned())
        .to_stream()
        .filter(|_, v| v.is_some())
        .map(|k, v| (label(k), *v))
        .to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, i64>("in");
    for (ts, v) in [(0, 7), (20, 3), (10, 5)] {
        input.pipe_input_with_timestamp("a".into(), v, ts).unwrap();
    }
    assert_eq!(results(&d), pairs(&[("a@0-0", Some(7)), ("a@20-20", Some(3)), ("a@0-20", Some(7))]));
}

fn suppressed_counts() -> spate_streams::Topology {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .map(|k, v| (label(k), *v))
        .to("out");
    b.build()
}

#[test]
fn a_suppression_buffer_restored_from_its_changelog_still_emits_the_final_result() {
    let first = TopologyTestDriver::new(suppressed_counts(), StreamsConfig::new("app")).unwrap();
    let input = first.create_input_topic::<String, String>("in");
    for ts in [1, 3, 12] {
        input.pipe_input_with_timestamp("a".into(), "x".into(), ts).unwrap();
    }
    let mut changelogs = Vec::new();
    for topic in first.produced_topic_names().into_iter().filter(|t| t.ends_with("-changelog")) {
        let store = topic.trim_start_matches("app-").trim_end_matches("-changelog").to_string();
        let records: Vec<spate_streams::ProducedRecord> = first
            .create_output_topic::<Vec<u8>, Option<Vec<u8>>>(&topic)
            .read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| spate_streams::ProducedRecord {
                topic: topic.clone(),
                partition: Some(0),
                key: Some(r.key),
                value: r.value,
                timestamp: r.timestamp,
                headers: r.headers,
            })
            .collect();
        changelogs.push((store, records));
    }
    assert!(changelogs.iter().any(|(s, _)| s.starts_with("KTABLE-SUPPRESS-STATE-STORE")), "{changelogs:?}");
    first.close();

    let second = TopologyTestDriver::new(suppressed_counts(), StreamsConfig::new("app")).unwrap();
    for (store, records) in &changelogs {
        second.restore(store, records).unwrap();
    }
    second.create_input_topic::<String, String>("in").pipe_input_with_timestamp("b".into(), "x".into(), 15).unwrap();
    assert_eq!(results(&second), pairs(&[("a@0-10", Some(2))]));
}

#[test]
fn a_timestamp_extractor_sets_record_time_and_stream_time_and_a_negative_result_drops_the_record() {
    use spate_streams::Consumed;
    let b = StreamsBuilder::new();
    // Values are "event-time:payload"; the event time comes from the value, not the record.
    b.stream_with::<String, String>(
        "in",
        Consumed::with_timestamp_extractor(|_, v: &String, _record_ts, _partition_time| {
            v.split(':').next().and_then(|t| t.parse().ok()).unwrap_or(-1)
        }),
    )
    .group_by_key()
    .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
    .count()
    .to_stream()
    .map(|k, v| (label(k), *v))
    .to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input_with_timestamp("a".into(), "25:x".into(), 1_000).unwrap();
    input.pipe_input_with_timestamp("a".into(), "garbage".into(), 1_000).unwrap(); // extracted -1: dropped
    input.pipe_input_with_timestamp("a".into(), "3:y".into(), 1_000).unwrap(); // stream time 25: [0,10) closed
    let out = d.create_output_topic::<String, Option<i64>>("out").read_records_to_list().unwrap();
    let got: Vec<(String, i64)> = out.into_iter().map(|r| (r.key, r.timestamp)).collect();
    assert_eq!(got, vec![("a@20-30".to_string(), 25)]);
}
