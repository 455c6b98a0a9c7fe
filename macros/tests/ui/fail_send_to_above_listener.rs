use spate::{kafka_listener, send_to};

#[send_to("replies")]
#[kafka_listener(topics = "orders")]
async fn handler(body: String) -> String {
    body
}

fn main() {}
