//! `spate broker` as a child process: configuration layering and its errors, serving clients, and a clean stop on
//! SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{fails_with, ok, spate_command, stdout};

#[test]
fn unknown_key_in_spate_toml_stops_start_up_and_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spate.toml"), "[broker]\nlog_retension_ms = 1000\n").unwrap();
    let mut command = spate_command();
    command.current_dir(dir.path()).args(["broker", "--listen", "127.0.0.1:0"]);
    let error = fails_with(common::run(command, ""), 1);
    assert!(error.contains("unknown broker setting `log_retension_ms`"), "{error}");
    assert!(error.contains("spate.toml"), "{error}");
    assert!(error.contains("did you mean `log_retention_ms`"), "{error}");
}

#[test]
fn unknown_environment_variable_stops_start_up_and_names_it() {
    let mut command = spate_command();
    command.env("SPATE_BROKER_NO_SUCH_SETTING", "1").args(["broker", "--listen", "127.0.0.1:0"]);
    let error = fails_with(common::run(command, ""), 1);
    assert!(error.contains("environment variable SPATE_BROKER_NO_SUCH_SETTING"), "{error}");
}

#[test]
fn bad_value_in_environment_names_the_variable() {
    let mut command = spate_command();
    command.env("SPATE_BROKER_LOG_RETENTION_MS", "forever").args(["broker", "--print-config"]);
    let error = fails_with(common::run(command, ""), 1);
    assert!(error.contains("`log_retention_ms`"), "{error}");
    assert!(error.contains("SPATE_BROKER_LOG_RETENTION_MS"), "{error}");
}

#[test]
fn missing_config_file_given_explicitly_is_an_error() {
    let mut command = spate_command();
    command.args(["broker", "--config", "/nonexistent/spate.toml"]);
    let error = fails_with(common::run(command, ""), 1);
    assert!(error.contains("/nonexistent/spate.toml does not exist"), "{error}");
}

#[test]
fn settings_layer_defaults_file_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spate.toml"),
        "[broker]\nnode_id = 7\nlog_retention_ms = 1000\nnum_partitions = 4\n[other]\nignored = true\n",
    )
    .unwrap();
    let mut command = spate_command();
    command
        .current_dir(dir.path())
        .env("SPATE_BROKER_LOG_RETENTION_MS", "2000")
        .env("SPATE_BROKER_NUM_PARTITIONS", "5")
        .args(["broker", "--print-config", "--set", "num.partitions=6", "--listen", "127.0.0.1:19999"]);
    let printed: toml::Table = ok(common::run(command, "")).parse().unwrap();
    assert_eq!(printed["node_id"].as_integer(), Some(7), "from the file");
    assert_eq!(printed["log_retention_ms"].as_integer(), Some(2000), "environment over file");
    assert_eq!(printed["num_partitions"].as_integer(), Some(6), "flag over environment");
    assert_eq!(printed["listen"].as_str(), Some("127.0.0.1:19999"));
    assert_eq!(printed["offsets_retention_minutes"].as_integer(), Some(7 * 24 * 60), "built-in default");
}

/// Reads the child's standard error on a thread so the test can wait for a line with a deadline.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn broker_serves_clients_and_shuts_down_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut child = spate_command()
        .args(["broker", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let mut seen = Vec::new();
    let Some(line) = wait_for_line(&lines, "listening on ", &mut seen) else {
        let _ = child.kill();
        panic!("the broker never reported its address:\n{}", seen.join("\n"));
    };
    let address =
        line.split("listening on ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap().to_string();

    let mut create = spate_command();
    create.args(["topics", "create", "served", "--partitions", "2", "--bootstrap-server", &address]);
    let created = common::run(create, "");
    let mut list = spate_command();
    list.args(["topics", "list", "--bootstrap-server", &address]);
    let listed = common::run(list, "");

    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let signalled = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(signalled, 0);
    let stopped = wait_for_line(&lines, "broker stopped", &mut seen);
    let status = child.wait().unwrap();

    assert!(created.status.success(), "create failed: {}", common::stderr(&created));
    assert!(stdout(&listed).lines().any(|l| l == "served"), "{}", stdout(&listed));
    assert!(stopped.is_some(), "no clean stop reported:\n{}", seen.join("\n"));
    assert_eq!(status.code(), Some(0), "{}", seen.join("\n"));
}
