//! `cargo run -p spate-quickstart`: starts the bundled broker in-process, runs the quickstart app against it,
//! sends a few orders with a `KafkaTemplate`, and runs until Ctrl-C. Set `QUICKSTART_BOOTSTRAP=host:port` to use
//! a broker you started yourself (`spate broker`, or Apache Kafka) instead.

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

use std::sync::Arc;
use std::time::Duration;

use spate::test::EmbeddedBroker;
use spate::{App, Json, KafkaTemplate, ProducerFactory};
use spate_quickstart::Order;

#[spate::main]
async fn main() -> Result<App, Box<dyn std::error::Error>> {
    let (bootstrap, broker) = match std::env::var("QUICKSTART_BOOTSTRAP") {
        Ok(b) => (b, None),
        Err(_) => {
            let broker = EmbeddedBroker::start().await?;
            tracing::info!(bootstrap = broker.bootstrap_servers(), "bundled broker started");
            (broker.bootstrap_servers().to_string(), Some(Arc::new(broker)))
        }
    };
    // Send a few orders once the app is up (the app creates the topics at start).
    let factory = ProducerFactory::for_bootstrap(&bootstrap);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let template: KafkaTemplate<String, Json<Order>> = KafkaTemplate::new(&factory);
        for id in 1..=5 {
            let order = Order { id, quantity: id as u32, unit_price_cents: 250 };
            match template.send("orders", format!("customer-{}", id % 2), Json(order)).await {
                Ok(md) => tracing::info!(order = id, partition = md.partition, offset = md.offset, "order sent"),
                Err(e) => tracing::error!(order = id, error = %e, "order not sent"),
            }
        }
        tracing::info!("press Ctrl-C to stop");
    });
    let mut app = spate_quickstart::app().set("kafka.bootstrap_servers", bootstrap);
    if let Some(b) = broker {
        // Keeps the bundled broker alive as long as the app.
        app = app.state(b);
    }
    Ok(app)
}
