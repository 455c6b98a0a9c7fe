use spate::{kafka_listener, Json, Topic};

#[derive(serde::Deserialize)]
struct Order {}
#[derive(serde::Deserialize)]
struct Invoice {}

const ORDERS: Topic<String, Json<Order>> = Topic::new("orders");

#[kafka_listener(topics = ORDERS)]
async fn handler(_invoice: Json<Invoice>) {}

fn main() {}
