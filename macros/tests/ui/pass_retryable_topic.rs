use spate::{dlt_handler, kafka_listener, DltInfo, Json, Meta};

#[derive(serde::Deserialize)]
struct Order {
    #[allow(dead_code)]
    id: u64,
}

#[kafka_listener(topics = "orders", group_id = "billing")]
#[retryable_topic(
    attempts = 4,
    backoff(delay_ms = 1000, multiplier = 2.0, max_delay_ms = 5000),
    dlt_suffix = "-dead",
    retry_topic_suffix = "-again",
    auto_create_topics = true,
    num_partitions = 3,
    replication_factor = 1,
    topic_suffixing_strategy = "suffix_with_index_value",
    exclude = ["panic", "reply"],
    dlt_handler = on_order_dlt,
    dlt_strategy = "fail_on_error"
)]
async fn on_order(_o: Json<Order>) -> Result<(), std::io::Error> {
    Ok(())
}

#[dlt_handler]
async fn on_order_dlt(_body: Option<String>, _info: DltInfo, _meta: Meta) {}

#[kafka_listener(topics = "payments")]
#[retryable_topic]
async fn with_spring_defaults(_body: String) {}

#[kafka_listener(topics = "clicks")]
#[retryable_topic(attempts = 2, dlt_strategy = "no_dlt")]
async fn without_a_dlt(_body: String) {}

fn main() {
    let _ = on_order::definition();
    let _ = with_spring_defaults::definition();
    let _ = without_a_dlt::definition();
}
