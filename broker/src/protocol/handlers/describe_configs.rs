//! DescribeConfigs: a topic's configs (its overrides and the broker defaults behind them) or the broker's own.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::ResponseError;

use super::create_topics::{SOURCE_DEFAULT_CONFIG, SOURCE_TOPIC_CONFIG};
use super::str_bytes;
use crate::cluster::dynamic_broker_config;
use crate::cluster::topic_config::{self, ConfigType};
use crate::config::BrokerConfig;
use crate::protocol::dispatch::RequestContext;

pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_BROKER_CONFIG: i8 = 2;
const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;

pub fn handle(ctx: &RequestContext, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let s = &ctx.state;
    let effective = s.controller.effective_config();
    let dynamic = s.metadata.broker_configs();
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.as_str().to_string();
            let keys: Option<Vec<String>> =
                r.configuration_keys.map(|k| k.iter().map(|s| s.as_str().to_string()).collect());
            let wanted = |n: &str| keys.as_ref().is_none_or(|k| k.iter().any(|x| x == n));
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match r.resource_type {
                RESOURCE_TOPIC => match s.metadata.topic(&name) {
                    None => base
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(str_bytes(format!("Topic {name} does not exist")))),
                    Some(t) => {
                        let configs = topic_config::TOPIC_CONFIGS
                            .iter()
                            .filter(|d| wanted(d.name))
                            .map(|def| {
                                let value = topic_config::effective_value(&effective, &t.configs, def);
                                let set = t.configs.contains_key(def.name);
                                let mut synonyms = Vec::new();
                                if request.include_synonyms {
                                    if set {
                                        synonyms.push(
                                            DescribeConfigsSynonym::default()
                                                .with_name(str_bytes(def.name))
                                                .with_value(Some(str_bytes(value.clone())))
                                                .with_source(SOURCE_TOPIC_CONFIG),
                                        );
                                    }
                                    if let Some(syn) = def.broker_synonym {
                                        let source = if dynamic.contains_key(syn) {
                                            SOURCE_DYNAMIC_BROKER_CONFIG
                                        } else {
                                            SOURCE_DEFAULT_CONFIG
                                        };
                                        synonyms.push(
                                            DescribeConfigsSynonym::default()
                                                .with_name(str_bytes(syn))
                                                .with_value(Some(str_bytes(def.default_value(&effective))))
                                                .with_source(source),
                                        );
                                    }
                                }
                                DescribeConfigsResourceResult::default()
                                    .with_name(str_bytes(def.name))
                                    .with_value(Some(str_bytes(value)))
                                    .with_read_only(false)
                                    .with_config_source(if set { SOURCE_TOPIC_CONFIG } else { SOURCE_DEFAULT_CONFIG })
                                    .with_is_sensitive(false)
                                    .with_synonyms(synonyms)
                                    .with_config_type(def.config_type() as i8)
                            })
                            .collect();
                        base.with_configs(configs)
                    }
                },
                RESOURCE_BROKER => {
                    // "" names the cluster-wide default; otherwise it must be this node.
                    if !name.is_empty() && name != s.config.node_id.to_string() {
                        return base.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(
                            str_bytes(format!("Unexpected broker id, expected {}", s.config.node_id)),
                        ));
                    }
                    let configs = broker_configs(&effective)
                        .into_iter()
                        .filter(|(n, _, _)| wanted(n))
                        .map(|(n, v, ty)| {
                            let source = if dynamic.contains_key(&n) {
                                SOURCE_DYNAMIC_BROKER_CONFIG
                            } else {
                                SOURCE_STATIC_BROKER_CONFIG
                            };
                            DescribeConfigsResourceResult::default()
                                .with_read_only(!dynamic_broker_config::is_dynamic(&n))
                                .with_name(str_bytes(n))
                                .with_value(Some(str_bytes(v)))
                                .with_config_source(source)
                                .with_is_sensitive(false)
                                .with_config_type(ty as i8)
                        })
                        .collect();
                    base.with_configs(configs)
                }
                other => base
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(format!("Unsupported resource type {other}")))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// The broker's settings under Kafka's names (`log.retention.ms`), with Spate's own kept as they are.
pub(crate) fn broker_configs(config: &BrokerConfig) -> Vec<(String, String, ConfigType)> {
    let mut out = vec![
        ("listeners".to_string(), format!("PLAINTEXT://{}", config.listen), ConfigType::List),
        ("log.dirs".to_string(), config.data_dir.display().to_string(), ConfigType::String),
    ];
    if let Some(a) = &config.advertised_listener {
        out.push(("advertised.listeners".to_string(), format!("PLAINTEXT://{a}"), ConfigType::String));
    }
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(config) {
        for (key, value) in fields {
            if matches!(key.as_str(), "listen" | "data_dir" | "advertised_listener" | "extra_listen" | "cluster_id") {
                continue;
            }
            let (text, ty) = match value {
                serde_json::Value::Bool(b) => (b.to_string(), ConfigType::Boolean),
                serde_json::Value::Number(n) if n.is_f64() => (n.to_string(), ConfigType::Double),
                serde_json::Value::Number(n) => (n.to_string(), ConfigType::Long),
                serde_json::Value::String(s) => (s, ConfigType::String),
                other => (other.to_string(), ConfigType::String),
            };
            out.push((key.replace('_', "."), text, ty));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
