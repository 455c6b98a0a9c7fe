//! Cluster metadata: which topics exist, their ids, partition counts and configs, and the partitions this
//! broker leads. `metadata.rs` is the persistent registry, `topic_config.rs` the config definitions,
//! `topic_name.rs` the naming rules, `replica_manager.rs` the partitions (log + leader epoch) that serve produce
//! and fetch.

pub mod controller;
pub mod dynamic_broker_config;
pub mod metadata;
pub mod producer_id_manager;
pub mod replica_manager;
pub mod topic_config;
pub mod topic_name;

pub use controller::{Controller, NewTopic};
pub use metadata::{MetadataError, MetadataStore, TopicMetadata};
pub use producer_id_manager::ProducerIdManager;
pub use replica_manager::ReplicaManager;
