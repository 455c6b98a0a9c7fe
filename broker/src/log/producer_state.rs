//! Per-partition producer state for idempotent and transactional producers, as Kafka's `ProducerStateManager`,
//! `ProducerStateEntry` and `ProducerAppendInfo`.
//!
//! For each producer id the log remembers its epoch, the last five batches it wrote (first/last sequence, last
//! offset, timestamp), the coordinator epoch of its last transaction marker and, while a transaction is open
//! here, the transaction's first offset. An append is checked against this state *before* anything is written
//! ([`ProducerAppendInfo`] works on a copy); the copies are applied only once the write completed, so a request is
//! all-or-nothing.
//!
//! Checks, as Kafka 4 (transactions v1 markers, KIP-360 semantics):
//! - an epoch older than the entry's → `InvalidProducerEpoch` (clients and coordinator markers alike);
//! - a new epoch must start at sequence 0, unless the entry has no epoch yet → `OutOfOrderSequence`;
//! - the same epoch must continue at last sequence + 1 (wrapping at `i32::MAX` to 0) → `OutOfOrderSequence`;
//!   an unknown producer (no state: new, expired, or its data deleted) is accepted at any sequence, which is how
//!   Kafka handles UNKNOWN_PRODUCER_ID since KIP-360: the log never answers UNKNOWN_PRODUCER_ID;
//! - a non-transactional batch while a transaction is open → `InvalidTxnState`;
//! - a marker from an older coordinator epoch → `TransactionCoordinatorFenced`.
//!
//! Duplicates (same epoch and exactly the sequence range of one of the last five batches) are found by the caller
//! through [`ProducerStateEntry::find_duplicate`] and acknowledged with the original offsets.
//!
//! Snapshots are Kafka's `<offset>.snapshot` files (version 1): version i16 | crc u32 (CRC-32C of the rest) |
//! entries array (i32 count; producerId i64, epoch i16, lastSequence i32, lastOffset i64, offsetDelta i32,
//! timestamp i64, coordinatorEpoch i32, currentTxnFirstOffset i64). Like Kafka, a snapshot keeps only the last
//! batch of each producer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use super::batch_builder::ControlType;
use super::error::LogError;
use super::record_batch::{decrement_sequence, NO_PRODUCER_EPOCH, NO_SEQUENCE};

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_ENTRY_SIZE: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;

/// One batch a producer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub last_seq: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
    pub timestamp: i64,
}

impl BatchMetadata {
    pub fn first_seq(&self) -> i32 {
        decrement_sequence(self.last_seq, self.offset_delta)
    }
    pub fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

/// What the log knows of one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    pub coordinator_epoch: i32,
    pub last_timestamp: i64,
    pub current_txn_first_offset: Option<i64>,
}

impl ProducerStateEntry {
    pub fn empty(producer_id: i64) -> Self {
        ProducerStateEntry {
            producer_id,
            producer_epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            last_timestamp: -1,
            current_txn_first_offset: None,
        }
    }

    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// Last offset of the producer's last data batch (`None` when only markers are known).
    pub fn last_data_offset(&self) -> Option<i64> {
        self.batches.back().map(|b| b.last_offset)
    }

    /// One of the last five batches with exactly this epoch and sequence range (Kafka's `findDuplicateBatch`).
    pub fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.producer_epoch {
            return None;
        }
        self.batches.iter().find(|b| b.first_seq() == first_seq && b.last_seq == last_seq).copied()
    }

    fn maybe_update_epoch(&mut self, epoch: i16) {
        if self.producer_epoch != epoch {
            self.batches.clear();
            self.producer_epoch = epoch;
        }
    }

    fn add_batch(&mut self, epoch: i16, meta: BatchMetadata) {
        self.maybe_update_epoch(epoch);
        self.batches.push_back(meta);
        while self.batches.len() > NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.last_timestamp = meta.timestamp;
    }

    /// Applies the outcome of an append (Kafka's `ProducerStateEntry.update(nextEntry)`).
    fn apply(&mut self, next: ProducerStateEntry) {
        self.maybe_update_epoch(next.producer_epoch);
        for batch in next.batches {
            self.batches.push_back(batch);
            while self.batches.len() > NUM_BATCHES_TO_RETAIN {
                self.batches.pop_front();
            }
        }
        self.coordinator_epoch = next.coordinator_epoch;
        self.last_timestamp = next.last_timestamp;
        self.current_txn_first_offset = next.current_txn_first_offset;
    }
}

/// Who appends, which decides the checks (Kafka's `AppendOrigin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerAppendMode {
    /// A produce request: epochs and sequences checked.
    Client,
    /// The broker's coordinators (markers, transactional offset commits): epochs checked, sequences not.
    Coordinator,
    /// Rebuilding state from the log: nothing refused.
    Replay,
}

/// A transaction whose marker was just appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub is_aborted: bool,
}

/// The effect of one append on one producer, computed without touching the manager.
#[derive(Debug, Clone)]
pub struct ProducerAppendInfo {
    producer_id: i64,
    current: ProducerStateEntry,
    updated: ProducerStateEntry,
    mode: ProducerAppendMode,
    started_txns: Vec<i64>,
    completed: Vec<CompletedTxn>,
}

impl ProducerAppendInfo {
    fn new(current: ProducerStateEntry, mode: ProducerAppendMode) -> Self {
        let mut updated = current.clone();
        updated.batches.clear();
        ProducerAppendInfo {
            producer_id: current.producer_id,
            current,
            updated,
            mode,
            started_txns: Vec::new(),
            completed: Vec::new(),
        }
    }

    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    /// Transactions completed by the markers of this append, in order.
    pub fn take_completed(&mut self) -> Vec<CompletedTxn> {
        std::mem::take(&mut self.completed)
    }

    fn check_epoch(&self, epoch: i16, offset: i64) -> Result<(), LogError> {
        if epoch < self.updated.producer_epoch {
            let message = format!(
                "epoch of producer {} at offset {offset} is {epoch}, smaller than the last seen epoch {}",
                self.producer_id, self.updated.producer_epoch
            );
            if self.mode == ProducerAppendMode::Replay {
                tracing::warn!("{message}");
            } else {
                return Err(LogError::InvalidProducerEpoch(message));
            }
        }
        Ok(())
    }

    fn check_sequence(&self, epoch: i16, first_seq: i32, offset: i64) -> Result<(), LogError> {
        if epoch != self.updated.producer_epoch {
            if first_seq != 0 && self.updated.producer_epoch != NO_PRODUCER_EPOCH {
                return Err(LogError::OutOfOrderSequence(format!(
                    "invalid sequence number for new epoch of producer {} at offset {offset}: {epoch} (request \
                     epoch), {first_seq} (seq. number), {} (current producer epoch)",
                    self.producer_id, self.updated.producer_epoch
                )));
            }
            return Ok(());
        }
        let current_last_seq = if !self.updated.batches.is_empty() {
            self.updated.last_seq()
        } else if epoch == self.current.producer_epoch {
            self.current.last_seq()
        } else {
            NO_SEQUENCE
        };
        // A producer with no known epoch (new, expired, or its data deleted) may continue at any sequence.
        if self.current.producer_epoch != NO_PRODUCER_EPOCH && !in_sequence(current_last_seq, first_seq) {
            return Err(LogError::OutOfOrderSequence(format!(
                "out of order sequence number for producer {} at offset {offset}: {first_seq} (incoming seq. \
                 number), {current_last_seq} (current end sequence number)",
                self.producer_id
            )));
        }
        Ok(())
    }

    /// A data batch (Kafka's `appendDataBatch`).
    #[allow(clippy::too_many_arguments)]
    pub fn append_data_batch(
        &mut self,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
        max_timestamp: i64,
        first_offset: i64,
        last_offset: i64,
        transactional: bool,
    ) -> Result<(), LogError> {
        self.check_epoch(epoch, first_offset)?;
        if self.mode == ProducerAppendMode::Client {
            self.check_sequence(epoch, first_seq, first_offset)?;
        }
        self.updated.add_batch(
            epoch,
            BatchMetadata {
                last_seq,
                last_offset,
                offset_delta: (last_offset - first_offset) as i32,
                timestamp: max_timestamp,
            },
        );
        match (self.updated.current_txn_first_offset, transactional) {
            (Some(_), false) if self.mode != ProducerAppendMode::Replay => {
                return Err(LogError::InvalidTxnState(format!(
                    "expected a transactional write from producer {} at offset {first_offset}",
                    self.producer_id
                )));
            }
            (None, true) => {
                self.updated.current_txn_first_offset = Some(first_offset);
                self.started_txns.push(first_offset);
            }
            _ => {}
        }
        Ok(())
    }

    /// A COMMIT or ABORT marker (Kafka's `appendEndTxnMarker`). Returns the completed transaction when one was
    /// open here (a marker of an empty transaction completes nothing).
    pub fn append_end_txn_marker(
        &mut self,
        control: ControlType,
        coordinator_epoch: i32,
        epoch: i16,
        offset: i64,
        timestamp: i64,
    ) -> Result<Option<CompletedTxn>, LogError> {
        self.check_epoch(epoch, offset)?;
        if self.updated.coordinator_epoch > coordinator_epoch {
            let message = format!(
                "transaction marker for producer {} at offset {offset} has coordinator epoch {coordinator_epoch}, \
                 older than the last seen {}",
                self.producer_id, self.updated.coordinator_epoch
            );
            if self.mode == ProducerAppendMode::Replay {
                tracing::info!("{message}");
            } else {
                return Err(LogError::TransactionCoordinatorFenced(message));
            }
        }
        let completed = self.updated.current_txn_first_offset.map(|first| CompletedTxn {
            producer_id: self.producer_id,
            first_offset: first,
            last_offset: offset,
            is_aborted: control == ControlType::Abort,
        });
        self.updated.maybe_update_epoch(epoch);
        self.updated.coordinator_epoch = coordinator_epoch;
        self.updated.last_timestamp = timestamp;
        self.updated.current_txn_first_offset = None;
        if let Some(txn) = completed {
            self.completed.push(txn);
        }
        Ok(completed)
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// All producer state of one partition.
#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerStateEntry>,
    /// Open transactions by first offset -> producer id.
    ongoing_txns: BTreeMap<i64, i64>,
    /// The state covers the log up to (excluding) this offset.
    map_end_offset: i64,
}

impl ProducerStateManager {
    pub fn new() -> Self {
        ProducerStateManager::default()
    }

    pub fn last_entry(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    pub fn producers(&self) -> &HashMap<i64, ProducerStateEntry> {
        &self.producers
    }

    pub fn map_end_offset(&self) -> i64 {
        self.map_end_offset
    }

    pub fn update_map_end_offset(&mut self, offset: i64) {
        self.map_end_offset = offset;
    }

    /// Starts computing an append's effect on `producer_id` (Kafka's `prepareUpdate`).
    pub fn prepare_update(&self, producer_id: i64, mode: ProducerAppendMode) -> ProducerAppendInfo {
        let current =
            self.producers.get(&producer_id).cloned().unwrap_or_else(|| ProducerStateEntry::empty(producer_id));
        ProducerAppendInfo::new(current, mode)
    }

    /// Applies an append's effect once the data is in the log.
    pub fn update(&mut self, info: ProducerAppendInfo) {
        let pid = info.producer_id;
        for first in &info.started_txns {
            self.ongoing_txns.insert(*first, pid);
        }
        match self.producers.get_mut(&pid) {
            Some(entry) => entry.apply(info.updated),
            None => {
                self.producers.insert(pid, info.updated);
            }
        }
    }

    /// Kafka's `lastStableOffset(completedTxn)`: the first offset of the earliest other open transaction, else the
    /// offset after the marker.
    pub fn last_stable_offset(&self, completed: &CompletedTxn) -> i64 {
        self.ongoing_txns
            .iter()
            .find(|(_, pid)| **pid != completed.producer_id)
            .map_or(completed.last_offset + 1, |(first, _)| *first)
    }

    pub fn complete_txn(&mut self, completed: &CompletedTxn) {
        if self.ongoing_txns.remove(&completed.first_offset).is_none() {
            tracing::warn!(
                producer_id = completed.producer_id,
                first_offset = completed.first_offset,
                "completed a transaction that was not tracked as ongoing"
            );
        }
    }

    /// First offset of the earliest open transaction.
    pub fn first_undecided_offset(&self) -> Option<i64> {
        self.ongoing_txns.keys().next().copied()
    }

    /// Open transactions: (first offset, producer id), oldest first.
    pub fn ongoing_txns(&self) -> Vec<(i64, i64)> {
        self.ongoing_txns.iter().map(|(o, p)| (*o, *p)).collect()
    }

    fn is_expired(entry: &ProducerStateEntry, now_ms: i64, expiration_ms: i64) -> bool {
        entry.current_txn_first_offset.is_none() && now_ms.saturating_sub(entry.last_timestamp) >= expiration_ms
    }

    /// Drops producers idle for `producer.id.expiration.ms` with no open transaction.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| !Self::is_expired(e, now_ms, expiration_ms));
        before - self.producers.len()
    }

    /// Forgets everything (before reloading from a snapshot).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) {
        self.producers.clear();
        self.ongoing_txns.clear();
        self.map_end_offset = offset;
    }

    /// Loads one snapshot entry (Kafka's `loadProducerEntry`).
    pub fn load_entry(&mut self, entry: ProducerStateEntry) {
        if let Some(first) = entry.current_txn_first_offset {
            self.ongoing_txns.insert(first, entry.producer_id);
        }
        self.producers.insert(entry.producer_id, entry);
    }

    /// Kafka's snapshot bytes of the current state.
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let mut entries: Vec<&ProducerStateEntry> = self.producers.values().collect();
        entries.sort_by_key(|e| e.producer_id);
        let mut out = Vec::with_capacity(10 + entries.len() * SNAPSHOT_ENTRY_SIZE);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&(entries.len() as i32).to_be_bytes());
        for e in entries {
            let last = e.batches.back();
            out.extend_from_slice(&e.producer_id.to_be_bytes());
            out.extend_from_slice(&e.producer_epoch.to_be_bytes());
            out.extend_from_slice(&last.map_or(NO_SEQUENCE, |b| b.last_seq).to_be_bytes());
            out.extend_from_slice(&last.map_or(-1i64, |b| b.last_offset).to_be_bytes());
            out.extend_from_slice(&last.map_or(0i32, |b| b.offset_delta).to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
        }
        let crc = crc32c::crc32c(&out[6..]);
        out[2..6].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Writes `<dir>/<map end offset>.snapshot` atomically (tmp + fsync + rename + folder fsync).
    pub fn write_snapshot(&self, dir: &Path) -> io::Result<PathBuf> {
        let path = snapshot_file(dir, self.map_end_offset);
        let tmp = path.with_extension("snapshot.tmp");
        std::fs::write(&tmp, self.snapshot_bytes())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(path)
    }
}

/// `dir/<20-digit offset>.snapshot`.
pub fn snapshot_file(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

/// Snapshot files of a partition folder, by offset.
pub fn list_snapshots(dir: &Path) -> io::Result<BTreeMap<i64, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(SNAPSHOT_SUFFIX) {
            if let Ok(offset) = stem.parse::<i64>() {
                out.insert(offset, entry.path());
            }
        }
    }
    Ok(out)
}

/// Parses a snapshot file's content (Kafka's `readSnapshot`), checking version and CRC.
pub fn parse_snapshot(bytes: &[u8]) -> Result<Vec<ProducerStateEntry>, String> {
    if bytes.len() < 10 {
        return Err(format!("snapshot of {} bytes is too short", bytes.len()));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!("snapshot version {version} is not {SNAPSHOT_VERSION}"));
    }
    let stored = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    let computed = crc32c::crc32c(&bytes[6..]);
    if stored != computed {
        return Err(format!("snapshot crc {stored:#010x} does not match computed {computed:#010x}"));
    }
    let count = i32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    let body = &bytes[10..];
    if count < 0 || body.len() != count as usize * SNAPSHOT_ENTRY_SIZE {
        return Err(format!("snapshot declares {count} entries but holds {} bytes", body.len()));
    }
    let i16_at = |b: &[u8], at: usize| i16::from_be_bytes([b[at], b[at + 1]]);
    let i32_at = |b: &[u8], at: usize| i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let i64_at = |b: &[u8], at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        i64::from_be_bytes(a)
    };
    Ok(body
        .chunks_exact(SNAPSHOT_ENTRY_SIZE)
        .map(|e| {
            let (pid, epoch, seq, offset, delta, ts, coord, txn) = (
                i64_at(e, 0),
                i16_at(e, 8),
                i32_at(e, 10),
                i64_at(e, 14),
                i32_at(e, 22),
                i64_at(e, 26),
                i32_at(e, 34),
                i64_at(e, 38),
            );
            let mut batches = VecDeque::new();
            if offset >= 0 {
                batches.push_back(BatchMetadata {
                    last_seq: seq,
                    last_offset: offset,
                    offset_delta: delta,
                    timestamp: ts,
                });
            }
            ProducerStateEntry {
                producer_id: pid,
                producer_epoch: epoch,
                batches,
                coordinator_epoch: coord,
                last_timestamp: ts,
                current_txn_first_offset: (txn >= 0).then_some(txn),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(
        m: &mut ProducerStateManager,
        pid: i64,
        epoch: i16,
        first_seq: i32,
        count: i32,
        offset: i64,
        txn: bool,
    ) -> Result<(), LogError> {
        let mut info = m.prepare_update(pid, ProducerAppendMode::Client);
        let last_seq = crate::log::record_batch::increment_sequence(first_seq, count - 1);
        info.append_data_batch(epoch, first_seq, last_seq, 1000, offset, offset + i64::from(count) - 1, txn)?;
        m.update(info);
        Ok(())
    }

    #[test]
    fn sequences_must_follow_and_gaps_are_refused() {
        let mut m = ProducerStateManager::new();
        data(&mut m, 1, 0, 0, 3, 0, false).unwrap();
        data(&mut m, 1, 0, 3, 2, 3, false).unwrap();
        assert!(matches!(data(&mut m, 1, 0, 6, 1, 5, false), Err(LogError::OutOfOrderSequence(_))));
        assert!(matches!(data(&mut m, 1, 0, 4, 1, 5, false), Err(LogError::OutOfOrderSequence(_))));
        data(&mut m, 1, 0, 5, 1, 5, false).unwrap();
        assert_eq!(m.last_entry(1).unwrap().last_seq(), 5);
    }

    #[test]
    fn duplicates_match_one_of_the_last_five_batches() {
        let mut m = ProducerStateManager::new();
        for i in 0..7 {
            data(&mut m, 9, 2, i * 2, 2, i64::from(i) * 2, false).unwrap();
        }
        let e = m.last_entry(9).unwrap();
        assert_eq!(e.batches.len(), NUM_BATCHES_TO_RETAIN);
        let dup = e.find_duplicate(2, 6, 7).unwrap();
        assert_eq!((dup.first_offset(), dup.last_offset), (6, 7));
        assert!(e.find_duplicate(2, 2, 3).is_none(), "evicted");
        assert!(e.find_duplicate(1, 6, 7).is_none(), "other epoch");
        assert!(e.find_duplicate(2, 6, 8).is_none(), "other range");
    }

    #[test]
    fn epochs_fence_and_new_epoch_starts_at_zero() {
        let mut m = ProducerStateManager::new();
        data(&mut m, 1, 5, 0, 1, 0, false).unwrap();
        assert!(matches!(data(&mut m, 1, 4, 1, 1, 1, false), Err(LogError::InvalidProducerEpoch(_))));
        assert!(matches!(data(&mut m, 1, 6, 3, 1, 1, false), Err(LogError::OutOfOrderSequence(_))));
        data(&mut m, 1, 6, 0, 1, 1, false).unwrap();
        assert_eq!(m.last_entry(1).unwrap().producer_epoch, 6);
        assert_eq!(m.last_entry(1).unwrap().batches.len(), 1);
    }

    #[test]
    fn unknown_producer_may_start_anywhere_and_sequences_wrap() {
        let mut m = ProducerStateManager::new();
        data(&mut m, 3, 0, i32::MAX - 1, 2, 0, false).unwrap();
        assert_eq!(m.last_entry(3).unwrap().last_seq(), i32::MAX);
        data(&mut m, 3, 0, 0, 1, 2, false).unwrap();
        // A batch spanning the wrap.
        let mut m = ProducerStateManager::new();
        data(&mut m, 4, 0, i32::MAX - 1, 4, 0, false).unwrap();
        assert_eq!(m.last_entry(4).unwrap().last_seq(), 1);
        let e = m.last_entry(4).unwrap();
        assert!(e.find_duplicate(0, i32::MAX - 1, 1).is_some());
        data(&mut m, 4, 0, 2, 1, 4, false).unwrap();
    }

    #[test]
    fn transactions_track_first_offset_and_complete() {
        let mut m = ProducerStateManager::new();
        data(&mut m, 1, 0, 0, 2, 10, true).unwrap();
        data(&mut m, 2, 0, 0, 2, 12, true).unwrap();
        assert_eq!(m.first_undecided_offset(), Some(10));
        assert!(matches!(data(&mut m, 1, 0, 2, 1, 14, false), Err(LogError::InvalidTxnState(_))));
        let mut info = m.prepare_update(1, ProducerAppendMode::Coordinator);
        let done = info.append_end_txn_marker(ControlType::Abort, 3, 0, 14, 0).unwrap().unwrap();
        assert_eq!(done, CompletedTxn { producer_id: 1, first_offset: 10, last_offset: 14, is_aborted: true });
        m.update(info);
        assert_eq!(m.last_stable_offset(&done), 12);
        m.complete_txn(&done);
        assert_eq!(m.first_undecided_offset(), Some(12));
        // An older coordinator epoch is fenced; an older producer epoch too.
        let mut info = m.prepare_update(1, ProducerAppendMode::Coordinator);
        assert!(matches!(
            info.append_end_txn_marker(ControlType::Commit, 2, 0, 15, 0),
            Err(LogError::TransactionCoordinatorFenced(_))
        ));
        let mut info = m.prepare_update(2, ProducerAppendMode::Coordinator);
        assert!(matches!(
            info.append_end_txn_marker(ControlType::Commit, 0, -1, 16, 0),
            Err(LogError::InvalidProducerEpoch(_))
        ));
        // Empty transaction: a marker completes nothing.
        let mut info = m.prepare_update(7, ProducerAppendMode::Coordinator);
        assert_eq!(info.append_end_txn_marker(ControlType::Commit, 0, 0, 17, 0).unwrap(), None);
    }

    #[test]
    fn snapshot_round_trips_and_detects_corruption() {
        let mut m = ProducerStateManager::new();
        data(&mut m, 1, 0, 0, 2, 0, false).unwrap();
        data(&mut m, 2, 3, 0, 1, 2, true).unwrap();
        m.update_map_end_offset(3);
        let bytes = m.snapshot_bytes();
        assert_eq!(bytes.len(), 10 + 2 * SNAPSHOT_ENTRY_SIZE);
        let entries = parse_snapshot(&bytes).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].last_seq(), 1);
        assert_eq!(entries[1].current_txn_first_offset, Some(2));
        let mut loaded = ProducerStateManager::new();
        for e in entries {
            loaded.load_entry(e);
        }
        assert_eq!(loaded.first_undecided_offset(), Some(2));
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(parse_snapshot(&bad).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = m.write_snapshot(dir.path()).unwrap();
        assert!(path.ends_with("00000000000000000003.snapshot"));
        assert_eq!(list_snapshots(dir.path()).unwrap().keys().copied().collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn idle_producers_expire_unless_in_a_transaction() {
        let mut m = ProducerStateManager::new();
        data(&mut m, 1, 0, 0, 1, 0, false).unwrap();
        data(&mut m, 2, 0, 0, 1, 1, true).unwrap();
        assert_eq!(m.remove_expired_producers(1000 + 50, 100), 0);
        assert_eq!(m.remove_expired_producers(1000 + 100, 100), 1);
        assert!(m.last_entry(1).is_none() && m.last_entry(2).is_some());
    }
}
