//! The quickstart application: orders arrive on `orders`, are priced by a `#[kafka_listener]` that replies with an
//! invoice on `invoices` (`#[send_to]`), and a second listener logs the invoices. A `KafkaTemplate` sends the
//! orders.

use spate::{kafka_listener, App, Json, Key, Meta, TopicBuilder};

/// An order, as JSON on the `orders` topic.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Order {
    /// Order number.
    pub id: u64,
    /// Items ordered.
    pub quantity: u32,
    /// Price of one item, in cents.
    pub unit_price_cents: u64,
}

/// An invoice, as JSON on the `invoices` topic.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Invoice {
    /// The order it bills.
    pub order_id: u64,
    /// Amount due, in cents.
    pub total_cents: u64,
}

/// Prices each order and sends the invoice to `invoices`, keyed like the order (the customer).
#[kafka_listener(topics = "${app.orders_topic}", id = "pricing")]
#[send_to("${app.invoices_topic}")]
pub async fn price_order(Json(order): Json<Order>, Key(customer): Key<String>, meta: Meta) -> Json<Invoice> {
    tracing::info!(customer, order = order.id, partition = meta.partition, offset = meta.offset, "pricing order");
    Json(Invoice { order_id: order.id, total_cents: order.quantity as u64 * order.unit_price_cents })
}

/// Logs every invoice.
#[kafka_listener(topics = "${app.invoices_topic}", id = "invoice-log")]
pub async fn log_invoice(Json(invoice): Json<Invoice>, Key(customer): Key<String>) {
    tracing::info!(customer, order = invoice.order_id, total_cents = invoice.total_cents, "invoice issued");
}

/// The application: configuration from this sample's `spate.toml`, both listeners (found automatically), and the
/// two topics declared so they are created at start-up.
pub fn app() -> App {
    App::new()
        .config_dir(env!("CARGO_MANIFEST_DIR"))
        .topic(TopicBuilder::name("orders").partitions(2))
        .topic(TopicBuilder::name("invoices").partitions(2))
}
