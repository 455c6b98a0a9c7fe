use spate::kafka_listener;

#[kafka_listener(topics = "orders")]
#[retryable_topic(attempts = 0)]
async fn handler(_body: String) {}

fn main() {}
