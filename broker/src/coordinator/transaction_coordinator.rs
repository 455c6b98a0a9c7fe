//! The transaction coordinator, following Apache Kafka's `TransactionCoordinator`, `TransactionStateManager` and
//! `TransactionMarkerChannelManager` for transactions V1 (the protocol librdkafka and the Java client speak when
//! the broker does not finalize `transaction.version` 2): InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn, the transaction markers, timeouts and transactional id expiration.
//!
//! Every transactional id's state lives in `__transaction_state` (Kafka's record format, `transaction_log.rs`),
//! in partition `abs(hashCode(id)) % partitions`. All ids sit behind one lock that is never held across an
//! `.await`: an operation prepares a transition under the lock (marking it pending so nothing else can start),
//! writes it to `__transaction_state`, and completes it under the lock. A client is answered only after the
//! write. EndTxn is answered once PrepareCommit/PrepareAbort is written, as in Kafka; the markers are then
//! written to every partition of the transaction by a background task (retried until they are in), and the
//! transaction becomes CompleteCommit/CompleteAbort. A single node writes its markers directly with
//! `UnifiedLog::append_control_marker`, which is what a partition leader does with WriteTxnMarkers.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::group_coordinator::GroupCoordinator;
use super::internal_topic::{self, AppendFailure, CoordinatorError, Replayed};
use super::offsets_topic;
use super::transaction_log::{self, TxnLogValue};
use super::transaction_metadata::{TxnMetadata, TxnState, TxnTransit, NO_PRODUCER_EPOCH};
use crate::broker::BrokerState;
use crate::cluster::replica_manager::Partition;
use crate::cluster::{ProducerIdManager, ReplicaManager};
use crate::config::BrokerConfig;
use crate::log::LogError;
use crate::protocol::handlers::now_ms;

/// How long to wait before retrying a marker or state write that failed (a full disk, say).
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// A transaction as DescribeTransactions shows it.
pub struct TxnDescription {
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub txn_start_timestamp: i64,
    pub partitions: BTreeSet<(String, i32)>,
}

/// A transaction as ListTransactions shows it.
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

/// What the end of a transaction needs after its Prepare record is prepared: what to write, and whether it
/// fences the producer (InitProducerId during a transaction, or a timeout).
struct PreparedEnd {
    transit: TxnTransit,
    is_epoch_fence: bool,
}

/// What EndTxn does after its checks.
enum EndStep {
    Write(PreparedEnd),
    /// The transaction already ended this way (a retried EndTxn): answer success without writing.
    AlreadyDone,
}

/// The transaction coordinator of this broker.
pub struct TransactionCoordinator {
    config: Arc<BrokerConfig>,
    replicas: Arc<ReplicaManager>,
    groups: Arc<GroupCoordinator>,
    txns: Mutex<HashMap<String, TxnMetadata>>,
    /// The partitions of `__transaction_state`, once loaded.
    partitions: OnceLock<Vec<Arc<Partition>>>,
    /// Marker and completion tasks in flight, aborted at shutdown (a restart completes them from the log).
    tasks: Mutex<Vec<JoinHandle<()>>>,
    shutdown: OnceLock<watch::Receiver<bool>>,
}

fn append_error(e: AppendFailure) -> ResponseError {
    match e {
        AppendFailure::TooLarge => ResponseError::UnknownServerError,
        AppendFailure::Unavailable | AppendFailure::ProducerFenced => ResponseError::CoordinatorNotAvailable,
    }
}

impl TransactionCoordinator {
    pub fn new(config: Arc<BrokerConfig>, replicas: Arc<ReplicaManager>, groups: Arc<GroupCoordinator>) -> Self {
        TransactionCoordinator {
            config,
            replicas,
            groups,
            txns: Mutex::new(HashMap::new()),
            partitions: OnceLock::new(),
            tasks: Mutex::new(Vec::new()),
            shutdown: OnceLock::new(),
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.partitions.get().is_some()
    }

    /// Creates `__transaction_state` if missing, rebuilds every transactional id from it, and completes the
    /// transactions that were between Prepare and Complete when the broker stopped (their markers are written
    /// again; a marker written twice completes nothing the second time). Ongoing transactions stay open: their
    /// producer may carry on, or the timeout aborts them.
    pub async fn load(self: &Arc<Self>, state: &Arc<BrokerState>) -> Result<(), CoordinatorError> {
        let _ = self.shutdown.set(state.shutdown.clone());
        let topic = transaction_log::TOPIC;
        let meta = internal_topic::ensure_topic(
            state,
            topic,
            self.config.transaction_state_log_num_partitions.max(1),
            transaction_log::SEGMENT_BYTES,
        )
        .await?;
        let mut partitions = Vec::with_capacity(meta.partitions as usize);
        let mut values: HashMap<String, TxnLogValue> = HashMap::new();
        for p in 0..meta.partitions {
            let partition =
                state.replicas.partition(topic, p).ok_or(CoordinatorError::MissingPartition { topic, partition: p })?;
            internal_topic::replay(&partition, |entry| {
                let Replayed::Record { offset, key, value, .. } = entry else { return };
                let id = match transaction_log::decode_key(&key) {
                    Ok(Some(id)) => id,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(partition = %partition.tp, offset, error = %e, "skipping unreadable key");
                        return;
                    }
                };
                match value {
                    None => {
                        values.remove(&id);
                    }
                    Some(v) => match transaction_log::decode_value(&v) {
                        Ok(v) => {
                            values.insert(id, v);
                        }
                        Err(e) => {
                            tracing::warn!(partition = %partition.tp, offset, error = %e, "skipping unreadable transaction state")
                        }
                    },
                }
            })
            .await?;
            partitions.push(partition);
        }
        let mut to_complete = Vec::new();
        {
            let now = now_ms();
            let mut txns = self.txns.lock();
            for (id, v) in values {
                let mut m = TxnMetadata::from_log_value(&id, v);
                if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                    match m.prepare_complete(now) {
                        Ok(complete) => to_complete.push((id.clone(), m.clone(), complete)),
                        Err(e) => tracing::error!(transactional_id = %id, error = %e, "cannot complete transaction"),
                    }
                }
                txns.insert(id, m);
            }
            tracing::info!(
                partitions = partitions.len(),
                transactional_ids = txns.len(),
                completing = to_complete.len(),
                "loaded {topic}"
            );
        }
        let _ = self.partitions.set(partitions);
        for (id, m, complete) in to_complete {
            let commit = m.state == TxnState::PrepareCommit;
            self.spawn_markers(id, m.producer_id, m.producer_epoch, commit, m.partitions, complete);
        }
        Ok(())
    }

    /// Stops marker and completion tasks; what they had not finished is finished from the log at next start.
    pub async fn shutdown(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }

    fn partition_of(&self, transactional_id: &str) -> Option<Arc<Partition>> {
        let parts = self.partitions.get()?;
        let p = offsets_topic::partition_for(transactional_id, parts.len() as i32);
        parts.get(p as usize).cloned()
    }

    /// The coordinator epoch written in markers: the leader epoch of the id's `__transaction_state` partition.
    fn coordinator_epoch(&self, transactional_id: &str) -> i32 {
        self.partition_of(transactional_id).map_or(0, |p| p.leader_epoch)
    }

    async fn write_state(&self, transactional_id: &str, value: Option<Bytes>) -> Result<(), AppendFailure> {
        let Some(partition) = self.partition_of(transactional_id) else { return Err(AppendFailure::Unavailable) };
        internal_topic::append(&partition, &[(transaction_log::key(transactional_id), value)], None).await
    }

    /// Writes a prepared transition and completes it; on failure the transition is abandoned.
    async fn persist(&self, transactional_id: &str, transit: TxnTransit) -> Result<(), ResponseError> {
        let outcome = self.write_state(transactional_id, Some(transaction_log::value(&transit.to_log_value()))).await;
        let mut txns = self.txns.lock();
        let Some(m) = txns.get_mut(transactional_id) else { return Err(ResponseError::CoordinatorNotAvailable) };
        match outcome {
            Ok(()) => {
                m.complete_transition(transit);
                Ok(())
            }
            Err(e) => {
                m.abort_transition();
                Err(append_error(e))
            }
        }
    }

    fn max_timeout_ok(&self, timeout_ms: i32) -> bool {
        timeout_ms > 0 && timeout_ms <= self.config.transaction_max_timeout_ms
    }

    // ---------------------------------------------------------------------------------------------------------
    // InitProducerId

    /// InitProducerId for a transactional id (Kafka's `handleInitProducerId`): the id's producer id with a bumped
    /// epoch, which fences every earlier holder of the id. `expected` is KIP-360's producer id and epoch of a
    /// producer recovering from an error. A transaction still open is aborted first and the caller is told
    /// CONCURRENT_TRANSACTIONS, to retry once the abort is done.
    pub async fn init_producer_id(
        self: &Arc<Self>,
        producer_ids: &ProducerIdManager,
        transactional_id: &str,
        txn_timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if !self.max_timeout_ok(txn_timeout_ms) {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let generate = || async {
            producer_ids.generate().await.map_err(|e| {
                tracing::warn!(error = %e, "cannot allocate a producer id");
                ResponseError::CoordinatorNotAvailable
            })
        };
        if !self.txns.lock().contains_key(transactional_id) {
            let pid = generate().await?;
            self.txns
                .lock()
                .entry(transactional_id.to_string())
                .or_insert_with(|| TxnMetadata::new(transactional_id, pid, txn_timeout_ms, now_ms()));
        }
        let mut fresh_pid: Option<i64> = None;
        loop {
            enum Step {
                Write(TxnTransit),
                Fence(PreparedEnd),
                NeedProducerId,
            }
            let step = {
                let mut txns = self.txns.lock();
                let Some(m) = txns.get_mut(transactional_id) else {
                    return Err(ResponseError::CoordinatorNotAvailable);
                };
                if m.pending_transition_in_progress() {
                    return Err(ResponseError::ConcurrentTransactions);
                }
                if let Some((pid, epoch)) = expected {
                    let valid = m.producer_epoch == NO_PRODUCER_EPOCH
                        || pid == m.producer_id
                        || (pid == m.last_producer_id && super::transaction_metadata::is_epoch_exhausted(epoch));
                    if !valid {
                        return Err(ResponseError::ProducerFenced);
                    }
                }
                match m.state {
                    TxnState::PrepareAbort | TxnState::PrepareCommit => {
                        return Err(ResponseError::ConcurrentTransactions);
                    }
                    TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => {
                        if m.is_producer_epoch_exhausted() && expected.is_none_or(|(_, e)| e == m.producer_epoch) {
                            match fresh_pid {
                                None => Step::NeedProducerId,
                                Some(pid) => Step::Write(
                                    m.prepare_producer_id_rotation(pid, txn_timeout_ms, now_ms(), expected.is_some())
                                        .map_err(illegal_state)?,
                                ),
                            }
                        } else {
                            match m
                                .prepare_increment_producer_epoch(txn_timeout_ms, expected.map(|e| e.1), now_ms())
                                .map_err(illegal_state)?
                            {
                                Ok(t) => Step::Write(t),
                                Err(()) => return Err(ResponseError::ProducerFenced),
                            }
                        }
                    }
                    TxnState::Ongoing => {
                        // Abort the transaction of the previous holder with a bumped epoch, which is never
                        // returned: the client retries and gets a second bump.
                        let fence = m.prepare_fence_producer_epoch().map_err(illegal_state)?;
                        let pid = m.producer_id;
                        match prepare_end_locked(m, pid, fence.producer_epoch, false, false)? {
                            EndStep::Write(p) => Step::Fence(p),
                            EndStep::AlreadyDone => return Err(ResponseError::ConcurrentTransactions),
                        }
                    }
                    TxnState::Dead | TxnState::PrepareEpochFence => return Err(ResponseError::ConcurrentTransactions),
                }
            };
            match step {
                Step::NeedProducerId => fresh_pid = Some(generate().await?),
                Step::Fence(prepared) => {
                    self.write_end(transactional_id, prepared).await?;
                    return Err(ResponseError::ConcurrentTransactions);
                }
                Step::Write(transit) => {
                    let answer = (transit.producer_id, transit.producer_epoch);
                    self.persist(transactional_id, transit).await?;
                    tracing::info!(
                        transactional_id,
                        producer_id = answer.0,
                        producer_epoch = answer.1,
                        "initialized transactional id"
                    );
                    return Ok(answer);
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // AddPartitionsToTxn, AddOffsetsToTxn

    /// Adds partitions to the producer's transaction, starting one if none is open (Kafka's
    /// `handleAddPartitionsToTransaction`).
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: BTreeSet<(String, i32)>,
    ) -> Result<(), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let transit = {
            let mut txns = self.txns.lock();
            let Some(m) = txns.get_mut(transactional_id) else { return Err(ResponseError::InvalidProducerIdMapping) };
            if m.producer_id != producer_id {
                return Err(ResponseError::InvalidProducerIdMapping);
            }
            if m.producer_epoch != producer_epoch {
                return Err(ResponseError::ProducerFenced);
            }
            if m.pending_transition_in_progress() || matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
            {
                return Err(ResponseError::ConcurrentTransactions);
            }
            if m.state == TxnState::Ongoing && partitions.is_subset(&m.partitions) {
                return Ok(());
            }
            m.prepare_add_partitions(&partitions, now_ms()).map_err(illegal_state)?
        };
        self.persist(transactional_id, transit).await
    }

    /// Whether each partition is in the producer's open transaction (Kafka's
    /// `handleVerifyPartitionsInTransaction`, KIP-890): used before the first transactional write of a
    /// partition, by Produce and TxnOffsetCommit, and by AddPartitionsToTxn v4+ `verify_only`.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let txns = self.txns.lock();
        let Some(m) = txns.get(transactional_id) else { return Err(ResponseError::InvalidProducerIdMapping) };
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(partitions.iter().map(|tp| m.partitions.contains(tp)).collect())
    }

    // ---------------------------------------------------------------------------------------------------------
    // EndTxn

    /// EndTxn (Kafka's `handleEndTransaction`, transactions V1): writes PrepareCommit or PrepareAbort, answers,
    /// and leaves the markers to a background task. Ending a transaction that already ended the same way
    /// answers success (a retry); the other way, INVALID_TXN_STATE. Returns the producer id and epoch.
    pub async fn end_transaction(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(i64, i16), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let prepared = {
            let mut txns = self.txns.lock();
            let Some(m) = txns.get_mut(transactional_id) else { return Err(ResponseError::InvalidProducerIdMapping) };
            match prepare_end_locked(m, producer_id, producer_epoch, commit, true)? {
                EndStep::Write(p) => p,
                EndStep::AlreadyDone => return Ok((m.producer_id, m.producer_epoch)),
            }
        };
        let answer = (prepared.transit.producer_id, prepared.transit.producer_epoch);
        self.write_end(transactional_id, prepared).await?;
        Ok(answer)
    }

    /// Writes a prepared PrepareCommit/PrepareAbort, then starts the markers and the completion.
    async fn write_end(self: &Arc<Self>, transactional_id: &str, prepared: PreparedEnd) -> Result<(), ResponseError> {
        let transit = prepared.transit;
        let commit = transit.state == TxnState::PrepareCommit;
        let outcome = self.write_state(transactional_id, Some(transaction_log::value(&transit.to_log_value()))).await;
        let (complete, partitions) = {
            let mut txns = self.txns.lock();
            let Some(m) = txns.get_mut(transactional_id) else { return Err(ResponseError::CoordinatorNotAvailable) };
            if let Err(e) = outcome {
                m.abort_transition();
                if prepared.is_epoch_fence {
                    // The bumped epoch was never returned; the next fence reuses it rather than bumping again.
                    m.has_failed_epoch_fence = true;
                }
                tracing::warn!(transactional_id, error = ?e, "cannot write the end of a transaction");
                return Err(append_error(e));
            }
            let partitions = transit.partitions.clone();
            m.complete_transition(transit);
            (m.prepare_complete(now_ms()).map_err(illegal_state)?, partitions)
        };
        tracing::debug!(transactional_id, commit, partitions = partitions.len(), "transaction prepared");
        self.spawn_markers(
            transactional_id.to_string(),
            complete.producer_id,
            complete.producer_epoch,
            commit,
            partitions,
            complete,
        );
        Ok(())
    }

    fn spawn_markers(
        self: &Arc<Self>,
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        partitions: BTreeSet<(String, i32)>,
        complete: TxnTransit,
    ) {
        let this = self.clone();
        let task = tokio::spawn(async move {
            this.write_markers(&transactional_id, producer_id, producer_epoch, commit, &partitions).await;
            this.write_complete(&transactional_id, complete).await;
        });
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Writes the COMMIT or ABORT marker to every partition of the transaction, retrying failed writes until
    /// they succeed or the partition is gone (its topic deleted), as Kafka's marker channel does.
    async fn write_markers(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        partitions: &BTreeSet<(String, i32)>,
    ) {
        let coordinator_epoch = self.coordinator_epoch(transactional_id);
        let writes = partitions.iter().map(|(topic, p)| async move {
            loop {
                let Some(partition) = self.replicas.partition(topic, *p) else {
                    tracing::info!(transactional_id, topic, partition = p, "partition gone; no marker written");
                    return;
                };
                match partition
                    .log
                    .append_control_marker(producer_id, producer_epoch, commit, coordinator_epoch, partition.leader_epoch)
                    .await
                {
                    Ok(_) => {
                        if topic == offsets_topic::TOPIC {
                            self.groups.complete_transaction(producer_id, *p, commit);
                        }
                        return;
                    }
                    Err(e @ (LogError::InvalidProducerEpoch(_) | LogError::TransactionCoordinatorFenced(_))) => {
                        tracing::error!(transactional_id, partition = %partition.tp, error = %e, "marker refused");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(transactional_id, partition = %partition.tp, error = %e, "marker write failed; retrying");
                        if self.stopping() {
                            return;
                        }
                        tokio::time::sleep(RETRY_BACKOFF).await;
                    }
                }
            }
        });
        join_all(writes).await;
    }

    /// Writes CompleteCommit/CompleteAbort, retrying until it is written.
    async fn write_complete(&self, transactional_id: &str, complete: TxnTransit) {
        loop {
            let value = transaction_log::value(&complete.to_log_value());
            match self.write_state(transactional_id, Some(value)).await {
                Ok(()) => {
                    if let Some(m) = self.txns.lock().get_mut(transactional_id) {
                        tracing::debug!(transactional_id, state = complete.state.name(), "transaction completed");
                        m.complete_transition(complete);
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(transactional_id, error = ?e, "cannot write transaction completion; retrying");
                    if self.stopping() {
                        return;
                    }
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.shutdown.get().is_some_and(|s| *s.borrow())
    }

    // ---------------------------------------------------------------------------------------------------------
    // Timers: abandoned transactions and expired transactional ids

    /// Aborts every Ongoing transaction older than its timeout, fencing its producer (Kafka's
    /// `abortTimedOutTransactions`). Returns how many were started.
    pub fn abort_timed_out_transactions(self: &Arc<Self>) -> usize {
        let now = now_ms();
        let mut prepared = Vec::new();
        {
            let mut txns = self.txns.lock();
            for m in txns.values_mut() {
                if m.pending_transition_in_progress()
                    || m.state != TxnState::Ongoing
                    || m.txn_start_timestamp + i64::from(m.txn_timeout_ms) >= now
                {
                    continue;
                }
                let fence = match m.prepare_fence_producer_epoch() {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!(transactional_id = %m.transactional_id, error = %e, "cannot fence");
                        continue;
                    }
                };
                let pid = m.producer_id;
                match prepare_end_locked(m, pid, fence.producer_epoch, false, false) {
                    Ok(EndStep::Write(p)) => {
                        tracing::info!(
                            transactional_id = %m.transactional_id,
                            producer_id = m.producer_id,
                            timeout_ms = m.txn_timeout_ms,
                            "aborting transaction that exceeded its timeout"
                        );
                        prepared.push((m.transactional_id.clone(), p));
                    }
                    Ok(EndStep::AlreadyDone) => {}
                    Err(e) => {
                        tracing::warn!(transactional_id = %m.transactional_id, error = ?e, "cannot abort timed-out transaction");
                    }
                }
            }
        }
        let count = prepared.len();
        for (id, p) in prepared {
            let this = self.clone();
            let task = tokio::spawn(async move {
                if let Err(e) = this.write_end(&id, p).await {
                    tracing::warn!(transactional_id = %id, error = ?e, "rollback of timed-out transaction failed");
                }
            });
            self.tasks.lock().push(task);
        }
        count
    }

    /// Removes transactional ids idle for `transactional.id.expiration.ms` with a tombstone (Kafka's
    /// `removeExpiredTransactionalIds`). Returns how many were removed.
    pub async fn remove_expired_transactional_ids(&self) -> usize {
        let now = now_ms();
        let expiration = self.config.transactional_id_expiration_ms;
        let expired: Vec<String> = {
            let mut txns = self.txns.lock();
            txns.values_mut()
                .filter(|m| {
                    !m.pending_transition_in_progress()
                        && m.state.is_expiration_allowed()
                        && m.txn_last_update_timestamp <= now - expiration
                })
                .filter_map(|m| m.prepare_dead().ok().map(|_| m.transactional_id.clone()))
                .collect()
        };
        let mut removed = 0;
        for id in expired {
            let outcome = self.write_state(&id, None).await;
            let mut txns = self.txns.lock();
            match outcome {
                Ok(()) => {
                    txns.remove(&id);
                    removed += 1;
                }
                Err(e) => {
                    if let Some(m) = txns.get_mut(&id) {
                        m.abort_transition();
                    }
                    tracing::warn!(transactional_id = %id, error = ?e, "cannot expire transactional id");
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed expired transactional ids");
        }
        removed
    }

    /// Runs the two periodic tasks until shutdown.
    pub async fn run_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut abort_tick = tokio::time::interval(Duration::from_millis(
            self.config.transaction_abort_timed_out_transaction_cleanup_interval_ms.max(1),
        ));
        let mut expire_tick = tokio::time::interval(Duration::from_millis(
            self.config.transaction_remove_expired_transaction_cleanup_interval_ms.max(1),
        ));
        abort_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        expire_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let expire = tokio::select! {
                _ = abort_tick.tick() => false,
                _ = expire_tick.tick() => true,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            if expire {
                self.remove_expired_transactional_ids().await;
            } else {
                self.abort_timed_out_transactions();
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // DescribeTransactions, ListTransactions

    pub fn describe(&self, transactional_id: &str) -> Result<TxnDescription, ResponseError> {
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let txns = self.txns.lock();
        match txns.get(transactional_id) {
            None => Err(ResponseError::TransactionalIdNotFound),
            Some(m) if m.state == TxnState::Dead || m.pending_state == Some(TxnState::Dead) => {
                Err(ResponseError::TransactionalIdNotFound)
            }
            Some(m) => Ok(TxnDescription {
                state: m.state,
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                txn_timeout_ms: m.txn_timeout_ms,
                txn_start_timestamp: m.txn_start_timestamp,
                partitions: m.partitions.clone(),
            }),
        }
    }

    /// Transactions matching every filter given (Kafka's `listTransactionStates`): states by name (unknown
    /// names are returned apart), producer ids, and (v1) running longer than `duration_ms` when it is >= 0.
    pub fn list(
        &self,
        state_filters: &[String],
        producer_id_filters: &HashSet<i64>,
        duration_ms: i64,
    ) -> Result<(Vec<TxnListing>, Vec<String>), ResponseError> {
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let mut states = HashSet::new();
        let mut unknown = Vec::new();
        for name in state_filters {
            match TxnState::from_name(name) {
                Some(s) => {
                    states.insert(s);
                }
                None => unknown.push(name.clone()),
            }
        }
        let now = now_ms();
        let txns = self.txns.lock();
        let mut out: Vec<TxnListing> = txns
            .values()
            .filter(|m| m.state != TxnState::Dead)
            .filter(|m| producer_id_filters.is_empty() || producer_id_filters.contains(&m.producer_id))
            .filter(|m| state_filters.is_empty() || states.contains(&m.state))
            .filter(|m| duration_ms < 0 || now - m.txn_start_timestamp > duration_ms)
            .map(|m| TxnListing {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.producer_id,
                state: m.state,
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok((out, unknown))
    }
}

fn illegal_state(message: String) -> ResponseError {
    tracing::error!("{message}");
    ResponseError::UnknownServerError
}

/// The checks and transition of Kafka's `endTransaction` before its log write, under the lock. A fence prepared
/// by the caller (pending PrepareEpochFence) is undone when the abort cannot be prepared.
fn prepare_end_locked(
    m: &mut TxnMetadata,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    from_client: bool,
) -> Result<EndStep, ResponseError> {
    let fencing = m.pending_state == Some(TxnState::PrepareEpochFence);
    let undo_fence = |m: &mut TxnMetadata| {
        if fencing {
            m.abort_transition();
        }
    };
    if m.producer_id != producer_id {
        undo_fence(m);
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    // Transactions V1: a client must present the current epoch; the coordinator itself presents a bumped one.
    let valid_epoch = (!from_client || producer_epoch == m.producer_epoch) && producer_epoch >= m.producer_epoch;
    if !valid_epoch {
        undo_fence(m);
        return Err(ResponseError::ProducerFenced);
    }
    if m.pending_transition_in_progress() && !fencing {
        return Err(ResponseError::ConcurrentTransactions);
    }
    let invalid = |m: &TxnMetadata| {
        tracing::debug!(
            transactional_id = %m.transactional_id,
            state = m.state.name(),
            commit,
            "EndTxn in a state that cannot end that way"
        );
        ResponseError::InvalidTxnState
    };
    match m.state {
        TxnState::Ongoing => {
            let next = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
            let mut is_epoch_fence = false;
            if !commit && fencing {
                is_epoch_fence = true;
                m.pending_state = None;
                m.producer_epoch = producer_epoch;
                m.last_producer_epoch = NO_PRODUCER_EPOCH;
            } else if fencing {
                undo_fence(m);
                return Err(ResponseError::ConcurrentTransactions);
            }
            let transit = m.prepare_abort_or_commit(next, now_ms()).map_err(illegal_state)?;
            Ok(EndStep::Write(PreparedEnd { transit, is_epoch_fence }))
        }
        TxnState::CompleteCommit if commit => Ok(EndStep::AlreadyDone),
        TxnState::CompleteAbort if !commit => Ok(EndStep::AlreadyDone),
        TxnState::PrepareCommit if commit => Err(ResponseError::ConcurrentTransactions),
        TxnState::PrepareAbort if !commit => Err(ResponseError::ConcurrentTransactions),
        _ => {
            undo_fence(m);
            Err(invalid(m))
        }
    }
}
