//! Which offsets may be committed. A partition's commit position only ever covers records that were handled (or
//! acknowledged, in manual modes): it is the first record still in flight, or one past the last record begun when
//! none is in flight. With per-key ordering records complete out of order, and this keeps the commit at the
//! first gap — "contiguous completed offsets" — so a crash never skips an unhandled record.

use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Debug, Default)]
struct PartitionState {
    /// Offsets begun and not completed, ascending. Records of a partition begin in offset order and mostly
    /// complete in it, so this is nearly always a push at the back and a pop at the front.
    in_flight: VecDeque<i64>,
    last_begun: Option<i64>,
    committed: Option<i64>,
}

impl PartitionState {
    fn committable(&self) -> Option<i64> {
        self.in_flight.front().copied().or(self.last_begun.map(|o| o + 1))
    }
}

/// Offsets of one consumer, by partition.
#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    // Looked up twice per record: consecutive records are nearly always of the same partition, so the last one
    // found is tried first, then a scan (a consumer owns tens of partitions, rarely more).
    parts: Vec<((Arc<str>, i32), PartitionState)>,
    last: usize,
    /// Offsets are committed by transactions (`send_offsets_to_transaction`), never by the consumer.
    transactional: bool,
}

/// A commit to make: topic, partition, next offset to read.
pub(crate) type CommitPosition = (Arc<str>, i32, i64);

fn same(a: &(Arc<str>, i32), topic: &Arc<str>, partition: i32) -> bool {
    a.1 == partition && (Arc::ptr_eq(&a.0, topic) || a.0 == *topic)
}

impl OffsetTracker {
    fn find(&mut self, topic: &Arc<str>, partition: i32) -> Option<usize> {
        if self.parts.get(self.last).is_some_and(|(k, _)| same(k, topic, partition)) {
            return Some(self.last);
        }
        let i = self.parts.iter().position(|(k, _)| same(k, topic, partition))?;
        self.last = i;
        Some(i)
    }

    fn part(&mut self, topic: &Arc<str>, partition: i32) -> &mut PartitionState {
        let i = match self.find(topic, partition) {
            Some(i) => i,
            None => {
                self.parts.push(((topic.clone(), partition), PartitionState::default()));
                self.last = self.parts.len() - 1;
                self.last
            }
        };
        &mut self.parts[i].1
    }

    /// A record is about to be handled.
    pub(crate) fn begin(&mut self, topic: &Arc<str>, partition: i32, offset: i64) {
        let p = self.part(topic, partition);
        match p.in_flight.back() {
            Some(&b) if b >= offset => {
                if let Err(i) = p.in_flight.binary_search(&offset) {
                    p.in_flight.insert(i, offset);
                }
            }
            _ => p.in_flight.push_back(offset),
        }
        p.last_begun = Some(offset);
    }

    /// A record that was never in flight was handled: [`begin`](Self::begin) and [`complete`](Self::complete) in one
    /// visit (a record filtered out, or one whose handler finished on its first poll).
    pub(crate) fn handled(&mut self, topic: &Arc<str>, partition: i32, offset: i64) {
        self.part(topic, partition).last_begun = Some(offset);
    }

    /// A record was handled (or acknowledged).
    pub(crate) fn complete(&mut self, topic: &Arc<str>, partition: i32, offset: i64) {
        let Some(i) = self.find(topic, partition) else {
            return;
        };
        let p = &mut self.parts[i].1;
        if p.in_flight.front() == Some(&offset) {
            p.in_flight.pop_front();
        } else if let Ok(i) = p.in_flight.binary_search(&offset) {
            p.in_flight.remove(i);
        }
    }

    /// From now on the consumer commits nothing: each transaction commits its offsets.
    pub(crate) fn set_transactional(&mut self) {
        self.transactional = true;
    }

    /// Positions that moved since the last commit; they are marked committed (call [`Self::restore`] if the
    /// commit fails).
    pub(crate) fn take_commits(&mut self) -> Vec<CommitPosition> {
        let mut out = Vec::new();
        if self.transactional {
            return out;
        }
        for ((t, p), s) in self.parts.iter_mut() {
            if let Some(c) = s.committable() {
                if s.committed != Some(c) {
                    s.committed = Some(c);
                    out.push((t.clone(), *p, c));
                }
            }
        }
        out
    }

    /// Like [`Self::take_commits`], for some partitions only.
    pub(crate) fn take_commits_for(&mut self, partitions: &[(String, i32)]) -> Vec<CommitPosition> {
        let mut out = Vec::new();
        if self.transactional {
            return out;
        }
        for ((t, p), s) in self.parts.iter_mut() {
            if !partitions.iter().any(|(pt, pp)| pt.as_str() == t.as_ref() && pp == p) {
                continue;
            }
            if let Some(c) = s.committable() {
                if s.committed != Some(c) {
                    s.committed = Some(c);
                    out.push((t.clone(), *p, c));
                }
            }
        }
        out
    }

    /// A commit failed: forget that these positions were committed so the next commit retries them.
    pub(crate) fn restore(&mut self, failed: &[CommitPosition]) {
        for (t, p, _) in failed {
            if let Some(i) = self.find(t, *p) {
                self.parts[i].1.committed = None;
            }
        }
    }

    /// Records still in flight in these partitions.
    pub(crate) fn in_flight_in(&self, partitions: &[(String, i32)]) -> usize {
        self.parts
            .iter()
            .filter(|((t, p), _)| partitions.iter().any(|(pt, pp)| pt.as_str() == t.as_ref() && pp == p))
            .map(|(_, s)| s.in_flight.len())
            .sum()
    }

    /// Drops the state of partitions no longer owned (or owned afresh).
    pub(crate) fn forget(&mut self, partitions: &[(String, i32)]) {
        self.parts.retain(|((t, p), _)| !partitions.iter().any(|(pt, pp)| pt.as_str() == t.as_ref() && pp == p));
        self.last = 0;
    }

    /// After a seek: nothing begun at the new position yet; the committed position stays until records there
    /// are handled.
    pub(crate) fn reset(&mut self, topic: &str, partition: i32) {
        for ((t, p), s) in self.parts.iter_mut() {
            if t.as_ref() == topic && *p == partition {
                s.in_flight.clear();
                s.last_begun = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_stops_at_first_record_in_flight() {
        let t: Arc<str> = Arc::from("t");
        let mut tr = OffsetTracker::default();
        for o in 0..5 {
            tr.begin(&t, 0, o);
        }
        tr.complete(&t, 0, 0);
        tr.complete(&t, 0, 2);
        tr.complete(&t, 0, 3);
        assert_eq!(tr.take_commits(), vec![(t.clone(), 0, 1)]);
        tr.complete(&t, 0, 1);
        assert_eq!(tr.take_commits(), vec![(t.clone(), 0, 4)]);
        tr.complete(&t, 0, 4);
        assert_eq!(tr.take_commits(), vec![(t.clone(), 0, 5)]);
        assert!(tr.take_commits().is_empty());
    }

    #[test]
    fn gaps_in_offsets_do_not_block_commits() {
        let t: Arc<str> = Arc::from("t");
        let mut tr = OffsetTracker::default();
        tr.begin(&t, 0, 10);
        tr.begin(&t, 0, 14);
        tr.complete(&t, 0, 14);
        tr.complete(&t, 0, 10);
        assert_eq!(tr.take_commits(), vec![(t.clone(), 0, 15)]);
    }

    #[test]
    fn a_record_handled_without_being_in_flight_moves_the_commit_like_begin_and_complete() {
        let t: Arc<str> = Arc::from("t");
        let (mut once, mut twice) = (OffsetTracker::default(), OffsetTracker::default());
        for o in [3, 4, 7] {
            once.handled(&t, 0, o);
            twice.begin(&t, 0, o);
            twice.complete(&t, 0, o);
        }
        assert_eq!(once.take_commits(), vec![(t.clone(), 0, 8)]);
        assert_eq!(twice.take_commits(), vec![(t.clone(), 0, 8)]);
        // A record in flight before it still holds the commit back.
        once.begin(&t, 0, 8);
        once.handled(&t, 0, 9);
        assert!(once.take_commits().is_empty());
        once.complete(&t, 0, 8);
        assert_eq!(once.take_commits(), vec![(t.clone(), 0, 10)]);
    }

    #[test]
    fn failed_commit_is_retried() {
        let t: Arc<str> = Arc::from("t");
        let mut tr = OffsetTracker::default();
        tr.begin(&t, 1, 0);
        tr.complete(&t, 1, 0);
        let c = tr.take_commits();
        tr.restore(&c);
        assert_eq!(tr.take_commits(), c);
    }
}
