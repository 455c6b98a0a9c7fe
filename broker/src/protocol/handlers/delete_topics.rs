//! DeleteTopics: by name (v0-5) or by name or topic id (v6+).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name};
use crate::cluster::topic_name as names;
use crate::protocol::dispatch::RequestContext;
use crate::protocol::errors::metadata_error_code;

pub async fn handle(ctx: &RequestContext, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let s = &ctx.state;
    // Either list may be used depending on the version; normalise to (name, id) pairs.
    let mut targets: Vec<(Option<String>, uuid::Uuid)> =
        request.topic_names.iter().map(|n| (Some(n.0.as_str().to_string()), uuid::Uuid::nil())).collect();
    targets.extend(request.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.as_str().to_string()), t.topic_id)));
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match (&name, id.is_nil()) {
            (Some(n), _) => s.metadata.topic(n).map(|t| t.name).ok_or(ResponseError::UnknownTopicOrPartition),
            (None, false) => s.metadata.topic_by_id(id).map(|t| t.name).ok_or(ResponseError::UnknownTopicId),
            (None, true) => Err(ResponseError::InvalidRequest),
        };
        let base = DeletableTopicResult::default().with_name(name.as_deref().map(topic_name)).with_topic_id(id);
        let result = match resolved {
            Err(code) => base.with_error_code(code.code()),
            Ok(n) if names::is_internal(&n) => base
                .with_error_code(ResponseError::InvalidTopicException.code())
                .with_error_message(Some(str_bytes(format!("Cannot delete internal topic {n}")))),
            Ok(n) => match s.controller.delete_topic(&n).await {
                Ok(meta) => {
                    DeletableTopicResult::default().with_name(Some(topic_name(&n))).with_topic_id(meta.topic_id)
                }
                Err(e) => base
                    .with_error_code(metadata_error_code(&e).code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            },
        };
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
