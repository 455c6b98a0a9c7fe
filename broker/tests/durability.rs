//! Data survives restarts, kill -9 and damaged files: what was acknowledged (with fsync per produce) is there
//! after the broker comes back, and a torn or corrupt tail is cut, never served.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::{consume, produce, value_str, BrokerProcess, TestBroker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_restart_serves_every_record_and_continues_the_offsets() {
    let mut b = TestBroker::start().await;
    b.create_topic("keep", 2, &[]).await;
    let records: Vec<_> = (0..1000).map(|i| (Some("k"), format!("v{i}"))).collect();
    produce(&b.producer(&[]), "keep", &records).await;
    b.restart(|_| {}).await;
    let c = b.consumer(&[]);
    let got = consume(&c, "keep", &[0, 1], 1000, Duration::from_secs(30));
    assert_eq!(got.iter().map(value_str).collect::<Vec<_>>(), records.iter().map(|r| r.1.clone()).collect::<Vec<_>>());
    let next = produce(&b.producer(&[]), "keep", &[(Some("k"), "after".into())]).await;
    assert_eq!(next[0].1, 1000);
    b.shutdown().await;
}

fn segment_path(dir: &std::path::Path, topic: &str) -> std::path::PathBuf {
    dir.join(format!("{topic}-0")).join("00000000000000000000.log")
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_after_the_last_batch_is_cut_at_restart() {
    let mut b = TestBroker::start().await;
    b.create_topic("torn", 1, &[]).await;
    let records: Vec<_> = (0..50).map(|i| (None, format!("r{i}"))).collect();
    produce(&b.producer(&[]), "torn", &records).await;
    let dir = b.dir.path().to_path_buf();
    if let Some(broker) = b.broker.take() {
        broker.shutdown().await.unwrap();
    }
    // A torn write: half a batch header and noise at the end of the active segment, and the clean-shutdown
    // marker gone, as after a crash.
    let mut f = std::fs::OpenOptions::new().append(true).open(segment_path(&dir, "torn")).unwrap();
    f.write_all(&[0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 7, 7, 7]).unwrap();
    drop(f);
    let _ = std::fs::remove_file(dir.join(".kafka_cleanshutdown"));
    b.restart(|_| {}).await;
    let c = b.consumer(&[]);
    assert_eq!(c.fetch_watermarks("torn", 0, Duration::from_secs(10)).unwrap(), (0, 50));
    let next = produce(&b.producer(&[]), "torn", &[(None, "after".into())]).await;
    assert_eq!(next[0].1, 50);
    let got = consume(&c, "torn", &[0], 51, Duration::from_secs(20));
    assert_eq!(got.len(), 51);
    assert_eq!(value_str(&got[50]), "after");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_last_batch_is_dropped_and_the_rest_is_served() {
    let mut b = TestBroker::start().await;
    b.create_topic("rot", 1, &[]).await;
    let p = b.producer(&[("linger.ms", "0")]);
    for i in 0..5 {
        produce(&p, "rot", &[(None, format!("batch{i}"))]).await;
    }
    let dir = b.dir.path().to_path_buf();
    if let Some(broker) = b.broker.take() {
        broker.shutdown().await.unwrap();
    }
    let path = segment_path(&dir, "rot");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let _ = std::fs::remove_file(dir.join(".kafka_cleanshutdown"));
    b.restart(|_| {}).await;
    let c = b.consumer(&[]);
    assert_eq!(c.fetch_watermarks("rot", 0, Duration::from_secs(10)).unwrap(), (0, 4));
    let got = consume(&c, "rot", &[0], 4, Duration::from_secs(20));
    assert_eq!(got.iter().map(value_str).collect::<Vec<_>>(), vec!["batch0", "batch1", "batch2", "batch3"]);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_dash_nine_mid_produce_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<String> = Vec::new();
    for round in 0..3 {
        let mut proc = BrokerProcess::spawn(dir.path(), &["--flush-every-produce"]);
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &proc.bootstrap)
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", "5000")
            .create()
            .unwrap();
        let mut inflight = Vec::new();
        for i in 0..3000 {
            let v = format!("r{round}-{i}");
            let f = producer.send_result(FutureRecord::<(), _>::to("crash").payload(&v).partition(0));
            if let Ok(f) = f {
                inflight.push((v, f));
            }
            if i == 1500 {
                // Mid-stream: let some acknowledgements arrive, then pull the plug.
                tokio::time::sleep(Duration::from_millis(50)).await;
                proc.child.kill().expect("kill -9");
                let _ = proc.child.wait();
            }
        }
        for (v, f) in inflight {
            if let Ok(Ok(_)) = f.await {
                acked.push(v);
            }
        }
    }
    let proc = BrokerProcess::spawn(dir.path(), &["--flush-every-produce"]);
    let c: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &proc.bootstrap)
        .set("group.id", "verify")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, hi) = c.fetch_watermarks("crash", 0, Duration::from_secs(10)).unwrap();
    let got = consume(&c, "crash", &[0], hi as usize, Duration::from_secs(60));
    assert_eq!(got.len() as i64, hi, "every offset below the high watermark is readable");
    let present: std::collections::HashSet<String> = got.iter().map(value_str).collect();
    let missing: Vec<_> = acked.iter().filter(|v| !present.contains(*v)).collect();
    assert!(!acked.is_empty(), "some records were acknowledged");
    assert!(
        missing.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let offsets: Vec<i64> = got.iter().map(|m| m.offset()).collect();
    assert_eq!(offsets, (0..hi).collect::<Vec<_>>());
    let mut proc = proc;
    let _ = proc.child.kill();
    let _ = proc.child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_broker_on_the_same_data_dir_refuses_to_start_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = BrokerProcess::spawn(dir.path(), &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spate-broker"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second broker started: {stderr}");
    assert!(stderr.contains("in use by another broker"), "unclear error: {stderr}");
    // The first one is unharmed and, once it is gone, the directory is free again (also after kill -9).
    first.kill();
    let mut again = BrokerProcess::spawn(dir.path(), &[]);
    again.kill();
}
