#![allow(clippy::unwrap_used)]
//! The book's 5.2 topology through the test driver.

#[path = "../examples/server_metrics.rs"]
mod server_metrics;

use server_metrics::{topology, CpuAlert, Metric};
use spate::Json;
use spate_streams::{StreamsConfig, TopologyTestDriver};

fn metric(host: &str, kind: &str, value: f64, timestamp: i64) -> Json<Metric> {
    Json(Metric { hostname: host.into(), timestamp, kind: kind.into(), value })
}

#[test]
fn cpu_and_memory_metrics_go_to_their_own_topics_and_cpu_above_half_raises_an_alert() {
    let d = TopologyTestDriver::new(topology(), StreamsConfig::new("server-metrics")).unwrap();
    let metrics = d.create_input_topic::<Option<String>, Json<Metric>>("metrics");
    metrics.pipe_input_with_timestamp(None, metric("web-1", "cpu", 42.0, 1_000), 1_000).unwrap();
    metrics.pipe_input_with_timestamp(None, metric("web-1", "memory", 81.0, 1_001), 1_001).unwrap();
    metrics.pipe_input_with_timestamp(None, metric("db-1", "cpu", 97.5, 1_002), 1_002).unwrap();
    metrics.pipe_input_with_timestamp(None, metric("db-1", "disk", 99.0, 1_003), 1_003).unwrap();
    metrics.pipe_input_with_timestamp(None, metric("web-2", "cpu", 50.0, 1_004), 1_004).unwrap();

    let cpu = d.create_output_topic::<Option<String>, Json<Metric>>("cpu-metrics").read_values_to_list().unwrap();
    let cpu_hosts: Vec<(&str, f64)> = cpu.iter().map(|m| (m.hostname.as_str(), m.value)).collect();
    assert_eq!(cpu_hosts, vec![("web-1", 42.0), ("db-1", 97.5), ("web-2", 50.0)]);

    let memory = d.create_output_topic::<Option<String>, Json<Metric>>("memory-metrics").read_values_to_list().unwrap();
    assert_eq!(memory.len(), 1);
    assert_eq!(memory[0].hostname, "web-1");

    let alerts = d.create_output_topic::<String, Json<CpuAlert>>("cpu-alerts").read_records_to_list().unwrap();
    assert_eq!(alerts.len(), 1, "only CPU strictly above 50% alerts");
    assert_eq!(alerts[0].key, "db-1");
    assert_eq!(alerts[0].value.0, CpuAlert { hostname: "db-1".into(), timestamp: 1_002 });
    assert_eq!(alerts[0].timestamp, 1_002);
}

#[test]
fn records_carry_the_time_the_metric_was_measured_not_when_it_arrived() {
    let d = TopologyTestDriver::new(topology(), StreamsConfig::new("server-metrics")).unwrap();
    d.create_input_topic::<Option<String>, Json<Metric>>("metrics")
        .pipe_input_with_timestamp(None, metric("db-2", "cpu", 75.0, 500), 9_999)
        .unwrap();
    let cpu = d.create_output_topic::<Option<String>, Json<Metric>>("cpu-metrics").read_record().unwrap();
    let alert = d.create_output_topic::<String, Json<CpuAlert>>("cpu-alerts").read_record().unwrap();
    assert_eq!((cpu.timestamp, alert.timestamp), (500, 500));
}

#[test]
fn alerts_are_raw_json_with_hostname_and_timestamp() {
    let d = TopologyTestDriver::new(topology(), StreamsConfig::new("server-metrics")).unwrap();
    d.create_input_topic::<Option<String>, Json<Metric>>("metrics")
        .pipe_input_with_timestamp(None, metric("api-7", "cpu", 88.0, 5), 5)
        .unwrap();
    let raw = d.create_output_topic::<String, String>("cpu-alerts").read_value().unwrap();
    assert_eq!(raw, r#"{"hostname":"api-7","timestamp":5}"#);
}

#[test]
fn a_metric_that_is_not_json_stops_the_topology_by_default() {
    let d = TopologyTestDriver::new(topology(), StreamsConfig::new("server-metrics")).unwrap();
    let err = d.create_input_topic::<Option<String>, String>("metrics").pipe_input(None, "cpu=90".into()).unwrap_err();
    assert!(matches!(err, spate_streams::StreamsError::Deserialization { .. }));
}
