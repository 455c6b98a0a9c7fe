//! Runs the built `spate` binary against a real broker: Spate's own, started in this test process, or, when
//! `SPATE_CLI_TEST_BOOTSTRAP` names one, an external broker such as the reference Apache Kafka from
//! `scripts/reference-kafka`, so the same tests show that both behave alike.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use spate_broker::{Broker, BrokerConfig};

pub struct TestBroker {
    pub bootstrap: String,
    running: Option<(tokio::runtime::Runtime, Broker, tempfile::TempDir)>,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        if let Ok(bootstrap) = std::env::var("SPATE_CLI_TEST_BOOTSTRAP") {
            return TestBroker { bootstrap, running: None };
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
        let broker = runtime.block_on(Broker::start(BrokerConfig::for_tests(dir.path()))).expect("the broker starts");
        TestBroker { bootstrap: broker.bootstrap_servers(), running: Some((runtime, broker, dir)) }
    }

    /// `spate ARGS` against this broker.
    pub fn spate(&self, args: &[&str]) -> Output {
        self.spate_with_input(args, "")
    }

    /// `spate ARGS` with `input` on standard input.
    pub fn spate_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut command = spate_command();
        command.env("SPATE_BOOTSTRAP_SERVERS", &self.bootstrap).args(args);
        run(command, input)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some((runtime, broker, _dir)) = self.running.take() {
            if let Err(e) = runtime.block_on(broker.shutdown()) {
                eprintln!("broker shutdown failed: {e}");
            }
        }
    }
}

/// The `spate` binary with an environment that cannot leak into the test: no inherited broker settings.
pub fn spate_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spate"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().to_string();
        if key.starts_with("SPATE_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

pub fn run(mut command: Command, input: &str) -> Output {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn spate");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for spate")
}

/// A topic name no other test (or earlier run against an external broker) uses.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Asserts success and returns standard output, showing everything the command printed when it failed.
#[track_caller]
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "spate failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Asserts the exit code and returns standard error.
#[track_caller]
pub fn fails_with(output: Output, code: i32) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    stderr(&output)
}
