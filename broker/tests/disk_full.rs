//! A full disk, seen by a real client: produce fails with KAFKA_STORAGE_ERROR, everything written before stays
//! readable, the broker keeps serving, and produce works again once space is freed. The data dir is a real 4 MiB
//! tmpfs; mounting needs root, so as another user the test says why it cannot run and fails unless
//! SPATE_SKIP_MOUNT_TESTS=1 asks to skip it.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{consume, value_str};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use spate_broker::{Broker, BrokerConfig};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { path: dir.path().to_path_buf(), _dir: dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                if std::env::var("SPATE_SKIP_MOUNT_TESTS").as_deref() == Ok("1") {
                    eprintln!("skipping: cannot mount a tmpfs ({why})");
                    None
                } else {
                    panic!("cannot mount a tmpfs for the disk-full test ({why}); run as root or set SPATE_SKIP_MOUNT_TESTS=1");
                }
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_produce_keeps_serving_and_recovers_when_space_returns() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let data = fs.path.join("data");
    let mut config = BrokerConfig::for_tests(&data);
    config.log_segment_bytes = 64 * 1024 * 1024;
    let broker = Broker::start(config).await.unwrap();
    let bootstrap = broker.bootstrap_servers();
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
    admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new("full", 1, rdkafka::admin::TopicReplication::Fixed(1))],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await
        .unwrap();
    // Take most of the space away, leaving room for a few hundred KiB of records.
    let filler = fs.path.join("filler");
    let status = Command::new("fallocate").args(["-l", "3400k"]).arg(&filler).status().unwrap();
    assert!(status.success());

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("retries", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    let value = "x".repeat(10_000);
    let mut acked = 0usize;
    let mut storage_error = None;
    for _ in 0..200 {
        match producer.send(FutureRecord::<(), _>::to("full").payload(&value), Duration::from_secs(10)).await {
            Ok(_) => acked += 1,
            Err((e, _)) => {
                storage_error = Some(e);
                break;
            }
        }
    }
    let err = storage_error.expect("the disk never filled up");
    assert_eq!(err.rdkafka_error_code(), Some(rdkafka::error::RDKafkaErrorCode::KafkaStorageError), "{err}");
    assert!(acked > 0, "nothing fitted before the disk filled");

    // Everything acknowledged is still served.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "disk-full")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let got = consume(&consumer, "full", &[0], acked, Duration::from_secs(30));
    assert_eq!(got.len(), acked);
    assert_eq!(consumer.fetch_watermarks("full", 0, Duration::from_secs(10)).unwrap(), (0, acked as i64));

    // Space returns: produce works again, at the next offset.
    std::fs::remove_file(&filler).unwrap();
    let mut resumed = None;
    for _ in 0..50 {
        match producer.send(FutureRecord::<(), _>::to("full").payload("after"), Duration::from_secs(10)).await {
            Ok(d) => {
                resumed = Some(d.offset);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert_eq!(resumed, Some(acked as i64), "produce did not resume at the next offset after space returned");
    let all = consume(&consumer, "full", &[0], acked + 1, Duration::from_secs(30));
    assert_eq!(value_str(all.last().unwrap()), "after");
    broker.shutdown().await.unwrap();
}
