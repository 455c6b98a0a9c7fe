use spate::kafka_listener;

#[kafka_listener(topic_pattern = "orders-.*")]
#[retryable_topic(attempts = 3)]
async fn handler(_body: String) {}

fn main() {}
