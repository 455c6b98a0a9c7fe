#![allow(clippy::unwrap_used)]
//! Grouping and aggregation, and KTable basics, through the test driver.

use std::collections::HashMap;

use spate::Json;

use spate_streams::{Grouped, KeyValue, Materialized, StreamsBuilder, StreamsConfig, TopologyTestDriver};

fn driver(b: &StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap()
}

#[test]
fn count_emits_every_update_and_the_store_holds_the_latest() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").group_by_key().count_with(Materialized::as_("counts")).to_stream().to("out");
    let d = driver(&b);
    let input = d.create_input_topic::<String, String>("in");
    for k in ["a", "b", "a", "a"] {
        input.pipe_input(k.into(), "x".into()).unwrap();
    }
    let out = d.create_output_topic::<String, Option<i64>>("out").read_key_values_to_list().unwrap();
    let expected: Vec<_> =
        [("a", 1), ("b", 1), ("a", 2), ("a", 3)].iter().map(|(k, v)| KeyValue::pair(k.to_string(), Some(*v))).collect();
    assert_eq!(out, expected);
    assert_eq!(d.get_key_value_store::<String, i64>("counts").unwrap().get(&"a".into()).unwrap(), Some(3));
}

#[test]
fn aggregation_results_carry_the_largest_timestamp_seen_for_the_key() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").group_by_key().count().to_stream().to("out");
    let d = driver(&b);
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input_with_timestamp("a".into(), "x".into(), 100).unwrap();
    input.pipe_input_with_timestamp("a".into(), "x".into(), 50).unwrap();
    input.pipe_input_with_timestamp("a".into(), "x".into(), 150).unwrap();
    let ts: Vec<i64> = d
        .create_output_topic::<String, Option<i64>>("out")
        .read_records_to_list()
        .unwrap()
        .iter()
        .map(|r| r.timestamp)
        .collect();
    assert_eq!(ts, vec![100, 100, 150]);
}

#[test]
fn reduce_combines_values_starting_from_the_first() {
    let b = StreamsBuilder::new();
    b.stream::<String, i64>("in").group_by_key().reduce(|a, v| *a.max(v)).to_stream().to("max");
    let d = driver(&b);
    let input = d.create_input_topic::<String, i64>("in");
    for v in [3, 1, 7, 5] {
        input.pipe_input("k".into(), v).unwrap();
    }
    let out = d.create_output_topic::<String, Option<i64>>("max").read_values_to_list().unwrap();
    assert_eq!(out, vec![Some(3), Some(3), Some(7), Some(7)]);
}

#[test]
fn aggregate_folds_values_from_the_initializer() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .aggregate(String::new, |_, v, agg| if agg.is_empty() { v.clone() } else { format!("{agg},{v}") })
        .to_stream()
        .to("out");
    let d = driver(&b);
    let input = d.create_input_topic::<String, String>("in");
    for v in ["x", "y", "z"] {
        input.pipe_input("k".into(), v.into()).unwrap();
    }
    let out = d.create_output_topic::<String, String>("out").read_values_to_list().unwrap();
    assert_eq!(out, vec!["x", "x,y", "x,y,z"]);
}

#[test]
fn group_by_a_new_key_goes_through_a_repartition_topic_named_after_the_grouping() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("sentences")
        .flat_map_values(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .group_by_with(|_, w| w.clone(), Grouped::as_("words"))
        .count_with(Materialized::as_("word-counts"))
        .to_stream()
        .to("counts");
    let topology = b.build();
    assert_eq!(topology.repartition_topics("wc"), vec!["wc-words-repartition".to_string()]);
    let d = TopologyTestDriver::new(topology, StreamsConfig::new("wc")).unwrap();
    let input = d.create_input_topic::<String, String>("sentences");
    input.pipe_input("1".into(), "the cat and the hat".into()).unwrap();
    let counts: HashMap<String, Option<i64>> = d.create_output_topic("counts").read_key_values_to_map().unwrap();
    assert_eq!(counts["the"], Some(2));
    assert_eq!(counts["cat"], Some(1));
    assert_eq!(d.create_output_topic::<String, String>("wc-words-repartition").queue_size(), 5);
}

#[test]
fn group_by_key_after_a_key_change_repartitions_but_without_one_does_not() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("a").group_by_key().count();
    b.stream::<String, String>("b")
        .select_key(|_, v| v.clone())
        .group_by_key()
        .count_with(Materialized::as_("by-value"));
    assert_eq!(b.build().repartition_topics("app"), vec!["app-by-value-repartition".to_string()]);
}

#[test]
fn records_with_a_null_key_or_value_are_skipped_by_aggregations() {
    let b = StreamsBuilder::new();
    b.stream::<Option<String>, Option<String>>("in")
        .group_by_key()
        .count_with(Materialized::as_("c"))
        .to_stream()
        .to("out");
    let d = driver(&b);
    let input = d.create_input_topic::<Option<String>, Option<String>>("in");
    input.pipe_input(None, Some("x".into())).unwrap();
    input.pipe_input(Some("k".into()), None).unwrap();
    input.pipe_input(Some("k".into()), Some("x".into())).unwrap();
    let out = d.create_output_topic::<String, Option<i64>>("out").read_key_values_to_list().unwrap();
    assert_eq!(out, vec![KeyValue::pair("k".to_string(), Some(1))]);
}

#[test]
fn a_table_keeps_the_latest_value_per_key_and_a_null_value_deletes_it() {
    let b = StreamsBuilder::new();
    b.table_with::<String, String>("users", Materialized::as_("users-store")).to_stream().to("changes");
    let d = driver(&b);
    let input = d.create_input_topic::<String, String>("users");
    input.pipe_input("u1".into(), "alice".into()).unwrap();
    input.pipe_input("u1".into(), "alicia".into()).unwrap();
    input.pipe_tombstone("u1".into(), 5).unwrap();
    input.pipe_tombstone("never-existed".into(), 6).unwrap();
    let out = d.create_output_topic::<String, Option<String>>("changes").read_values_to_list().unwrap();
    assert_eq!(out, vec![Some("alice".into()), Some("alicia".into()), None]);
    assert_eq!(d.get_key_value_store::<String, String>("users-store").unwrap().get(&"u1".into()).unwrap(), None);
}

#[test]
fn a_table_filter_turns_an_entry_that_stops_matching_into_a_tombstone() {
    let b = StreamsBuilder::new();
    b.table::<String, i64>("scores").filter(|_, v| *v >= 10).to_stream().to("high");
    let d = driver(&b);
    let input = d.create_input_topic::<String, i64>("scores");
    input.pipe_input("a".into(), 5).unwrap();
    input.pipe_input("a".into(), 15).unwrap();
    input.pipe_input("a".into(), 3).unwrap();
    let out = d.create_output_topic::<String, Option<i64>>("high").read_values_to_list().unwrap();
    assert_eq!(out, vec![Some(15), None]);
}

#[test]
fn table_map_values_and_filter_not_transform_updates_and_materialize_when_named() {
    let b = StreamsBuilder::new();
    b.table::<String, i64>("in")
        .filter_not(|_, v| *v < 0)
        .map_values_with(|v| v * 2, Materialized::as_("doubled"))
        .to_stream()
        .to("out");
    let d = driver(&b);
    let input = d.create_input_topic::<String, i64>("in");
    input.pipe_input("a".into(), 4).unwrap();
    input.pipe_input("b".into(), -1).unwrap();
    let out = d.create_output_topic::<String, Option<i64>>("out").read_values_to_list().unwrap();
    assert_eq!(out, vec![Some(8)]);
    assert_eq!(d.get_key_value_store::<String, i64>("doubled").unwrap().get(&"a".into()).unwrap(), Some(8));
}

#[test]
fn to_table_turns_a_stream_into_a_table() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").to_table_with(Materialized::as_("latest")).to_stream().to("out");
    let d = driver(&b);
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input("a".into(), "1".into()).unwrap();
    input.pipe_input("a".into(), "2".into()).unwrap();
    assert_eq!(d.get_key_value_store::<String, String>("latest").unwrap().get(&"a".into()).unwrap(), Some("2".into()));
    assert_eq!(d.create_output_topic::<String, Option<String>>("out").queue_size(), 2);
}

#[test]
fn an_aggregation_store_logs_plain_values_with_their_timestamps_to_its_changelog() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").group_by_key().count_with(Materialized::as_("counts"));
    let d = driver(&b);
    d.create_input_topic::<String, String>("in").pipe_input_with_timestamp("a".into(), "x".into(), 42).unwrap();
    let r = d.create_output_topic::<String, i64>("app-counts-changelog").read_record().unwrap();
    assert_eq!((r.key.as_str(), r.value, r.timestamp), ("a", 1, 42));
}

#[test]
fn a_duplicate_store_name_is_reported_when_the_driver_is_created() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("a").group_by_key().count_with(Materialized::as_("same"));
    b.stream::<String, String>("b").group_by_key().count_with(Materialized::as_("same"));
    let err = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).err().unwrap();
    assert!(err.to_string().contains("same"), "{err}");
}

#[test]
fn a_grouped_table_count_moves_an_entry_between_groups_when_its_value_changes() {
    let b = StreamsBuilder::new();
    b.table::<String, String>("user-regions")
        .group_by(|_, region| (region.clone(), String::new()))
        .count_with(Materialized::as_("users-per-region"))
        .to_stream()
        .to("out");
    let d = driver(&b);
    let input = d.create_input_topic::<String, String>("user-regions");
    input.pipe_input("alice".into(), "eu".into()).unwrap();
    input.pipe_input("bob".into(), "eu".into()).unwrap();
    input.pipe_input("alice".into(), "us".into()).unwrap(); // eu loses alice, us gains her
    input.pipe_tombstone("bob".into(), 0).unwrap(); // eu loses bob
    let out = d.create_output_topic::<String, Option<i64>>("out").read_key_values_to_list().unwrap();
    let expected: Vec<_> = [("eu", 1), ("eu", 2), ("eu", 1), ("us", 1), ("eu", 0)]
        .iter()
        .map(|(k, v)| KeyValue::pair(k.to_string(), Some(*v)))
        .collect();
    assert_eq!(out, expected);
    let store = d.get_key_value_store::<String, i64>("users-per-region").unwrap();
    assert_eq!((store.get(&"eu".into()).unwrap(), store.get(&"us".into()).unwrap()), (Some(0), Some(1)));
}

#[test]
fn a_grouped_table_aggregate_applies_the_subtractor_before_the_adder_for_an_update_within_a_group() {
    let b = StreamsBuilder::new();
    b.table::<String, i64>("balances")
        .group_by(|_, v| ("total".to_string(), *v))
        .aggregate(|| 0i64, |_, v, agg| agg + v, |_, v, agg| agg - v)
        .to_stream()
        .to("out");
    let d = driver(&b);
    let input = d.create_input_topic::<String, i64>("balances");
    input.pipe_input("a".into(), 10).unwrap();
    input.pipe_input("b".into(), 5).unwrap();
    input.pipe_input("a".into(), 3).unwrap(); // same group: one update, 15 - 10 + 3
    let out = d.create_output_topic::<String, Option<i64>>("out").read_values_to_list().unwrap();
    assert_eq!(out, vec![Some(10), Some(15), Some(8)]);
}

#[test]
fn a_grouped_table_reduce_adds_and_subtracts_values() {
    let b = StreamsBuilder::new();
    b.table::<String, i64>("stock")
        .group_by(|k, v| (k.split('/').next().unwrap_or_default().to_string(), *v))
        .reduce(|a, v| a + v, |a, v| a - v)
        .to_stream()
        .to("out");
    let d = driver(&b);
    let input = d.create_input_topic::<String, i64>("stock");
    input.pipe_input("shop1/apples".into(), 4).unwrap();
    input.pipe_input("shop1/pears".into(), 6).unwrap();
    input.pipe_input("shop1/apples".into(), 1).unwrap();
    let out = d.create_output_topic::<String, Option<i64>>("out").read_values_to_list().unwrap();
    assert_eq!(out, vec![Some(4), Some(10), Some(7)]);
}

#[test]
fn suppression_until_a_time_limit_emits_the_latest_value_once_the_limit_has_passed_since_the_first_update() {
    use spate_streams::{BufferConfig, Suppressed};
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .count()
        .suppress(Suppressed::until_time_limit(std::time::Duration::from_millis(10), BufferConfig::unbounded()))
        .to_stream()
        .to("out");
    let d = driver(&b);
    let input = d.create_input_topic::<String, String>("in");
    let out = d.create_output_topic::<String, Option<i64>>("out");
    input.pipe_input_with_timestamp("a".into(), "x".into(), 0).unwrap();
    input.pipe_input_with_timestamp("a".into(), "x".into(), 8).unwrap(); // replaces, timer still from 0
    input.pipe_input_with_timestamp("b".into(), "x".into(), 9).unwrap();
    assert!(out.is_empty());
    input.pipe_input_with_timestamp("c".into(), "x".into(), 10).unwrap(); // 0 + 10 <= 10: a is due
    let r = out.read_record().unwrap();
    assert_eq!((r.key.as_str(), r.value, r.timestamp), ("a", Some(2), 8));
    assert!(out.is_empty());
    input.pipe_input_with_timestamp("c".into(), "x".into(), 30).unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![KeyValue::pair("b".to_string(), Some(1)), KeyValue::pair("c".to_string(), Some(2))]
    );
}

#[test]
fn a_materialized_table_filter_is_queryable_and_drops_entries_that_stop_matching() {
    let b = StreamsBuilder::new();
    b.table::<String, i64>("scores").filter_with(|_, v| *v >= 10, Materialized::as_("high-scores"));
    let d = driver(&b);
    let input = d.create_input_topic::<String, i64>("scores");
    input.pipe_input("a".into(), 15).unwrap();
    input.pipe_input("b".into(), 20).unwrap();
    input.pipe_input("a".into(), 1).unwrap();
    let store = d.get_key_value_store::<String, i64>("high-scores").unwrap();
    assert_eq!(store.all().unwrap(), vec![("b".to_string(), 20)]);
}

#[test]
fn cogrouped_streams_of_different_value_types_aggregate_into_one_table() {
    let b = StreamsBuilder::new();
    let clicks = b.stream::<String, String>("clicks").group_by_key();
    let purchases = b.stream::<String, i64>("purchases").group_by_key();
    // A customer's activity: "clicks/cents spent".
    clicks
        .cogroup(|_, _, Json((n, cents)): Json<(i64, i64)>| Json((n + 1, cents)))
        .cogroup(&purchases, |_, amount, Json((n, cents))| Json((n, cents + amount)))
        .aggregate_with(|| Json((0i64, 0i64)), Materialized::as_("activity"))
        .map_values(|Json((n, cents))| format!("{n}/{cents}"))
        .to_stream()
        .to("out");
    let d = driver(&b);
    d.create_input_topic::<String, String>("clicks").pipe_input("c1".into(), "home".into()).unwrap();
    d.create_input_topic::<String, i64>("purchases").pipe_input("c1".into(), 250).unwrap();
    d.create_input_topic::<String, String>("clicks").pipe_input("c1".into(), "cart".into()).unwrap();
    let out = d.create_output_topic::<String, Option<String>>("out").read_values_to_list().unwrap();
    assert_eq!(out, vec![Some("1/0".into()), Some("1/250".into()), Some("2/250".into())]);
}
