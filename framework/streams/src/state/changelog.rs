//! Every write to a logged store is reported here, so it can be replayed after a restart or a migration. The task
//! turns each entry into a record for `<application.id>-<store>-changelog` on the task's partition and hands it to
//! its `RecordCollector` beside the sink records (part B: the same producer, the same transaction).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// One write to a store, in the changelog's key layout (key-value: the key; window: key + start + sequence;
/// session: key + end + start, as Kafka's key schemas), with the plain value (`None` is a delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// Store name.
    pub store: String,
    /// Changelog key bytes.
    pub key: Vec<u8>,
    /// Value bytes; `None` deletes.
    pub value: Option<Vec<u8>>,
    /// Timestamp of the write (the stored timestamp for timestamped stores, else the record being processed).
    pub timestamp: i64,
}

/// Receives store writes. The task installs one that produces them to the changelog topic.
pub trait ChangelogHook: Send + Sync {
    /// Called after each write to a logged store.
    fn log(&self, record: ChangelogRecord);
}

/// The changelog topic of a store, as Kafka names it.
pub fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

/// What a store needs to log: the hook and the timestamp of the record being processed.
#[derive(Clone)]
pub(crate) struct ChangeLogger {
    pub(crate) store: String,
    pub(crate) hook: Arc<dyn ChangelogHook>,
    pub(crate) clock: Arc<AtomicI64>,
}

impl ChangeLogger {
    pub(crate) fn log(&self, key: Vec<u8>, value: Option<Vec<u8>>, timestamp: Option<i64>) {
        let timestamp = timestamp.unwrap_or_else(|| self.clock.load(Ordering::Relaxed));
        self.hook.log(ChangelogRecord { store: self.store.clone(), key, value, timestamp });
    }
}
