//! Metadata: brokers, controller, cluster id, and topics with their partitions and leaders. Unknown topics are
//! created on first request when `auto.create.topics.enable` is on and the client allows it.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name, AUTHORIZED_OPERATIONS_OMITTED};
use crate::cluster::{topic_name as names, TopicMetadata};
use crate::protocol::dispatch::RequestContext;

/// Every topic operation, as Kafka's `AclOperation` bit set (READ..DESCRIBE_CONFIGS, ALTER_CONFIGS): with no
/// authorizer, everything is allowed.
const ALL_TOPIC_OPERATIONS: i32 = 0b1101_1111_1000;
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const ALL_CLUSTER_OPERATIONS: i32 = 0x1FA0;

pub async fn handle(ctx: &RequestContext, request: MetadataRequest) -> MetadataResponse {
    let s = &ctx.state;
    let version = ctx.version();
    // v0 says "all topics" with an empty list; later versions with null.
    let wanted: Option<Vec<_>> = match request.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let allow_auto_create = version < 4 || request.allow_auto_topic_creation;
    let mut topics = Vec::new();
    match wanted {
        None => {
            for t in s.metadata.topics() {
                topics.push(describe_topic(ctx, &t, request.include_topic_authorized_operations));
            }
        }
        Some(requested) => {
            for rt in requested {
                let entry = match rt.name {
                    Some(name) => {
                        let name = name.0.as_str().to_string();
                        let found = match s.metadata.topic(&name) {
                            Some(t) => Some(t),
                            None if allow_auto_create && names::validate(&name).is_ok() => {
                                match s.controller.auto_create(&name).await {
                                    Ok(t) => t,
                                    Err(e) => {
                                        tracing::warn!(topic = %name, error = %e, "auto-create failed");
                                        None
                                    }
                                }
                            }
                            None => None,
                        };
                        match found {
                            Some(t) => describe_topic(ctx, &t, request.include_topic_authorized_operations),
                            None => {
                                let code = if names::validate(&name).is_err() {
                                    ResponseError::InvalidTopicException
                                } else {
                                    ResponseError::UnknownTopicOrPartition
                                };
                                MetadataResponseTopic::default()
                                    .with_name(Some(topic_name(&name)))
                                    .with_error_code(code.code())
                                    .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
                            }
                        }
                    }
                    None => match s.metadata.topic_by_id(rt.topic_id) {
                        Some(t) => describe_topic(ctx, &t, request.include_topic_authorized_operations),
                        None => MetadataResponseTopic::default()
                            .with_name(None)
                            .with_topic_id(rt.topic_id)
                            .with_error_code(ResponseError::UnknownTopicId.code())
                            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
                    },
                };
                topics.push(entry);
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(s.config.node_id))
            .with_host(str_bytes(s.advertised_host.clone()))
            .with_port(s.advertised_port)
            .with_rack(None)])
        .with_cluster_id(Some(str_bytes(s.metadata.cluster_id())))
        .with_controller_id(BrokerId(s.config.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            ALL_CLUSTER_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

fn describe_topic(ctx: &RequestContext, t: &TopicMetadata, include_ops: bool) -> MetadataResponseTopic {
    let node = BrokerId(ctx.state.config.node_id);
    let replicas = ctx.state.replicas.partitions_of(&t.name);
    let partitions = (0..t.partitions)
        .map(|p| {
            let epoch = replicas.get(p as usize).map(|r| r.leader_epoch).unwrap_or(0);
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(epoch)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
                .with_offline_replicas(vec![])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_topic_id(t.topic_id)
        .with_is_internal(names::is_internal(&t.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(if include_ops {
            ALL_TOPIC_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}
