//! Configuration: files, profiles, environment, named clusters, librdkafka pass-through, and errors that name the
//! key and where it came from.
#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

/// Tests that touch the process environment run one at a time.
static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

use spate::config::{Acks, AutoOffsetReset, CompressionType};
use spate::{AckMode, ConfigError, ConfigLoader};

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

#[test]
fn toml_file_with_spring_boot_names() {
    let d = dir_with(&[(
        "spate.toml",
        r#"
[kafka]
bootstrap_servers = "k1:9092,k2:9092"
properties = { "socket.keepalive.enable" = true }
[kafka.consumer]
group_id = "billing"
auto_offset_reset = "latest"
max_poll_records = 100
[kafka.producer]
acks = "all"
linger_ms = 5
compression_type = "zstd"
[kafka.listener]
concurrency = 3
ack_mode = "MANUAL_IMMEDIATE"
[app]
topic = "orders"
"#,
    )]);
    let c = ConfigLoader::new().without_env().dir(d.path()).load().unwrap();
    let k = c.kafka();
    assert_eq!(k.bootstrap_servers, "k1:9092,k2:9092");
    assert_eq!(k.consumer.group_id.as_deref(), Some("billing"));
    assert_eq!(k.consumer.auto_offset_reset, Some(AutoOffsetReset::Latest));
    assert_eq!(k.consumer.max_poll_records, Some(100));
    assert_eq!(k.producer.acks, Some(Acks::All));
    assert_eq!(k.producer.compression_type, Some(CompressionType::Zstd));
    assert_eq!(k.listener.concurrency, 3);
    assert_eq!(k.listener.ack_mode, AckMode::ManualImmediate);
    assert_eq!(k.properties.get("socket.keepalive.enable").unwrap().to_string(), "true");
    assert_eq!(c.get_string("app.topic").as_deref(), Some("orders"));
}

#[test]
fn yaml_file_and_profile_override() {
    let d = dir_with(&[
        ("spate.yaml", "kafka:\n  bootstrap_servers: base:9092\n  consumer:\n    group_id: base\n"),
        ("spate-dev.toml", "[kafka.consumer]\ngroup_id = \"dev\"\n"),
    ]);
    let base = ConfigLoader::new().without_env().dir(d.path()).load().unwrap();
    assert_eq!(base.kafka().consumer.group_id.as_deref(), Some("base"));
    let dev = ConfigLoader::new().without_env().dir(d.path()).profile("dev").load().unwrap();
    assert_eq!(dev.kafka().consumer.group_id.as_deref(), Some("dev"));
    assert_eq!(dev.kafka().bootstrap_servers, "base:9092");
}

#[test]
fn unknown_key_fails_naming_key_and_file() {
    let d = dir_with(&[("spate.toml", "[kafka.consumer]\ngroup_idd = \"x\"\n")]);
    let err = ConfigLoader::new().without_env().dir(d.path()).load().unwrap_err();
    let msg = err.to_string();
    match &err {
        ConfigError::Invalid { key, origin, .. } => {
            assert_eq!(key, "kafka.consumer.group_idd", "{msg}");
            assert!(origin.contains("spate.toml"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_value_fails_naming_key_and_file() {
    let d = dir_with(&[("spate-prod.yaml", "kafka:\n  producer:\n    acks: sometimes\n")]);
    let err = ConfigLoader::new().without_env().dir(d.path()).profile("prod").load().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("kafka.producer.acks") && msg.contains("spate-prod.yaml") && msg.contains("sometimes"),
        "{msg}"
    );
    let d = dir_with(&[("spate.toml", "[kafka.listener]\nconcurrency = \"many\"\n")]);
    let msg = ConfigLoader::new().without_env().dir(d.path()).load().unwrap_err().to_string();
    assert!(msg.contains("kafka.listener.concurrency") && msg.contains("spate.toml"), "{msg}");
}

#[test]
fn listener_observation_is_read_from_files_and_a_bad_value_names_the_key() {
    let d = dir_with(&[("spate.toml", "[kafka.listener]\nobservation_enabled = false\n")]);
    let c = ConfigLoader::new().without_env().dir(d.path()).load().unwrap();
    assert!(!c.kafka().listener.observation_enabled);
    assert!(
        ConfigLoader::new()
            .without_env()
            .dir(tempfile::tempdir().unwrap().path())
            .load()
            .unwrap()
            .kafka()
            .listener
            .observation_enabled
    );
    let d = dir_with(&[("spate.toml", "[kafka.listener]\nobservation_enabled = \"sometimes\"\n")]);
    let msg = ConfigLoader::new().without_env().dir(d.path()).load().unwrap_err().to_string();
    assert!(msg.contains("kafka.listener.observation_enabled") && msg.contains("spate.toml"), "{msg}");
}

#[test]
fn environment_overrides_files_with_relaxed_names() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("SPATE_KAFKA_CONSUMER_GROUP_ID", "from-env");
    std::env::set_var("SPATE_APP__TOPIC", "env-topic");
    std::env::set_var("SPATE_KAFKA__CLUSTERS__EU__BOOTSTRAP_SERVERS", "eu:9092");
    let d = dir_with(&[("spate.toml", "[kafka.consumer]\ngroup_id = \"file\"\n")]);
    let c = ConfigLoader::new().dir(d.path()).load().unwrap();
    std::env::remove_var("SPATE_KAFKA_CONSUMER_GROUP_ID");
    std::env::remove_var("SPATE_APP__TOPIC");
    std::env::remove_var("SPATE_KAFKA__CLUSTERS__EU__BOOTSTRAP_SERVERS");
    assert_eq!(c.kafka().consumer.group_id.as_deref(), Some("from-env"));
    assert_eq!(c.get_string("app.topic").as_deref(), Some("env-topic"));
    assert_eq!(c.kafka().cluster(Some("eu")).unwrap().bootstrap_servers, "eu:9092");
    // Named clusters do not inherit the default cluster's settings.
    assert_eq!(c.kafka().cluster(Some("eu")).unwrap().consumer.group_id, None);
}

#[test]
fn bad_environment_value_names_the_variable() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("SPATE_KAFKA_LISTENER_SHUTDOWN_TIMEOUT_MS", "soon");
    let r = ConfigLoader::new().dir(tempfile::tempdir().unwrap().path()).load();
    std::env::remove_var("SPATE_KAFKA_LISTENER_SHUTDOWN_TIMEOUT_MS");
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("kafka.listener.shutdown_timeout_ms") && msg.contains("SPATE_KAFKA_LISTENER_SHUTDOWN_TIMEOUT_MS"),
        "{msg}"
    );
}

#[test]
fn values_set_in_code_win_over_files() {
    let d = dir_with(&[("spate.toml", "[kafka]\nbootstrap_servers = \"file:9092\"\n")]);
    let c = ConfigLoader::new().without_env().dir(d.path()).set("kafka.bootstrap_servers", "code:9092").load().unwrap();
    assert_eq!(c.kafka().bootstrap_servers, "code:9092");
}

#[test]
fn placeholders_with_defaults() {
    let c = ConfigLoader::new().without_env().set("app.topic", "orders").set("app.n", 3).load().unwrap();
    assert_eq!(c.resolve("${app.topic}-${app.n}", "t").unwrap(), "orders-3");
    assert_eq!(c.resolve("${app.none:dflt}", "t").unwrap(), "dflt");
    let e = c.resolve("${app.none}", "listener `x` attribute `topics`").unwrap_err().to_string();
    assert!(e.contains("app.none") && e.contains("listener `x`"), "{e}");
}

#[tokio::test]
async fn librdkafka_refusing_a_passed_through_property_names_the_configuration_key() {
    let d = dir_with(&[("spate.toml", "[kafka.producer.properties]\n\"linger.mss\" = 5\n")]);
    let err = spate::App::new().without_env().config_dir(d.path()).discover_listeners(false).start().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("kafka.producer.properties.linger.mss"), "{msg}");
}
