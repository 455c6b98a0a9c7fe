use spate::{Json, KafkaTemplate, Topic};

#[derive(serde::Serialize)]
struct Order {}

const ORDERS: Topic<String, Json<Order>> = Topic::new("orders");

fn main() {
    let factory = spate::ProducerFactory::for_bootstrap("localhost:9092");
    let template: KafkaTemplate<String, String> = KafkaTemplate::new(&factory);
    let _ = template.send(ORDERS, "k".to_string(), "v".to_string());
}
