//! exactly_once_v2 against the embedded broker: a count-per-key application in a child process (this test binary
//! re-executed) is SIGKILLed at random points while input keeps arriving, and restarted; for a read_committed
//! reader the output is what an uninterrupted run gives — per key, the counts 1, 2, ..., n, each once — because
//! outputs, changelog writes and consumed offsets commit in one transaction and a restarted instance rebuilds
//! its (persistent) store from the committed changelog.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use spate::test::EmbeddedBroker;
use spate_streams::{
    DslStoreType, KafkaStreams, Materialized, ProcessingGuarantee, State, StreamsBuilder, StreamsConfig,
};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

const CHILD_ENV: &str = "SPATE_STREAMS_EOS_CHILD";
const KEYS: usize = 10;
const RECORDS: usize = 3000;

/// The application under test, run until killed. Its state dir survives the kills (the parent passes it).
#[test]
#[ignore = "child process of counts_are_exactly_once_when_the_application_is_killed_at_random_points"]
fn child_eos_count_app() {
    let Ok(args) = std::env::var(CHILD_ENV) else { return };
    let (bootstrap, state_dir) = args.split_once('|').unwrap();
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("eos-in")
        .group_by_key()
        .count_with(Materialized::as_("eos-counts").with_store_type(DslStoreType::Persistent))
        .to_stream()
        .to("eos-counts-out");
    let config = StreamsConfig::new("eos-app")
        .bootstrap_servers(bootstrap)
        .state_dir(state_dir)
        .processing_guarantee(ProcessingGuarantee::ExactlyOnceV2)
        .instance_id("child")
        .client_property("session.timeout.ms", "6000")
        .client_property("heartbeat.interval.ms", "500")
        .client_property("fetch.wait.max.ms", "50");
    let mut streams = KafkaStreams::new(builder.build(), config);
    streams.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while streams.state() != State::Running && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1));
        assert_ne!(streams.state(), State::Error, "{:?}", streams.error());
    }
}

fn die_with_the_test(cmd: &mut Command) {
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

/// Starts a child; `ready` once its threads run (false if it did not get there within 90 s).
async fn spawn_child(bootstrap: &str, state_dir: &std::path::Path) -> (Child, bool) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_eos_count_app", "--ignored", "--nocapture"])
        .env(CHILD_ENV, format!("{bootstrap}|{}", state_dir.display()))
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("SPATE_EOS_DEBUG").is_some() { Stdio::inherit() } else { Stdio::null() });
    die_with_the_test(&mut cmd);
    // Spawned from a runtime worker thread, which lives as long as the test.
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let ready = BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l.contains("ready"));
        let _ = tx.send(ready);
    });
    let ready = matches!(tokio::time::timeout(Duration::from_secs(90), rx).await, Ok(Ok(true)));
    (child, ready)
}

async fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exactly_once_when_the_application_is_killed_at_random_points() {
    let seed = std::env::var("SPATE_EOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    eprintln!("SPATE_EOS_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let broker = EmbeddedBroker::builder().topic("eos-in", 3).topic("eos-counts-out", 3).start().await.unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    let state = tempfile::tempdir().unwrap();

    // Input keeps arriving while incarnations are killed: 3000 records over a few seconds.
    let template: spate::KafkaTemplate<String, String> = broker.template();
    let feeder = tokio::spawn(async move {
        for batch in 0..(RECORDS / 100) {
            let sends: Vec<_> = (0..100)
                .map(|i| template.send("eos-in", Some(format!("k{}", (batch * 100 + i) % KEYS)), "x".to_string()))
                .collect();
            for r in futures::future::join_all(sends).await {
                r.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });

    let rounds = 3;
    let mut ready_rounds = 0;
    for round in 0..rounds {
        let (child, ready) = spawn_child(&bootstrap, state.path()).await;
        ready_rounds += usize::from(ready);
        let pause = 100 + rng.u64(..1500);
        eprintln!("round {round}: ready = {ready}, killing after {pause} ms");
        if ready {
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        kill(child).await;
    }
    assert!(ready_rounds > 0, "seed {seed}: no incarnation ever ran");
    feeder.await.unwrap();

    // A last incarnation runs until the output caught up.
    let (child, _) = spawn_child(&bootstrap, state.path()).await;
    let out = read(&bootstrap, "eos-counts-out", RECORDS, true).await;
    kill(child).await;

    let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for o in &out {
        per_key.entry(o.key_str()).or_default().push(o.value_i64());
    }
    assert_eq!(per_key.len(), KEYS);
    for (k, counts) in &per_key {
        let expected: Vec<i64> = (1..=(RECORDS / KEYS) as i64).collect();
        assert_eq!(counts, &expected, "seed {seed}: key {k} (a gap is a lost update, a repeat a duplicate)");
    }
    assert_eq!(out.len(), RECORDS, "seed {seed}");
}
