//! The records of one poll, shared by the deliveries made of them.
//!
//! A record listener's delivery holds the poll and an index: one reference count, where a copy of the record is
//! one per topic, key, value and header list, each taken and released again for every record. The poll also
//! holds the context every delivery of an automatic ack mode shares (manual modes give each delivery its own
//! `Ack`, and copy the record).

use std::sync::Arc;

use crate::listener::{Delivery, ListenerContext};
use crate::record::Record;

/// What one poll returned, after the container dropped records of revoked partitions.
pub(crate) struct Poll {
    pub(crate) records: Vec<Record>,
    pub(crate) ctx: ListenerContext,
}

impl Poll {
    pub(crate) fn new(records: Vec<Record>, ctx: ListenerContext) -> Arc<Poll> {
        Arc::new(Poll { records, ctx })
    }

    /// The poll's record buffer, emptied, when nothing refers to the poll any more (the next poll reuses it).
    pub(crate) fn recycle(poll: Arc<Poll>) -> Option<Vec<Record>> {
        let mut records = Arc::try_unwrap(poll).ok()?.records;
        records.clear();
        Some(records)
    }

    /// Each record of the poll, in order, borrowed (a record handled on its first poll never takes a reference
    /// count of its own).
    pub(crate) fn each(poll: &Arc<Poll>) -> impl Iterator<Item = PollSlot<'_>> {
        (0..poll.records.len()).map(move |index| PollSlot { poll, index })
    }
}

/// One record of a [`Poll`], borrowed; dereferences to the record.
#[derive(Clone, Copy)]
pub(crate) struct PollSlot<'a> {
    poll: &'a Arc<Poll>,
    index: usize,
}

impl PollSlot<'_> {
    /// A delivery of this record with the poll's context.
    pub(crate) fn delivery(self) -> Delivery {
        Delivery::polled(self.poll.clone(), self.index)
    }

    /// The record, kept beyond the loop over its poll (its handling goes on, or a lane handles it).
    pub(crate) fn to_owned(self) -> PolledRecord {
        PolledRecord { poll: self.poll.clone(), index: self.index }
    }
}

impl std::ops::Deref for PollSlot<'_> {
    type Target = Record;

    fn deref(&self) -> &Record {
        &self.poll.records[self.index]
    }
}

/// One record of a [`Poll`], holding the poll; dereferences to the record.
#[derive(Clone)]
pub(crate) struct PolledRecord {
    poll: Arc<Poll>,
    index: usize,
}

impl PolledRecord {
    pub(crate) fn slot(&self) -> PollSlot<'_> {
        PollSlot { poll: &self.poll, index: self.index }
    }
}

impl std::ops::Deref for PolledRecord {
    type Target = Record;

    fn deref(&self) -> &Record {
        &self.poll.records[self.index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::StateMap;

    fn poll(n: usize) -> Arc<Poll> {
        let records = (0..n as i64).map(|o| Record::new("t", 0, o).with_value(format!("v{o}"))).collect();
        Poll::new(records, ListenerContext::for_tests("l", StateMap::default()))
    }

    #[test]
    fn a_polled_record_delivers_its_own_record_with_the_polls_context() {
        let p = poll(3);
        let second = Poll::each(&p).nth(1).unwrap().to_owned();
        assert_eq!(second.offset(), 1);
        let d = second.slot().delivery();
        assert_eq!(d.records().len(), 1);
        assert_eq!(d.records()[0].value().unwrap(), b"v1");
        assert!(!d.is_batch());
        let (record, ctx) = d.record_parts().unwrap();
        assert_eq!(record.offset(), 1);
        assert_eq!(ctx.listener_id(), "l");
        assert!(d.batch_parts().is_err());
    }

    #[test]
    fn a_poll_is_recycled_only_once_nothing_refers_to_it() {
        let p = poll(2);
        let kept = Poll::each(&p).next().unwrap().delivery();
        assert!(Poll::recycle(p.clone()).is_none());
        drop(kept);
        let buffer = Poll::recycle(p).unwrap();
        assert!(buffer.is_empty());
        assert!(buffer.capacity() >= 2);
    }
}
