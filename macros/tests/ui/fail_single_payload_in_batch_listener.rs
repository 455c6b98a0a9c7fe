use spate::kafka_listener;

#[kafka_listener(topics = "orders", batch = true)]
async fn handler(_body: String) {}

fn main() {}
