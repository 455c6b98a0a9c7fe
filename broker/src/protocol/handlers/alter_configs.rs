//! AlterConfigs: replace a topic's whole set of config overrides (the legacy, non-incremental API).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::ResponseError;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::cluster::MetadataError;
use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::metadata_error_code;

pub async fn handle(ctx: &RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let s = &ctx.state;
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let base = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let result = match r.resource_type {
            RESOURCE_TOPIC => {
                let mut configs = BTreeMap::new();
                let mut null_key = None;
                for c in &r.configs {
                    match &c.value {
                        Some(v) => {
                            configs.insert(c.name.as_str().to_string(), v.as_str().to_string());
                        }
                        None => null_key = Some(c.name.as_str().to_string()),
                    }
                }
                if let Some(key) = null_key {
                    base.with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(format!("Null value not supported for : {key}"))))
                } else {
                    match s.controller.set_topic_configs(r.resource_name.as_str(), configs, request.validate_only).await
                    {
                        Ok(()) => base,
                        Err(e) => base
                            .with_error_code(metadata_error_code(&e).code())
                            .with_error_message(Some(str_bytes(e.to_string()))),
                    }
                }
            }
            RESOURCE_BROKER => {
                let mut overrides = BTreeMap::new();
                for c in &r.configs {
                    if let Some(v) = &c.value {
                        overrides.insert(c.name.as_str().to_string(), v.as_str().to_string());
                    }
                }
                match check_broker_resource(ctx, r.resource_name.as_str()) {
                    Err(e) => base
                        .with_error_code(metadata_error_code(&e).code())
                        .with_error_message(Some(str_bytes(e.to_string()))),
                    Ok(()) => match s.controller.set_broker_configs(overrides, request.validate_only).await {
                        Ok(()) => base,
                        Err(e) => base
                            .with_error_code(metadata_error_code(&e).code())
                            .with_error_message(Some(str_bytes(e.to_string()))),
                    },
                }
            }
            other => base
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(format!("Unsupported resource type {other}")))),
        };
        responses.push(result);
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// A broker resource names this node, or "" for the cluster-wide default (the same thing on one node).
pub(crate) fn check_broker_resource(ctx: &RequestContext, name: &str) -> Result<(), MetadataError> {
    if name.is_empty() || name == ctx.state.config.node_id.to_string() {
        Ok(())
    } else {
        Err(MetadataError::InvalidRequest(format!(
            "Unexpected broker id, expected {} or empty string, but received {name}",
            ctx.state.config.node_id
        )))
    }
}
