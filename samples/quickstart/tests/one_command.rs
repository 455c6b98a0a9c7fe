//! The quickstart binary as a user runs it (`cargo run -p spate-quickstart`): it starts the bundled broker, handles
//! the orders it sends, and stops cleanly on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn runs_with_one_command_and_stops_gracefully_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate-quickstart"))
        .env("RUST_LOG", "info")
        .env_remove("QUICKSTART_BOOTSTRAP")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut invoices = 0;
    while invoices < 5 {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap();
        if line.contains("invoice issued") {
            invoices += 1;
        }
    }
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let mut stopped = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        stopped |= line.contains("application stopped");
    }
    let exit = child.wait().unwrap();
    assert!(stopped, "graceful shutdown logged");
    assert!(exit.success(), "{exit:?}");
}
