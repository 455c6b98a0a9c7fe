//! The book's 5.2 project as a runnable Kafka Streams application: server metrics (JSON) from `metrics` are split
//! into `cpu-metrics` and `memory-metrics`, and CPU above 50% raises an alert on `cpu-alerts`.
//! `cargo run -p spate-sample-server-metrics -- --bootstrap-servers host:port` runs it against a broker.

mod topology;

pub use topology::{topology, CpuAlert, Metric};

use spate_streams::StreamsConfig;

/// The topics the application reads and writes (the input must exist before it starts; the sample's `main`
/// creates them all).
pub const TOPICS: [&str; 4] = ["metrics", "cpu-metrics", "memory-metrics", "cpu-alerts"];

/// The application's settings for a broker.
pub fn config(bootstrap_servers: &str) -> StreamsConfig {
    StreamsConfig::new("server-metrics").bootstrap_servers(bootstrap_servers)
}

/// `--bootstrap-servers <list>` (or `--bootstrap-servers=<list>`), else `SPATE_BOOTSTRAP_SERVERS`, else
/// `127.0.0.1:9092`.
pub fn bootstrap_servers(args: &[String], env: Option<String>) -> String {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--bootstrap-servers" {
            if let Some(v) = it.next() {
                return v.clone();
            }
        } else if let Some(v) = a.strip_prefix("--bootstrap-servers=") {
            return v.to_owned();
        }
    }
    env.unwrap_or_else(|| "127.0.0.1:9092".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_wins_over_the_environment_which_wins_over_the_default() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(bootstrap_servers(&args(&["--bootstrap-servers", "a:1"]), Some("b:2".into())), "a:1");
        assert_eq!(bootstrap_servers(&args(&["--bootstrap-servers=c:3"]), None), "c:3");
        assert_eq!(bootstrap_servers(&args(&[]), Some("b:2".into())), "b:2");
        assert_eq!(bootstrap_servers(&args(&[]), None), "127.0.0.1:9092");
    }
}
