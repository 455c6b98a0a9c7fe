//! Topic lifecycle: create, delete, grow and reconfigure topics, keeping the persistent registry and the hosted
//! logs in step. In Kafka this is the controller's job; a single Spate node is its own controller.
//!
//! Order of effects makes crashes safe: a new topic is persisted before its logs are created (start-up creates
//! any that are missing), and a deleted topic is removed from the registry before its logs are deleted (start-up
//! removes partition folders no topic owns).

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use parking_lot::RwLock;

use super::metadata::{MetadataError, MetadataStore, TopicMetadata};
use super::replica_manager::ReplicaManager;
use super::{dynamic_broker_config, topic_config, topic_name};
use crate::config::BrokerConfig;

/// Creates, deletes, grows and reconfigures topics.
pub struct Controller {
    /// The configuration the broker started with.
    broker: Arc<BrokerConfig>,
    /// `broker` with the run-time broker config overrides applied: the defaults topics inherit.
    effective: RwLock<Arc<BrokerConfig>>,
    metadata: Arc<MetadataStore>,
    replicas: Arc<ReplicaManager>,
}

/// What CreateTopics asks for, after the request's -1 defaults are resolved.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

impl Controller {
    pub fn new(broker: Arc<BrokerConfig>, metadata: Arc<MetadataStore>, replicas: Arc<ReplicaManager>) -> Controller {
        let overrides = metadata.broker_configs();
        let effective = match dynamic_broker_config::apply(&broker, &overrides) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring stored run-time broker configs");
                broker.clone()
            }
        };
        Controller { broker, effective: RwLock::new(effective), metadata, replicas }
    }

    /// The broker configuration in force: start-up settings plus run-time changes.
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        self.effective.read().clone()
    }

    /// Replaces the run-time broker config overrides (or only validates them) and applies the new defaults to
    /// every topic that does not override them.
    pub async fn set_broker_configs(
        &self,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let next = dynamic_broker_config::apply(&self.broker, &overrides).map_err(MetadataError::InvalidConfig)?;
        if validate_only {
            return Ok(());
        }
        let stored = overrides.clone();
        self.metadata
            .update_broker_configs(|current| {
                *current = stored;
                Ok(())
            })
            .await?;
        let next = Arc::new(next);
        *self.effective.write() = next.clone();
        for t in self.metadata.topics() {
            self.replicas.update_topic_config(&t.name, &topic_config::log_config(&next, &t.configs));
        }
        tracing::info!(?overrides, "updated run-time broker configs");
        Ok(())
    }

    pub fn metadata(&self) -> &Arc<MetadataStore> {
        &self.metadata
    }

    pub fn broker_config(&self) -> &BrokerConfig {
        &self.broker
    }

    /// Hosts every registered topic (recovering logs) and deletes partition folders that no topic owns.
    pub async fn load(&self) -> Result<(), MetadataError> {
        let topics = self.metadata.topics();
        for t in &topics {
            let config = topic_config::log_config(&self.effective_config(), &t.configs);
            self.replicas.host_topic(&t.name, t.topic_id, t.partitions, &config).await?;
        }
        let logs = self.replicas.log_manager();
        for tp in logs.partition_dirs_on_disk() {
            let owned = topics.iter().any(|t| t.name == tp.topic && tp.partition < t.partitions);
            if !owned {
                tracing::warn!(partition = %tp, "deleting partition folder that no topic owns (left by an interrupted delete)");
                logs.delete_log(&tp).await?;
            }
        }
        Ok(())
    }

    /// Checks a topic request without changing anything.
    pub fn validate_new_topic(&self, t: &NewTopic) -> Result<(), MetadataError> {
        topic_name::validate(&t.name).map_err(MetadataError::InvalidTopic)?;
        if let Some(existing) = self.metadata.topic(&t.name) {
            return Err(MetadataError::TopicExists(existing.name));
        }
        if let Some(other) = self.metadata.topic_names().into_iter().find(|n| topic_name::collides(n, &t.name)) {
            return Err(MetadataError::InvalidTopic(format!(
                "Topic '{}' collides with existing topic: {other}",
                t.name
            )));
        }
        if t.partitions < 1 {
            return Err(MetadataError::InvalidPartitions("Number of partitions must be larger than 0.".into()));
        }
        if t.replication_factor < 1 {
            return Err(MetadataError::InvalidReplicationFactor("Replication factor must be larger than 0.".into()));
        }
        if t.replication_factor > 1 {
            return Err(MetadataError::InvalidReplicationFactor(format!(
                "Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only 1 broker(s) are registered.",
                t.replication_factor, t.replication_factor
            )));
        }
        topic_config::validate(&t.configs).map_err(MetadataError::InvalidConfig)?;
        Ok(())
    }

    /// Creates a topic (or only validates it).
    pub async fn create_topic(&self, t: NewTopic, validate_only: bool) -> Result<TopicMetadata, MetadataError> {
        self.validate_new_topic(&t)?;
        let meta = TopicMetadata {
            name: t.name.clone(),
            topic_id: Uuid::new_v4(),
            partitions: t.partitions,
            configs: t.configs.clone(),
        };
        if validate_only {
            return Ok(meta);
        }
        let stored = meta.clone();
        self.metadata
            .update(|topics| {
                if topics.contains_key(&stored.name) {
                    return Err(MetadataError::TopicExists(stored.name.clone()));
                }
                topics.insert(stored.name.clone(), stored);
                Ok(())
            })
            .await?;
        let config = topic_config::log_config(&self.effective_config(), &meta.configs);
        self.replicas.host_topic(&meta.name, meta.topic_id, meta.partitions, &config).await?;
        tracing::info!(topic = %meta.name, partitions = meta.partitions, topic_id = %meta.topic_id, "created topic");
        Ok(meta)
    }

    /// Creates `name` with the broker defaults when `auto.create.topics.enable` is on and the name is legal.
    /// Returns the topic if it exists afterwards.
    pub async fn auto_create(&self, name: &str) -> Result<Option<TopicMetadata>, MetadataError> {
        if let Some(t) = self.metadata.topic(name) {
            return Ok(Some(t));
        }
        if !self.broker.auto_create_topics_enable || topic_name::is_internal(name) {
            return Ok(None);
        }
        let t = NewTopic {
            name: name.to_string(),
            partitions: self.broker.num_partitions,
            replication_factor: 1,
            configs: BTreeMap::new(),
        };
        match self.create_topic(t, false).await {
            Ok(t) => Ok(Some(t)),
            // Two clients auto-creating the same topic at once: the loser sees it exist.
            Err(MetadataError::TopicExists(_)) => Ok(self.metadata.topic(name)),
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicMetadata, MetadataError> {
        let removed = self
            .metadata
            .update(|topics| topics.remove(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string())))
            .await?;
        self.replicas.remove_topic(name).await?;
        tracing::info!(topic = %name, topic_id = %removed.topic_id, "deleted topic");
        Ok(removed)
    }

    /// Grows `name` to `count` partitions (or only validates).
    pub async fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<(), MetadataError> {
        let current = self.metadata.topic(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        if count < current.partitions {
            return Err(MetadataError::InvalidPartitions(format!(
                "The topic {name} currently has {} partition(s); {count} would not be an increase.",
                current.partitions
            )));
        }
        if count == current.partitions {
            return Err(MetadataError::InvalidPartitions(format!("Topic already has {count} partition(s).")));
        }
        if validate_only {
            return Ok(());
        }
        let updated = self
            .metadata
            .update(|topics| {
                let t = topics.get_mut(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
                t.partitions = count;
                Ok(t.clone())
            })
            .await?;
        let config = topic_config::log_config(&self.effective_config(), &updated.configs);
        self.replicas.host_topic(name, updated.topic_id, count, &config).await?;
        tracing::info!(topic = %name, partitions = count, "grew topic");
        Ok(())
    }

    /// Replaces the topic's config overrides with `configs` (or only validates).
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        if self.metadata.topic(name).is_none() {
            return Err(MetadataError::UnknownTopic(name.to_string()));
        }
        topic_config::validate(&configs).map_err(MetadataError::InvalidConfig)?;
        if validate_only {
            return Ok(());
        }
        let stored = configs.clone();
        self.metadata
            .update(|topics| {
                let t = topics.get_mut(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
                t.configs = stored;
                Ok(())
            })
            .await?;
        self.replicas.update_topic_config(name, &topic_config::log_config(&self.effective_config(), &configs));
        tracing::info!(topic = %name, "updated topic configs");
        Ok(())
    }
}
