//! One transactional id's state, as Kafka's `TransactionMetadata`: the producer id and epoch it owns, the
//! transaction's state and partitions, and the transitions between states. Only data and rules live here;
//! `transaction_coordinator.rs` drives the transitions and persists them.
//!
//! A transition is prepared (`prepare_*` returns a [`TxnTransit`] and sets `pending_state`, so no second
//! transition can start), written to `__transaction_state`, and then completed with
//! [`TxnMetadata::complete_transition`] — or abandoned with [`TxnMetadata::abort_transition`] if the write failed.

use std::collections::BTreeSet;

use super::transaction_log::TxnLogValue;

/// No producer id / epoch (Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`).
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's `TransactionState`, with its ids (persisted) and names (DescribeTransactions, ListTransactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// No transaction, or the last one is fully complete and forgotten.
    Empty,
    /// Partitions have been added; the producer is writing.
    Ongoing,
    /// EndTxn(commit) is persisted; markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fencing InitProducerId is persisted; markers are being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// Being expired (`transactional.id.expiration.ms`); never persisted, a tombstone is.
    Dead,
    /// The epoch is being bumped to fence a producer before aborting its transaction; never persisted.
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The states a transition into `self` may start from (Kafka's `validPreviousStates`).
    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// States in which `transactional.id.expiration.ms` may remove the id.
    pub fn is_expiration_allowed(self) -> bool {
        matches!(self, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
    }
}

/// Kafka never hands out the last two epochs, so the coordinator can always fence the holder of an id.
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The state a prepared transition leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnTransit {
    pub producer_id: i64,
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub txn_start_timestamp: i64,
    pub txn_last_update_timestamp: i64,
}

impl TxnTransit {
    pub fn to_log_value(&self) -> TxnLogValue {
        TxnLogValue {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            txn_timeout_ms: self.txn_timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            txn_last_update_timestamp: self.txn_last_update_timestamp,
            txn_start_timestamp: self.txn_start_timestamp,
        }
    }
}

/// One transactional id.
#[derive(Debug, Clone)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation (KIP-360: a retry after an exhausted epoch presents it).
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, so a retried InitProducerId gets the same answer (KIP-360).
    pub last_producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current transaction started (its first AddPartitions); -1 when there is none.
    pub txn_start_timestamp: i64,
    pub txn_last_update_timestamp: i64,
    /// The transition being written, if any; no other may start meanwhile.
    pub pending_state: Option<TxnState>,
    /// A fencing epoch bump whose write failed: the next fence reuses that epoch rather than bumping again.
    pub has_failed_epoch_fence: bool,
}

impl TxnMetadata {
    /// A new transactional id: a fresh producer id, no epoch yet.
    pub fn new(transactional_id: &str, producer_id: i64, txn_timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            txn_start_timestamp: -1,
            txn_last_update_timestamp: now_ms,
            pending_state: None,
            has_failed_epoch_fence: false,
        }
    }

    /// Rebuilt from its last record in `__transaction_state`.
    pub fn from_log_value(transactional_id: &str, v: TxnLogValue) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id: v.producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms: v.txn_timeout_ms,
            state: v.state,
            partitions: v.partitions,
            txn_start_timestamp: v.txn_start_timestamp,
            txn_last_update_timestamp: v.txn_last_update_timestamp,
            pending_state: None,
            has_failed_epoch_fence: false,
        }
    }

    pub fn is_producer_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.producer_epoch)
    }

    pub fn pending_transition_in_progress(&self) -> bool {
        self.pending_state.is_some()
    }

    /// Bumps the epoch so the current holder is fenced, ahead of aborting its transaction (InitProducerId during
    /// an ongoing transaction, or a timeout). The new epoch is not returned to anyone.
    pub fn prepare_fence_producer_epoch(&mut self) -> Result<TxnTransit, String> {
        if self.producer_epoch == i16::MAX {
            return Err(format!("cannot fence producer {} with epoch {}", self.producer_id, i16::MAX));
        }
        let bumped = if self.has_failed_epoch_fence { self.producer_epoch } else { self.producer_epoch + 1 };
        self.prepare_transition(
            TxnState::PrepareEpochFence,
            self.producer_id,
            bumped,
            NO_PRODUCER_EPOCH,
            self.txn_timeout_ms,
            self.partitions.clone(),
            self.txn_start_timestamp,
            self.txn_last_update_timestamp,
        )
    }

    /// InitProducerId when no transaction is in flight: bump the epoch, or — for a retry whose expected epoch is
    /// the previous one — answer the current epoch again (Kafka's `prepareIncrementProducerEpoch`). `Ok(Err)`
    /// is PRODUCER_FENCED.
    pub fn prepare_increment_producer_epoch(
        &mut self,
        txn_timeout_ms: i32,
        expected_epoch: Option<i16>,
        now_ms: i64,
    ) -> Result<Result<TxnTransit, ()>, String> {
        if self.is_producer_epoch_exhausted() {
            return Err(format!("no producer epochs left for producer {}", self.producer_id));
        }
        let bumped = self.producer_epoch + 1;
        let (epoch, last_epoch) = match expected_epoch {
            None => (bumped, NO_PRODUCER_EPOCH),
            Some(e) if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch => {
                (bumped, self.producer_epoch)
            }
            Some(e) if e == self.last_producer_epoch => (self.producer_epoch, self.last_producer_epoch),
            Some(_) => return Ok(Err(())),
        };
        self.prepare_transition(
            TxnState::Empty,
            self.producer_id,
            epoch,
            last_epoch,
            txn_timeout_ms,
            BTreeSet::new(),
            -1,
            now_ms,
        )
        .map(Ok)
    }

    /// InitProducerId when the epoch is exhausted: a new producer id at epoch 0.
    pub fn prepare_producer_id_rotation(
        &mut self,
        new_producer_id: i64,
        txn_timeout_ms: i32,
        now_ms: i64,
        record_last_epoch: bool,
    ) -> Result<TxnTransit, String> {
        let last_epoch = if record_last_epoch { self.producer_epoch } else { NO_PRODUCER_EPOCH };
        self.prepare_transition(
            TxnState::Empty,
            new_producer_id,
            0,
            last_epoch,
            txn_timeout_ms,
            BTreeSet::new(),
            -1,
            now_ms,
        )
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the transaction is Ongoing with these partitions too.
    pub fn prepare_add_partitions(
        &mut self,
        added: &BTreeSet<(String, i32)>,
        now_ms: i64,
    ) -> Result<TxnTransit, String> {
        let start = match self.state {
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => now_ms,
            _ => self.txn_start_timestamp,
        };
        let mut partitions = self.partitions.clone();
        partitions.extend(added.iter().cloned());
        self.prepare_transition(
            TxnState::Ongoing,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.txn_timeout_ms,
            partitions,
            start,
            now_ms,
        )
    }

    /// EndTxn: PrepareCommit or PrepareAbort, keeping the partitions the markers go to.
    pub fn prepare_abort_or_commit(&mut self, state: TxnState, now_ms: i64) -> Result<TxnTransit, String> {
        self.prepare_transition(
            state,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.txn_timeout_ms,
            self.partitions.clone(),
            self.txn_start_timestamp,
            now_ms,
        )
    }

    /// Every marker is written: CompleteCommit or CompleteAbort, with no partitions.
    pub fn prepare_complete(&mut self, now_ms: i64) -> Result<TxnTransit, String> {
        let state =
            if self.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        self.has_failed_epoch_fence = false;
        self.prepare_transition(
            state,
            self.producer_id,
            self.producer_epoch,
            self.producer_epoch,
            self.txn_timeout_ms,
            BTreeSet::new(),
            self.txn_start_timestamp,
            now_ms,
        )
    }

    /// `transactional.id.expiration.ms`: the id is about to be removed with a tombstone.
    pub fn prepare_dead(&mut self) -> Result<TxnTransit, String> {
        self.prepare_transition(
            TxnState::Dead,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.txn_timeout_ms,
            BTreeSet::new(),
            self.txn_start_timestamp,
            self.txn_last_update_timestamp,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn prepare_transition(
        &mut self,
        state: TxnState,
        producer_id: i64,
        producer_epoch: i16,
        last_producer_epoch: i16,
        txn_timeout_ms: i32,
        partitions: BTreeSet<(String, i32)>,
        txn_start_timestamp: i64,
        now_ms: i64,
    ) -> Result<TxnTransit, String> {
        if let Some(pending) = self.pending_state {
            return Err(format!(
                "transactional id {}: transition to {} while {} is pending",
                self.transactional_id,
                state.name(),
                pending.name()
            ));
        }
        if producer_id < 0 {
            return Err(format!("illegal producer id {producer_id}"));
        }
        if state != TxnState::Dead && producer_epoch < 0 {
            return Err(format!("illegal producer epoch {producer_epoch}"));
        }
        if !state.valid_previous().contains(&self.state) {
            return Err(format!(
                "transactional id {}: invalid transition from {} to {}",
                self.transactional_id,
                self.state.name(),
                state.name()
            ));
        }
        self.pending_state = Some(state);
        Ok(TxnTransit {
            producer_id,
            last_producer_id: self.producer_id,
            producer_epoch,
            last_producer_epoch,
            txn_timeout_ms,
            state,
            partitions,
            txn_start_timestamp,
            txn_last_update_timestamp: now_ms,
        })
    }

    /// The transition's record is written: take on its state.
    pub fn complete_transition(&mut self, t: TxnTransit) {
        if self.producer_id != t.producer_id {
            self.last_producer_id = self.producer_id;
        }
        self.producer_id = t.producer_id;
        self.producer_epoch = t.producer_epoch;
        self.last_producer_epoch = t.last_producer_epoch;
        self.txn_timeout_ms = t.txn_timeout_ms;
        self.state = t.state;
        self.partitions = t.partitions;
        self.txn_start_timestamp = t.txn_start_timestamp;
        self.txn_last_update_timestamp = t.txn_last_update_timestamp;
        self.pending_state = None;
    }

    /// The transition's record could not be written: nothing changes.
    pub fn abort_transition(&mut self) {
        self.pending_state = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> TxnMetadata {
        TxnMetadata::new("t", 100, 60_000, 1)
    }

    #[test]
    fn first_init_gives_epoch_zero_and_a_retry_gets_the_same_epoch() {
        let mut m = fresh();
        let t = m.prepare_increment_producer_epoch(60_000, None, 2).unwrap().unwrap();
        assert_eq!((t.producer_epoch, t.last_producer_epoch), (0, -1));
        m.complete_transition(t);
        // KIP-360: a producer presenting epoch 0 bumps to 1 and remembers 0.
        let t = m.prepare_increment_producer_epoch(60_000, Some(0), 3).unwrap().unwrap();
        assert_eq!((t.producer_epoch, t.last_producer_epoch), (1, 0));
        m.complete_transition(t);
        // A retry of that call (the producer never got the answer) gets epoch 1 again.
        let t = m.prepare_increment_producer_epoch(60_000, Some(0), 4).unwrap().unwrap();
        assert_eq!(t.producer_epoch, 1);
        m.complete_transition(t);
        // Anything older is fenced.
        assert!(m.prepare_increment_producer_epoch(60_000, Some(5), 5).unwrap().is_err());
    }

    #[test]
    fn a_pending_transition_blocks_another() {
        let mut m = fresh();
        let t = m.prepare_increment_producer_epoch(60_000, None, 2).unwrap().unwrap();
        m.complete_transition(t);
        let added = BTreeSet::from([("a".to_string(), 0)]);
        let _t = m.prepare_add_partitions(&added, 3).unwrap();
        assert!(m.prepare_add_partitions(&added, 3).is_err());
        m.abort_transition();
        assert_eq!(m.state, TxnState::Empty);
        assert!(m.prepare_add_partitions(&added, 3).is_ok());
    }

    #[test]
    fn commit_path_keeps_partitions_until_complete() {
        let mut m = fresh();
        let t = m.prepare_increment_producer_epoch(60_000, None, 2).unwrap().unwrap();
        m.complete_transition(t);
        let t = m.prepare_add_partitions(&BTreeSet::from([("a".to_string(), 1)]), 10).unwrap();
        m.complete_transition(t);
        assert_eq!((m.state, m.txn_start_timestamp), (TxnState::Ongoing, 10));
        let t = m.prepare_abort_or_commit(TxnState::PrepareCommit, 11).unwrap();
        assert_eq!(t.partitions.len(), 1);
        m.complete_transition(t);
        let t = m.prepare_complete(12).unwrap();
        assert_eq!((t.state, t.partitions.len()), (TxnState::CompleteCommit, 0));
        m.complete_transition(t);
        // Empty cannot go straight to PrepareCommit.
        let mut e = fresh();
        assert!(e.prepare_abort_or_commit(TxnState::PrepareCommit, 1).is_err());
    }

    #[test]
    fn names_and_ids_are_kafkas() {
        assert_eq!(TxnState::from_name("PrepareCommit"), Some(TxnState::PrepareCommit));
        assert_eq!(TxnState::from_id(5), Some(TxnState::CompleteAbort));
        assert_eq!(TxnState::from_id(8), None);
        assert!(is_epoch_exhausted(i16::MAX - 1));
        assert!(!is_epoch_exhausted(i16::MAX - 2));
    }
}
