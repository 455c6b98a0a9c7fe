//! Coordinators: consumer groups with their committed offsets (`__consumer_offsets`), and later transactions
//! (`__transaction_state`). See `README.md` beside this file for what is implemented and why.
//!
//! `offsets_topic.rs` is the record format of `__consumer_offsets`, `group_metadata_manager.rs` reads and
//! writes that topic, `group.rs` is one group's data and rules, `group_coordinator.rs` the rebalance protocol
//! and offset operations that the handlers in `protocol/handlers/` call.

pub mod group;
pub mod group_coordinator;
pub mod group_metadata_manager;
pub mod offsets_topic;

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::broker::{BrokerError, BrokerState};
use crate::cluster::{MetadataStore, ReplicaManager};
use crate::config::BrokerConfig;
pub use group_coordinator::GroupCoordinator;
use group_metadata_manager::GroupMetadataManager;

/// `BrokerError` has no coordinator variant yet: keep the underlying log or metadata error where there is one.
fn broker_error(e: group_metadata_manager::CoordinatorError) -> BrokerError {
    use group_metadata_manager::CoordinatorError as E;
    tracing::error!(error = %e, "group coordinator cannot start");
    match e {
        E::CreateTopic { source, .. } => BrokerError::Metadata(source),
        E::Read { source, .. } => BrokerError::Log(source),
        other => BrokerError::Config(format!("group coordinator: {other}")),
    }
}

/// Every coordinator this broker runs.
pub struct Coordinators {
    pub groups: Arc<GroupCoordinator>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Coordinators {
    pub fn new(config: Arc<BrokerConfig>, _metadata: Arc<MetadataStore>, _replicas: Arc<ReplicaManager>) -> Self {
        Coordinators { groups: Arc::new(GroupCoordinator::new(config)), tasks: Mutex::new(Vec::new()) }
    }

    /// Creates `__consumer_offsets` if missing, rebuilds groups and committed offsets from it, and starts the
    /// timer task (sessions, rebalances) and the periodic offset expiration.
    pub async fn start(&self, state: &Arc<BrokerState>) -> Result<(), BrokerError> {
        let (manager, replayed) = GroupMetadataManager::open(state).await.map_err(broker_error)?;
        self.groups.load(manager, replayed);
        let timers = tokio::spawn(self.groups.clone().run_timers(state.shutdown.clone()));
        let groups = self.groups.clone();
        let mut shutdown = state.shutdown.clone();
        let cleanup = tokio::spawn(async move {
            let mut tick = tokio::time::interval(group_coordinator::OFFSETS_RETENTION_CHECK_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => groups.cleanup_group_metadata(),
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        });
        self.tasks.lock().extend([timers, cleanup]);
        Ok(())
    }

    /// Answers parked group requests with NOT_COORDINATOR and stops background tasks.
    pub async fn shutdown(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        self.groups.shutdown().await;
    }
}
