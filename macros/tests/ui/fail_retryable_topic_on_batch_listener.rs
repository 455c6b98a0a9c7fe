use spate::kafka_listener;

#[kafka_listener(topics = "orders", batch = true)]
#[retryable_topic(attempts = 3)]
async fn handler(_bodies: Vec<String>) {}

fn main() {}
