use spate::kafka_listener;

struct NotAnExtractor;

#[kafka_listener(topics = "orders")]
async fn handler(_x: NotAnExtractor) {}

fn main() {}
