use spate::{dlt_handler, kafka_listener};

#[kafka_listener(topics = "orders")]
#[retryable_topic(dlt_handler = on_dead, dlt_strategy = "no_dlt")]
async fn handler(_body: String) {}

#[dlt_handler]
async fn on_dead(_body: String) {}

fn main() {}
