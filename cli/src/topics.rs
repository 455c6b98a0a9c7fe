//! `spate topics`: create, list, describe, alter and delete topics through the Kafka Admin API, so it works the
//! same against Spate's broker and any Kafka cluster (kafka-topics.sh and kafka-configs.sh for topics).

use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::{Metadata, MetadataTopic};
use serde::Serialize;

use crate::client::{describe_error, fetch_metadata, parse_key_value, CliContext, CliError, ConnectArgs};

#[derive(Args, Debug)]
pub struct TopicsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Subcommand, Debug)]
enum TopicsCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topic names, one per line.
    List(ListArgs),
    /// Show partitions, leaders, replicas and configs of topics.
    Describe(DescribeArgs),
    /// Change topic configs or add partitions.
    Alter(AlterArgs),
    /// Delete topics and all their data.
    Delete(DeleteArgs),
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// Name of the topic.
    topic: String,
    /// Number of partitions (default: the broker's num.partitions).
    #[arg(long, short = 'p', value_name = "N")]
    partitions: Option<i32>,
    /// Replication factor (default: the broker's default.replication.factor).
    #[arg(long, short = 'r', value_name = "N")]
    replication_factor: Option<i16>,
    /// Topic config, e.g. `--config retention.ms=3600000`. Repeatable.
    #[arg(long, short = 'c', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// Succeed without change when the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Include internal topics such as __consumer_offsets.
    #[arg(long)]
    include_internal: bool,
}

#[derive(Args, Debug)]
struct DescribeArgs {
    /// Topics to describe (default: every topic that is not internal).
    topics: Vec<String>,
    /// Show every config with its value and source, not only the ones set on the topic.
    #[arg(long)]
    all_configs: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["config", "delete_config", "partitions"]))]
struct AlterArgs {
    /// Name of the topic.
    topic: String,
    /// Set a topic config, e.g. `--config retention.ms=60000`. Repeatable.
    #[arg(long, short = 'c', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// Remove a topic config so the broker default applies again. Repeatable.
    #[arg(long, value_name = "KEY")]
    delete_config: Vec<String>,
    /// Grow the topic to this many partitions (Kafka cannot shrink a topic).
    #[arg(long, short = 'p', value_name = "N")]
    partitions: Option<usize>,
}

#[derive(Args, Debug)]
struct DeleteArgs {
    /// Topics to delete.
    #[arg(required = true)]
    topics: Vec<String>,
    /// Succeed when a topic does not exist.
    #[arg(long)]
    if_exists: bool,
}

pub async fn run(args: TopicsArgs) -> Result<()> {
    let connect = &args.connect;
    let admin: AdminClient<CliContext> = connect
        .client_config(&[])
        .create_with_context(CliContext::default())
        .map_err(|e| CliError::ClientConfig(e.to_string()))?;
    let options = AdminOptions::new().request_timeout(Some(connect.timeout()));
    let topics = Topics { connect, admin: &admin, options: &options };
    match args.command {
        TopicsCommand::Create(a) => topics.create(a).await,
        TopicsCommand::List(a) => topics.list(a),
        TopicsCommand::Describe(a) => topics.describe(a).await,
        TopicsCommand::Alter(a) => topics.alter(a).await,
        TopicsCommand::Delete(a) => topics.delete(a).await,
    }
}

struct Topics<'a> {
    connect: &'a ConnectArgs,
    admin: &'a AdminClient<CliContext>,
    options: &'a AdminOptions,
}

impl Topics<'_> {
    fn metadata(&self) -> Result<Metadata, CliError> {
        fetch_metadata(self.connect)
    }

    fn explain(&self, error: &rdkafka::error::KafkaError) -> String {
        describe_error(error, self.admin.inner().context(), &self.connect.bootstrap_server)
    }

    async fn create(&self, args: CreateArgs) -> Result<()> {
        // Asking first gives a clear "cannot reach" instead of a CreateTopics timeout.
        self.metadata()?;
        let mut new_topic = NewTopic::new(
            &args.topic,
            args.partitions.unwrap_or(-1),
            TopicReplication::Fixed(i32::from(args.replication_factor.unwrap_or(-1))),
        );
        for (key, value) in &args.config {
            new_topic = new_topic.set(key, value);
        }
        let results = self
            .admin
            .create_topics([&new_topic], self.options)
            .await
            .map_err(|e| anyhow::anyhow!("creating topic '{}': {}", args.topic, self.explain(&e)))?;
        for result in results {
            match result {
                Ok(name) => println!("Created topic {name}."),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) if args.if_not_exists => {
                    println!("Topic {name} already exists.")
                }
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    bail!("topic '{name}' already exists (--if-not-exists accepts that)")
                }
                Err((name, code)) => bail!("creating topic '{name}': {code}"),
            }
        }
        Ok(())
    }

    fn list(&self, args: ListArgs) -> Result<()> {
        let metadata = self.metadata()?;
        let mut names: Vec<&str> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| t.name())
            .filter(|name| args.include_internal || !is_internal(name))
            .collect();
        names.sort_unstable();
        for name in names {
            println!("{name}");
        }
        Ok(())
    }

    async fn describe(&self, args: DescribeArgs) -> Result<()> {
        let metadata = self.metadata()?;
        let by_name: BTreeMap<&str, &MetadataTopic> =
            metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| (t.name(), t)).collect();
        let wanted: Vec<&str> = if args.topics.is_empty() {
            by_name.keys().copied().filter(|n| !is_internal(n)).collect()
        } else {
            for topic in &args.topics {
                if !by_name.contains_key(topic.as_str()) {
                    return Err(CliError::UnknownTopic(topic.clone()).into());
                }
            }
            args.topics.iter().map(String::as_str).collect()
        };
        let specifiers: Vec<ResourceSpecifier> = wanted.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let configs = self
            .admin
            .describe_configs(&specifiers, self.options)
            .await
            .map_err(|e| anyhow::anyhow!("describing topic configs: {}", self.explain(&e)))?;

        let mut described = Vec::with_capacity(wanted.len());
        for (name, config) in wanted.iter().zip(configs) {
            let config = config.map_err(|code| anyhow::anyhow!("describing configs of topic '{name}': {code}"))?;
            let Some(topic) = by_name.get(name) else { continue };
            let partitions: Vec<PartitionView> = topic
                .partitions()
                .iter()
                .map(|p| PartitionView {
                    partition: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                })
                .collect();
            let configs: Vec<ConfigView> = config
                .entries
                .iter()
                .filter(|e| args.all_configs || e.source == ConfigSource::DynamicTopic)
                .map(|e| ConfigView {
                    name: e.name.clone(),
                    value: if e.is_sensitive { None } else { e.value.clone() },
                    source: source_name(&e.source),
                })
                .collect();
            described.push(TopicView {
                topic: name.to_string(),
                partition_count: partitions.len(),
                replication_factor: partitions.first().map_or(0, |p| p.replicas.len()),
                partitions,
                configs,
            });
        }

        if args.json {
            println!("{}", serde_json::to_string_pretty(&described)?);
            return Ok(());
        }
        for topic in &described {
            let configs: Vec<String> = topic
                .configs
                .iter()
                .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("<sensitive>")))
                .collect();
            println!(
                "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                topic.topic,
                topic.partition_count,
                topic.replication_factor,
                configs.join(",")
            );
            for p in &topic.partitions {
                println!(
                    "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                    topic.topic,
                    p.partition,
                    p.leader,
                    join_ids(&p.replicas),
                    join_ids(&p.isr)
                );
            }
        }
        Ok(())
    }

    async fn alter(&self, args: AlterArgs) -> Result<()> {
        let metadata = self.metadata()?;
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == args.topic && t.error().is_none()) else {
            return Err(CliError::UnknownTopic(args.topic).into());
        };
        let current_partitions = topic.partitions().len();

        if !args.config.is_empty() || !args.delete_config.is_empty() {
            self.alter_configs(&args).await?;
        }

        if let Some(count) = args.partitions {
            if count < current_partitions {
                bail!(
                    "topic '{}' has {current_partitions} partitions; Kafka cannot reduce that to {count}",
                    args.topic
                );
            }
            if count == current_partitions {
                println!("Topic {} already has {count} partitions.", args.topic);
            } else {
                let new_partitions = NewPartitions::new(&args.topic, count);
                let results = self
                    .admin
                    .create_partitions([&new_partitions], self.options)
                    .await
                    .map_err(|e| anyhow::anyhow!("adding partitions to '{}': {}", args.topic, self.explain(&e)))?;
                for result in results {
                    match result {
                        Ok(name) => println!("Topic {name} now has {count} partitions."),
                        Err((name, code)) => bail!("adding partitions to '{name}': {code}"),
                    }
                }
            }
        }
        Ok(())
    }

    /// The classic AlterConfigs request (the one rdkafka offers) replaces the topic's whole set of overrides,
    /// so the current overrides are read first and sent back with the requested changes applied.
    async fn alter_configs(&self, args: &AlterArgs) -> Result<()> {
        let specifier = ResourceSpecifier::Topic(&args.topic);
        let described = self
            .admin
            .describe_configs([&specifier], self.options)
            .await
            .map_err(|e| anyhow::anyhow!("reading configs of '{}': {}", args.topic, self.explain(&e)))?;
        let resource = described
            .into_iter()
            .next()
            .context("the broker returned no configs for the topic")?
            .map_err(|code| anyhow::anyhow!("reading configs of '{}': {code}", args.topic))?;

        let mut overrides: BTreeMap<String, String> = resource
            .entries
            .iter()
            .filter(|e| e.source == ConfigSource::DynamicTopic)
            .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
            .collect();
        if let Some(secret) = resource.entries.iter().find(|e| e.source == ConfigSource::DynamicTopic && e.is_sensitive)
        {
            // Its value is hidden from us, so replacing the whole set would erase it.
            bail!("topic '{}' has a sensitive config ({}) that this command cannot preserve", args.topic, secret.name);
        }
        for key in &args.delete_config {
            if overrides.remove(key).is_none() {
                bail!("topic '{}' has no config '{key}' set, so there is nothing to delete", args.topic);
            }
        }
        for (key, value) in &args.config {
            overrides.insert(key.clone(), value.clone());
        }

        let mut alter = AlterConfig::new(specifier);
        for (key, value) in &overrides {
            alter = alter.set(key, value);
        }
        let results = self
            .admin
            .alter_configs([&alter], self.options)
            .await
            .map_err(|e| anyhow::anyhow!("altering configs of '{}': {}", args.topic, self.explain(&e)))?;
        for result in results {
            if let Err((_, code)) = result {
                bail!("altering configs of '{}': {code}", args.topic);
            }
        }
        println!("Updated configs of topic {}.", args.topic);
        Ok(())
    }

    async fn delete(&self, args: DeleteArgs) -> Result<()> {
        self.metadata()?;
        let names: Vec<&str> = args.topics.iter().map(String::as_str).collect();
        let results = self
            .admin
            .delete_topics(&names, self.options)
            .await
            .map_err(|e| anyhow::anyhow!("deleting topics: {}", self.explain(&e)))?;
        let mut failed = Vec::new();
        for result in results {
            match result {
                Ok(name) => println!("Deleted topic {name}."),
                Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) if args.if_exists => {
                    println!("Topic {name} does not exist.")
                }
                Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    eprintln!("error: topic '{name}' does not exist");
                    failed.push(name);
                }
                Err((name, code)) => {
                    eprintln!("error: deleting topic '{name}': {code}");
                    failed.push(name);
                }
            }
        }
        if !failed.is_empty() {
            return Err(crate::Reported(format!("{} of {} topics not deleted", failed.len(), names.len())).into());
        }
        Ok(())
    }
}

fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "unknown",
        ConfigSource::DynamicTopic => "topic",
        ConfigSource::DynamicBroker => "dynamic-broker",
        ConfigSource::DynamicDefaultBroker => "dynamic-default-broker",
        ConfigSource::StaticBroker => "static-broker",
        ConfigSource::Default => "default",
    }
}

#[derive(Serialize)]
struct TopicView {
    topic: String,
    partition_count: usize,
    replication_factor: usize,
    partitions: Vec<PartitionView>,
    configs: Vec<ConfigView>,
}

#[derive(Serialize)]
struct PartitionView {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

#[derive(Serialize)]
struct ConfigView {
    name: String,
    value: Option<String>,
    source: &'static str,
}
