#![allow(clippy::unwrap_used)]
//! Joins through the test driver.

use std::time::Duration;

use spate_streams::{JoinWindows, KeyValue, StreamsBuilder, StreamsConfig, TopologyTestDriver};

fn kv(k: &str, v: &str) -> KeyValue<String, String> {
    KeyValue::pair(k.to_string(), v.to_string())
}

fn driver(b: &StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap()
}

#[test]
fn stream_table_inner_join_emits_only_records_with_a_table_entry_at_their_time() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    b.stream::<String, String>("clicks").join(&users, |click, name| format!("{name} clicked {click}")).to("out");
    let d = driver(&b);
    let clicks = d.create_input_topic::<String, String>("clicks");
    let user_topic = d.create_input_topic::<String, String>("users");
    clicks.pipe_input("u1".into(), "home".into()).unwrap(); // no user yet: nothing
    user_topic.pipe_input("u1".into(), "alice".into()).unwrap(); // a table update emits nothing
    clicks.pipe_input("u1".into(), "cart".into()).unwrap();
    user_topic.pipe_tombstone("u1".into(), 0).unwrap();
    clicks.pipe_input("u1".into(), "pay".into()).unwrap();
    assert_eq!(
        d.create_output_topic::<String, String>("out").read_key_values_to_list().unwrap(),
        vec![kv("u1", "alice clicked cart")]
    );
}

#[test]
fn stream_table_left_join_emits_every_record_and_keeps_the_stream_timestamp() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    b.stream::<String, String>("clicks")
        .left_join(&users, |click, name| format!("{}:{click}", name.map_or("?", String::as_str)))
        .to("out");
    let d = driver(&b);
    d.create_input_topic::<String, String>("users")
        .pipe_input_with_timestamp("u1".into(), "alice".into(), 500)
        .unwrap();
    let clicks = d.create_input_topic::<String, String>("clicks");
    clicks.pipe_input_with_timestamp("u1".into(), "a".into(), 100).unwrap();
    clicks.pipe_input_with_timestamp("u2".into(), "b".into(), 200).unwrap();
    let out = d.create_output_topic::<String, String>("out").read_records_to_list().unwrap();
    let got: Vec<(String, i64)> = out.into_iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(got, vec![("alice:a".to_string(), 100), ("?:b".to_string(), 200)]);
}

#[test]
fn stream_table_join_records_a_copartitioning_group() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    b.stream::<String, String>("clicks").join(&users, |c, _| c.clone()).to("out");
    let topology = b.build();
    let group: Vec<&String> = topology.copartition_groups()[0].iter().collect();
    assert_eq!(group, vec!["clicks", "users"]);
}

#[test]
fn a_stream_rekeyed_before_a_table_join_is_repartitioned_first() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    b.stream::<String, String>("orders").select_key(|_, v| v.clone()).join(&users, |o, u| format!("{o}/{u}")).to("out");
    let topology = b.build();
    assert_eq!(topology.repartition_topics("app").len(), 1);
    let d = TopologyTestDriver::new(topology, StreamsConfig::new("app")).unwrap();
    d.create_input_topic::<String, String>("users").pipe_input("u9".into(), "bob".into()).unwrap();
    d.create_input_topic::<String, String>("orders").pipe_input("o1".into(), "u9".into()).unwrap();
    assert_eq!(d.create_output_topic::<String, String>("out").read_key_value().unwrap(), kv("u9", "u9/bob"));
}

#[test]
fn table_table_inner_join_updates_on_either_side_and_retracts_on_delete() {
    let b = StreamsBuilder::new();
    let left = b.table::<String, String>("left");
    let right = b.table::<String, String>("right");
    left.join(&right, |l, r| format!("{l}+{r}")).to_stream().to("out");
    let d = driver(&b);
    let (l, r) = (d.create_input_topic::<String, String>("left"), d.create_input_topic::<String, String>("right"));
    l.pipe_input_with_timestamp("k".into(), "a".into(), 10).unwrap();
    r.pipe_input_with_timestamp("k".into(), "x".into(), 5).unwrap();
    l.pipe_input_with_timestamp("k".into(), "b".into(), 7).unwrap();
    r.pipe_tombstone("k".into(), 20).unwrap();
    let out = d.create_output_topic::<String, Option<String>>("out").read_records_to_list().unwrap();
    let got: Vec<(Option<String>, i64)> = out.into_iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(got, vec![(Some("a+x".into()), 10), (Some("b+x".into()), 7), (None, 20)]);
}

#[test]
fn table_table_left_and_outer_joins_keep_entries_of_one_side() {
    let b = StreamsBuilder::new();
    let left = b.table::<String, String>("left");
    let right = b.table::<String, String>("right");
    left.left_join(&right, |l, r| format!("{l}+{}", r.map_or("-", String::as_str))).to_stream().to("left-out");
    left.outer_join(&right, |l, r| format!("{}+{}", l.map_or("-", String::as_str), r.map_or("-", String::as_str)))
        .to_stream()
        .to("outer-out");
    let d = driver(&b);
    let (l, r) = (d.create_input_topic::<String, String>("left"), d.create_input_topic::<String, String>("right"));
    r.pipe_input("k".into(), "x".into()).unwrap();
    l.pipe_input("k".into(), "a".into()).unwrap();
    l.pipe_tombstone("k".into(), 0).unwrap();
    let left_out = d.create_output_topic::<String, Option<String>>("left-out").read_values_to_list().unwrap();
    assert_eq!(left_out, vec![Some("a+x".into()), None]);
    let outer_out = d.create_output_topic::<String, Option<String>>("outer-out").read_values_to_list().unwrap();
    assert_eq!(outer_out, vec![Some("-+x".into()), Some("a+x".into()), Some("-+x".into())]);
}

#[test]
fn stream_global_table_join_looks_up_by_a_key_derived_from_the_record() {
    let b = StreamsBuilder::new();
    let products = b.global_table::<String, String>("products");
    let orders = b.stream::<String, String>("orders");
    orders.join_global(&products, |_, product_id| product_id.clone(), |pid, name| format!("{pid}={name}")).to("joined");
    orders
        .left_join_global(
            &products,
            |_, pid| pid.clone(),
            |pid, name| format!("{pid}={}", name.map_or("?", String::as_str)),
        )
        .to("left");
    let topology = b.build();
    assert!(topology.describe().to_string().contains("Global Stores:"));
    assert_eq!(topology.source_topics("app"), vec!["orders".to_string()]);
    let d = TopologyTestDriver::new(topology, StreamsConfig::new("app")).unwrap();
    d.create_input_topic::<String, String>("products").pipe_input("p1".into(), "lamp".into()).unwrap();
    let o = d.create_input_topic::<String, String>("orders");
    o.pipe_input("o1".into(), "p1".into()).unwrap();
    o.pipe_input("o2".into(), "p2".into()).unwrap();
    assert_eq!(
        d.create_output_topic::<String, String>("joined").read_key_values_to_list().unwrap(),
        vec![kv("o1", "p1=lamp")]
    );
    assert_eq!(
        d.create_output_topic::<String, String>("left").read_key_values_to_list().unwrap(),
        vec![kv("o1", "p1=lamp"), kv("o2", "p2=?")]
    );
}

fn windows() -> JoinWindows {
    JoinWindows::of_time_difference_and_grace(Duration::from_millis(10), Duration::from_millis(5))
}

#[test]
fn stream_stream_inner_join_pairs_records_within_the_window_with_the_larger_timestamp() {
    let b = StreamsBuilder::new();
    let left = b.stream::<String, String>("left");
    let right = b.stream::<String, String>("right");
    left.join_windowed(&right, |l, r| format!("{l}+{r}"), windows()).to("out");
    let d = driver(&b);
    let (l, r) = (d.create_input_topic::<String, String>("left"), d.create_input_topic::<String, String>("right"));
    l.pipe_input_with_timestamp("k".into(), "a".into(), 100).unwrap();
    r.pipe_input_with_timestamp("k".into(), "x".into(), 105).unwrap(); // joins a
    r.pipe_input_with_timestamp("k".into(), "y".into(), 111).unwrap(); // 11 after a: no
    l.pipe_input_with_timestamp("k".into(), "b".into(), 101).unwrap(); // joins x and y
    r.pipe_input_with_timestamp("other".into(), "z".into(), 100).unwrap();
    let out = d.create_output_topic::<String, String>("out").read_records_to_list().unwrap();
    let got: Vec<(String, i64)> = out.into_iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(got, vec![("a+x".into(), 105), ("b+x".into(), 105), ("b+y".into(), 111)]);
}

#[test]
fn stream_stream_join_drops_records_later_than_window_and_grace() {
    let b = StreamsBuilder::new();
    let left = b.stream::<String, String>("left");
    let right = b.stream::<String, String>("right");
    left.join_windowed(&right, |l, r| format!("{l}+{r}"), windows()).to("out");
    let d = driver(&b);
    let (l, r) = (d.create_input_topic::<String, String>("left"), d.create_input_topic::<String, String>("right"));
    r.pipe_input_with_timestamp("k".into(), "x".into(), 100).unwrap();
    r.pipe_input_with_timestamp("other".into(), "advance".into(), 200).unwrap();
    l.pipe_input_with_timestamp("k".into(), "late".into(), 100).unwrap(); // 100 + 10 + 5 < 200: dropped
    assert!(d.create_output_topic::<String, String>("out").is_empty());
}

#[test]
fn stream_stream_left_join_emits_unmatched_records_only_after_their_window_closes() {
    let b = StreamsBuilder::new();
    let left = b.stream::<String, String>("left");
    let right = b.stream::<String, String>("right");
    left.left_join_windowed(&right, |l, r| format!("{l}+{}", r.map_or("null", String::as_str)), windows()).to("out");
    let d = driver(&b);
    let (l, r) = (d.create_input_topic::<String, String>("left"), d.create_input_topic::<String, String>("right"));
    let out = d.create_output_topic::<String, String>("out");
    l.pipe_input_with_timestamp("k".into(), "a".into(), 100).unwrap();
    l.pipe_input_with_timestamp("k".into(), "b".into(), 110).unwrap();
    assert!(out.is_empty(), "no spurious left-only result while a partner may still come");
    r.pipe_input_with_timestamp("k".into(), "x".into(), 112).unwrap(); // joins b only: a+null still possible
    assert_eq!(out.read_values_to_list().unwrap(), vec!["b+x"]);
    // Stream time 116 > 100 + after 10 + grace 5: a's window has closed, emitted before x2 joins b.
    r.pipe_input_with_timestamp("k".into(), "x2".into(), 116).unwrap();
    let got: Vec<(String, i64)> =
        out.read_records_to_list().unwrap().into_iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(got, vec![("a+null".into(), 100), ("b+x2".into(), 116)]);
    r.pipe_input_with_timestamp("other".into(), "tick".into(), 200).unwrap(); // b was matched: nothing more
    assert!(out.is_empty());
}

#[test]
fn stream_stream_left_join_emits_an_out_of_order_unmatched_record_at_once_when_its_window_has_closed() {
    let b = StreamsBuilder::new();
    let left = b.stream::<String, String>("left");
    let right = b.stream::<String, String>("right");
    left.left_join_windowed(&right, |l, r| format!("{l}+{}", r.map_or("null", String::as_str)), windows()).to("out");
    let d = driver(&b);
    d.create_input_topic::<String, String>("right").pipe_input_with_timestamp("z".into(), "t".into(), 112).unwrap();
    // 100 + after 10 < 112 but within grace (100 + 10 + 5 >= 112): accepted, and no partner can come any more.
    d.create_input_topic::<String, String>("left").pipe_input_with_timestamp("k".into(), "a".into(), 100).unwrap();
    assert_eq!(d.create_output_topic::<String, String>("out").read_values_to_list().unwrap(), vec!["a+null"]);
}

#[test]
fn stream_stream_outer_join_emits_unmatched_records_of_both_sides_after_the_window() {
    let b = StreamsBuilder::new();
    let left = b.stream::<String, String>("left");
    let right = b.stream::<String, String>("right");
    left.outer_join_windowed(
        &right,
        |l, r| format!("{}+{}", l.map_or("null", String::as_str), r.map_or("null", String::as_str)),
        windows(),
    )
    .to("out");
    let d = driver(&b);
    let (l, r) = (d.create_input_topic::<String, String>("left"), d.create_input_topic::<String, String>("right"));
    l.pipe_input_with_timestamp("k".into(), "a".into(), 100).unwrap();
    r.pipe_input_with_timestamp("j".into(), "x".into(), 101).unwrap();
    r.pipe_input_with_timestamp("k".into(), "y".into(), 105).unwrap(); // joins a: a is no longer unmatched
    l.pipe_input_with_timestamp("z".into(), "tick".into(), 300).unwrap();
    let out = d.create_output_topic::<String, String>("out").read_key_values_to_list().unwrap();
    assert_eq!(out, vec![kv("k", "a+y"), kv("j", "null+x")]);
}

fn partitions(pairs: &[(&str, i32)]) -> std::collections::HashMap<String, i32> {
    pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

#[test]
fn joining_topics_with_different_partition_counts_fails_the_copartitioning_check() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    b.stream::<String, String>("clicks").join(&users, |c, _| c.clone()).to("out");
    let topology = b.build();
    let err = topology.internal_topic_partitions("app", &partitions(&[("clicks", 3), ("users", 4)])).unwrap_err();
    assert!(err.to_string().contains("co-partitioned"), "{err}");
    assert!(topology.internal_topic_partitions("app", &partitions(&[("clicks", 4), ("users", 4)])).is_ok());
}

#[test]
fn a_repartition_topic_takes_its_writers_input_count_or_its_join_partners() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    b.stream::<String, String>("orders").select_key(|_, v| v.clone()).join(&users, |o, _| o.clone()).to("out");
    b.stream::<String, String>("sentences")
        .group_by(|_, v| v.clone())
        .count_with(spate_streams::Materialized::as_("c"));
    let counts = b
        .build()
        .internal_topic_partitions("app", &partitions(&[("orders", 6), ("users", 4), ("sentences", 5)]))
        .unwrap();
    let by_suffix = |s: &str| counts.iter().find(|(t, _)| t.ends_with(s)).map(|(_, c)| *c);
    assert_eq!(by_suffix("app-c-repartition"), Some(5), "{counts:?}");
    let join_topic = counts.iter().find(|(t, _)| t.contains("JOIN")).map(|(_, c)| *c);
    assert_eq!(join_topic, Some(4), "co-partitioned with users: {counts:?}");
}

#[test]
fn a_stream_record_with_a_null_key_is_dropped_by_an_inner_table_join_and_kept_by_a_left_join() {
    let b = StreamsBuilder::new();
    let users = b.table::<Option<String>, String>("users");
    let clicks = b.stream::<Option<String>, String>("clicks");
    clicks.join(&users, |c, u| format!("{c}/{u}")).to("inner");
    clicks.left_join(&users, |c, u| format!("{c}/{}", u.map_or("-", String::as_str))).to("left");
    let d = driver(&b);
    d.create_input_topic::<Option<String>, String>("clicks").pipe_input(None, "anonymous".into()).unwrap();
    assert!(d.create_output_topic::<Option<String>, String>("inner").is_empty());
    let left = d.create_output_topic::<Option<String>, String>("left").read_key_value().unwrap();
    assert_eq!((left.key, left.value.as_str()), (None, "anonymous/-"));
}
