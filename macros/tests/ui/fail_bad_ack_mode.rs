use spate::kafka_listener;

#[kafka_listener(topics = "orders", ack_mode = "sometimes")]
async fn handler(_body: String) {}

fn main() {}
