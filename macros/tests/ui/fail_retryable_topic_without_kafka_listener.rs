use spate::retryable_topic;

#[retryable_topic(attempts = 3)]
async fn handler(_body: String) {}

fn main() {}
