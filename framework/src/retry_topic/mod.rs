//! Non-blocking retries (Spring's `@RetryableTopic`): a record whose handling fails is forwarded to a retry topic
//! and delivered again from there once its back-off has passed, then to the dead-letter topic. One retryable
//! listener becomes several containers of the same group: the main one, one per retry topic, and one for the DLT.
//!
//! Files: `configuration.rs` what a listener asks for (`RetryTopicConfiguration`, back-off, error kinds),
//! `naming.rs` topic names and the next destination, `forwarding.rs` the forward with its headers (the
//! containers' error handler), `gate.rs` the due-time check that makes retry containers pause, `dlt.rs` the DLT
//! handler side. The container hook (pause, seek back, resume when due) is `container/worker.rs`'s `DueHolds`.

mod configuration;
mod dlt;
mod forwarding;
mod gate;
mod naming;

use std::sync::Arc;
use std::time::Duration;

pub use configuration::{DltStrategy, ErrorKind, RetryBackOff, RetryTopicConfiguration, TopicSuffixingStrategy};
pub use dlt::DltInfo;

use crate::admin::{KafkaAdmin, TopicSpec};
use crate::app::AppError;
use crate::config::ClusterProperties;
use crate::container::{AckMode, ContainerSpec, Ordering, ResolvedSubscription};
use forwarding::RetryTopicForwarder;
use naming::TopicChain;

/// The containers of a retryable listener: `main` (its resolved spec) with the forwarding error handler, one
/// container per retry topic and one for the DLT (none with [`DltStrategy::NoDlt`]). Creates the retry topics and
/// the DLT first when configured.
pub(crate) async fn containers(
    main: ContainerSpec,
    config: &RetryTopicConfiguration,
    cluster: &ClusterProperties,
    prefix: &str,
) -> Result<Vec<ContainerSpec>, AppError> {
    let id = main.listener_id.to_string();
    let err = |message: String| AppError::Listener { id: id.clone(), message };
    if main.batch {
        return Err(err("retryable topics need a record listener, not a batch listener".into()));
    }
    if config.dlt_strategy == DltStrategy::NoDlt && config.dlt_handler.is_some() {
        return Err(err("a `dlt_handler` with `DltStrategy::NoDlt`: there is no DLT to handle".into()));
    }
    let ResolvedSubscription::Topics(topics) = &main.subscription else {
        return Err(err("retryable topics need named `topics` (not a pattern or explicit partitions)".into()));
    };
    let chains: Vec<TopicChain> = topics.iter().map(|t| TopicChain::new(t, config)).collect();
    if config.auto_create_topics {
        let admin = KafkaAdmin::from_props(
            &cluster.admin_props(prefix),
            Duration::from_millis(cluster.admin.operation_timeout_ms),
        )?;
        create_topics(&admin, &chains, config).await?;
    }

    let forwarder: Arc<RetryTopicForwarder> = Arc::new(RetryTopicForwarder {
        config: config.clone(),
        chains: chains.clone(),
        producer: main.producer.clone().ok_or_else(|| err("no producer for the retry topics".into()))?,
        group_id: main.group_id.clone(),
    });
    let mut out = Vec::new();

    // Retry topics at the same position in every chain share a container (same suffix, same delay).
    let levels = chains.first().map(|c| c.retry_topics().len()).unwrap_or(0);
    for level in 0..levels {
        let subscribed: Vec<String> =
            chains.iter().filter_map(|c| c.retry_topics().get(level).map(|t| t.to_string())).collect();
        let suffix = chains
            .first()
            .and_then(|c| c.retry_topics().get(level).map(|t| t[c.main.len()..].to_string()))
            .unwrap_or_default();
        let mut spec = main.clone();
        spec.listener_id = Arc::from(format!("{id}{suffix}"));
        spec.subscription = ResolvedSubscription::Topics(subscribed);
        spec.error_handler = forwarder.clone();
        spec.due_gate = Some(gate::not_due_for);
        // The due-time gate runs on the partition-ordered path; a user's rebalance listener is for the main topic.
        spec.ordering = Ordering::Partition;
        spec.rebalance_listener = None;
        read_from_earliest(&mut spec);
        out.push(spec);
    }

    if config.dlt_strategy != DltStrategy::NoDlt {
        let mut dlt = main.clone();
        dlt.listener_id = Arc::from(format!("{id}{}", config.dlt_suffix));
        dlt.subscription = ResolvedSubscription::Topics(chains.iter().map(|c| c.dlt.clone()).collect());
        dlt.service = config.dlt_handler.clone().unwrap_or_else(dlt::logging_dlt_handler);
        // A failing DLT handler is the DLT strategy's business (back to the DLT, or given up), as in Spring: a
        // blocking retry there would hold up every dead letter behind it.
        dlt.error_handler = forwarder.clone();
        dlt.ordering = Ordering::Partition;
        dlt.rebalance_listener = None;
        dlt.filter = None;
        dlt.send_to = None;
        if dlt.ack_mode.is_manual() {
            dlt.ack_mode = AckMode::Record;
        }
        read_from_earliest(&mut dlt);
        out.push(dlt);
    }

    let mut main = main;
    main.error_handler = forwarder;
    out.insert(0, main);
    Ok(out)
}

/// Everything on a retry topic or DLT was put there for this group: with `latest`, records forwarded before the
/// group's first assignment would be skipped.
fn read_from_earliest(spec: &mut ContainerSpec) {
    spec.consumer_props.set(
        "auto.offset.reset",
        "earliest",
        "spate (retry topic and DLT containers read every forwarded record)",
    );
}

/// Creates the retry topics and DLTs that are missing, with the main topic's partition count (or the configured
/// one).
async fn create_topics(
    admin: &KafkaAdmin,
    chains: &[TopicChain],
    config: &RetryTopicConfiguration,
) -> Result<(), AppError> {
    let mains: Vec<&str> = chains.iter().map(|c| c.main.as_str()).collect();
    let existing = admin.describe_topics(&mains).await?;
    let mut specs = Vec::new();
    for c in chains {
        let partitions = match (config.num_partitions, existing.get(&c.main)) {
            (Some(n), _) => n,
            (None, Some(n)) => *n,
            (None, None) => {
                tracing::warn!(topic = %c.main, "main topic does not exist; creating its retry topics with 1 partition");
                1
            }
        };
        let dlt = (config.dlt_strategy != DltStrategy::NoDlt).then_some(c.dlt.as_str());
        for t in c.retry_topics().into_iter().chain(dlt) {
            specs.push(TopicSpec {
                name: t.to_string(),
                partitions,
                replicas: config.replication_factor,
                configs: Default::default(),
            });
        }
    }
    let report = admin.initialize(&specs).await?;
    tracing::debug!(?report, "retry topics initialized");
    Ok(())
}
