use spate::{dlt_handler, Ack};

#[dlt_handler]
async fn on_dlt(_body: String, _ack: Ack) {}

fn main() {}
