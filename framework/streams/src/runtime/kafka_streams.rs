//! `KafkaStreams`: runs a topology against a cluster with `num.stream.threads` stream threads, reports Kafka's
//! client states to a listener, and answers interactive queries from the local stores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::exception_handler::{
    request_application_shutdown, shutdown_watch_start, watch_shutdown_requests, StreamThreadExceptionResponse,
    StreamsUncaughtExceptionHandler,
};
use super::global_thread::{GlobalTask, GLOBAL_TASK};
use super::internal_topics::{prepare, TopicPlan};
use super::queries::{QueryableStore, StoreQueryParameters, StoreRegistry};
use super::standby::{self, StandbyState};
use super::stream_thread;
use crate::{StreamsConfig, StreamsError, Topology};

/// Kafka's `KafkaStreams.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Built, not started.
    Created,
    /// Threads are joining the group or restoring their tasks.
    Rebalancing,
    /// Every thread processes its tasks.
    Running,
    /// `close()` was called; threads are committing and leaving.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// A thread failed (the error is logged and kept: [`KafkaStreams::error`]); the other threads were stopped.
    Error,
}

type StateListener = Box<dyn Fn(State, State) + Send + Sync>;
type RestoreListener = Box<dyn Fn(&str, &str, i32, u64) + Send + Sync>;

/// What a thread's tasks are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadPhase {
    Rebalancing,
    Running,
    Dead,
}

/// What the application object and its threads share.
pub(crate) struct Shared {
    state: Mutex<State>,
    listener: Mutex<Option<StateListener>>,
    phases: Mutex<Vec<ThreadPhase>>,
    error: Mutex<Option<String>>,
    pub(crate) stop: AtomicBool,
    pub(crate) registry: Arc<StoreRegistry>,
    /// The standby tasks' stores (queryable with `enable_stale_stores`).
    pub(crate) standby_registry: Arc<StoreRegistry>,
    /// Present when `num.standby.replicas` ≥ 1.
    pub(crate) standby: Option<Arc<StandbyState>>,
    restore_listener: Mutex<Option<RestoreListener>>,
    /// Names this instance in transactional ids when no `instance_id` is configured, and in shutdown requests.
    pub(crate) process_id: String,
    uncaught_handler: Mutex<Option<Arc<dyn StreamsUncaughtExceptionHandler>>>,
}

impl Shared {
    fn transition(&self, to: State) {
        let from = {
            let mut s = self.state.lock();
            let from = *s;
            // Terminal and shutdown states are left only by close().
            let allowed = match from {
                State::NotRunning | State::Error => false,
                State::PendingShutdown => matches!(to, State::NotRunning | State::Error),
                _ => true,
            };
            if !allowed || from == to {
                return;
            }
            *s = to;
            from
        };
        tracing::info!(from = ?from, to = ?to, "streams client state changed");
        if let Some(l) = self.listener.lock().as_ref() {
            l(to, from);
        }
    }

    pub(crate) fn set_phase(&self, thread: usize, phase: ThreadPhase) {
        let next = {
            let mut p = self.phases.lock();
            if let Some(slot) = p.get_mut(thread) {
                *slot = phase;
            }
            let alive: Vec<_> = p.iter().filter(|x| **x != ThreadPhase::Dead).collect();
            if alive.is_empty() {
                return;
            }
            if alive.iter().all(|x| **x == ThreadPhase::Running) {
                State::Running
            } else {
                State::Rebalancing
            }
        };
        self.transition(next);
    }

    /// A store finished restoring one changelog partition (Kafka's `StateRestoreListener.onRestoreEnd`).
    pub(crate) fn restore_ended(&self, store: &str, topic: &str, partition: i32, restored: u64) {
        if let Some(l) = self.restore_listener.lock().as_ref() {
            l(store, topic, partition, restored);
        }
    }

    pub(crate) fn fail(&self, error: String) {
        self.error.lock().get_or_insert(error);
        self.stop.store(true, Ordering::Release);
        self.transition(State::Error);
    }

    /// Applies the uncaught exception handler to a thread's failure; true when the thread is to be replaced.
    pub(crate) fn handle_uncaught(
        &self,
        error: &StreamsError,
        thread: &str,
        replaceable: bool,
        config: &StreamsConfig,
    ) -> bool {
        let handler = self.uncaught_handler.lock().clone();
        let response = handler.map_or(StreamThreadExceptionResponse::ShutdownClient, |h| h.handle(error));
        tracing::error!(thread, error = %error, response = ?response, "a thread failed");
        match response {
            // A failure while closing ends the thread: nothing to replace.
            StreamThreadExceptionResponse::ReplaceThread if replaceable && !self.stop.load(Ordering::Acquire) => true,
            StreamThreadExceptionResponse::ReplaceThread | StreamThreadExceptionResponse::ShutdownClient => {
                if response == StreamThreadExceptionResponse::ReplaceThread {
                    tracing::warn!(thread, "only stream threads can be replaced: shutting the client down");
                }
                self.fail(error.to_string());
                false
            }
            StreamThreadExceptionResponse::ShutdownApplication => {
                self.fail(error.to_string());
                request_application_shutdown(config, self, &format!("{thread}: {error}"));
                false
            }
        }
    }
}

/// A streams application instance (Kafka's `KafkaStreams`).
///
/// ```no_run
/// use spate_streams::{KafkaStreams, StreamsBuilder, StreamsConfig, Materialized};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("words").group_by_key().count_with(Materialized::as_("counts")).to_stream().to("word-counts");
/// let config = StreamsConfig::new("word-count").bootstrap_servers("127.0.0.1:9092");
/// let mut streams = KafkaStreams::new(builder.build(), config);
/// streams.start().unwrap();
/// // ... later
/// streams.close();
/// ```
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: Arc<StreamsConfig>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for KafkaStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStreams")
            .field("application_id", &self.config.application_id)
            .field("state", &self.state())
            .finish()
    }
}

impl KafkaStreams {
    /// An application instance for `topology`, not started.
    pub fn new(topology: Topology, config: StreamsConfig) -> Self {
        let threads = config.num_stream_threads.max(1);
        let standby = (config.num_standby_replicas > 0).then(|| Arc::new(StandbyState::default()));
        KafkaStreams {
            topology: Arc::new(topology),
            config: Arc::new(config),
            shared: Arc::new(Shared {
                state: Mutex::new(State::Created),
                listener: Mutex::new(None),
                phases: Mutex::new(vec![ThreadPhase::Rebalancing; threads]),
                error: Mutex::new(None),
                stop: AtomicBool::new(false),
                registry: Arc::new(StoreRegistry::default()),
                standby_registry: Arc::new(StoreRegistry::default()),
                standby,
                restore_listener: Mutex::new(None),
                process_id: uuid::Uuid::new_v4().to_string(),
                uncaught_handler: Mutex::new(None),
            }),
            threads: Vec::new(),
        }
    }

    /// Called with (new state, old state) at each transition (Kafka's `setStateListener`). Set before `start`.
    pub fn set_state_listener(&mut self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        *self.shared.listener.lock() = Some(Box::new(listener));
    }

    /// Called when a store finished restoring a changelog partition, with the store, the changelog topic, the
    /// partition and the number of records restored (Kafka's `setGlobalStateRestoreListener`, `onRestoreEnd`).
    /// Set before `start`.
    pub fn set_global_state_restore_listener(
        &mut self,
        listener: impl Fn(&str, &str, i32, u64) + Send + Sync + 'static,
    ) {
        *self.shared.restore_listener.lock() = Some(Box::new(listener));
    }

    /// Decides what a failed thread does to the instance (Kafka's `setUncaughtExceptionHandler`, KIP-671); without
    /// one a failure stops this instance ([`StreamThreadExceptionResponse::ShutdownClient`]). Set before `start`.
    pub fn set_uncaught_exception_handler(&mut self, handler: impl StreamsUncaughtExceptionHandler + 'static) {
        *self.shared.uncaught_handler.lock() = Some(Arc::new(handler));
    }

    /// The tasks this instance keeps standby replicas of (empty unless `num.standby.replicas` ≥ 1).
    pub fn standby_tasks(&self) -> Vec<crate::TaskId> {
        self.shared.standby.as_ref().map(|s| s.standby_tasks()).unwrap_or_default()
    }

    /// The current state.
    pub fn state(&self) -> State {
        *self.shared.state.lock()
    }

    /// Why the application is in [`State::Error`].
    pub fn error(&self) -> Option<String> {
        self.shared.error.lock().clone()
    }

    /// Starts: checks the topology and the source topics, creates the internal topics, then starts the stream
    /// threads (state `REBALANCING`, then `RUNNING` once every thread has its tasks restored). Returns without
    /// waiting for the group; a failure found later moves the state to `ERROR`. Blocks for the metadata and
    /// topic creation requests, so call it off an async runtime's worker (or in `spawn_blocking`).
    pub fn start(&mut self) -> Result<(), StreamsError> {
        if self.state() != State::Created {
            return Err(StreamsError::Topology("start() may be called only once, in state CREATED".into()));
        }
        if let Some(first) = self.topology.build_errors.first() {
            return Err(StreamsError::Topology(first.clone()));
        }
        self.shared.transition(State::Rebalancing);
        let plan: Arc<TopicPlan> = match prepare(&self.topology, &self.config) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                self.shared.fail(e.to_string());
                return Err(e);
            }
        };
        let watch_from = match shutdown_watch_start(&self.config) {
            Ok(o) => o,
            Err(e) => {
                self.shared.fail(e.to_string());
                return Err(e);
            }
        };
        {
            let (config, shared) = (self.config.clone(), self.shared.clone());
            let handle = std::thread::Builder::new()
                .name(format!("{}-ShutdownWatch", self.config.application_id))
                .spawn(move || watch_shutdown_requests(config, shared, watch_from))
                .map_err(|e| StreamsError::Topology(format!("cannot spawn the shutdown watch thread: {e}")))?;
            self.threads.push(handle);
        }
        // Global tables are read to their end before any stream task runs, as Kafka's global thread does.
        let mut global_stores = Vec::new();
        if !self.topology.global_nodes().is_empty() {
            let global = match GlobalTask::bootstrap(&self.topology, &self.config) {
                Ok(g) => g,
                Err(e) => {
                    self.shared.fail(e.to_string());
                    return Err(e);
                }
            };
            global_stores = global.stores();
            self.shared.registry.register(GLOBAL_TASK, global_stores.clone());
            let (shared, config) = (self.shared.clone(), self.config.clone());
            let handle = std::thread::Builder::new()
                .name(format!("{}-GlobalStreamThread", self.config.application_id))
                .spawn(move || {
                    if let Err(e) = global.run(shared.clone()) {
                        shared.handle_uncaught(&e, "GlobalStreamThread", false, &config);
                    }
                })
                .map_err(|e| StreamsError::Topology(format!("cannot spawn the global thread: {e}")))?;
            self.threads.push(handle);
        }
        let global_stores = Arc::new(global_stores);
        if let Some(state) = self.shared.standby.clone() {
            let (topology, config, plan, shared) =
                (self.topology.clone(), self.config.clone(), plan.clone(), self.shared.clone());
            let handle = std::thread::Builder::new()
                .name(format!("{}-StandbyThread", self.config.application_id))
                .spawn(move || {
                    if let Err(e) = standby::run(topology, config.clone(), plan, state, shared.clone()) {
                        shared.handle_uncaught(&e, "StandbyThread", false, &config);
                    }
                })
                .map_err(|e| StreamsError::Topology(format!("cannot spawn the standby thread: {e}")))?;
            self.threads.push(handle);
        }
        for index in 0..self.config.num_stream_threads.max(1) {
            let (topology, config, plan, shared, globals) =
                (self.topology.clone(), self.config.clone(), plan.clone(), self.shared.clone(), global_stores.clone());
            let name = format!("{}-StreamThread-{}", self.config.application_id, index + 1);
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    // A replaced stream thread is a new one (new clients, new tasks) on the same OS thread.
                    let mut generation = 0u32;
                    loop {
                        let result = stream_thread::run(
                            index,
                            topology.clone(),
                            config.clone(),
                            plan.clone(),
                            globals.clone(),
                            shared.clone(),
                        );
                        let Err(e) = result else { break };
                        if !shared.handle_uncaught(&e, &name, true, &config) {
                            break;
                        }
                        generation += 1;
                        tracing::warn!(thread = %name, replacement = generation, "replacing the failed stream thread");
                        shared.set_phase(index, ThreadPhase::Rebalancing);
                    }
                    shared.set_phase(index, ThreadPhase::Dead);
                })
                .map_err(|e| StreamsError::Topology(format!("cannot spawn a stream thread: {e}")))?;
            self.threads.push(handle);
        }
        Ok(())
    }

    /// Stops the threads (each commits, closes its tasks and leaves the group) and waits for them.
    pub fn close(&mut self) {
        self.close_timeout(Duration::from_secs(u64::MAX / 4000));
    }

    /// Like [`close`](Self::close), waiting at most `timeout`; returns whether every thread stopped.
    pub fn close_timeout(&mut self, timeout: Duration) -> bool {
        self.shared.transition(State::PendingShutdown);
        self.shared.stop.store(true, Ordering::Release);
        let deadline = Instant::now().checked_add(timeout);
        while self.threads.iter().any(|t| !t.is_finished()) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if self.state() != State::Error {
            self.shared.transition(State::NotRunning);
        }
        true
    }

    /// A read-only view of a store across this instance's tasks (Kafka's `store(StoreQueryParameters)`):
    ///
    /// ```no_run
    /// # fn f(streams: &spate_streams::KafkaStreams) -> Result<(), spate_streams::StreamsError> {
    /// use spate_streams::{ReadOnlyKeyValueStore, StoreQueryParameters};
    /// let counts: ReadOnlyKeyValueStore<String, i64> = streams.store(StoreQueryParameters::from_name("counts"))?;
    /// let n = counts.get(&"host-1".to_string())?;
    /// # Ok(()) }
    /// ```
    /// Fails when the application is not `RUNNING` or `REBALANCING` or has no store of that name (Kafka's
    /// `InvalidStateStoreException`).
    pub fn store<S: QueryableStore>(&self, params: StoreQueryParameters) -> Result<S, StreamsError> {
        let state = self.state();
        if !matches!(state, State::Running | State::Rebalancing) {
            return Err(StreamsError::store(&params.name, format!("cannot query: the application is {state:?}")));
        }
        if !self.topology.stores.contains_key(&params.name) {
            return Err(StreamsError::store(&params.name, "the topology has no store of this name"));
        }
        let registries = if params.stale {
            vec![self.shared.registry.clone(), self.shared.standby_registry.clone()]
        } else {
            vec![self.shared.registry.clone()]
        };
        Ok(S::create(params.name, registries))
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.close();
        }
    }
}
