//! The leader epoch history of one partition (Kafka's `LeaderEpochFileCache`), persisted as
//! `<partition dir>/leader-epoch-checkpoint` in Kafka's format: `0`, the entry count, then `epoch startOffset`
//! lines. Each entry says from which offset on a leader epoch wrote; ListOffsets answers carry the epoch of the
//! offset they return, and followers (later) truncate by it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::segment::sync_dir;

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    /// (epoch, start offset), both increasing.
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Loads the partition's checkpoint; a missing or malformed file starts an empty history.
    pub fn load(dir: &Path) -> LeaderEpochCache {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let entries = std::fs::read_to_string(&path).ok().and_then(|t| parse(&t)).unwrap_or_default();
        LeaderEpochCache { path, entries }
    }

    pub fn set_dir(&mut self, dir: &Path) {
        self.path = dir.join(LEADER_EPOCH_CHECKPOINT);
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts writing at `start_offset`; returns true when the history changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// The epoch that wrote `offset`, -1 when unknown.
    pub fn epoch_for_offset(&self, offset: i64) -> i32 {
        let idx = self.entries.partition_point(|&(_, start)| start <= offset);
        if idx == 0 {
            -1
        } else {
            self.entries[idx - 1].0
        }
    }

    /// Drops entries starting at or after `end_offset` (after recovery truncated the log).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end_offset);
        before != self.entries.len()
    }

    /// Writes the checkpoint atomically.
    pub fn persist(&self) -> io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        match self.path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }
}

fn parse(text: &str) -> Option<Vec<(i32, i64)>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = Vec::new();
    for line in lines.take(count) {
        let (epoch, start) = line.split_once(' ')?;
        entries.push((epoch.trim().parse().ok()?, start.trim().parse().ok()?));
    }
    (entries.len() == count).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_persists_and_answers_epoch_for_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(dir.path());
        assert_eq!(cache.epoch_for_offset(0), -1);
        assert!(cache.assign(0, 0));
        assert!(!cache.assign(0, 10));
        assert!(cache.assign(3, 10));
        cache.persist().unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap(), "0\n2\n0 0\n3 10\n");
        let loaded = LeaderEpochCache::load(dir.path());
        assert_eq!(loaded.epoch_for_offset(9), 0);
        assert_eq!(loaded.epoch_for_offset(10), 3);
        assert_eq!(loaded.latest_epoch(), Some(3));
    }

    #[test]
    fn truncation_drops_epochs_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(dir.path());
        cache.assign(1, 0);
        cache.assign(2, 50);
        assert!(cache.truncate_from_end(50));
        assert_eq!(cache.latest_epoch(), Some(1));
    }
}
