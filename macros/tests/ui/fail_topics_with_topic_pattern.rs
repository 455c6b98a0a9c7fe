use spate::kafka_listener;

#[kafka_listener(topics = "orders", topic_pattern = "orders-.*")]
async fn handler(_body: String) {}

fn main() {}
