use spate::kafka_listener;

#[kafka_listener(topics = "orders")]
fn handler(_body: String) {}

fn main() {}
