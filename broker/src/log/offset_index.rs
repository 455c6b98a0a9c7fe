//! The sparse offset index of one segment (`<base offset>.index`), as Kafka's `OffsetIndex`.
//!
//! Each 8-byte entry is `relativeOffset u32 | position u32` (big-endian): the last offset of a batch, relative to
//! the segment's base offset, and the file position where that batch starts. An entry is added once more than
//! `index.interval.bytes` of log have been written since the previous one, so a look-up lands at most one interval
//! before the batch wanted and the rest is a short scan of batch headers.
//!
//! Unlike Kafka, which preallocates the file to `segment.index.bytes` and memory-maps it, the entries live in memory
//! and the file is sized to its content: new entries are appended to it when the segment is flushed. A file sized
//! to content is what Kafka itself leaves after trimming a closed segment's index, so Kafka's tools read it.

/// Bytes per entry.
pub const OFFSET_INDEX_ENTRY_SIZE: usize = 8;

/// Why an index file cannot be trusted; the segment's indexes are then rebuilt from its log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt index: {0}")]
pub struct CorruptIndex(pub String);

#[derive(Debug, Clone)]
pub struct OffsetIndex {
    base_offset: i64,
    entries: Vec<(u32, u32)>,
    max_entries: usize,
    /// Entries already in the file.
    persisted: usize,
}

impl OffsetIndex {
    pub fn new(base_offset: i64, max_index_bytes: u64) -> Self {
        OffsetIndex {
            base_offset,
            entries: Vec::new(),
            max_entries: ((max_index_bytes as usize) / OFFSET_INDEX_ENTRY_SIZE).max(1),
            persisted: 0,
        }
    }

    /// Parses an index file's bytes and checks Kafka's sanity rules against the segment's log size: whole entries,
    /// strictly increasing offsets and non-decreasing positions inside the log.
    pub fn from_bytes(
        base_offset: i64,
        max_index_bytes: u64,
        bytes: &[u8],
        log_size: u64,
    ) -> Result<Self, CorruptIndex> {
        if bytes.len() % OFFSET_INDEX_ENTRY_SIZE != 0 {
            return Err(CorruptIndex(format!("size {} is not a multiple of {OFFSET_INDEX_ENTRY_SIZE}", bytes.len())));
        }
        let mut index = OffsetIndex::new(base_offset, max_index_bytes);
        for chunk in bytes.chunks_exact(OFFSET_INDEX_ENTRY_SIZE) {
            let relative = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let position = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if let Some(&(last_rel, last_pos)) = index.entries.last() {
                if relative <= last_rel || position < last_pos {
                    return Err(CorruptIndex(format!(
                        "entry ({relative}, {position}) does not follow ({last_rel}, {last_pos})"
                    )));
                }
            }
            if u64::from(position) >= log_size {
                return Err(CorruptIndex(format!("position {position} is past the log's {log_size} bytes")));
            }
            index.entries.push((relative, position));
        }
        index.persisted = index.entries.len();
        Ok(index)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Adds an entry for `offset` at `position`. Entries must increase; an out-of-order or full append is
    /// ignored (the index is sparse, so a missing entry only lengthens a scan).
    pub fn append(&mut self, offset: i64, position: u32) {
        let Some(relative) = self.relative(offset) else { return };
        if self.is_full() {
            return;
        }
        if let Some(&(last, _)) = self.entries.last() {
            if relative <= last {
                return;
            }
        }
        self.entries.push((relative, position));
    }

    /// The entry with the largest offset <= `target`, or (base offset, 0) when there is none.
    pub fn lookup(&self, target: i64) -> (i64, u32) {
        let Some(relative) = target.checked_sub(self.base_offset).filter(|r| *r >= 0) else {
            return (self.base_offset, 0);
        };
        let relative = relative.min(i64::from(u32::MAX)) as u32;
        let idx = self.entries.partition_point(|&(r, _)| r <= relative);
        if idx == 0 {
            (self.base_offset, 0)
        } else {
            let (r, p) = self.entries[idx - 1];
            (self.base_offset + i64::from(r), p)
        }
    }

    pub fn last_entry(&self) -> Option<(i64, u32)> {
        self.entries.last().map(|&(r, p)| (self.base_offset + i64::from(r), p))
    }

    /// Removes entries whose offset is >= `offset` (Kafka's `truncateTo`).
    pub fn truncate_to(&mut self, offset: i64) {
        let relative = offset.saturating_sub(self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let keep = self.entries.partition_point(|&(r, _)| r < relative);
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(keep);
    }

    /// The whole file content.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(&self.entries)
    }

    /// Entries not yet written to the file: (file position, bytes, entry count after writing).
    pub fn pending(&self) -> Option<(u64, Vec<u8>, usize)> {
        if self.persisted >= self.entries.len() {
            return None;
        }
        Some((
            (self.persisted * OFFSET_INDEX_ENTRY_SIZE) as u64,
            encode(&self.entries[self.persisted..]),
            self.entries.len(),
        ))
    }

    pub fn mark_persisted(&mut self, count: usize) {
        self.persisted = self.persisted.max(count.min(self.entries.len()));
    }

    pub fn mark_all_persisted(&mut self) {
        self.persisted = self.entries.len();
    }

    fn relative(&self, offset: i64) -> Option<u32> {
        offset.checked_sub(self.base_offset).and_then(|r| u32::try_from(r).ok())
    }
}

fn encode(entries: &[(u32, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * OFFSET_INDEX_ENTRY_SIZE);
    for &(r, p) in entries {
        out.extend_from_slice(&r.to_be_bytes());
        out.extend_from_slice(&p.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> OffsetIndex {
        let mut idx = OffsetIndex::new(1000, 1 << 20);
        idx.append(1010, 4100);
        idx.append(1020, 8300);
        idx.append(1035, 12_500);
        idx
    }

    #[test]
    fn lookup_returns_largest_entry_not_above_target() {
        let idx = index();
        assert_eq!(idx.lookup(999), (1000, 0));
        assert_eq!(idx.lookup(1000), (1000, 0));
        assert_eq!(idx.lookup(1009), (1000, 0));
        assert_eq!(idx.lookup(1010), (1010, 4100));
        assert_eq!(idx.lookup(1034), (1020, 8300));
        assert_eq!(idx.lookup(1035), (1035, 12_500));
        assert_eq!(idx.lookup(i64::MAX), (1035, 12_500));
    }

    #[test]
    fn out_of_order_and_overflowing_entries_are_ignored() {
        let mut idx = index();
        idx.append(1020, 9000);
        idx.append(999, 1);
        idx.append(1000 + i64::from(u32::MAX) + 1, 1);
        assert_eq!(idx.len(), 3);
    }

    #[test]
    fn file_bytes_round_trip_in_kafka_layout() {
        let idx = index();
        let bytes = idx.to_bytes();
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[0..8], &[0, 0, 0, 10, 0, 0, 0x10, 0x04]);
        let loaded = OffsetIndex::from_bytes(1000, 1 << 20, &bytes, 20_000).unwrap();
        assert_eq!(loaded.lookup(1036), (1035, 12_500));
        assert!(loaded.pending().is_none());
    }

    #[test]
    fn sanity_check_rejects_bad_files() {
        let bytes = index().to_bytes();
        assert!(OffsetIndex::from_bytes(1000, 1 << 20, &bytes[..20], 20_000).is_err());
        assert!(OffsetIndex::from_bytes(1000, 1 << 20, &bytes, 10_000).is_err());
        let mut swapped = bytes[8..16].to_vec();
        swapped.extend_from_slice(&bytes[0..8]);
        assert!(OffsetIndex::from_bytes(1000, 1 << 20, &swapped, 20_000).is_err());
    }

    #[test]
    fn truncate_and_pending_track_the_file() {
        let mut idx = index();
        let (pos, bytes, count) = idx.pending().unwrap();
        assert_eq!((pos, bytes.len(), count), (0, 24, 3));
        idx.mark_persisted(count);
        idx.append(1040, 13_000);
        assert_eq!(idx.pending().unwrap().0, 24);
        idx.truncate_to(1020);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.lookup(1030), (1010, 4100));
    }

    #[test]
    fn full_index_reports_full() {
        let mut idx = OffsetIndex::new(0, 16);
        idx.append(1, 1);
        assert!(!idx.is_full());
        idx.append(2, 2);
        assert!(idx.is_full());
    }
}
