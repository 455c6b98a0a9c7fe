//! The book's 5.2 topology: all server metrics in; CPU and memory metrics split into their own topics; CPU above
//! 50% sent to an alert topic as hostname and timestamp. This file is the sample's library module and is also
//! compiled (by path) into `framework/streams`'s example and test-driver tests, so the topology exists once.

use serde::{Deserialize, Serialize};
use spate::Json;
use spate_streams::{Branched, Consumed, Named, StreamsBuilder, Topology};

/// One metric as collected from a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Server name.
    pub hostname: String,
    /// When it was measured (ms since the epoch).
    pub timestamp: i64,
    /// `cpu`, `memory`, `disk`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Percent used.
    pub value: f64,
}

/// What the alert topic receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuAlert {
    /// Server name.
    pub hostname: String,
    /// When the CPU was above the threshold.
    pub timestamp: i64,
}

/// The topology, on the book's topics: `metrics` in; `cpu-metrics`, `memory-metrics` and `cpu-alerts` out.
pub fn topology() -> Topology {
    topology_for("metrics", "cpu-metrics", "memory-metrics", "cpu-alerts")
}

/// The same topology on other topics (the benchmark gives each run its own output topics).
pub fn topology_for(metrics: &str, cpu_metrics: &str, memory_metrics: &str, cpu_alerts: &str) -> Topology {
    let builder = StreamsBuilder::new();
    let mut by_kind = builder
        // Event time is when the metric was measured, not when it reached Kafka.
        .stream_with::<Option<String>, Json<Metric>>(
            metrics,
            Consumed::with_timestamp_extractor(|_, m: &Json<Metric>, _, _| m.timestamp),
        )
        .split_named(Named::as_("metrics-"))
        .branch(|_, m| m.kind == "cpu", Branched::as_("cpu"))
        .branch(|_, m| m.kind == "memory", Branched::as_("memory"))
        .no_default_branch();
    if let (Some(cpu), Some(memory)) = (by_kind.remove("metrics-cpu"), by_kind.remove("metrics-memory")) {
        cpu.to(cpu_metrics);
        memory.to(memory_metrics);
        cpu.filter(|_, m| m.value > 50.0)
            .map(|_, m| (m.hostname.clone(), Json(CpuAlert { hostname: m.hostname.clone(), timestamp: m.timestamp })))
            .to(cpu_alerts);
    }
    builder.build()
}
