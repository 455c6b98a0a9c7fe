use spate::kafka_listener;

#[kafka_listener(topics = "orders")]
#[retryable_topic(attempts = 3, maxAttempts = 4)]
async fn handler(_body: String) {}

fn main() {}
