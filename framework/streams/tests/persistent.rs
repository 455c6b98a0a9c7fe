#![allow(clippy::unwrap_used)]
//! The persistent (redb) store behind a DSL aggregation, through the test driver.

use spate_streams::{DslStoreType, Materialized, StreamsBuilder, StreamsConfig, TopologyTestDriver};

fn topology() -> spate_streams::Topology {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .count_with(Materialized::as_("counts").with_store_type(DslStoreType::Persistent))
        .to_stream()
        .to("out");
    b.build()
}

#[test]
fn a_persistent_count_store_keeps_its_state_when_the_application_restarts_on_the_same_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new("app").state_dir(dir.path());
    {
        let d = TopologyTestDriver::new(topology(), config.clone()).unwrap();
        let input = d.create_input_topic::<String, String>("in");
        input.pipe_input("a".into(), "x".into()).unwrap();
        input.pipe_input("a".into(), "x".into()).unwrap();
        d.close();
    }
    assert!(dir.path().join("app").join("0_0").join("counts.redb").exists());
    let d = TopologyTestDriver::new(topology(), config).unwrap();
    d.create_input_topic::<String, String>("in").pipe_input("a".into(), "x".into()).unwrap();
    assert_eq!(d.create_output_topic::<String, Option<i64>>("out").read_value().unwrap(), Some(3));
    assert_eq!(d.get_key_value_store::<String, i64>("counts").unwrap().get(&"a".into()).unwrap(), Some(3));
}

#[test]
fn a_persistent_store_still_logs_every_write_to_its_changelog() {
    let dir = tempfile::tempdir().unwrap();
    let d = TopologyTestDriver::new(topology(), StreamsConfig::new("app").state_dir(dir.path())).unwrap();
    d.create_input_topic::<String, String>("in").pipe_input_with_timestamp("a".into(), "x".into(), 9).unwrap();
    let r = d.create_output_topic::<String, i64>("app-counts-changelog").read_record().unwrap();
    assert_eq!((r.key.as_str(), r.value, r.timestamp), ("a", 1, 9));
}

#[test]
fn a_persistent_window_store_keeps_windowed_counts_across_a_restart() {
    use spate_streams::TimeWindows;
    use std::time::Duration;
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream::<String, String>("in")
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
            .count_with(Materialized::as_("per-10ms").with_store_type(DslStoreType::Persistent))
            .to_stream()
            .map(|k, v| (format!("{}@{}", k.key, k.window.start), *v))
            .to("out");
        b.build()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new("app").state_dir(dir.path());
    {
        let d = TopologyTestDriver::new(topology(), config.clone()).unwrap();
        d.create_input_topic::<String, String>("in").pipe_input_with_timestamp("a".into(), "x".into(), 3).unwrap();
        d.close();
    }
    let d = TopologyTestDriver::new(topology(), config).unwrap();
    d.create_input_topic::<String, String>("in").pipe_input_with_timestamp("a".into(), "x".into(), 7).unwrap();
    let out = d.create_output_topic::<String, Option<i64>>("out").read_key_value().unwrap();
    assert_eq!((out.key.as_str(), out.value), ("a@0", Some(2)));
    assert_eq!(d.get_window_store::<String, i64>("per-10ms").unwrap().fetch(&"a".into(), 0).unwrap(), Some(2));
}

#[test]
fn a_persistent_session_store_keeps_sessions_across_a_restart() {
    use spate_streams::SessionWindows;
    use std::time::Duration;
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream::<String, String>("in")
            .group_by_key()
            .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
                Duration::from_millis(10),
                Duration::from_millis(100),
            ))
            .aggregate_with(
                || 0i64,
                |_, _, n| n + 1,
                |_, a, b| a + b,
                Materialized::as_("sessions").with_store_type(DslStoreType::Persistent),
            )
            .to_stream()
            .filter(|_, v| v.is_some())
            .map(|k, v| (format!("{}@{}-{}", k.key, k.window.start, k.window.end), *v))
            .to("out");
        b.build()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new("app").state_dir(dir.path());
    {
        let d = TopologyTestDriver::new(topology(), config.clone()).unwrap();
        d.create_input_topic::<String, String>("in").pipe_input_with_timestamp("a".into(), "x".into(), 100).unwrap();
        d.close();
    }
    let d = TopologyTestDriver::new(topology(), config).unwrap();
    d.create_input_topic::<String, String>("in").pipe_input_with_timestamp("a".into(), "x".into(), 105).unwrap();
    let out = d.create_output_topic::<String, Option<i64>>("out").read_key_value().unwrap();
    assert_eq!((out.key.as_str(), out.value), ("a@100-105", Some(2)));
}
