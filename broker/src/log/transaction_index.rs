//! The aborted transaction index of a segment, `<base offset>.txnindex`, as Kafka's `TransactionIndex`.
//!
//! One 34-byte entry per aborted transaction whose ABORT marker lies in the segment: version i16 (0), producerId
//! i64, firstOffset i64, lastOffset i64 (the marker's offset), lastStableOffset i64 (the LSO when the marker was
//! written). A read_committed fetch returns the entries overlapping the fetched range so the client can drop the
//! aborted records. Entries live in memory; new ones are appended to the file as they are written.

/// Size of one entry on disk.
pub const ABORTED_TXN_SIZE: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    pub fn to_bytes(&self) -> [u8; ABORTED_TXN_SIZE] {
        let mut b = [0u8; ABORTED_TXN_SIZE];
        b[0..2].copy_from_slice(&VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }
}

/// The entries of one segment's `.txnindex`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionIndex {
    entries: Vec<AbortedTxn>,
    persisted: usize,
}

/// Why a `.txnindex` file cannot be used (it is then rebuilt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt transaction index: {0}")]
pub struct CorruptTxnIndex(pub String);

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl TransactionIndex {
    pub fn new() -> Self {
        TransactionIndex::default()
    }

    /// Parses a file's content: whole entries, version 0, last offsets not decreasing.
    pub fn from_bytes(bytes: &[u8]) -> Result<TransactionIndex, CorruptTxnIndex> {
        if bytes.len() % ABORTED_TXN_SIZE != 0 {
            return Err(CorruptTxnIndex(format!("{} bytes is not a whole number of entries", bytes.len())));
        }
        let mut entries = Vec::with_capacity(bytes.len() / ABORTED_TXN_SIZE);
        for chunk in bytes.chunks_exact(ABORTED_TXN_SIZE) {
            let version = i16::from_be_bytes([chunk[0], chunk[1]]);
            if version != VERSION {
                return Err(CorruptTxnIndex(format!("unknown entry version {version}")));
            }
            let txn = AbortedTxn {
                producer_id: i64_at(chunk, 2),
                first_offset: i64_at(chunk, 10),
                last_offset: i64_at(chunk, 18),
                last_stable_offset: i64_at(chunk, 26),
            };
            if txn.first_offset > txn.last_offset {
                return Err(CorruptTxnIndex(format!("entry {txn:?} ends before it starts")));
            }
            if entries.last().is_some_and(|prev: &AbortedTxn| prev.last_offset >= txn.last_offset) {
                return Err(CorruptTxnIndex(format!("entry {txn:?} is out of order")));
            }
            entries.push(txn);
        }
        let persisted = entries.len();
        Ok(TransactionIndex { entries, persisted })
    }

    pub fn from_entries(entries: Vec<AbortedTxn>) -> Self {
        TransactionIndex { entries, persisted: 0 }
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn append(&mut self, txn: AbortedTxn) {
        self.entries.push(txn);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.entries.iter().flat_map(|e| e.to_bytes()).collect()
    }

    /// Entries not yet written to the file: (file position, bytes, count).
    pub fn pending(&self) -> Option<(u64, Vec<u8>, usize)> {
        if self.persisted >= self.entries.len() {
            return None;
        }
        let bytes: Vec<u8> = self.entries[self.persisted..].iter().flat_map(|e| e.to_bytes()).collect();
        Some(((self.persisted * ABORTED_TXN_SIZE) as u64, bytes, self.entries.len()))
    }

    pub fn mark_persisted(&mut self, count: usize) {
        self.persisted = self.persisted.max(count.min(self.entries.len()));
    }

    pub fn mark_all_persisted(&mut self) {
        self.persisted = self.entries.len();
    }

    /// Kafka's `collectAbortedTxns`: entries overlapping `[fetch_offset, upper_bound)`, and whether the search is
    /// complete (an entry's last stable offset reached `upper_bound`, so no later segment can hold an overlapping
    /// transaction).
    pub fn collect(&self, fetch_offset: i64, upper_bound: i64, out: &mut Vec<AbortedTxn>) -> bool {
        for txn in &self.entries {
            if txn.last_offset >= fetch_offset && txn.first_offset < upper_bound {
                out.push(*txn);
            }
            if txn.last_stable_offset >= upper_bound {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: lso }
    }

    #[test]
    fn round_trips_kafka_layout() {
        let mut index = TransactionIndex::new();
        index.append(txn(1, 0, 10, 11));
        index.append(txn(2, 5, 20, 21));
        let bytes = index.to_bytes();
        assert_eq!(bytes.len(), 68);
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &1i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &11i64.to_be_bytes());
        assert_eq!(TransactionIndex::from_bytes(&bytes).unwrap().entries(), index.entries());
        assert!(TransactionIndex::from_bytes(&bytes[..40]).is_err());
    }

    #[test]
    fn collects_overlapping_and_stops_when_complete() {
        let index = TransactionIndex::from_entries(vec![txn(1, 0, 10, 11), txn(2, 12, 20, 30), txn(3, 25, 40, 41)]);
        let mut out = Vec::new();
        assert!(index.collect(11, 25, &mut out));
        assert_eq!(out, vec![txn(2, 12, 20, 30)]);
        out.clear();
        assert!(!index.collect(0, 100, &mut out));
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn pending_tracks_unwritten_entries() {
        let mut index = TransactionIndex::new();
        index.append(txn(1, 0, 1, 2));
        let (pos, bytes, count) = index.pending().unwrap();
        assert_eq!((pos, bytes.len(), count), (0, 34, 1));
        index.mark_persisted(count);
        assert!(index.pending().is_none());
        index.append(txn(1, 3, 4, 5));
        assert_eq!(index.pending().unwrap().0, 34);
    }
}
