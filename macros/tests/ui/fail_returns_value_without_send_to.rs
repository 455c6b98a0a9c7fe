use spate::kafka_listener;

#[kafka_listener(topics = "orders")]
async fn handler(body: String) -> String {
    body
}

fn main() {}
