//! The partitions this broker hosts, as Kafka's `ReplicaManager`: each a log plus its leader epoch. On a single
//! node every hosted partition is led here; replication (followers, ISR) will extend `Partition`.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use uuid::Uuid;

use crate::log::{LogConfig, LogError, LogManager, TopicPartition, UnifiedLog};

/// One hosted partition.
pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    pub leader_epoch: i32,
    pub log: Arc<UnifiedLog>,
}

/// All hosted partitions, looked up by topic and index on every produce and fetch.
pub struct ReplicaManager {
    logs: Arc<LogManager>,
    partitions: RwLock<HashMap<String, Vec<Arc<Partition>>>>,
}

impl ReplicaManager {
    pub fn new(logs: Arc<LogManager>) -> ReplicaManager {
        ReplicaManager { logs, partitions: RwLock::new(HashMap::new()) }
    }

    pub fn log_manager(&self) -> &Arc<LogManager> {
        &self.logs
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let map = self.partitions.read();
        let parts = map.get(topic)?;
        usize::try_from(partition).ok().and_then(|i| parts.get(i)).cloned()
    }

    pub fn partitions_of(&self, topic: &str) -> Vec<Arc<Partition>> {
        self.partitions.read().get(topic).cloned().unwrap_or_default()
    }

    /// Opens (recovering if needed) or creates the logs of partitions `0..count` of `topic` and hosts them.
    /// Partitions already hosted are kept, so this also grows a topic.
    pub async fn host_topic(
        &self,
        topic: &str,
        topic_id: Uuid,
        count: i32,
        config: &LogConfig,
    ) -> Result<(), LogError> {
        let existing = self.partitions_of(topic);
        let mut parts = existing.clone();
        for p in existing.len() as i32..count {
            let tp = TopicPartition::new(topic, p);
            let log = self.logs.get_or_create_log(&tp, config.clone()).await?;
            parts.push(Arc::new(Partition { tp, topic_id, leader_epoch: 0, log }));
        }
        self.partitions.write().insert(topic.to_string(), parts);
        Ok(())
    }

    /// Stops hosting `topic` and deletes its logs.
    pub async fn remove_topic(&self, topic: &str) -> Result<(), LogError> {
        let parts = self.partitions.write().remove(topic).unwrap_or_default();
        for p in parts {
            self.logs.delete_log(&p.tp).await?;
        }
        Ok(())
    }

    /// Applies new log settings to every partition of `topic`.
    pub fn update_topic_config(&self, topic: &str, config: &LogConfig) {
        for p in self.partitions_of(topic) {
            p.log.update_config(config.clone());
        }
    }
}
