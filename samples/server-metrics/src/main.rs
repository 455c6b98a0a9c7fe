//! `cargo run -p spate-sample-server-metrics [-- --bootstrap-servers host:port]`: creates the topics if missing,
//! runs the 5.2 topology (`SPATE_BOOTSTRAP_SERVERS` also names the broker; default `127.0.0.1:9092`) and stops
//! cleanly on Ctrl-C. Start a broker first, e.g. `cargo run -p spate-cli -- broker`.

use spate::{KafkaAdmin, TopicBuilder};
use spate_sample_server_metrics::{bootstrap_servers, config, topology, TOPICS};
use spate_streams::KafkaStreams;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bootstrap = bootstrap_servers(&args, std::env::var("SPATE_BOOTSTRAP_SERVERS").ok());
    let admin = KafkaAdmin::for_bootstrap(&bootstrap)?;
    let specs: Vec<_> = TOPICS.iter().map(|t| TopicBuilder::name(*t).partitions(3).build()).collect();
    admin.create_topics(&specs).await?;
    println!("{}", topology().describe());
    let mut streams = tokio::task::spawn_blocking(move || {
        let mut s = KafkaStreams::new(topology(), config(&bootstrap));
        s.set_state_listener(|new, old| tracing::info!(?old, ?new, "state"));
        s.start().map(|_| s)
    })
    .await??;
    tracing::info!("running; press Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    tokio::task::spawn_blocking(move || streams.close()).await?;
    Ok(())
}
