//! Shared set-up for the broker's integration tests: a real broker in-process on a free port, and real
//! librdkafka clients (through rdkafka) pointed at it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use spate_broker::{Broker, BrokerConfig};
use tempfile::TempDir;

pub struct TestBroker {
    pub broker: Option<Broker>,
    pub dir: TempDir,
    pub bootstrap: String,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = BrokerConfig::for_tests(dir.path());
        tune(&mut config);
        let broker = Broker::start(config).await.expect("broker starts");
        let bootstrap = broker.bootstrap_servers();
        TestBroker { broker: Some(broker), dir, bootstrap }
    }

    /// Shuts down cleanly and starts again on the same data dir (and a new port).
    pub async fn restart(&mut self, tune: impl FnOnce(&mut BrokerConfig)) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await.expect("clean shutdown");
        }
        let mut config = BrokerConfig::for_tests(self.dir.path());
        tune(&mut config);
        let broker = Broker::start(config).await.expect("broker restarts");
        self.bootstrap = broker.bootstrap_servers();
        self.broker = Some(broker);
    }

    pub fn admin(&self) -> AdminClient<DefaultClientContext> {
        ClientConfig::new().set("bootstrap.servers", &self.bootstrap).create().expect("admin client")
    }

    pub fn producer(&self, extra: &[(&str, &str)]) -> FutureProducer {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap).set("linger.ms", "5").set("acks", "all");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().expect("producer")
    }

    pub fn consumer(&self, extra: &[(&str, &str)]) -> BaseConsumer {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("t-{}", uuid_like()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().expect("consumer")
    }

    pub async fn create_topic(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            t = t.set(k, v);
        }
        let res = self.admin().create_topics(&[t], &AdminOptions::new()).await.expect("create_topics");
        for r in res {
            r.expect("topic created");
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await.expect("clean shutdown");
        }
    }
}

pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{:x}{}", t, N.fetch_add(1, Ordering::Relaxed))
}

/// Sends `(key, value)` records and waits for every delivery; returns (partition, offset) per record.
///
/// Records are enqueued at once with `send_result` (`FutureProducer::send` is lazy: collecting its futures and
/// awaiting them one by one would send one record per round trip), so librdkafka batches them as an application
/// would.
pub async fn produce(p: &FutureProducer, topic: &str, records: &[(Option<&str>, String)]) -> Vec<(i32, i64)> {
    let mut futures = Vec::new();
    for (k, v) in records {
        let mut r = FutureRecord::to(topic).payload(v.as_bytes());
        if let Some(k) = k {
            r = r.key(k.as_bytes());
        }
        loop {
            match p.send_result(r) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((e, back)) if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) => {
                    r = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => panic!("cannot enqueue: {e}"),
            }
        }
    }
    let mut out = Vec::new();
    for f in futures {
        let delivered = f.await.expect("delivery future").expect("delivered");
        out.push((delivered.partition, delivered.offset));
    }
    out
}

/// Reads `n` messages from the given partitions from offset 0, with a deadline.
pub fn consume(c: &BaseConsumer, topic: &str, partitions: &[i32], n: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning).expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n && std::time::Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m: BorrowedMessage = m.expect("no consume error");
            got.push(m.detach());
        }
    }
    got
}

pub fn value_str(m: &OwnedMessage) -> String {
    String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string()
}

/// Sends raw bytes on a new connection and returns whatever comes back before the peer closes or 2 s pass.
pub fn raw_exchange(bootstrap: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(bootstrap).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // One response is all these tests wait for.
                if out.len() >= 4 {
                    let len = i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
                    if out.len() >= 4 + len {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    out
}

/// A request frame with a v1 header (api key, version, correlation id, client id "raw").
pub fn frame(api_key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&api_key.to_be_bytes());
    msg.extend_from_slice(&version.to_be_bytes());
    msg.extend_from_slice(&correlation.to_be_bytes());
    msg.extend_from_slice(&3i16.to_be_bytes());
    msg.extend_from_slice(b"raw");
    msg.extend_from_slice(body);
    let mut out = (msg.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&msg);
    out
}

/// A `spate-broker` process, for tests that SIGKILL the broker and restart it on the same data directory.
pub struct BrokerProcess {
    pub child: std::process::Child,
    pub bootstrap: String,
}

impl BrokerProcess {
    /// Starts `spate-broker` on a free port with `extra` arguments and waits for its "listening on" line.
    pub fn spawn(dir: &std::path::Path, extra: &[&str]) -> BrokerProcess {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spate-broker"));
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        die_with_the_test(&mut cmd);
        let mut child = cmd.spawn().expect("spawn spate-broker");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the listening line");
        let bootstrap = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
        BrokerProcess { child, bootstrap }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a child process get SIGKILL when the test thread that spawned it ends, so a failed or timed-out
/// test never leaves a broker running that keeps CI's output pipe open.
pub fn die_with_the_test(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
