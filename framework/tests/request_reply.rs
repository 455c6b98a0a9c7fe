//! Request/reply against the embedded broker: `ReplyingKafkaTemplate::send_and_receive` with a `#[send_to]`
//! listener that answers on the request's `kafka_replyTopic` with its `kafka_correlationId`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use spate::kafka_headers::CORRELATION_ID;
use spate::test::{wait_for_assignment, wait_until, EmbeddedBroker};
use spate::{kafka_listener, Headers, KafkaTemplate, ProducerRecord, ReplyError, ReplyingKafkaTemplate};

#[kafka_listener(topics = "rr-requests", group_id = "rr-replier", id = "rr-replier", concurrency = 3)]
#[send_to("rr-static-replies")]
async fn answer(request: String) -> String {
    format!("{request}:answered")
}

#[kafka_listener(topics = "rr-silent", group_id = "rr-silent", id = "rr-silent")]
#[send_to("rr-static-replies")]
async fn never_answer(_request: String) -> Option<String> {
    None
}

async fn replying(broker: &EmbeddedBroker, reply_topic: &str) -> ReplyingKafkaTemplate<String, String, String> {
    let template: KafkaTemplate<String, String> = broker.template();
    ReplyingKafkaTemplate::builder(template, reply_topic).start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_their_own_reply() {
    common::init_tracing();
    let broker = EmbeddedBroker::builder()
        .topic("rr-requests", 3)
        .topic("rr-replies", 2)
        .topic("rr-static-replies", 1)
        .start()
        .await
        .unwrap();
    let app = broker.app().listener(answer::definition()).start().await.unwrap();
    wait_for_assignment(&app.container("rr-replier").unwrap(), 3, common::WAIT).await.unwrap();
    let replying = replying(&broker, "rr-replies").await;

    let requests = (0..200).map(|i| {
        let r = replying.clone();
        async move {
            let request = ProducerRecord::new("rr-requests", format!("req-{i}")).key(format!("k{}", i % 17));
            (i, r.send_and_receive(request, Duration::from_secs(60)).await)
        }
    });
    let replies = futures::future::join_all(requests).await;
    for (i, reply) in replies {
        assert_eq!(reply.unwrap(), format!("req-{i}:answered"));
    }
    assert_eq!(replying.pending_requests(), 0);
    assert_eq!(replying.unmatched_replies(), 0);
    // The request's reply topic won over the listener's static #[send_to] topic.
    assert!(broker.consume("rr-static-replies", 1, Duration::from_secs(2)).await.is_err());
    drop(replying);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_carries_the_correlation_id_and_lands_on_the_requested_partition() {
    let broker = EmbeddedBroker::builder()
        .topic("rr-requests", 3)
        .topic("rr-partitioned-replies", 3)
        .topic("rr-static-replies", 1)
        .start()
        .await
        .unwrap();
    let app = broker.app().listener(answer::definition()).start().await.unwrap();
    let template: KafkaTemplate<String, String> = broker.template();
    let replying: ReplyingKafkaTemplate<String, String, String> =
        ReplyingKafkaTemplate::builder(template, "rr-partitioned-replies").reply_partition(2).start().await.unwrap();
    for i in 0..5 {
        let reply = replying
            .send_and_receive_record(ProducerRecord::new("rr-requests", format!("p{i}")), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(reply.partition(), 2);
        assert_eq!(reply.value().unwrap(), format!("p{i}:answered").as_bytes());
        assert_eq!(reply.headers().get(CORRELATION_ID).map(<[u8]>::len), Some(16));
    }
    drop(replying);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_answers_times_out_and_is_forgotten() {
    let broker = EmbeddedBroker::builder()
        .topic("rr-silent", 1)
        .topic("rr-silent-replies", 1)
        .topic("rr-static-replies", 1)
        .start()
        .await
        .unwrap();
    let app = broker.app().listener(never_answer::definition()).start().await.unwrap();
    let replying = replying(&broker, "rr-silent-replies").await;
    let started = Instant::now();
    let err = replying
        .send_and_receive(ProducerRecord::new("rr-silent", "hello?".to_string()), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(2));
    match err {
        ReplyError::Timeout { reply_topic, timeout, correlation_id } => {
            assert_eq!(reply_topic, "rr-silent-replies");
            assert_eq!(timeout, Duration::from_secs(2));
            assert_eq!(correlation_id.len(), 32);
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert_eq!(replying.pending_requests(), 0);
    drop(replying);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_an_unknown_correlation_is_dropped() {
    let broker = EmbeddedBroker::builder()
        .topic("rr-requests", 3)
        .topic("rr-stray-replies", 1)
        .topic("rr-static-replies", 1)
        .start()
        .await
        .unwrap();
    let app = broker.app().listener(answer::definition()).start().await.unwrap();
    let replying = replying(&broker, "rr-stray-replies").await;
    let mut headers = Headers::new();
    headers.insert(CORRELATION_ID, vec![0xab; 16]);
    broker.produce_to("rr-stray-replies", 0, None, "stray", headers).await.unwrap();
    wait_until(common::WAIT, "the stray reply to be seen", || replying.unmatched_replies() == 1).await.unwrap();
    assert_eq!(replying.pending_requests(), 0);
    // The template keeps working, and the stray reply was never handed to a caller.
    let reply = replying
        .send_and_receive(ProducerRecord::new("rr-requests", "real".to_string()), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(reply, "real:answered");
    assert_eq!(replying.unmatched_replies(), 1);
    drop(replying);
    app.shutdown().await;
}
