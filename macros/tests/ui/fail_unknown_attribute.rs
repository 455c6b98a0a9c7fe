use spate::kafka_listener;

#[kafka_listener(topics = "orders", groupId = "g")]
async fn handler(_body: String) {}

fn main() {}
