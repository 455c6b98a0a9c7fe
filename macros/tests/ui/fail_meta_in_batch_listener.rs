use spate::{kafka_listener, Meta};

#[kafka_listener(topics = "orders", batch = true)]
async fn handler(_bodies: Vec<String>, _meta: Meta) {}

fn main() {}
