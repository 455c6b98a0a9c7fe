#![allow(clippy::unwrap_used)]
//! Stateless DSL operators through the test driver.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use spate_streams::{
    Branched, DeserializationHandler, KeyValue, Named, Repartitioned, StreamsBuilder, StreamsConfig, StreamsError,
    TopologyTestDriver,
};

fn kv(k: &str, v: &str) -> KeyValue<String, String> {
    KeyValue::pair(k.to_string(), v.to_string())
}

fn driver(builder: &StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(builder.build(), StreamsConfig::new("app")).unwrap()
}

#[test]
fn filter_keeps_matching_records_and_filter_not_the_others() {
    let b = StreamsBuilder::new();
    let s = b.stream::<String, i64>("in");
    s.filter(|_, v| *v > 10).to("big");
    s.filter_not(|_, v| *v > 10).to("small");
    let d = driver(&b);
    let input = d.create_input_topic::<String, i64>("in");
    for (k, v) in [("a", 5), ("b", 50), ("c", 11)] {
        input.pipe_input(k.into(), v).unwrap();
    }
    let big = d.create_output_topic::<String, i64>("big").read_values_to_list().unwrap();
    let small = d.create_output_topic::<String, i64>("small").read_values_to_list().unwrap();
    assert_eq!((big, small), (vec![50, 11], vec![5]));
}

#[test]
fn map_and_select_key_change_keys_and_map_values_keeps_them() {
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>("in");
    s.map(|k, v| (v.clone(), k.len() as i64)).to("mapped");
    s.select_key(|_, v| v.to_uppercase()).to("rekeyed");
    s.map_values(|v| v.len() as i64).to("lengths");
    s.map_values_with_key(|k, v| format!("{k}={v}")).to("joined");
    let d = driver(&b);
    d.create_input_topic::<String, String>("in").pipe_input("key".into(), "value".into()).unwrap();
    assert_eq!(
        d.create_output_topic::<String, i64>("mapped").read_key_value().unwrap(),
        KeyValue::pair("value".into(), 3)
    );
    assert_eq!(d.create_output_topic::<String, String>("rekeyed").read_key_value().unwrap(), kv("VALUE", "value"));
    assert_eq!(
        d.create_output_topic::<String, i64>("lengths").read_key_value().unwrap(),
        KeyValue::pair("key".into(), 5)
    );
    assert_eq!(d.create_output_topic::<String, String>("joined").read_value().unwrap(), "key=value");
}

#[test]
fn flat_map_and_flat_map_values_emit_zero_or_more_records_in_order() {
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>("in");
    s.flat_map_values(|v| v.split(' ').map(str::to_owned).collect::<Vec<_>>()).to("words");
    s.flat_map(|k, v| v.split(' ').filter(|w| !w.is_empty()).map(|w| (w.to_owned(), k.clone())).collect::<Vec<_>>())
        .to("inverted");
    let d = driver(&b);
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input("s1".into(), "hello big world".into()).unwrap();
    assert_eq!(
        d.create_output_topic::<String, String>("words").read_key_values_to_list().unwrap(),
        vec![kv("s1", "hello"), kv("s1", "big"), kv("s1", "world")]
    );
    assert_eq!(
        d.create_output_topic::<String, String>("inverted").read_key_values_to_list().unwrap(),
        vec![kv("hello", "s1"), kv("big", "s1"), kv("world", "s1")]
    );
}

#[test]
fn records_keep_their_timestamp_and_headers_through_stateless_operators() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").map_values(|v| v.to_uppercase()).filter(|_, _| true).to("out");
    let d = driver(&b);
    let mut headers = spate::Headers::new();
    headers.insert("trace", "abc");
    d.create_input_topic::<String, String>("in")
        .pipe_input_with_headers("k".into(), "v".into(), 1234, headers)
        .unwrap();
    let r = d.create_output_topic::<String, String>("out").read_record().unwrap();
    assert_eq!((r.timestamp, r.headers.get_str("trace"), r.value.as_str()), (1234, Some("abc"), "V"));
}

#[test]
fn split_sends_each_record_to_the_first_matching_named_branch_or_the_default() {
    let b = StreamsBuilder::new();
    let mut branches = b
        .stream::<String, i64>("in")
        .split_named(Named::as_("size-"))
        .branch(|_, v| *v > 100, Branched::as_("huge"))
        .branch(|_, v| *v > 10, Branched::as_("big"))
        .default_branch_named(Branched::as_("rest"));
    assert_eq!(branches.len(), 3);
    branches.remove("size-huge").unwrap().to("huge");
    branches.remove("size-big").unwrap().to("big");
    branches.remove("size-rest").unwrap().to("rest");
    let d = driver(&b);
    let input = d.create_input_topic::<String, i64>("in");
    for v in [500, 50, 5, 101] {
        input.pipe_input("k".into(), v).unwrap();
    }
    assert_eq!(d.create_output_topic::<String, i64>("huge").read_values_to_list().unwrap(), vec![500, 101]);
    assert_eq!(d.create_output_topic::<String, i64>("big").read_values_to_list().unwrap(), vec![50]);
    assert_eq!(d.create_output_topic::<String, i64>("rest").read_values_to_list().unwrap(), vec![5]);
}

#[test]
fn unnamed_branches_are_numbered_from_one_and_unmatched_records_are_dropped_without_default() {
    let b = StreamsBuilder::new();
    let branches = b.stream::<String, i64>("in").split().branch(|_, v| *v > 0, Branched::unnamed()).no_default_branch();
    let (name, stream) = branches.into_iter().next().unwrap();
    assert_eq!(name, "KSTREAM-BRANCH-00000000011", "Kafka appends the position to the split's generated name");
    stream.to("positive");
    let d = driver(&b);
    let input = d.create_input_topic::<String, i64>("in");
    input.pipe_input("k".into(), -1).unwrap();
    input.pipe_input("k".into(), 1).unwrap();
    assert_eq!(d.create_output_topic::<String, i64>("positive").read_values_to_list().unwrap(), vec![1]);
}

#[test]
fn branches_can_be_transformed_by_a_function_or_consumed() {
    let b = StreamsBuilder::new();
    let branches = b
        .stream::<String, i64>("in")
        .split_named(Named::as_("n-"))
        .branch(|_, v| *v < 0, Branched::with_consumer(|s| s.to("negative")).with_name("neg"))
        .branch(|_, v| *v == 0, Branched::with_function(|s| s.map_values(|_| 100)).with_name("zero"))
        .default_branch();
    let mut names: Vec<&String> = branches.keys().collect();
    names.sort();
    assert_eq!(names, vec!["n-0", "n-zero"], "a consumed branch is not in the map");
    branches["n-zero"].to("zero");
    let d = driver(&b);
    let input = d.create_input_topic::<String, i64>("in");
    for v in [-1, 0, 5] {
        input.pipe_input("k".into(), v).unwrap();
    }
    assert_eq!(d.create_output_topic::<String, i64>("negative").read_values_to_list().unwrap(), vec![-1]);
    assert_eq!(d.create_output_topic::<String, i64>("zero").read_values_to_list().unwrap(), vec![100]);
}

#[test]
fn merge_interleaves_two_streams_in_processing_order() {
    let b = StreamsBuilder::new();
    let a = b.stream::<String, String>("a");
    let c = b.stream::<String, String>("c");
    a.merge(&c).to("out");
    let d = driver(&b);
    d.create_input_topic::<String, String>("a").pipe_input("1".into(), "from-a".into()).unwrap();
    d.create_input_topic::<String, String>("c").pipe_input("2".into(), "from-c".into()).unwrap();
    assert_eq!(d.create_output_topic::<String, String>("out").read_values_to_list().unwrap(), vec!["from-a", "from-c"]);
}

#[test]
fn peek_and_foreach_see_every_record() {
    let seen = Arc::new(AtomicUsize::new(0));
    let (s1, s2) = (seen.clone(), seen.clone());
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>("in").peek(move |_, _| {
        s1.fetch_add(1, Ordering::SeqCst);
    });
    s.foreach(move |_, v| {
        s2.fetch_add(v.len() * 10, Ordering::SeqCst);
    });
    s.to("out");
    let d = driver(&b);
    d.create_input_topic::<String, String>("in").pipe_input("k".into(), "abc".into()).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 31);
    assert_eq!(d.create_output_topic::<String, String>("out").queue_size(), 1);
}

#[test]
fn to_dynamic_chooses_the_topic_per_record() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .to_dynamic(|k, _, ctx| format!("{}-{k}", ctx.map(|c| c.topic.as_str()).unwrap_or("?")));
    let d = driver(&b);
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input("x".into(), "1".into()).unwrap();
    input.pipe_input("y".into(), "2".into()).unwrap();
    assert_eq!(d.create_output_topic::<String, String>("in-x").read_value().unwrap(), "1");
    assert_eq!(d.create_output_topic::<String, String>("in-y").read_value().unwrap(), "2");
}

#[test]
fn repartition_passes_records_through_an_internal_topic_prefixed_with_the_application_id() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .select_key(|_, v| v.clone())
        .repartition_as(Repartitioned::as_("by-value"))
        .to("out");
    let topology = b.build();
    assert_eq!(topology.repartition_topics("app"), vec!["app-by-value-repartition".to_string()]);
    assert!(topology.describe().to_string().contains("Sub-topology: 1"));
    let d = TopologyTestDriver::new(topology, StreamsConfig::new("app")).unwrap();
    d.create_input_topic::<String, String>("in").pipe_input("k".into(), "v".into()).unwrap();
    assert_eq!(
        d.create_output_topic::<String, String>("app-by-value-repartition").read_key_value().unwrap(),
        kv("v", "v")
    );
    assert_eq!(d.create_output_topic::<String, String>("out").read_key_value().unwrap(), kv("v", "v"));
}

#[test]
fn a_record_that_cannot_be_deserialized_fails_by_default_and_is_skipped_with_log_and_continue() {
    let b = StreamsBuilder::new();
    b.stream::<String, i64>("in").to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let err = d.create_input_topic::<String, String>("in").pipe_input("k".into(), "not a long".into()).unwrap_err();
    assert!(matches!(err, StreamsError::Deserialization { .. }), "{err}");

    let config = StreamsConfig::new("app").deserialization_handler(DeserializationHandler::LogAndContinue);
    let d = TopologyTestDriver::new(b.build(), config).unwrap();
    d.create_input_topic::<String, String>("in").pipe_input("k".into(), "not a long".into()).unwrap();
    d.create_input_topic::<String, i64>("in").pipe_input("k".into(), 7).unwrap();
    assert_eq!(d.create_output_topic::<String, i64>("out").read_values_to_list().unwrap(), vec![7]);
}

#[test]
fn piping_into_a_topic_no_source_reads_is_an_error() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").to("out");
    let d = driver(&b);
    let err = d.create_input_topic::<String, String>("other").pipe_input("k".into(), "v".into()).unwrap_err();
    assert!(matches!(err, StreamsError::UnknownTopic(t) if t == "other"));
}

#[test]
fn reading_an_empty_output_topic_is_an_error() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").to("out");
    let d = driver(&b);
    assert!(matches!(d.create_output_topic::<String, String>("out").read_value(), Err(StreamsError::NoRecord(_))));
}

#[test]
fn negative_timestamps_are_refused_like_kafkas_default_timestamp_extractor() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").to("out");
    let d = driver(&b);
    assert!(d
        .create_input_topic::<String, String>("in")
        .pipe_input_with_timestamp("k".into(), "v".into(), -5)
        .is_err());
}

#[test]
fn describe_prints_sources_processors_and_sinks_like_kafkas_topology_description() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").filter(|_, _| true).to("out");
    let text = b.build().describe().to_string();
    let expected = "Topologies:\n   Sub-topology: 0\n    Source: KSTREAM-SOURCE-0000000000 (topics: [in])\n      --> KSTREAM-FILTER-0000000001\n    Processor: KSTREAM-FILTER-0000000001 (stores: [])\n      --> KSTREAM-SINK-0000000002\n      <-- KSTREAM-SOURCE-0000000000\n    Sink: KSTREAM-SINK-0000000002 (topic: out)\n      <-- KSTREAM-FILTER-0000000001\n\n";
    assert_eq!(text, expected);
}

#[test]
fn a_stream_can_read_several_topics() {
    let b = StreamsBuilder::new();
    b.stream_from_topics::<String, String>(&["a", "b"]).map_values(|v| v.to_uppercase()).to("out");
    let d = driver(&b);
    d.create_input_topic::<String, String>("b").pipe_input("k".into(), "from-b".into()).unwrap();
    d.create_input_topic::<String, String>("a").pipe_input("k".into(), "from-a".into()).unwrap();
    assert_eq!(d.create_output_topic::<String, String>("out").read_values_to_list().unwrap(), vec!["FROM-B", "FROM-A"]);
}
