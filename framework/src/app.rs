//! `App`: what `#[spate::main]` runs (Spring Boot's application context for Kafka). It loads configuration,
//! collects every `#[kafka_listener]`, creates the declared topics, builds one producer factory per cluster and
//! one container per listener, starts them, and on SIGINT/SIGTERM stops them gracefully.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::admin::{AdminError, KafkaAdmin, TopicSpec};
use crate::codec::Encode;
use crate::config::{cluster_prefix, ClusterProperties, Config, ConfigError, ConfigLoader};
use crate::container::{
    ContainerError, ContainerSpec, ListenerContainer, ListenerEndpointRegistry, ResolvedSubscription, SeekPosition,
};
use crate::error_handler::{DefaultErrorHandler, ErrorHandler};
use crate::listener::{registered_listeners, ListenerDefinition, StateMap, Subscription};
use crate::record::TopicPartition;
use crate::template::{KafkaTemplate, ProducerFactory, ProducerListener};

/// The application failed to start or run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Topics could not be created.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// A container could not start.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// A listener definition is invalid.
    #[error("listener `{id}`: {message}")]
    Listener {
        /// Listener id.
        id: String,
        /// What is wrong.
        message: String,
    },
}

/// Builds and runs a Spate application.
///
/// ```no_run
/// #[derive(Clone)]
/// struct Db;
///
/// #[spate::kafka_listener(topics = "orders", group_id = "billing")]
/// async fn on_order(order: String, spate::State(_db): spate::State<Db>) {
///     println!("{order}");
/// }
///
/// #[spate::main]
/// async fn main() -> spate::App {
///     spate::App::new().state(Db).topic(spate::TopicBuilder::name("orders").partitions(3))
/// }
/// ```
pub struct App {
    loader: ConfigLoader,
    config: Option<Config>,
    state: StateMap,
    listeners: Vec<ListenerDefinition>,
    discover: bool,
    topics: Vec<(Option<String>, TopicSpec)>,
    producer_listeners: Vec<Arc<dyn ProducerListener>>,
    error_handler: Option<Arc<dyn ErrorHandler>>,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("listeners", &self.listeners.len()).field("discover", &self.discover).finish()
    }
}

impl App {
    /// An application configured from `spate.toml` & co (see [`ConfigLoader::new`]) that runs every
    /// `#[kafka_listener]` of the program.
    pub fn new() -> Self {
        App {
            loader: ConfigLoader::new(),
            config: None,
            state: StateMap::default(),
            listeners: Vec::new(),
            discover: true,
            topics: Vec::new(),
            producer_listeners: Vec::new(),
            error_handler: None,
        }
    }

    /// Reads configuration files from `dir`.
    pub fn config_dir(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.loader = self.loader.dir(dir);
        self
    }

    /// Activates a profile.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.loader = self.loader.profile(profile);
        self
    }

    /// Sets a configuration key in code (highest precedence).
    pub fn set(mut self, key: impl Into<String>, value: impl serde::Serialize) -> Self {
        self.loader = self.loader.set(key, value);
        self
    }

    /// Ignores `SPATE_*` environment variables.
    pub fn without_env(mut self) -> Self {
        self.loader = self.loader.without_env();
        self
    }

    /// Uses an already loaded configuration instead of loading one.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Adds application state for `State<T>` arguments.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Adds a listener; it replaces a discovered listener of the same id (to add layers or a rebalance listener
    /// to a `#[kafka_listener]`, pass `handler::definition().layer(...)`).
    pub fn listener(mut self, definition: ListenerDefinition) -> Self {
        self.listeners.push(definition);
        self
    }

    /// Whether to run every `#[kafka_listener]` of the program (default true). Tests turn it off and add the
    /// listeners they exercise.
    pub fn discover_listeners(mut self, discover: bool) -> Self {
        self.discover = discover;
        self
    }

    /// Declares a topic of the default cluster, created or grown at start-up.
    pub fn topic(mut self, topic: impl Into<TopicSpec>) -> Self {
        self.topics.push((None, topic.into()));
        self
    }

    /// Declares a topic of a named cluster.
    pub fn topic_on(mut self, cluster: impl Into<String>, topic: impl Into<TopicSpec>) -> Self {
        self.topics.push((Some(cluster.into()), topic.into()));
        self
    }

    /// Adds a producer listener to every producer factory.
    pub fn producer_listener(mut self, listener: impl ProducerListener) -> Self {
        self.producer_listeners.push(Arc::new(listener));
        self
    }

    /// The error handler of listeners that name none (default: [`DefaultErrorHandler::new`]).
    pub fn error_handler(mut self, handler: impl ErrorHandler) -> Self {
        self.error_handler = Some(Arc::new(handler));
        self
    }

    /// Starts everything and returns a handle; the caller decides when to [`RunningApp::shutdown`].
    pub async fn start(self) -> Result<RunningApp, AppError> {
        let config = match self.config {
            Some(c) => c,
            None => self.loader.load()?,
        };
        let kafka = config.kafka().clone();
        let state = Arc::new(self.state);

        // Explicit listeners replace discovered ones with the same id.
        let mut defs: BTreeMap<String, ListenerDefinition> = BTreeMap::new();
        if self.discover {
            for d in registered_listeners() {
                if defs.insert(d.id.clone(), d.clone()).is_some() {
                    return Err(AppError::Listener { id: d.id, message: "two #[kafka_listener]s have this id".into() });
                }
            }
        }
        for d in self.listeners {
            defs.insert(d.id.clone(), d);
        }

        // Topics declared in code, per cluster.
        let mut by_cluster: BTreeMap<Option<String>, Vec<TopicSpec>> = BTreeMap::new();
        for (c, t) in self.topics {
            by_cluster.entry(c).or_default().push(t);
        }
        for (cluster, topics) in by_cluster {
            let props = cluster_props(&kafka, cluster.as_deref(), "a declared topic")?;
            if !props.admin.auto_create {
                continue;
            }
            let prefix = cluster_prefix(cluster.as_deref());
            let admin = KafkaAdmin::from_props(
                &props.admin_props(&prefix),
                Duration::from_millis(props.admin.operation_timeout_ms),
            )?;
            match admin.initialize(&topics).await {
                Ok(report) => tracing::debug!(?report, "declared topics initialized"),
                Err(e) if props.admin.fail_fast => return Err(e.into()),
                Err(e) => tracing::warn!(error = %e, "declared topics not initialized"),
            }
        }

        let mut factories: BTreeMap<String, ProducerFactory> = BTreeMap::new();
        let mut factory_for = |cluster: Option<&str>, context: &str| -> Result<ProducerFactory, AppError> {
            let key = cluster.unwrap_or("default").to_string();
            if let Some(f) = factories.get(&key) {
                return Ok(f.clone());
            }
            let props = cluster_props(&kafka, cluster, context)?;
            let f = ProducerFactory::from_props(props.producer_props(&cluster_prefix(cluster)), &props.template);
            for l in &self.producer_listeners {
                f.add_listener_arc(l.clone());
            }
            f.validate()?;
            factories.insert(key, f.clone());
            Ok(f)
        };
        let default_factory = factory_for(None, "the default template")?;

        let registry = ListenerEndpointRegistry::new();
        let default_handler: Arc<dyn ErrorHandler> =
            self.error_handler.unwrap_or_else(|| Arc::new(DefaultErrorHandler::new()));
        for def in defs.into_values() {
            let cluster = def
                .cluster
                .as_ref()
                .map(|c| config.resolve(c, &format!("listener `{}` attribute `cluster`", def.id)))
                .transpose()?;
            let producer = factory_for(cluster.as_deref(), &format!("listener `{}`", def.id))?;
            let spec = resolve(&config, &def, cluster.as_deref(), &state, producer, &default_handler)?;
            let specs = match &def.retry_topic {
                Some(rt) => {
                    let props = cluster_props(&kafka, cluster.as_deref(), &format!("listener `{}`", def.id))?;
                    crate::retry_topic::containers(spec, rt, &props, &cluster_prefix(cluster.as_deref())).await?
                }
                None => vec![spec],
            };
            for spec in specs {
                registry.register(ListenerContainer::new(spec, registry.events_sender()));
            }
        }
        let mut app =
            RunningApp { config, registry, factories: Arc::new(factories), default_factory, management: None };
        if let Err(e) = app.registry.start_auto_startup().await {
            app.registry.stop_all().await;
            return Err(e.into());
        }
        // After the containers, so readiness is never UP before they run.
        match crate::observability::ManagementServer::start_if_configured(&app.config, &app.registry).await {
            Ok(m) => app.management = m,
            Err(e) => {
                app.registry.stop_all().await;
                return Err(e.into());
            }
        }
        Ok(app)
    }

    /// Starts, runs until SIGINT or SIGTERM, then stops gracefully.
    pub async fn run(self) -> Result<(), AppError> {
        self.run_until(shutdown_signal()).await
    }

    /// Starts, runs until `signal` resolves, then stops gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), AppError> {
        let app = self.start().await?;
        tracing::info!(listeners = ?app.registry.listener_container_ids(), "application started");
        signal.await;
        tracing::info!("shutdown requested; stopping listener containers");
        app.shutdown().await;
        Ok(())
    }
}

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn cluster_props(
    kafka: &crate::config::KafkaProperties,
    name: Option<&str>,
    context: &str,
) -> Result<ClusterProperties, ConfigError> {
    kafka.cluster(name).ok_or_else(|| ConfigError::UnknownCluster {
        name: name.unwrap_or_default().to_string(),
        context: context.to_string(),
    })
}

fn parse<T: std::str::FromStr>(value: &str, context: &str, what: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::InvalidValue {
        value: value.to_string(),
        context: context.to_string(),
        message: format!("expected {what}"),
    })
}

/// Parses `topic:partitions[@position]` (partitions `3`, `0-3` or `0,2`; position a number, `-N`, `beginning`
/// or `end`).
fn parse_partitions(spec: &str, context: &str) -> Result<Vec<(TopicPartition, Option<SeekPosition>)>, ConfigError> {
    let bad = |message: &str| ConfigError::InvalidValue {
        value: spec.to_string(),
        context: context.to_string(),
        message: format!("{message} (expected `topic:partitions[@offset]`, e.g. `orders:0-2@beginning`)"),
    };
    let (head, position) = match spec.rsplit_once('@') {
        Some((h, p)) => {
            let pos = match p.trim() {
                "beginning" | "earliest" => SeekPosition::Beginning,
                "end" | "latest" => SeekPosition::End,
                n => SeekPosition::Offset(n.parse().map_err(|_| bad("offset is not a number, `beginning` or `end`"))?),
            };
            (h, Some(pos))
        }
        None => (spec, None),
    };
    let (topic, parts) = head.rsplit_once(':').ok_or_else(|| bad("missing `:partitions`"))?;
    let mut out = Vec::new();
    for piece in parts.split(',') {
        let piece = piece.trim();
        let (a, b) = match piece.split_once('-') {
            Some((a, b)) => (a, b),
            None => (piece, piece),
        };
        let a: i32 = a.trim().parse().map_err(|_| bad("partition is not a number"))?;
        let b: i32 = b.trim().parse().map_err(|_| bad("partition is not a number"))?;
        if a < 0 || b < a {
            return Err(bad("invalid partition range"));
        }
        for p in a..=b {
            out.push((TopicPartition::new(topic.trim(), p), position));
        }
    }
    Ok(out)
}

fn resolve(
    config: &Config,
    def: &ListenerDefinition,
    cluster: Option<&str>,
    state: &Arc<StateMap>,
    producer: ProducerFactory,
    default_handler: &Arc<dyn ErrorHandler>,
) -> Result<ContainerSpec, AppError> {
    let id = def.id.clone();
    let ctx = |attr: &str| format!("listener `{id}` attribute `{attr}`");
    let err = |message: String| AppError::Listener { id: id.clone(), message };
    let kafka = config.kafka();
    let props = cluster_props(kafka, cluster, &format!("listener `{id}`"))?;
    let prefix = cluster_prefix(cluster);
    let lp = &kafka.listener;

    let group_id = match &def.group_id {
        Some(g) => config.resolve(g, &ctx("group_id"))?,
        None if def.id_explicit => id.clone(),
        None => props.consumer.group_id.clone().ok_or_else(|| {
            err(format!("no consumer group: set `group_id` or `id` on the listener, or `{prefix}.consumer.group_id`"))
        })?,
    };
    let concurrency = match &def.concurrency {
        Some(c) => parse::<usize>(&config.resolve(c, &ctx("concurrency"))?, &ctx("concurrency"), "a number")?,
        None => lp.concurrency,
    };
    if concurrency == 0 {
        return Err(err("concurrency must be at least 1".into()));
    }
    let auto_startup = match &def.auto_startup {
        Some(v) => parse::<bool>(&config.resolve(v, &ctx("auto_startup"))?, &ctx("auto_startup"), "true or false")?,
        None => lp.auto_startup,
    };
    let ack_mode = def.ack_mode.unwrap_or(lp.ack_mode);
    if def.uses_ack && !ack_mode.is_manual() {
        return Err(err(format!("takes an `Ack` but its ack mode is {ack_mode:?}; use ack_mode = \"manual\"")));
    }
    if ack_mode.is_manual() && !def.uses_ack && def.ack_mode.is_none() {
        return Err(err(format!(
            "kafka.listener.ack_mode is {ack_mode:?} but the handler takes no `Ack`, so nothing would ever be committed"
        )));
    }
    let ordering = def.ordering.unwrap_or(lp.ordering);
    let key_concurrency = match &def.key_concurrency {
        Some(c) => parse::<usize>(&config.resolve(c, &ctx("key_concurrency"))?, &ctx("key_concurrency"), "a number")?,
        None => lp.key_concurrency,
    };
    let subscription = match &def.subscription {
        Subscription::Topics(ts) => {
            let mut out = Vec::new();
            for t in ts {
                // A placeholder may hold a comma-separated list, as in Spring.
                for name in config.resolve(t, &ctx("topics"))?.split(',') {
                    let name = name.trim();
                    if !name.is_empty() {
                        out.push(name.to_string());
                    }
                }
            }
            if out.is_empty() {
                return Err(err("no topics: set `topics`, `topic_pattern` or `topic_partitions`".into()));
            }
            ResolvedSubscription::Topics(out)
        }
        Subscription::Pattern(p) => ResolvedSubscription::Pattern(config.resolve(p, &ctx("topic_pattern"))?),
        Subscription::Partitions(specs) => {
            let mut out = Vec::new();
            for s in specs {
                let resolved = config.resolve(s, &ctx("topic_partitions"))?;
                out.extend(parse_partitions(&resolved, &ctx("topic_partitions"))?);
            }
            if out.is_empty() {
                return Err(err("`topic_partitions` is empty".into()));
            }
            ResolvedSubscription::Partitions(out)
        }
    };
    for (type_id, name) in &def.required_state {
        if !state.contains(*type_id) {
            return Err(err(format!("takes `State<{name}>` but no such state was added (App::state)")));
        }
    }

    let mut consumer_props = props.consumer_props(&prefix);
    consumer_props.set("group.id", &group_id, format!("listener `{id}` group_id"));
    // The container commits; librdkafka must neither commit nor store offsets on its own.
    consumer_props.set("enable.auto.commit", "false", "spate (containers commit offsets)");
    consumer_props.set("enable.auto.offset.store", "false", "spate (containers commit offsets)");
    for kv in &def.properties {
        let kv = config.resolve(kv, &ctx("properties"))?;
        let (k, v) = kv.split_once('=').ok_or_else(|| ConfigError::InvalidValue {
            value: kv.clone(),
            context: ctx("properties"),
            message: "expected `key=value`".into(),
        })?;
        consumer_props.set(k.trim(), v.trim(), format!("listener `{id}` properties"));
    }
    let client_id_prefix =
        def.client_id_prefix.as_ref().map(|p| config.resolve(p, &ctx("client_id_prefix"))).transpose()?;
    let send_to = def.send_to.as_ref().map(|t| config.resolve(t, &ctx("send_to"))).transpose()?;
    let error_handler = def.error_handler.clone().unwrap_or_else(|| default_handler.clone());
    let read_headers = reads_headers(def, &*error_handler, lp.observation_enabled);

    Ok(ContainerSpec {
        listener_id: Arc::from(id.as_str()),
        group_id: Arc::from(group_id.as_str()),
        subscription,
        concurrency,
        auto_startup,
        batch: def.batch,
        ack_mode,
        ack_count: lp.ack_count.max(1),
        ack_time: Duration::from_millis(lp.ack_time_ms),
        max_poll_records: props.consumer.max_poll_records.unwrap_or(500).max(1),
        idle_interval: lp.idle_event_interval_ms.map(Duration::from_millis),
        shutdown_timeout: Duration::from_millis(lp.shutdown_timeout_ms),
        ordering,
        key_concurrency: key_concurrency.max(1),
        client_id_prefix,
        consumer_props,
        filter: def.filter,
        error_handler,
        rebalance_listener: def.rebalance_listener.clone(),
        service: def.service(),
        state: state.clone(),
        producer: Some(producer),
        send_to,
        due_gate: None,
        observation: lp.observation_enabled,
        read_headers,
    })
}

/// Whether a container asks librdkafka for its records' headers: unless nothing that sees its records reads them
/// (see [`ListenerDefinition::reads_headers`]). A record whose headers were skipped cannot get them back, so
/// anything unsure counts as reading them. Retry topics read them (forwarding, the due-time gate, DLT handlers),
/// and their retry and DLT containers are copies of this one's spec.
fn reads_headers(def: &ListenerDefinition, error_handler: &dyn ErrorHandler, observation: bool) -> bool {
    observation
        || def.reads_headers
        || def.filter.is_some()
        || def.send_to.is_some()
        || def.retry_topic.is_some()
        || error_handler.reads_headers()
}

/// A started application.
pub struct RunningApp {
    config: Config,
    registry: ListenerEndpointRegistry,
    factories: Arc<BTreeMap<String, ProducerFactory>>,
    default_factory: ProducerFactory,
    management: Option<crate::observability::ManagementServer>,
}

impl std::fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApp").field("registry", &self.registry).finish()
    }
}

impl RunningApp {
    /// The listener containers.
    pub fn registry(&self) -> &ListenerEndpointRegistry {
        &self.registry
    }

    /// A listener's container.
    pub fn container(&self, id: &str) -> Option<ListenerContainer> {
        self.registry.listener_container(id)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A template on the default cluster (sharing its one producer).
    pub fn template<K: Encode, V: Encode>(&self) -> KafkaTemplate<K, V> {
        KafkaTemplate::new(&self.default_factory)
    }

    /// A template on a named cluster used by a listener, or `None`.
    pub fn template_for<K: Encode, V: Encode>(&self, cluster: &str) -> Option<KafkaTemplate<K, V>> {
        self.factories.get(cluster).map(KafkaTemplate::new)
    }

    /// The default cluster's producer factory.
    pub fn producer_factory(&self) -> &ProducerFactory {
        &self.default_factory
    }

    /// An admin client for the default cluster.
    pub fn admin(&self) -> Result<KafkaAdmin, ConfigError> {
        KafkaAdmin::new(&self.config)
    }

    /// Where the management server (`management.server.port`) listens, when it runs.
    pub fn management_address(&self) -> Option<std::net::SocketAddr> {
        self.management.as_ref().map(|m| m.local_addr())
    }

    /// Stops every container gracefully (finish in-flight records, commit, leave the group), then flushes the
    /// producers. Readiness reports OUT_OF_SERVICE from the start of the shutdown.
    pub async fn shutdown(self) {
        if let Some(m) = &self.management {
            m.health().set_shutting_down();
        }
        self.registry.stop_all().await;
        for f in self.factories.values() {
            if let Err(e) = f.flush(Duration::from_secs(10)).await {
                tracing::warn!(error = %e, "producer flush at shutdown failed");
            }
        }
        if let Some(m) = self.management {
            m.stop().await;
        }
        tracing::info!("application stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_specs_parse() {
        let p = parse_partitions("orders:0-2@beginning", "t").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[2], (TopicPartition::new("orders", 2), Some(SeekPosition::Beginning)));
        let p = parse_partitions("orders:1,3@-5", "t").unwrap();
        assert_eq!(
            p,
            vec![
                (TopicPartition::new("orders", 1), Some(SeekPosition::Offset(-5))),
                (TopicPartition::new("orders", 3), Some(SeekPosition::Offset(-5))),
            ]
        );
        assert!(parse_partitions("orders", "t").is_err());
        assert!(parse_partitions("orders:x", "t").is_err());
    }

    #[test]
    fn headers_are_skipped_only_when_nothing_that_sees_the_records_reads_them() {
        use crate::error_handler::DeadLetterPublishingRecoverer;
        use crate::{BoxError, Delivery, ListenerError, Outcome, Record};
        let quiet = || {
            ListenerDefinition::from_fn("l", |_d: Delivery| async { Ok::<_, ListenerError>(Outcome::done()) })
                .reads_headers(false)
        };
        let logging: Arc<dyn ErrorHandler> = Arc::new(DefaultErrorHandler::new());
        assert!(!reads_headers(&quiet(), &*logging, false));

        // Each of these alone makes the container read headers.
        assert!(reads_headers(&quiet(), &*logging, true), "trace continuation");
        let defaults =
            ListenerDefinition::from_fn("l", |_d: Delivery| async { Ok::<_, ListenerError>(Outcome::done()) });
        assert!(reads_headers(&defaults, &*logging, false), "a hand-written service");
        assert!(reads_headers(&quiet().layer(tower::layer::util::Identity::new()), &*logging, false), "a layer");
        assert!(reads_headers(&quiet().filter(|_| true), &*logging, false), "a filter");
        assert!(reads_headers(&quiet().send_to("replies"), &*logging, false), "a reply");
        let retry = crate::retry_topic::RetryTopicConfiguration::new();
        assert!(reads_headers(&quiet().retryable_topic(retry), &*logging, false), "retry topics");
        let dead_letters: Arc<dyn ErrorHandler> =
            Arc::new(DefaultErrorHandler::new().recoverer(DeadLetterPublishingRecoverer::new()));
        assert!(reads_headers(&quiet(), &*dead_letters, false), "dead-letter publishing");
        let own = crate::error_handler::recoverer_fn(|_r: &Record, _e: &ListenerError| async { Ok::<_, BoxError>(()) });
        let own: Arc<dyn ErrorHandler> = Arc::new(DefaultErrorHandler::new().recoverer(own));
        assert!(reads_headers(&quiet(), &*own, false), "an application's recoverer");
    }
}
