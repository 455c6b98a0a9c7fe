//! The book's 5.2 topology (it lives in `samples/server-metrics/src/topology.rs`, where the runnable sample runs
//! it against a broker). `cargo run -p spate-streams --example server_metrics` prints it; `tests/server_metrics.rs`
//! drives it with the test driver.

#[path = "../../../samples/server-metrics/src/topology.rs"]
mod topology;

pub use topology::{topology, CpuAlert, Metric};

#[allow(dead_code)]
fn main() {
    println!("{}", topology().describe());
}
