use spate::{kafka_listener, Ack};

#[kafka_listener(topics = "orders")]
async fn handler(_body: String, _ack: Ack) {}

fn main() {}
