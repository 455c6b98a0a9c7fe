use spate::kafka_listener;

#[kafka_listener(group_id = "g")]
async fn handler(_body: String) {}

fn main() {}
