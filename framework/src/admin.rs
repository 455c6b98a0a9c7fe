//! `KafkaAdmin`: topics declared in code (`TopicBuilder`) are created, or grown to the declared partition count, at
//! start-up, as Spring's `KafkaAdmin` does with `NewTopic` beans.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::{ClientProps, ConfigError};

/// An admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The client could not be created.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The broker refused or the request timed out.
    #[error("{operation} failed: {error}")]
    Kafka {
        /// What was attempted.
        operation: String,
        /// The error.
        error: KafkaError,
    },
    /// A topic operation was refused for one topic.
    #[error("{operation} `{topic}` failed: {code}")]
    Topic {
        /// What was attempted.
        operation: &'static str,
        /// The topic.
        topic: String,
        /// Kafka's error code.
        code: RDKafkaErrorCode,
    },
}

/// A topic declared in code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partition count (at least this many after start-up).
    pub partitions: i32,
    /// Replication factor.
    pub replicas: i32,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...), applied on creation.
    pub configs: BTreeMap<String, String>,
}

/// Builds a [`TopicSpec`] (Spring's `TopicBuilder`).
///
/// ```
/// let t = spate::TopicBuilder::name("orders").partitions(6).replicas(1).config("retention.ms", "86400000").build();
/// assert_eq!(t.partitions, 6);
/// ```
#[derive(Debug, Clone)]
pub struct TopicBuilder {
    spec: TopicSpec,
}

impl TopicBuilder {
    /// A topic with 1 partition and 1 replica.
    pub fn name(name: impl Into<String>) -> Self {
        TopicBuilder { spec: TopicSpec { name: name.into(), partitions: 1, replicas: 1, configs: BTreeMap::new() } }
    }

    /// Partition count.
    pub fn partitions(mut self, n: i32) -> Self {
        self.spec.partitions = n;
        self
    }

    /// Replication factor.
    pub fn replicas(mut self, n: i32) -> Self {
        self.spec.replicas = n;
        self
    }

    /// `cleanup.policy=compact`.
    pub fn compact(self) -> Self {
        self.config("cleanup.policy", "compact")
    }

    /// A topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.spec.configs.insert(key.into(), value.into());
        self
    }

    /// The spec.
    pub fn build(self) -> TopicSpec {
        self.spec
    }
}

impl From<TopicBuilder> for TopicSpec {
    fn from(b: TopicBuilder) -> Self {
        b.build()
    }
}

/// What [`KafkaAdmin::initialize`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InitializeReport {
    /// Topics created.
    pub created: Vec<String>,
    /// Topics whose partition count was raised.
    pub grown: Vec<String>,
    /// Topics that already matched (or had more partitions than declared, which cannot be undone).
    pub unchanged: Vec<String>,
}

/// Administers topics of one cluster.
pub struct KafkaAdmin {
    client: std::sync::Arc<AdminClient<DefaultClientContext>>,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAdmin").field("timeout", &self.timeout).finish()
    }
}

impl KafkaAdmin {
    pub(crate) fn from_props(props: &ClientProps, timeout: Duration) -> Result<Self, ConfigError> {
        let client = AdminClient::from_config(&props.client_config()).map_err(|e| {
            props.explain(&e).unwrap_or_else(|| ConfigError::InvalidValue {
                value: props.fingerprint(),
                context: "admin client configuration".to_string(),
                message: e.to_string(),
            })
        })?;
        Ok(KafkaAdmin { client: std::sync::Arc::new(client), timeout })
    }

    /// An admin client for the default cluster of `config`.
    pub fn new(config: &crate::Config) -> Result<Self, ConfigError> {
        let c = config.kafka().default_cluster();
        Self::from_props(&c.admin_props("kafka"), Duration::from_millis(c.admin.operation_timeout_ms))
    }

    /// An admin client for a bare `bootstrap.servers`.
    pub fn for_bootstrap(bootstrap_servers: &str) -> Result<Self, ConfigError> {
        let mut p = ClientProps::default();
        p.set("bootstrap.servers", bootstrap_servers, "code");
        Self::from_props(&p, Duration::from_secs(30))
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new().operation_timeout(Some(self.timeout)).request_timeout(Some(self.timeout))
    }

    /// Partition counts of the topics that exist, by name.
    pub async fn describe_topics(&self, names: &[&str]) -> Result<BTreeMap<String, i32>, AdminError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let wanted: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        // Metadata is a blocking call in librdkafka.
        let md = tokio::task::spawn_blocking(move || client.inner().fetch_metadata(None, timeout))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
            .map_err(|error| AdminError::Kafka { operation: "fetch metadata".into(), error })?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && wanted.iter().any(|w| w == t.name()))
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect())
    }

    /// Creates topics; one that exists already is not an error.
    pub async fn create_topics(&self, topics: &[TopicSpec]) -> Result<Vec<String>, AdminError> {
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                let mut n = NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replicas));
                for (k, v) in &t.configs {
                    n = n.set(k, v);
                }
                n
            })
            .collect();
        let results = self
            .client
            .create_topics(new.iter(), &self.options())
            .await
            .map_err(|error| AdminError::Kafka { operation: "create topics".into(), error })?;
        let mut created = Vec::new();
        for r in results {
            match r {
                Ok(name) => created.push(name),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(AdminError::Topic { operation: "create topic", topic, code }),
            }
        }
        Ok(created)
    }

    /// Raises `topic`'s partition count to `partitions`.
    pub async fn grow_partitions(&self, topic: &str, partitions: usize) -> Result<(), AdminError> {
        let np = NewPartitions::new(topic, partitions);
        let results = self
            .client
            .create_partitions([&np], &self.options())
            .await
            .map_err(|error| AdminError::Kafka { operation: "create partitions".into(), error })?;
        for r in results {
            if let Err((topic, code)) = r {
                return Err(AdminError::Topic { operation: "grow partitions of", topic, code });
            }
        }
        Ok(())
    }

    /// Deletes topics.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<(), AdminError> {
        let results = self
            .client
            .delete_topics(names, &self.options())
            .await
            .map_err(|error| AdminError::Kafka { operation: "delete topics".into(), error })?;
        for r in results {
            if let Err((topic, code)) = r {
                return Err(AdminError::Topic { operation: "delete topic", topic, code });
            }
        }
        Ok(())
    }

    /// Creates the declared topics that are missing and grows those with fewer partitions than declared.
    pub async fn initialize(&self, topics: &[TopicSpec]) -> Result<InitializeReport, AdminError> {
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        let existing = self.describe_topics(&names).await?;
        let mut report = InitializeReport::default();
        let missing: Vec<TopicSpec> = topics.iter().filter(|t| !existing.contains_key(&t.name)).cloned().collect();
        if !missing.is_empty() {
            report.created = self.create_topics(&missing).await?;
        }
        for t in topics {
            if let Some(&have) = existing.get(&t.name) {
                if have < t.partitions {
                    self.grow_partitions(&t.name, t.partitions as usize).await?;
                    tracing::info!(topic = %t.name, from = have, to = t.partitions, "grew topic partitions");
                    report.grown.push(t.name.clone());
                } else {
                    if have > t.partitions {
                        tracing::warn!(topic = %t.name, have, declared = t.partitions,
                            "topic has more partitions than declared; partitions cannot be removed");
                    }
                    report.unchanged.push(t.name.clone());
                }
            }
        }
        for name in &report.created {
            tracing::info!(topic = %name, "created topic");
        }
        Ok(report)
    }
}
