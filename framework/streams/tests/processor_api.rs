#![allow(clippy::unwrap_used)]
//! The Processor API through the test driver: custom processors with stores, punctuators, record context,
//! changelog records and restoration.

use std::time::Duration;

use spate_streams::state::changelog_topic;
use spate_streams::{
    BoxError, ConsumedRecord, KeyValueStore, Processor, ProcessorContext, PunctuationType, Record, Stores, StreamTask,
    StreamsBuilder, StreamsConfig, StreamsError, TaskId, Topology, TopologyTestDriver,
};

/// Counts per key in "counts"; emits the count.
#[derive(Default)]
struct Counter {
    store: Option<KeyValueStore<String, i64>>,
}

impl Processor<String, String, String, i64> for Counter {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), BoxError> {
        self.store = Some(ctx.get_key_value_store("counts")?);
        Ok(())
    }
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), BoxError> {
        let store = self.store.as_ref().ok_or("not initialised")?;
        let n = store.get(r.key())?.unwrap_or(0) + 1;
        store.put(r.key(), &n)?;
        Ok(ctx.forward(r.with_value(n))?)
    }
}

fn counting_topology() -> Topology {
    let mut t = Topology::new();
    t.add_source::<String, String>("Source", &["in"])
        .unwrap()
        .add_processor("Counter", Counter::default, &["Source"])
        .unwrap()
        .add_state_store(Stores::key_value_store_builder(Stores::in_memory_key_value_store("counts")), &["Counter"])
        .unwrap()
        .add_sink::<String, i64>("Sink", "out", &["Counter"])
        .unwrap();
    t
}

#[test]
fn a_custom_processor_keeps_state_in_its_store_and_forwards_downstream() {
    let d = TopologyTestDriver::new(counting_topology(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    for k in ["a", "b", "a"] {
        input.pipe_input(k.into(), "x".into()).unwrap();
    }
    assert_eq!(d.create_output_topic::<String, i64>("out").read_values_to_list().unwrap(), vec![1, 1, 2]);
    let store = d.get_key_value_store::<String, i64>("counts").unwrap();
    assert_eq!(store.get(&"a".into()).unwrap(), Some(2));
    assert_eq!(store.all().unwrap(), vec![("a".to_string(), 2), ("b".to_string(), 1)]);
}

#[test]
fn every_store_write_goes_to_the_changelog_topic_on_the_tasks_partition() {
    let d = TopologyTestDriver::new(counting_topology(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input_with_timestamp("a".into(), "x".into(), 10).unwrap();
    input.pipe_input_with_timestamp("a".into(), "x".into(), 20).unwrap();
    let changelog = d.create_output_topic::<String, i64>(&changelog_topic("app", "counts"));
    let records = changelog.read_records_to_list().unwrap();
    let got: Vec<(String, i64, i64)> = records.into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
    assert_eq!(got, vec![("a".into(), 1, 10), ("a".into(), 2, 20)]);
}

#[test]
fn a_store_with_logging_disabled_writes_no_changelog() {
    let mut t = Topology::new();
    t.add_source::<String, String>("Source", &["in"])
        .unwrap()
        .add_processor("Counter", Counter::default, &["Source"])
        .unwrap()
        .add_state_store(
            Stores::key_value_store_builder(Stores::in_memory_key_value_store("counts")).with_logging_disabled(),
            &["Counter"],
        )
        .unwrap();
    let d = TopologyTestDriver::new(t, StreamsConfig::new("app")).unwrap();
    d.create_input_topic::<String, String>("in").pipe_input("a".into(), "x".into()).unwrap();
    assert!(d.produced_topic_names().is_empty());
}

#[test]
fn a_task_restored_from_the_changelog_continues_where_the_previous_one_stopped() {
    let config = StreamsConfig::new("app");
    let topology = counting_topology();
    let id = TaskId { subtopology: 0, partition: 3 };
    let mut first = StreamTask::new(&topology, id, &config, None).unwrap();
    let mut produced = Vec::new();
    for (offset, key) in ["a", "a", "b"].iter().enumerate() {
        let record = ConsumedRecord {
            topic: "in".into(),
            partition: 3,
            offset: offset as i64,
            timestamp: 100,
            key: Some(key.as_bytes().to_vec()),
            value: Some(b"x".to_vec()),
            headers: spate::Headers::new(),
        };
        first.process(record, &mut produced).unwrap();
    }
    let changelog: Vec<_> = produced.iter().filter(|r| r.topic == "app-counts-changelog").cloned().collect();
    assert_eq!(changelog.len(), 3);
    assert!(changelog.iter().all(|r| r.partition == Some(3)));

    let mut second = StreamTask::new(&topology, id, &config, None).unwrap();
    let store = second.store("counts").unwrap();
    for r in &changelog {
        store.restore(r.key.as_deref().unwrap(), r.value.as_deref(), r.timestamp).unwrap();
    }
    let mut out = Vec::new();
    let record = ConsumedRecord {
        topic: "in".into(),
        partition: 3,
        offset: 3,
        timestamp: 101,
        key: Some(b"a".to_vec()),
        value: Some(b"x".to_vec()),
        headers: spate::Headers::new(),
    };
    second.process(record, &mut out).unwrap();
    let sink = out.iter().find(|r| r.topic == "out").unwrap();
    assert_eq!(sink.value.as_deref(), Some(&3i64.to_be_bytes()[..]));
}

struct Context;
impl Processor<String, String, String, String> for Context {
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), BoxError> {
        let c = ctx.record_context().ok_or("no context")?;
        let v = format!("{}/{}/{}/{}/{}", c.topic, c.partition, c.offset, c.timestamp, ctx.application_id());
        Ok(ctx.forward(r.with_value(v))?)
    }
}

#[test]
fn processors_see_topic_partition_offset_and_timestamp_of_the_consumed_record() {
    let mut t = Topology::new();
    t.add_source::<String, String>("S", &["in"]).unwrap().add_processor("C", || Context, &["S"]).unwrap();
    t.add_sink::<String, String>("K", "out", &["C"]).unwrap();
    let d = TopologyTestDriver::new(t, StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input_with_timestamp("k".into(), "v".into(), 5).unwrap();
    input.pipe_input_with_timestamp("k".into(), "v".into(), 7).unwrap();
    let out = d.create_output_topic::<String, String>("out").read_values_to_list().unwrap();
    assert_eq!(out, vec!["in/0/0/5/app", "in/0/1/7/app"]);
}

/// Emits the stream time on each stream-time punctuation and the wall-clock time on each wall-clock one.
struct Ticker;
impl Processor<String, String, String, String> for Ticker {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), BoxError> {
        ctx.schedule(Duration::from_millis(10), PunctuationType::StreamTime, |ts, ctx| {
            Ok(ctx.forward(Record::new("stream".into(), ts.to_string(), ts))?)
        });
        ctx.schedule(Duration::from_millis(100), PunctuationType::WallClockTime, |ts, ctx| {
            Ok(ctx.forward(Record::new("wall".into(), ts.to_string(), ts))?)
        });
        Ok(())
    }
    fn process(
        &mut self,
        _: Record<String, String>,
        _: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}

fn ticker() -> TopologyTestDriver {
    let mut t = Topology::new();
    t.add_source::<String, String>("S", &["in"]).unwrap().add_processor("T", || Ticker, &["S"]).unwrap();
    t.add_sink::<String, String>("K", "out", &["T"]).unwrap();
    TopologyTestDriver::with_wall_clock(t, StreamsConfig::new("app"), 1_000).unwrap()
}

#[test]
fn stream_time_punctuation_fires_with_the_first_record_then_on_aligned_intervals_once_per_jump() {
    let d = ticker();
    let input = d.create_input_topic::<String, String>("in");
    for ts in [3, 9, 12, 13, 47, 20] {
        input.pipe_input_with_timestamp("k".into(), "v".into(), ts).unwrap();
    }
    let out = d.create_output_topic::<String, String>("out").read_values_to_list().unwrap();
    // 3: first punctuation; 9: not due (next 10); 12: due; 13: next 20; 47: one punctuation for the jump; 20: stream
    // time stays 47 (a late record does not move it back).
    assert_eq!(out, vec!["3", "12", "47"]);
}

#[test]
fn wall_clock_punctuation_fires_only_when_the_clock_is_advanced() {
    let d = ticker();
    let out = d.create_output_topic::<String, String>("out");
    d.advance_wall_clock_time(Duration::from_millis(99)).unwrap();
    assert!(out.is_empty());
    d.advance_wall_clock_time(Duration::from_millis(1)).unwrap();
    assert_eq!(out.read_key_value().unwrap().value, "1100");
    d.advance_wall_clock_time(Duration::from_millis(250)).unwrap();
    assert_eq!(out.read_values_to_list().unwrap(), vec!["1350"]);
}

struct CancelAfterOne;
impl Processor<String, String, String, String> for CancelAfterOne {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), BoxError> {
        let cancel = ctx.schedule(Duration::from_millis(10), PunctuationType::WallClockTime, |ts, ctx| {
            Ok(ctx.forward(Record::new("wall".into(), ts.to_string(), ts))?)
        });
        cancel.cancel();
        Ok(())
    }
    fn process(
        &mut self,
        _: Record<String, String>,
        _: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_cancelled_punctuator_never_fires() {
    let mut t = Topology::new();
    t.add_source::<String, String>("S", &["in"]).unwrap().add_processor("T", || CancelAfterOne, &["S"]).unwrap();
    t.add_sink::<String, String>("K", "out", &["T"]).unwrap();
    let d = TopologyTestDriver::new(t, StreamsConfig::new("app")).unwrap();
    d.advance_wall_clock_time(Duration::from_millis(100)).unwrap();
    assert!(d.create_output_topic::<String, String>("out").is_empty());
}

#[test]
fn a_store_not_connected_to_the_processor_is_refused() {
    let mut t = Topology::new();
    t.add_source::<String, String>("Source", &["in"])
        .unwrap()
        .add_processor("Counter", Counter::default, &["Source"])
        .unwrap()
        .add_processor("Other", Counter::default, &["Source"])
        .unwrap()
        .add_state_store(Stores::key_value_store_builder(Stores::in_memory_key_value_store("counts")), &["Other"])
        .unwrap();
    let err = TopologyTestDriver::new(t, StreamsConfig::new("app")).err().unwrap();
    assert!(err.to_string().contains("not connected to processor Counter"), "{err}");
}

#[test]
fn wiring_processors_of_different_types_is_reported_at_the_node_not_a_panic() {
    let mut t = Topology::new();
    t.add_source::<String, i64>("Source", &["in"]).unwrap().add_processor("Ctx", || Context, &["Source"]).unwrap();
    let d = TopologyTestDriver::new(t, StreamsConfig::new("app")).unwrap();
    let err = d.create_input_topic::<String, i64>("in").pipe_input("k".into(), 1).unwrap_err();
    assert!(matches!(err, StreamsError::TypeMismatch { ref node, .. } if node == "Ctx"), "{err}");
}

#[test]
fn a_user_processor_error_names_the_node() {
    struct Failing;
    impl Processor<String, String, String, String> for Failing {
        fn process(
            &mut self,
            _: Record<String, String>,
            _: &mut ProcessorContext<'_, String, String>,
        ) -> Result<(), BoxError> {
            Err("boom".into())
        }
    }
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").process::<String, String, _>(|| Failing, &[]);
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let err = d.create_input_topic::<String, String>("in").pipe_input("k".into(), "v".into()).unwrap_err();
    assert!(matches!(err, StreamsError::Processor { ref node, .. } if node.starts_with("KSTREAM-PROCESSOR")), "{err}");
}

#[test]
fn kstream_process_runs_a_custom_processor_with_a_declared_store() {
    let b = StreamsBuilder::new();
    b.add_state_store(Stores::key_value_store_builder(Stores::in_memory_key_value_store("counts")));
    b.stream::<String, String>("in").process(Counter::default, &["counts"]).to("out");
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, String>("in");
    input.pipe_input("a".into(), "x".into()).unwrap();
    input.pipe_input("a".into(), "x".into()).unwrap();
    assert_eq!(d.create_output_topic::<String, i64>("out").read_values_to_list().unwrap(), vec![1, 2]);
}

#[test]
fn window_and_session_stores_fetch_by_time_and_expire_after_retention() {
    use spate_streams::Windowed;
    struct W;
    impl Processor<String, i64, String, String> for W {
        fn process(
            &mut self,
            r: Record<String, i64>,
            ctx: &mut ProcessorContext<'_, String, String>,
        ) -> Result<(), BoxError> {
            let w = ctx.get_window_store::<String, i64>("w")?;
            w.put(r.key(), r.value(), r.timestamp())?;
            let found: Vec<i64> = w.fetch_range(r.key(), 0, i64::MAX)?.into_iter().map(|(_, v)| v).collect();
            let s = ctx.get_session_store::<String, i64>("s")?;
            s.put(
                &Windowed::new(r.key().clone(), spate_streams::Window::new(r.timestamp(), r.timestamp())),
                r.value(),
            )?;
            let sessions = s.fetch(r.key())?.len();
            Ok(ctx.forward(r.with_value(format!("{found:?} {sessions}")))?)
        }
    }
    let mut t = Topology::new();
    t.add_source::<String, i64>("S", &["in"]).unwrap().add_processor("W", || W, &["S"]).unwrap();
    t.add_state_store(
        Stores::window_store_builder(Stores::in_memory_window_store(
            "w",
            Duration::from_millis(100),
            Duration::from_millis(10),
            false,
        )),
        &["W"],
    )
    .unwrap();
    t.add_state_store(
        Stores::session_store_builder(Stores::in_memory_session_store("s", Duration::from_millis(100))),
        &["W"],
    )
    .unwrap();
    t.add_sink::<String, String>("K", "out", &["W"]).unwrap();
    let d = TopologyTestDriver::new(t, StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic::<String, i64>("in");
    input.pipe_input_with_timestamp("k".into(), 1, 10).unwrap();
    input.pipe_input_with_timestamp("k".into(), 2, 50).unwrap();
    input.pipe_input_with_timestamp("k".into(), 3, 200).unwrap();
    let out = d.create_output_topic::<String, String>("out").read_values_to_list().unwrap();
    assert_eq!(out, vec!["[1] 1", "[1, 2] 2", "[3] 1"]);
}

#[test]
fn tasks_run_one_subtopology_each_and_read_global_stores_handed_to_them() {
    let b = StreamsBuilder::new();
    let products = b.global_table::<String, String>("products");
    b.stream::<String, String>("orders")
        .select_key(|_, v| v.clone())
        .repartition()
        .join_global(&products, |k, _| k.clone(), |v, name| format!("{v}:{name}"))
        .to("out");
    let topology = b.build();
    let config = StreamsConfig::new("app");
    let subs = topology.subtopologies();
    assert_eq!(subs.len(), 2);
    let sources = topology.subtopology_source_topics("app");
    assert_eq!(sources[0], vec!["orders".to_string()]);
    assert!(sources[1][0].starts_with("app-KSTREAM-REPARTITION-") && sources[1][0].ends_with("-repartition"));
    assert_eq!(topology.global_source_topics(), vec!["products".to_string()]);

    // The global task fills the global store; the second sub-topology's task reads it.
    let globals = topology.global_nodes();
    let mut global_task =
        StreamTask::new(&topology, TaskId { subtopology: u32::MAX, partition: -1 }, &config, Some(&globals)).unwrap();
    let mut sink = Vec::new();
    let raw = |topic: &str, k: &str, v: &str| ConsumedRecord {
        topic: topic.into(),
        partition: 0,
        offset: 0,
        timestamp: 1,
        key: Some(k.as_bytes().to_vec()),
        value: Some(v.as_bytes().to_vec()),
        headers: spate::Headers::new(),
    };
    global_task.process(raw("products", "p1", "lamp"), &mut sink).unwrap();
    let store = global_task.store(products.queryable_store_name()).unwrap();
    assert_eq!(store.key_value_store::<String, String>().unwrap().get(&"p1".into()).unwrap(), Some("lamp".into()));

    let mut first =
        StreamTask::new(&topology, TaskId { subtopology: 0, partition: 0 }, &config, Some(&subs[0])).unwrap();
    let mut out = Vec::new();
    first.process(raw("orders", "o1", "p1"), &mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].topic.ends_with("-repartition"));

    let mut second =
        StreamTask::new(&topology, TaskId { subtopology: 1, partition: 0 }, &config, Some(&subs[1])).unwrap();
    second.add_global_store(store);
    let repartitioned = ConsumedRecord {
        topic: out[0].topic.clone(),
        partition: 0,
        offset: 0,
        timestamp: out[0].timestamp,
        key: out[0].key.clone(),
        value: out[0].value.clone(),
        headers: out[0].headers.clone(),
    };
    let mut joined = Vec::new();
    second.process(repartitioned, &mut joined).unwrap();
    assert_eq!((joined[0].topic.as_str(), joined[0].value.as_deref()), ("out", Some(&b"p1:lamp"[..])));
}

#[test]
fn process_values_keeps_the_stream_free_of_repartitioning_where_process_does_not() {
    struct Len;
    impl Processor<String, String, String, i64> for Len {
        fn process(
            &mut self,
            r: Record<String, String>,
            ctx: &mut ProcessorContext<'_, String, i64>,
        ) -> Result<(), BoxError> {
            let n = r.value().len() as i64;
            Ok(ctx.forward(r.with_value(n))?)
        }
    }
    let b = StreamsBuilder::new();
    b.stream::<String, String>("a").process_values(|| Len, &[]).group_by_key().count();
    assert!(b.build().repartition_topics("app").is_empty());
    b.stream::<String, String>("b").process(|| Len, &[]).group_by_key().count();
    assert_eq!(b.build().repartition_topics("app").len(), 1);
    let d = TopologyTestDriver::new(b.build(), StreamsConfig::new("app")).unwrap();
    d.create_input_topic::<String, String>("a").pipe_input("k".into(), "abc".into()).unwrap();
}
