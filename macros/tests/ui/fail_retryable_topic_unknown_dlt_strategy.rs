use spate::kafka_listener;

#[kafka_listener(topics = "orders")]
#[retryable_topic(dlt_strategy = "retry_forever")]
async fn handler(_body: String) {}

fn main() {}
