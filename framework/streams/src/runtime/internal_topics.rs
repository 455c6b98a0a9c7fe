//! What an application needs from the cluster before its threads join the group: the partition counts of its
//! source topics, the co-partitioning check, and the internal topics — repartition topics sized like Kafka sizes
//! them, compacted changelog topics `<application.id>-<store>-changelog` with one partition per task of the
//! sub-topology that owns the store — created with the admin API (an existing topic is kept).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::state::changelog_topic;
use crate::{StreamsConfig, StreamsError, Topology};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a start waits for the topics it created to show in metadata.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A logged store and its changelog.
#[derive(Debug, Clone)]
pub(crate) struct ChangelogSpec {
    pub(crate) store: String,
    pub(crate) topic: String,
    pub(crate) subtopology: usize,
    pub(crate) persistent: bool,
}

/// The application's topics, resolved against the cluster.
#[derive(Debug, Clone, Default)]
pub(crate) struct TopicPlan {
    /// Per sub-topology: the topics it reads (full names).
    pub(crate) sub_topics: Vec<Vec<String>>,
    /// Per sub-topology: its nodes.
    pub(crate) sub_nodes: Vec<Vec<usize>>,
    /// Per sub-topology: the number of tasks (the partition count shared by its topics).
    pub(crate) sub_partitions: Vec<i32>,
    /// Topic → the sub-topology reading it.
    pub(crate) topic_sub: HashMap<String, usize>,
    /// Logged stores.
    pub(crate) changelogs: Vec<ChangelogSpec>,
}

impl TopicPlan {
    /// Every topic the group consumes.
    pub(crate) fn subscription(&self) -> Vec<String> {
        let mut t: Vec<String> = self.topic_sub.keys().cloned().collect();
        t.sort();
        t
    }

    pub(crate) fn changelogs_of(&self, sub: usize) -> impl Iterator<Item = &ChangelogSpec> {
        self.changelogs.iter().filter(move |c| c.subtopology == sub)
    }
}

pub(crate) fn client_config(config: &StreamsConfig) -> rdkafka::ClientConfig {
    with_properties(rdkafka::ClientConfig::new(), config)
}

/// [`client_config`] for a consumer. librdkafka (2.4+) stops fetching a partition for `fetch.queue.backoff.ms`
/// (default 1000) once its local queue is over `queued.min.messages`; a stream thread slower than the fetcher
/// drains the queue well within that second and then waits: measured, the thread idled 80% of the time and the
/// 5.2 topology ran at 125 000 records/s. As the framework's listener containers, 10 ms unless the application
/// sets it.
pub(crate) fn consumer_config(config: &StreamsConfig) -> rdkafka::ClientConfig {
    let mut c = rdkafka::ClientConfig::new();
    c.set("fetch.queue.backoff.ms", "10");
    with_properties(c, config)
}

fn with_properties(mut c: rdkafka::ClientConfig, config: &StreamsConfig) -> rdkafka::ClientConfig {
    c.set("bootstrap.servers", config.bootstrap_servers.as_deref().unwrap_or("127.0.0.1:9092"));
    for (k, v) in &config.client_properties {
        c.set(k, v);
    }
    c
}

fn kafka(operation: &str, e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Topology(format!("{operation}: {e}"))
}

/// Partition counts of the topics that exist.
fn partition_counts(admin: &AdminClient<DefaultClientContext>) -> Result<HashMap<String, i32>, StreamsError> {
    let md = admin.inner().fetch_metadata(None, METADATA_TIMEOUT).map_err(|e| kafka("fetching metadata", e))?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
        .collect())
}

/// Resolves the topology's topics against the cluster and creates the internal ones.
pub(crate) fn prepare(topology: &Topology, config: &StreamsConfig) -> Result<TopicPlan, StreamsError> {
    let app = &config.application_id;
    let admin: AdminClient<DefaultClientContext> =
        client_config(config).create().map_err(|e| kafka("creating the admin client", e))?;
    let existing = partition_counts(&admin)?;
    let sub_nodes = topology.subtopologies();
    let sub_topics = topology.subtopology_source_topics(app);
    let repartition: Vec<String> = topology.repartition_topics(app);
    // User source topics must exist (Kafka's MissingSourceTopicException).
    let mut user_counts = HashMap::new();
    for t in sub_topics.iter().flatten().filter(|t| !repartition.contains(t)) {
        let n = existing.get(t).ok_or_else(|| {
            StreamsError::Topology(format!("source topic {t} does not exist (create it before starting)"))
        })?;
        user_counts.insert(t.clone(), *n);
    }
    let repartition_counts = topology.internal_topic_partitions(app, &user_counts)?;
    let count_of = |t: &String| user_counts.get(t).or_else(|| repartition_counts.get(t)).copied();
    let mut plan = TopicPlan { sub_nodes: sub_nodes.clone(), ..TopicPlan::default() };
    for (sub, topics) in sub_topics.iter().enumerate() {
        let mut n = None;
        for t in topics {
            let c = count_of(t).ok_or_else(|| StreamsError::Topology(format!("no partition count for topic {t}")))?;
            match n {
                None => n = Some(c),
                // Tasks are per partition number across all the sub-topology's topics: with the range assignor,
                // partitions with the same number of topics with the same count land on the same consumer.
                Some(m) if m != c => {
                    return Err(StreamsError::Topology(format!(
                        "sub-topology {sub} reads topics with different partition counts ({} has {c}, others \
                         {m}); the Spate runtime needs them equal",
                        t
                    )))
                }
                Some(_) => {}
            }
            plan.topic_sub.insert(t.clone(), sub);
        }
        plan.sub_partitions.push(n.unwrap_or(0));
    }
    plan.sub_topics = sub_topics;
    for (store, builder) in topology.state_stores() {
        if !builder.logging_enabled() || topology.global_stores.contains(store) {
            continue;
        }
        let owner = sub_nodes
            .iter()
            .position(|nodes| nodes.iter().any(|i| topology.nodes[*i].stores.iter().any(|s| s == store)));
        let Some(sub) = owner else { continue };
        plan.changelogs.push(ChangelogSpec {
            store: store.to_owned(),
            topic: changelog_topic(app, store),
            subtopology: sub,
            persistent: builder.persistent(),
        });
    }
    // What to create: repartition topics (plain) and changelogs (compacted).
    let mut wanted: BTreeMap<String, (i32, bool)> = BTreeMap::new();
    for (t, n) in &repartition_counts {
        wanted.insert(t.clone(), (*n, false));
    }
    for c in &plan.changelogs {
        wanted.insert(c.topic.clone(), (plan.sub_partitions[c.subtopology], true));
    }
    // Watched by every instance for ShutdownApplication requests (see `exception_handler`).
    wanted.insert(super::exception_handler::shutdown_topic(app), (1, false));
    for (t, (n, _)) in &wanted {
        if let Some(have) = existing.get(t) {
            if have != n {
                return Err(StreamsError::Topology(format!(
                    "internal topic {t} has {have} partitions, the application needs {n}"
                )));
            }
        }
    }
    let missing: Vec<NewTopic<'_>> = wanted
        .iter()
        .filter(|(t, _)| !existing.contains_key(*t))
        .map(|(t, (n, compact))| {
            let topic = NewTopic::new(t, *n, TopicReplication::Fixed(config.replication_factor));
            if *compact {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    if !missing.is_empty() {
        let opts = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = futures::executor::block_on(admin.create_topics(missing.iter(), &opts))
            .map_err(|e| kafka("creating internal topics", e))?;
        for r in results {
            match r {
                Ok(t) => tracing::info!(topic = %t, "created internal topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => return Err(kafka(&format!("creating internal topic {t}"), code)),
            }
        }
        let deadline = Instant::now() + VISIBLE_TIMEOUT;
        loop {
            let now = partition_counts(&admin)?;
            if wanted.iter().all(|(t, (n, _))| now.get(t) == Some(n)) {
                break;
            }
            if Instant::now() > deadline {
                return Err(StreamsError::Topology("internal topics did not show in metadata within 30 s".into()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_refetch_soon_after_their_queue_drains_unless_the_application_says_otherwise() {
        let config = StreamsConfig::new("app");
        assert_eq!(consumer_config(&config).get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(client_config(&config).get("fetch.queue.backoff.ms"), None, "producers and admin do not get it");
        let config = StreamsConfig::new("app").client_property("fetch.queue.backoff.ms", "500");
        assert_eq!(consumer_config(&config).get("fetch.queue.backoff.ms"), Some("500"));
    }
}
