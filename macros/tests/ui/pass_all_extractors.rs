use spate::{kafka_listener, Ack, Batch, Bytes, Headers, Json, KafkaTemplate, Key, Meta, Record, State, Topic};

#[derive(serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
}

#[derive(Clone)]
struct Db;

const ORDERS: Topic<String, Json<Order>> = Topic::new("orders");

#[kafka_listener(topics = "orders", group_id = "g", concurrency = 3, auto_startup = "${app.auto:true}")]
async fn record(_o: Json<Order>, _k: Key<String>, _m: Meta, _h: Headers, _r: Record, _s: State<Db>, _t: KafkaTemplate<String, String>) {}

#[kafka_listener(topics = ["a", "b"], ack_mode = "manual")]
async fn manual(_body: String, ack: Ack) -> Result<(), std::io::Error> {
    ack.acknowledge();
    Ok(())
}

#[kafka_listener(topic_pattern = "metrics-.*", batch = true, ack_mode = "manual_immediate")]
async fn batch(_v: Vec<Json<Order>>, _b: Batch<Bytes>, _r: Vec<Record>, _a: Ack, _s: State<Db>) {}

#[kafka_listener(topic_partitions = ["orders:0-2@beginning"], id = "replier", ordering = "key", key_concurrency = 8,
    properties = ["fetch.wait.max.ms=10"], client_id_prefix = "r", cluster = "eu")]
#[send_to("replies")]
async fn reply(o: Json<Order>) -> Result<Option<Json<Order>>, String> {
    Ok(Some(o))
}

#[kafka_listener(topics = ORDERS)]
async fn typed(_o: Json<Order>, _k: Key<String>, _raw: Bytes) {}

fn main() {
    let _ = (record::definition(), manual::definition(), batch::definition(), reply::definition(), typed::definition());
    assert_eq!(spate::listener::registered_listeners().len(), 5);
}
