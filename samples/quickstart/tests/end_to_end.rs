//! The quickstart end to end: the app as `main` builds it, against the bundled broker; orders in, invoices out.
#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

use std::time::Duration;

use spate::test::EmbeddedBroker;
use spate::{Json, KafkaTemplate};
use spate_quickstart::{Invoice, Order};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_become_invoices() {
    let broker = EmbeddedBroker::start().await.unwrap();
    let app = spate_quickstart::app()
        .without_env()
        .set("kafka.bootstrap_servers", broker.bootstrap_servers())
        .start()
        .await
        .unwrap();
    let mut ids = app.registry().listener_container_ids();
    ids.sort();
    assert_eq!(ids, vec!["invoice-log", "pricing"], "both listeners were discovered");
    let template: KafkaTemplate<String, Json<Order>> = app.template();
    for id in 1..=3 {
        template
            .send("orders", "alice".to_string(), Json(Order { id, quantity: 2, unit_price_cents: 150 }))
            .await
            .unwrap();
    }
    let invoices = broker.consume("invoices", 3, Duration::from_secs(30)).await.unwrap();
    let mut got: Vec<Invoice> = invoices.iter().map(|r| serde_json::from_slice(r.value().unwrap()).unwrap()).collect();
    got.sort_by_key(|i| i.order_id);
    assert_eq!(got, (1..=3).map(|id| Invoice { order_id: id, total_cents: 300 }).collect::<Vec<_>>());
    assert!(invoices.iter().all(|r| r.key().unwrap() == b"alice"));
    app.shutdown().await;
}
