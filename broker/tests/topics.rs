//! Topic administration through librdkafka's admin client: create, describe, alter, grow, delete, and the
//! errors Kafka gives for each mistake.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{produce, TestBroker};
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

#[tokio::test(flavor = "multi_thread")]
async fn created_topic_is_listed_with_its_partitions_and_configs() {
    let b = TestBroker::start().await;
    b.create_topic("orders", 4, &[("retention.ms", "3600000")]).await;
    let c = b.consumer(&[]);
    let md = c.fetch_metadata(Some("orders"), Duration::from_secs(10)).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 4);
    assert!(md.topics()[0].partitions().iter().all(|p| p.leader() == 1));

    let admin = b.admin();
    let described = admin.describe_configs(&[ResourceSpecifier::Topic("orders")], &opts()).await.unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    let retention = resource.get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    let cleanup = resource.get("cleanup.policy").unwrap();
    assert_eq!(cleanup.value.as_deref(), Some("delete"));
    assert_eq!(cleanup.source, ConfigSource::Default);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_an_existing_topic_fails_with_topic_already_exists() {
    let b = TestBroker::start().await;
    b.create_topic("dup", 1, &[]).await;
    let res = b.admin().create_topics(&[NewTopic::new("dup", 1, TopicReplication::Fixed(1))], &opts()).await.unwrap();
    assert_eq!(res[0].as_ref().unwrap_err().1, RDKafkaErrorCode::TopicAlreadyExists);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn illegal_topic_names_are_refused() {
    let b = TestBroker::start().await;
    let long = "a".repeat(250);
    for bad in ["has space", long.as_str(), "..", "bad/slash"] {
        let res = b.admin().create_topics(&[NewTopic::new(bad, 1, TopicReplication::Fixed(1))], &opts()).await.unwrap();
        assert_eq!(res[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidTopic, "{bad}");
    }
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_config_and_bad_value_are_invalid_config() {
    let b = TestBroker::start().await;
    for (k, v) in [("retention.msx", "1"), ("retention.ms", "soon")] {
        let t = NewTopic::new("cfg", 1, TopicReplication::Fixed(1)).set(k, v);
        let res = b.admin().create_topics(&[t], &opts()).await.unwrap();
        assert_eq!(res[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidConfig, "{k}={v}");
    }
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_factor_above_one_is_refused_on_a_single_node() {
    let b = TestBroker::start().await;
    let res = b.admin().create_topics(&[NewTopic::new("rf3", 1, TopicReplication::Fixed(3))], &opts()).await.unwrap();
    assert_eq!(res[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidReplicationFactor);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_only_creates_nothing() {
    let b = TestBroker::start().await;
    let res = b
        .admin()
        .create_topics(&[NewTopic::new("dry", 2, TopicReplication::Fixed(1))], &opts().validate_only(true))
        .await
        .unwrap();
    assert!(res[0].is_ok());
    assert!(b.broker.as_ref().unwrap().state().metadata.topic("dry").is_none());
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_topic_disappears_and_its_name_can_be_reused() {
    let b = TestBroker::start().await;
    b.create_topic("gone", 2, &[]).await;
    produce(&b.producer(&[]), "gone", &[(None, "x".into())]).await;
    let res = b.admin().delete_topics(&["gone"], &opts()).await.unwrap();
    assert!(res[0].is_ok());
    assert!(b.broker.as_ref().unwrap().state().metadata.topic("gone").is_none());
    let res = b.admin().delete_topics(&["gone"], &opts()).await.unwrap();
    assert_eq!(res[0].as_ref().unwrap_err().1, RDKafkaErrorCode::UnknownTopicOrPartition);
    b.create_topic("gone", 1, &[]).await;
    let c = b.consumer(&[]);
    let (lo, hi) = c.fetch_watermarks("gone", 0, Duration::from_secs(10)).unwrap();
    assert_eq!((lo, hi), (0, 0), "a recreated topic starts empty");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_grow_and_never_shrink() {
    let b = TestBroker::start().await;
    b.create_topic("grow", 2, &[]).await;
    let res = b.admin().create_partitions(&[NewPartitions::new("grow", 5)], &opts()).await.unwrap();
    assert!(res[0].is_ok());
    let c = b.consumer(&[]);
    let md = c.fetch_metadata(Some("grow"), Duration::from_secs(10)).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);
    let res = b.admin().create_partitions(&[NewPartitions::new("grow", 3)], &opts()).await.unwrap();
    assert_eq!(res[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidPartitions);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_records_moves_the_low_watermark() {
    let b = TestBroker::start().await;
    b.create_topic("trim", 1, &[]).await;
    let records: Vec<_> = (0..100).map(|i| (None, format!("r{i}"))).collect();
    produce(&b.producer(&[]), "trim", &records).await;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trim", 0, rdkafka::Offset::Offset(40)).unwrap();
    b.admin().delete_records(&tpl, &opts()).await.unwrap();
    let c = b.consumer(&[]);
    assert_eq!(c.fetch_watermarks("trim", 0, Duration::from_secs(10)).unwrap(), (40, 100));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alter_configs_replaces_the_topic_overrides() {
    let b = TestBroker::start().await;
    b.create_topic("alter", 1, &[("retention.ms", "1000")]).await;
    let admin = b.admin();
    let res = admin
        .alter_configs(&[AlterConfig::new(ResourceSpecifier::Topic("alter")).set("segment.ms", "60000")], &opts())
        .await
        .unwrap();
    assert_eq!(res[0].as_ref().unwrap(), &OwnedResourceSpecifier::Topic("alter".into()));
    let d = admin.describe_configs(&[ResourceSpecifier::Topic("alter")], &opts()).await.unwrap();
    let r = d.into_iter().next().unwrap().unwrap();
    assert_eq!(r.get("segment.ms").unwrap().value.as_deref(), Some("60000"));
    assert_eq!(r.get("retention.ms").unwrap().source, ConfigSource::Default, "AlterConfigs replaces the whole set");
    // rust-rdkafka reports every AlterConfigs resource as Ok (it never reads the per-resource error), so check
    // the effect: a refused value is not stored.
    admin
        .alter_configs(&[AlterConfig::new(ResourceSpecifier::Topic("alter")).set("segment.ms", "-7")], &opts())
        .await
        .unwrap();
    let d = admin.describe_configs(&[ResourceSpecifier::Topic("alter")], &opts()).await.unwrap();
    let r = d.into_iter().next().unwrap().unwrap();
    assert_eq!(r.get("segment.ms").unwrap().value.as_deref(), Some("60000"));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_broker_configs_lists_kafka_names() {
    let b = TestBroker::start().await;
    let d = b.admin().describe_configs(&[ResourceSpecifier::Broker(1)], &opts()).await.unwrap();
    let r = d.into_iter().next().unwrap().unwrap();
    assert!(r.get("log.retention.ms").is_some());
    assert!(r.get("num.partitions").is_some());
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_for_an_unknown_topic_creates_it_with_num_partitions() {
    let b = TestBroker::start_with(|c| c.num_partitions = 3).await;
    let c = b.consumer(&[("allow.auto.create.topics", "true")]);
    let md = c.fetch_metadata(Some("auto-made"), Duration::from_secs(10)).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_create_can_be_turned_off() {
    let b = TestBroker::start_with(|c| c.auto_create_topics_enable = false).await;
    let c = b.consumer(&[]);
    let md = c.fetch_metadata(Some("not-made"), Duration::from_secs(10)).unwrap();
    assert_eq!(md.topics()[0].error(), Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_and_configs_survive_a_restart() {
    let mut b = TestBroker::start().await;
    b.create_topic("kept", 3, &[("retention.ms", "123456")]).await;
    b.restart(|_| {}).await;
    let state = b.broker.as_ref().unwrap().state().clone();
    let t = state.metadata.topic("kept").unwrap();
    assert_eq!(t.partitions, 3);
    assert_eq!(t.configs["retention.ms"], "123456");
    assert_eq!(state.replicas.partitions_of("kept").len(), 3);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_defaults_change_at_run_time_and_persist() {
    let mut b = TestBroker::start().await;
    b.create_topic("inherits", 1, &[]).await;
    let admin = b.admin();
    admin
        .alter_configs(&[AlterConfig::new(ResourceSpecifier::Broker(1)).set("log.retention.ms", "123000")], &opts())
        .await
        .unwrap();
    let topic_retention = |b: &TestBroker| {
        let state = b.broker.as_ref().unwrap().state().clone();
        state.replicas.partition("inherits", 0).unwrap().log.config().retention_ms
    };
    assert_eq!(topic_retention(&b), 123000, "a topic without an override follows the new broker default");
    let d = admin.describe_configs(&[ResourceSpecifier::Broker(1)], &opts()).await.unwrap();
    let r = d.into_iter().next().unwrap().unwrap();
    let entry = r.get("log.retention.ms").unwrap();
    assert_eq!(entry.value.as_deref(), Some("123000"));
    assert_eq!(entry.source, ConfigSource::DynamicBroker);
    // A static setting cannot change at run time; the refusal leaves everything as it was.
    admin.alter_configs(&[AlterConfig::new(ResourceSpecifier::Broker(1)).set("node.id", "7")], &opts()).await.unwrap();
    b.restart(|_| {}).await;
    assert_eq!(topic_retention(&b), 123000, "run-time broker configs survive a restart");
    assert_eq!(b.broker.as_ref().unwrap().state().config.node_id, 1);
    b.shutdown().await;
}
