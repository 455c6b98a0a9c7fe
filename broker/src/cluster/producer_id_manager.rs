//! Producer ids for idempotent and transactional producers, handed out from blocks reserved in the metadata
//! image, as Kafka's controller hands out `ProducerIdsBlock`s: a persisted reservation per block, not per id.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::metadata::{MetadataError, MetadataStore};

/// Kafka's block size.
const BLOCK_SIZE: i64 = 1000;

/// Hands out producer ids that are unique across restarts.
pub struct ProducerIdManager {
    metadata: Arc<MetadataStore>,
    /// Next id to hand out and the end (exclusive) of the current block.
    block: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    pub fn new(metadata: Arc<MetadataStore>) -> ProducerIdManager {
        ProducerIdManager { metadata, block: Mutex::new((0, 0)) }
    }

    /// A fresh producer id.
    pub async fn generate(&self) -> Result<i64, MetadataError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let start = self.metadata.allocate_producer_id_block(BLOCK_SIZE).await?;
            *block = (start, start + BLOCK_SIZE);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 {
            let store = Arc::new(MetadataStore::open(dir.path(), 1, None).unwrap());
            let ids = ProducerIdManager::new(store);
            for _ in 0..1500 {
                assert!(seen.insert(ids.generate().await.unwrap()), "producer id handed out twice");
            }
        }
    }
}
