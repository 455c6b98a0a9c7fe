use spate::kafka_listener;

#[kafka_listener(topics = "orders", ack_mode = "manual")]
async fn handler(_body: String) {}

fn main() {}
