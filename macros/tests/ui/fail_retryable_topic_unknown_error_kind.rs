use spate::kafka_listener;

#[kafka_listener(topics = "orders")]
#[retryable_topic(exclude = ["timeout"])]
async fn handler(_body: String) {}

fn main() {}
