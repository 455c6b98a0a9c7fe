//! The sparse time index of one segment (`<base offset>.timeindex`), as Kafka's `TimeIndex`.
//!
//! Each 12-byte entry is `timestamp i64 | relativeOffset u32` (big-endian): the largest timestamp seen so far in
//! the segment and the (last) offset of the batch that carried it. Entries are added alongside offset-index
//! entries, only when the timestamp grew, so timestamps and offsets both increase. When a segment becomes
//! inactive (roll, close) a final entry records its max timestamp, which is how the segment's largest timestamp
//! is known again after a restart. Stored sized to content, like the offset index.

use super::offset_index::CorruptIndex;

/// Bytes per entry.
pub const TIME_INDEX_ENTRY_SIZE: usize = 12;

#[derive(Debug, Clone)]
pub struct TimeIndex {
    base_offset: i64,
    entries: Vec<(i64, u32)>,
    max_entries: usize,
    persisted: usize,
}

impl TimeIndex {
    pub fn new(base_offset: i64, max_index_bytes: u64) -> Self {
        TimeIndex {
            base_offset,
            entries: Vec::new(),
            max_entries: ((max_index_bytes as usize) / TIME_INDEX_ENTRY_SIZE).max(1),
            persisted: 0,
        }
    }

    /// Parses a file's bytes; entries must be whole with non-decreasing timestamps and offsets, and offsets below
    /// `next_offset` (the segment's end).
    pub fn from_bytes(
        base_offset: i64,
        max_index_bytes: u64,
        bytes: &[u8],
        next_offset: i64,
    ) -> Result<Self, CorruptIndex> {
        if bytes.len() % TIME_INDEX_ENTRY_SIZE != 0 {
            return Err(CorruptIndex(format!("size {} is not a multiple of {TIME_INDEX_ENTRY_SIZE}", bytes.len())));
        }
        let mut index = TimeIndex::new(base_offset, max_index_bytes);
        for chunk in bytes.chunks_exact(TIME_INDEX_ENTRY_SIZE) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let timestamp = i64::from_be_bytes(ts);
            let relative = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if let Some(&(last_ts, last_rel)) = index.entries.last() {
                if timestamp < last_ts || relative < last_rel {
                    return Err(CorruptIndex(format!(
                        "entry ({timestamp}, {relative}) does not follow ({last_ts}, {last_rel})"
                    )));
                }
            }
            if base_offset + i64::from(relative) >= next_offset.max(base_offset + 1) {
                return Err(CorruptIndex(format!(
                    "offset {relative} (relative) is past the segment end {next_offset}"
                )));
            }
            index.entries.push((timestamp, relative));
        }
        index.persisted = index.entries.len();
        Ok(index)
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

    /// Adds `(timestamp, offset)` when `timestamp` is larger than the last entry's (Kafka's `maybeAppend`). `force`
    /// ignores the size limit, for the final entry written when a segment becomes inactive.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64, force: bool) {
        let Some(relative) = offset.checked_sub(self.base_offset).and_then(|r| u32::try_from(r).ok()) else {
            return;
        };
        if self.is_full() && !force {
            return;
        }
        match self.entries.last() {
            Some(&(last_ts, last_rel)) if timestamp <= last_ts || relative < last_rel => {}
            _ => self.entries.push((timestamp, relative)),
        }
    }

    /// The entry with the largest timestamp strictly below `target`: every record up to its offset has a
    /// timestamp < `target`, so a scan for the first record with timestamp >= `target` may start there. (Kafka
    /// looks up "<= target", which can skip an earlier record carrying exactly `target`.) `None` means scan from
    /// the segment's start.
    pub fn lookup_below(&self, target: i64) -> Option<(i64, i64)> {
        let idx = self.entries.partition_point(|&(ts, _)| ts < target);
        (idx > 0).then(|| {
            let (ts, r) = self.entries[idx - 1];
            (ts, self.base_offset + i64::from(r))
        })
    }

    /// (timestamp, offset) of the last entry.
    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries.last().map(|&(ts, r)| (ts, self.base_offset + i64::from(r)))
    }

    /// Removes entries whose offset is >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let relative = offset.saturating_sub(self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let keep = self.entries.partition_point(|&(_, r)| r < relative);
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(keep);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode(&self.entries)
    }

    pub fn pending(&self) -> Option<(u64, Vec<u8>, usize)> {
        if self.persisted >= self.entries.len() {
            return None;
        }
        Some((
            (self.persisted * TIME_INDEX_ENTRY_SIZE) as u64,
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
}

fn encode(entries: &[(i64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TIME_INDEX_ENTRY_SIZE);
    for &(ts, r) in entries {
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&r.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> TimeIndex {
        let mut idx = TimeIndex::new(500, 1 << 20);
        idx.maybe_append(1_000, 510, false);
        idx.maybe_append(2_000, 530, false);
        idx.maybe_append(3_000, 560, false);
        idx
    }

    #[test]
    fn lookup_below_finds_largest_timestamp_strictly_smaller() {
        let idx = index();
        assert_eq!(idx.lookup_below(500), None);
        assert_eq!(idx.lookup_below(1_000), None);
        assert_eq!(idx.lookup_below(1_001), Some((1_000, 510)));
        assert_eq!(idx.lookup_below(3_000), Some((2_000, 530)));
        assert_eq!(idx.lookup_below(i64::MAX), Some((3_000, 560)));
    }

    #[test]
    fn only_growing_timestamps_are_appended() {
        let mut idx = index();
        idx.maybe_append(2_500, 570, false);
        idx.maybe_append(3_000, 580, false);
        assert_eq!(idx.len(), 3);
        idx.maybe_append(3_001, 580, false);
        assert_eq!(idx.last_entry(), Some((3_001, 580)));
    }

    #[test]
    fn file_round_trip_and_sanity_checks() {
        let idx = index();
        let bytes = idx.to_bytes();
        assert_eq!(bytes.len(), 36);
        assert_eq!(&bytes[8..12], &10u32.to_be_bytes());
        let loaded = TimeIndex::from_bytes(500, 1 << 20, &bytes, 600).unwrap();
        assert_eq!(loaded.last_entry(), Some((3_000, 560)));
        assert!(TimeIndex::from_bytes(500, 1 << 20, &bytes[..30], 600).is_err());
        assert!(TimeIndex::from_bytes(500, 1 << 20, &bytes, 540).is_err());
    }

    #[test]
    fn full_index_accepts_only_forced_final_entry() {
        let mut idx = TimeIndex::new(0, 12);
        idx.maybe_append(1, 0, false);
        idx.maybe_append(2, 1, false);
        assert_eq!(idx.len(), 1);
        idx.maybe_append(2, 1, true);
        assert_eq!(idx.len(), 2);
    }

    #[test]
    fn truncate_drops_entries_at_or_past_offset() {
        let mut idx = index();
        idx.truncate_to(530);
        assert_eq!(idx.last_entry(), Some((1_000, 510)));
    }
}
