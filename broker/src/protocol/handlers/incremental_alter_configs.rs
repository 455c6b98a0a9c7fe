//! IncrementalAlterConfigs: set, delete, append to or subtract from single topic config overrides.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::cluster::topic_config::{self, ConfigType};
use crate::cluster::MetadataError;
use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::metadata_error_code;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(ctx: &RequestContext, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let s = &ctx.state;
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let base = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let name = r.resource_name.as_str().to_string();
        let outcome: Result<(), MetadataError> = match r.resource_type {
            RESOURCE_TOPIC => match s.metadata.topic(&name) {
                None => Err(MetadataError::UnknownTopic(name.clone())),
                Some(t) => {
                    let ops: Vec<(String, i8, Option<String>)> = r
                        .configs
                        .iter()
                        .map(|c| {
                            (
                                c.name.as_str().to_string(),
                                c.config_operation,
                                c.value.as_ref().map(|v| v.as_str().to_string()),
                            )
                        })
                        .collect();
                    match apply(&s.config, t.configs.clone(), &ops) {
                        Ok(next) => s.controller.set_topic_configs(&name, next, request.validate_only).await,
                        Err(e) => Err(e),
                    }
                }
            },
            RESOURCE_BROKER => match super::alter_configs::check_broker_resource(ctx, &name) {
                Err(e) => Err(e),
                Ok(()) => {
                    let mut overrides = s.metadata.broker_configs();
                    let mut result = Ok(());
                    for c in &r.configs {
                        let key = c.name.as_str().to_string();
                        match (c.config_operation, &c.value) {
                            (OP_SET, Some(v)) => {
                                overrides.insert(key, v.as_str().to_string());
                            }
                            (OP_DELETE, _) => {
                                overrides.remove(&key);
                            }
                            (op, _) => {
                                result = Err(MetadataError::InvalidRequest(format!(
                                    "Operation {op} is not valid for broker config {key}"
                                )));
                            }
                        }
                    }
                    match result {
                        Ok(()) => s.controller.set_broker_configs(overrides, request.validate_only).await,
                        Err(e) => Err(e),
                    }
                }
            },
            other => Err(MetadataError::InvalidRequest(format!("Unsupported resource type {other}"))),
        };
        responses.push(match outcome {
            Ok(()) => base,
            Err(e) => {
                base.with_error_code(metadata_error_code(&e).code()).with_error_message(Some(str_bytes(e.to_string())))
            }
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Applies the operations to a copy of the overrides, as Kafka's `ConfigAdminManager` does.
fn apply(
    broker: &crate::config::BrokerConfig,
    mut configs: BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut seen = HashSet::new();
    for (key, _, _) in ops {
        if !seen.insert(key) {
            return Err(MetadataError::InvalidRequest(format!("Error due to duplicate config keys: {key}")));
        }
    }
    for (key, op, value) in ops {
        let def = topic_config::definition(key)
            .ok_or_else(|| MetadataError::InvalidConfig(format!("Unknown topic config name: {key}")))?;
        match *op {
            OP_SET => {
                let v = value
                    .clone()
                    .ok_or_else(|| MetadataError::InvalidRequest(format!("Null value not supported for : {key}")))?;
                configs.insert(key.clone(), v);
            }
            OP_DELETE => {
                configs.remove(key);
            }
            OP_APPEND | OP_SUBTRACT => {
                if def.config_type() != ConfigType::List {
                    return Err(MetadataError::InvalidConfig(format!(
                        "Config value append is not allowed for config key: {key}"
                    )));
                }
                let current = topic_config::effective_value(broker, &configs, def);
                let mut items: Vec<String> =
                    current.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                let given: Vec<String> = value
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if *op == OP_APPEND {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                configs.insert(key.clone(), items.join(","));
            }
            other => return Err(MetadataError::InvalidRequest(format!("Unknown config operation {other}"))),
        }
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_adds_to_a_list_config_once() {
        let broker = crate::config::BrokerConfig::default();
        let out =
            apply(&broker, BTreeMap::new(), &[("cleanup.policy".into(), OP_APPEND, Some("compact".into()))]).unwrap();
        assert_eq!(out["cleanup.policy"], "delete,compact");
    }

    #[test]
    fn append_to_a_scalar_is_refused() {
        let broker = crate::config::BrokerConfig::default();
        assert!(apply(&broker, BTreeMap::new(), &[("retention.ms".into(), OP_APPEND, Some("5".into()))]).is_err());
    }

    #[test]
    fn delete_removes_an_override() {
        let broker = crate::config::BrokerConfig::default();
        let start = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        let out = apply(&broker, start, &[("retention.ms".into(), OP_DELETE, None)]).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let broker = crate::config::BrokerConfig::default();
        let ops = [("retention.ms".into(), OP_SET, Some("5".into())), ("retention.ms".into(), OP_DELETE, None)];
        assert!(apply(&broker, BTreeMap::new(), &ops).is_err());
    }
}
