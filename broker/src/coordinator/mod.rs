//! Coordinators: consumer groups with their committed offsets (`__consumer_offsets`), and transactions
//! (`__transaction_state`). See `README.md` beside this file for what is implemented and why.
//!
//! `offsets_topic.rs` is the record format of `__consumer_offsets`, `group_metadata_manager.rs` reads and
//! writes that topic, `group.rs` is one group's data and rules, `group_coordinator.rs` the rebalance protocol
//! and offset operations that the handlers in `protocol/handlers/` call. `transaction_log.rs` is the record
//! format of `__transaction_state`, `transaction_metadata.rs` one transactional id's state and transitions,
//! `transaction_coordinator.rs` the transaction protocol, markers and timers. `internal_topic.rs` is what both
//! do with their internal topic.

pub mod group;
pub mod group_coordinator;
pub mod group_metadata_manager;
pub mod internal_topic;
pub mod offsets_topic;
pub mod transaction_coordinator;
pub mod transaction_log;
pub mod transaction_metadata;

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::broker::{BrokerError, BrokerState};
use crate::cluster::{MetadataStore, ReplicaManager};
use crate::config::BrokerConfig;
pub use group_coordinator::GroupCoordinator;
use group_metadata_manager::GroupMetadataManager;
pub use transaction_coordinator::TransactionCoordinator;

/// `BrokerError` has no coordinator variant yet: keep the underlying log or metadata error where there is one.
fn broker_error(e: internal_topic::CoordinatorError) -> BrokerError {
    use internal_topic::CoordinatorError as E;
    tracing::error!(error = %e, "coordinator cannot start");
    match e {
        E::CreateTopic { source, .. } => BrokerError::Metadata(source),
        E::Read { source, .. } => BrokerError::Log(source),
        other => BrokerError::Config(format!("coordinator: {other}")),
    }
}

/// Every coordinator this broker runs.
pub struct Coordinators {
    pub groups: Arc<GroupCoordinator>,
    pub transactions: Arc<TransactionCoordinator>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Coordinators {
    pub fn new(config: Arc<BrokerConfig>, _metadata: Arc<MetadataStore>, replicas: Arc<ReplicaManager>) -> Self {
        let groups = Arc::new(GroupCoordinator::new(config.clone()));
        let transactions = Arc::new(TransactionCoordinator::new(config, replicas, groups.clone()));
        Coordinators { groups, transactions, tasks: Mutex::new(Vec::new()) }
    }

    /// Creates `__consumer_offsets` if missing, rebuilds groups and committed offsets from it, and starts the
    /// timer task (sessions, rebalances) and the periodic offset expiration; then the same for transactions
    /// (`__transaction_state`, transaction timeouts, transactional id expiration).
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
        // Transactions after groups: completing a transaction replayed in PrepareCommit writes its markers, and
        // a marker in `__consumer_offsets` completes transactional offsets in the group coordinator.
        self.transactions.load(state).await.map_err(broker_error)?;
        let txn_timers = tokio::spawn(self.transactions.clone().run_timers(state.shutdown.clone()));
        self.tasks.lock().extend([timers, cleanup, txn_timers]);
        Ok(())
    }

    /// Answers parked group requests with NOT_COORDINATOR and stops background tasks.
    pub async fn shutdown(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        self.transactions.shutdown().await;
        self.groups.shutdown().await;
    }
}
