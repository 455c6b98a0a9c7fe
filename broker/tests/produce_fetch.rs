//! Produce and fetch through librdkafka: ordering, keys and headers, every compression codec, acks levels, size
//! limits, timestamps, offset look-ups and long polling.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{consume, produce, value_str, TestBroker};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

#[tokio::test(flavor = "multi_thread")]
async fn records_come_back_in_order_with_keys_and_headers() {
    let b = TestBroker::start().await;
    b.create_topic("rt", 3, &[]).await;
    let p = b.producer(&[]);
    let keys: Vec<String> = (0..3000).map(|i| format!("key-{}", i % 17)).collect();
    let values: Vec<String> = (0..3000).map(|i| format!("value-{i}")).collect();
    let mut sends = Vec::new();
    for i in 0..3000 {
        let headers = OwnedHeaders::new().insert(Header { key: "seq", value: Some(i.to_string().as_bytes()) });
        // send_result enqueues now (send is lazy and would go one record per round trip).
        sends.push(p.send_result(FutureRecord::to("rt").key(&keys[i]).payload(&values[i]).headers(headers)).unwrap());
    }
    for s in sends {
        s.await.unwrap().expect("delivered");
    }
    let c = b.consumer(&[]);
    let got = consume(&c, "rt", &[0, 1, 2], 3000, Duration::from_secs(30));
    assert_eq!(got.len(), 3000);
    for part in 0..3 {
        let msgs: Vec<_> = got.iter().filter(|m| m.partition() == part).collect();
        let offsets: Vec<i64> = msgs.iter().map(|m| m.offset()).collect();
        assert_eq!(offsets, (0..msgs.len() as i64).collect::<Vec<_>>(), "dense offsets in partition {part}");
        let seqs: Vec<i64> = msgs
            .iter()
            .map(|m| {
                let h = m.headers().unwrap().get(0);
                String::from_utf8_lossy(h.value.unwrap()).parse().unwrap()
            })
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, sorted, "order kept in partition {part}");
    }
    let mut key_partition = std::collections::HashMap::new();
    for m in &got {
        let k = m.key().unwrap().to_vec();
        assert_eq!(*key_partition.entry(k).or_insert(m.partition()), m.partition(), "one key, one partition");
    }
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_compression_codec_round_trips() {
    let b = TestBroker::start().await;
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("comp-{codec}");
        b.create_topic(&topic, 1, &[]).await;
        let p = b.producer(&[("compression.type", codec), ("batch.num.messages", "500")]);
        let records: Vec<_> = (0..2000).map(|i| (None, format!("{codec}-{i}-{}", "x".repeat(100)))).collect();
        produce(&p, &topic, &records).await;
        let c = b.consumer(&[]);
        let got = consume(&c, &topic, &[0], 2000, Duration::from_secs(30));
        assert_eq!(
            got.iter().map(value_str).collect::<Vec<_>>(),
            records.iter().map(|r| r.1.clone()).collect::<Vec<_>>()
        );
        assert_eq!(got.iter().map(|m| m.offset()).collect::<Vec<_>>(), (0..2000).collect::<Vec<_>>());
    }
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_zero_one_and_all_all_deliver() {
    let b = TestBroker::start().await;
    b.create_topic("acks", 1, &[]).await;
    for acks in ["0", "1", "all"] {
        let p = b.producer(&[("acks", acks)]);
        produce(&p, "acks", &[(None, format!("acks-{acks}"))]).await;
    }
    let c = b.consumer(&[]);
    let got = consume(&c, "acks", &[0], 3, Duration::from_secs(20));
    assert_eq!(got.iter().map(value_str).collect::<Vec<_>>(), vec!["acks-0", "acks-1", "acks-all"]);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_over_max_message_bytes_is_refused_and_nothing_is_written() {
    let b = TestBroker::start().await;
    b.create_topic("small", 1, &[("max.message.bytes", "200000")]).await;
    let p = b.producer(&[("message.max.bytes", "10000000"), ("compression.type", "none")]);
    produce(&p, "small", &[(None, "a".repeat(150_000))]).await;
    let big = "b".repeat(400_000);
    let err = p.send(FutureRecord::<(), _>::to("small").payload(&big), Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(err.0.rdkafka_error_code(), Some(rdkafka::error::RDKafkaErrorCode::MessageSizeTooLarge));
    let c = b.consumer(&[]);
    assert_eq!(c.fetch_watermarks("small", 0, Duration::from_secs(10)).unwrap(), (0, 1));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_for_times_finds_the_first_record_at_or_after() {
    let b = TestBroker::start().await;
    b.create_topic("ts", 1, &[]).await;
    let p = b.producer(&[]);
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 100_000;
    for i in 0..10 {
        let v = format!("t{i}");
        p.send(FutureRecord::<(), _>::to("ts").payload(&v).timestamp(base + i * 1000), Duration::from_secs(30))
            .await
            .unwrap();
    }
    let c = b.consumer(&[]);
    assert_eq!(c.fetch_watermarks("ts", 0, Duration::from_secs(10)).unwrap(), (0, 10));
    let mut q = TopicPartitionList::new();
    q.add_partition_offset("ts", 0, Offset::Offset(base + 4500)).unwrap();
    let found = c.offsets_for_times(q, Duration::from_secs(10)).unwrap();
    assert_eq!(found.elements()[0].offset(), Offset::Offset(5));
    let mut q = TopicPartitionList::new();
    q.add_partition_offset("ts", 0, Offset::Offset(base + 999_999)).unwrap();
    let found = c.offsets_for_times(q, Duration::from_secs(10)).unwrap();
    assert_eq!(found.elements()[0].offset(), Offset::End, "no record that late");
    let got = consume(&c, "ts", &[0], 10, Duration::from_secs(20));
    let stamps: Vec<i64> = got.iter().map(|m| m.timestamp().to_millis().unwrap()).collect();
    assert_eq!(stamps, (0..10).map(|i| base + i * 1000).collect::<Vec<_>>());
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn log_append_time_topics_stamp_records_with_the_broker_clock() {
    let b = TestBroker::start().await;
    b.create_topic("lat", 1, &[("message.timestamp.type", "LogAppendTime")]).await;
    let p = b.producer(&[]);
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    p.send(FutureRecord::<(), _>::to("lat").payload("x").timestamp(1000), Duration::from_secs(30)).await.unwrap();
    let c = b.consumer(&[]);
    let got = consume(&c, "lat", &[0], 1, Duration::from_secs(20));
    match got[0].timestamp() {
        rdkafka::Timestamp::LogAppendTime(t) => assert!(t >= before, "{t} < {before}"),
        other => panic!("expected LogAppendTime, got {other:?}"),
    }
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_fetch_returns_as_soon_as_data_arrives() {
    let b = TestBroker::start().await;
    b.create_topic("poll", 1, &[]).await;
    let c = b.consumer(&[("fetch.wait.max.ms", "10000"), ("fetch.min.bytes", "1")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("poll", 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    // Let the consumer park its first fetch on the empty partition.
    let _ = c.poll(Duration::from_millis(1500));
    let p = b.producer(&[("linger.ms", "0")]);
    let sent = Instant::now();
    produce(&p, "poll", &[(None, "wake".into())]).await;
    let mut got = None;
    while sent.elapsed() < Duration::from_secs(9) && got.is_none() {
        got = c.poll(Duration::from_millis(100)).map(|m| m.unwrap().detach());
    }
    assert!(got.is_some(), "record not delivered before the 10 s fetch wait expired");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_from_the_middle_of_a_batch_yields_the_rest_of_it() {
    let b = TestBroker::start().await;
    b.create_topic("mid", 1, &[]).await;
    let p = b.producer(&[("linger.ms", "100"), ("batch.num.messages", "1000")]);
    let records: Vec<_> = (0..100).map(|i| (None, format!("m{i}"))).collect();
    produce(&p, "mid", &records).await;
    let c = b.consumer(&[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("mid", 0, Offset::Offset(37)).unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < 63 && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            got.push(m.unwrap().offset());
        }
    }
    assert_eq!(got, (37..100).collect::<Vec<_>>());
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fetching_past_the_end_is_offset_out_of_range_and_resets() {
    let b = TestBroker::start().await;
    b.create_topic("oor", 1, &[]).await;
    produce(&b.producer(&[]), "oor", &[(None, "a".into()), (None, "b".into())]).await;
    let c = b.consumer(&[("auto.offset.reset", "earliest")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("oor", 0, Offset::Offset(1000)).unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < 2 && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            got.push(m.offset());
        }
    }
    assert_eq!(got, vec![0, 1], "auto.offset.reset=earliest after OFFSET_OUT_OF_RANGE");
    b.shutdown().await;
}
