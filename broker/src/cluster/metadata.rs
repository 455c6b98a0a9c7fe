//! The topic registry, persisted in the data dir so a restarted broker serves exactly what it had.
//!
//! Kafka keeps this in its KRaft metadata log; a single node needs only the latest image, so Spate writes it as
//! one JSON file, `spate-metadata.json`, replaced atomically (write a temporary file, fsync, rename, fsync the
//! folder) on every change. `meta.properties` holds the cluster and node ids as Kafka's does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::log::LogError;

const METADATA_FILE: &str = "spate-metadata.json";
const META_PROPERTIES: &str = "meta.properties";

/// Why a topic operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{0}")]
    InvalidTopic(String),
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("This server does not host this topic: {0}")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot persist topic metadata to {path}: {source}")]
    Persist {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One topic as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: i32,
    /// Only the configs set on the topic; defaults come from the broker.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Image {
    topics: BTreeMap<String, TopicMetadata>,
    /// Broker configs changed at run time (AlterConfigs on the broker), under Kafka's names.
    #[serde(default)]
    broker_configs: BTreeMap<String, String>,
    /// First producer id not yet handed out in a block (ids below it may be in use; never reuse them).
    #[serde(default)]
    next_producer_id_block: i64,
}

/// The persistent topic registry. Reads are lock-free in practice (a read lock); writes persist before they
/// become visible, so nothing a client was told exists can vanish in a crash.
pub struct MetadataStore {
    dir: PathBuf,
    image: RwLock<Image>,
    cluster_id: String,
    write_lock: tokio::sync::Mutex<()>,
}

impl MetadataStore {
    /// Loads the registry from `dir`, creating `meta.properties` (with `cluster_id`, or a new one) on first use.
    pub fn open(dir: &Path, node_id: i32, cluster_id: Option<&str>) -> Result<MetadataStore, MetadataError> {
        let persist_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MetadataError::Persist { path, source }
        };
        std::fs::create_dir_all(dir).map_err(persist_err(dir))?;
        let props_path = dir.join(META_PROPERTIES);
        let stored_cluster_id = match std::fs::read_to_string(&props_path) {
            Ok(text) => text.lines().find_map(|l| l.strip_prefix("cluster.id=").map(|s| s.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(persist_err(&props_path)(e)),
        };
        let cluster_id = match (stored_cluster_id, cluster_id) {
            (Some(stored), Some(wanted)) if stored != wanted => {
                return Err(MetadataError::InvalidConfig(format!(
                    "data dir {} belongs to cluster {stored}, not the configured cluster_id {wanted}",
                    dir.display()
                )))
            }
            (Some(stored), _) => stored,
            (None, wanted) => {
                let id = wanted.map(str::to_string).unwrap_or_else(new_cluster_id);
                let text = format!("#\n#Written by Spate\nnode.id={node_id}\nversion=1\ncluster.id={id}\n");
                write_atomically(dir, META_PROPERTIES, text.as_bytes()).map_err(persist_err(&props_path))?;
                id
            }
        };
        let path = dir.join(METADATA_FILE);
        let image = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MetadataError::Persist {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Image::default(),
            Err(e) => return Err(persist_err(&path)(e)),
        };
        Ok(MetadataStore {
            dir: dir.to_path_buf(),
            image: RwLock::new(image),
            cluster_id,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.image.read().topics.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMetadata> {
        self.image.read().topics.values().find(|t| t.topic_id == id).cloned()
    }

    pub fn topics(&self) -> Vec<TopicMetadata> {
        self.image.read().topics.values().cloned().collect()
    }

    pub fn topic_names(&self) -> Vec<String> {
        self.image.read().topics.keys().cloned().collect()
    }

    /// Broker configs set at run time.
    pub fn broker_configs(&self) -> BTreeMap<String, String> {
        self.image.read().broker_configs.clone()
    }

    /// Applies `change` to a copy of the topics, persists the copy, then makes it visible. Changes are serialised.
    pub async fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, TopicMetadata>) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        self.update_image(|image| change(&mut image.topics)).await
    }

    /// Like [`MetadataStore::update`], for the run-time broker configs.
    pub async fn update_broker_configs<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        self.update_image(|image| change(&mut image.broker_configs)).await
    }

    /// Reserves the next block of `size` producer ids and returns its first id. Persisted before it is
    /// returned, so a restart never hands out an id twice.
    pub async fn allocate_producer_id_block(&self, size: i64) -> Result<i64, MetadataError> {
        self.update_image(|image| {
            let start = image.next_producer_id_block;
            image.next_producer_id_block = start + size;
            Ok(start)
        })
        .await
    }

    async fn update_image<T>(
        &self,
        change: impl FnOnce(&mut Image) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let _guard = self.write_lock.lock().await;
        let mut next = self.image.read().clone();
        let out = change(&mut next)?;
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| MetadataError::Persist {
            path: self.dir.join(METADATA_FILE),
            source: std::io::Error::other(e),
        })?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_atomically(&dir, METADATA_FILE, &bytes))
            .await
            .map_err(|e| MetadataError::Persist {
                path: self.dir.join(METADATA_FILE),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| MetadataError::Persist { path: self.dir.join(METADATA_FILE), source })?;
        *self.image.write() = next;
        Ok(out)
    }
}

fn new_cluster_id() -> String {
    // Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding (22 characters).
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new file, never a torn one.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_looks_like_kafkas() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[tokio::test]
    async fn topics_and_cluster_id_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1, None).unwrap();
        let id = store.cluster_id().to_string();
        store
            .update(|topics| {
                let t = TopicMetadata {
                    name: "orders".into(),
                    topic_id: Uuid::new_v4(),
                    partitions: 3,
                    configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
                };
                topics.insert(t.name.clone(), t);
                Ok(())
            })
            .await
            .unwrap();
        drop(store);
        let store = MetadataStore::open(dir.path(), 1, None).unwrap();
        assert_eq!(store.cluster_id(), id);
        let t = store.topic("orders").unwrap();
        assert_eq!(t.partitions, 3);
        assert_eq!(t.configs["retention.ms"], "1000");
    }

    #[test]
    fn wrong_cluster_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        MetadataStore::open(dir.path(), 1, Some("aaaa")).unwrap();
        assert!(MetadataStore::open(dir.path(), 1, Some("bbbb")).is_err());
    }

    #[test]
    fn failed_change_leaves_image_untouched() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1, None).unwrap();
        let r: Result<(), _> = rt.block_on(store.update(|topics| {
            topics.insert(
                "x".into(),
                TopicMetadata { name: "x".into(), topic_id: Uuid::new_v4(), partitions: 1, configs: BTreeMap::new() },
            );
            Err(MetadataError::InvalidRequest("no".into()))
        }));
        assert!(r.is_err());
        assert!(store.topic("x").is_none());
    }
}
