//! CreateTopics: validate and create each topic (or only validate), answering per topic as Kafka does, with the
//! created topic's partitions, replication factor and configs from v5 on.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name};
use crate::cluster::{topic_config, MetadataError, NewTopic};
use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::metadata_error_code;

/// DescribeConfigs' config sources.
pub(crate) const SOURCE_TOPIC_CONFIG: i8 = 1;
pub(crate) const SOURCE_DEFAULT_CONFIG: i8 = 5;

pub async fn handle(ctx: &RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let s = &ctx.state;
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> =
        request.topics.iter().map(|t| t.name.0.as_str().to_string()).filter(|n| !seen.insert(n.clone())).collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.0.as_str().to_string();
        let fail = |code: ResponseError, message: String| {
            CreatableTopicResult::default()
                .with_name(topic_name(&name))
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_configs(None)
        };
        if duplicates.contains(&name) {
            results.push(fail(
                ResponseError::InvalidRequest,
                format!("Create topics request from client contains multiple entries for the topic {name}"),
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.as_str().to_string(), v.as_str().to_string());
                }
                None => null_config = Some(c.name.as_str().to_string()),
            }
        }
        if let Some(key) = null_config {
            results
                .push(fail(ResponseError::InvalidConfig, format!("Null value not supported for topic configs: {key}")));
            continue;
        }
        let (partitions, replication_factor) = if t.assignments.is_empty() {
            (
                if t.num_partitions == -1 { s.config.num_partitions } else { t.num_partitions },
                if t.replication_factor == -1 { s.config.default_replication_factor } else { t.replication_factor },
            )
        } else {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                results.push(fail(
                    ResponseError::InvalidRequest,
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                ));
                continue;
            }
            let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
            indexes.sort_unstable();
            let contiguous = indexes.iter().enumerate().all(|(i, p)| *p == i as i32);
            let bad_broker = t.assignments.iter().flat_map(|a| a.broker_ids.iter()).any(|b| b.0 != s.config.node_id);
            let rf = t.assignments.first().map(|a| a.broker_ids.len()).unwrap_or(0);
            if !contiguous || bad_broker || t.assignments.iter().any(|a| a.broker_ids.len() != rf) {
                results.push(fail(
                    ResponseError::InvalidReplicaAssignment,
                    "Replica assignment must name existing brokers, the same number for every partition, for partitions 0..n".into(),
                ));
                continue;
            }
            (t.assignments.len() as i32, rf as i16)
        };
        let new_topic = NewTopic { name: name.clone(), partitions, replication_factor, configs };
        match s.controller.create_topic(new_topic, request.validate_only).await {
            Ok(meta) => {
                let effective = s.controller.effective_config();
                let described = topic_config::TOPIC_CONFIGS
                    .iter()
                    .map(|def| {
                        let set = meta.configs.contains_key(def.name);
                        CreatableTopicConfigs::default()
                            .with_name(str_bytes(def.name))
                            .with_value(Some(str_bytes(topic_config::effective_value(&effective, &meta.configs, def))))
                            .with_read_only(false)
                            .with_config_source(if set { SOURCE_TOPIC_CONFIG } else { SOURCE_DEFAULT_CONFIG })
                            .with_is_sensitive(false)
                    })
                    .collect();
                results.push(
                    CreatableTopicResult::default()
                        .with_name(topic_name(&name))
                        .with_topic_id(if request.validate_only { uuid::Uuid::nil() } else { meta.topic_id })
                        .with_num_partitions(meta.partitions)
                        .with_replication_factor(replication_factor)
                        // Configs are in the answer from v5; the codec refuses them below.
                        .with_configs(if ctx.version() >= 5 { Some(described) } else { None }),
                );
            }
            Err(e) => {
                if !matches!(e, MetadataError::TopicExists(_)) {
                    tracing::info!(topic = %name, error = %e, "create topic refused");
                }
                results.push(fail(metadata_error_code(&e), e.to_string()));
            }
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
