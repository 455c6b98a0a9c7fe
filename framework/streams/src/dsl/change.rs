//! What a KTable node forwards (Kafka's internal `Change<V>`): the new value and the one it replaced, so
//! downstream tables, joins and aggregations can undo the old one. `None` is absent (a tombstone).

/// A table update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The value after the update (`None`: deleted).
    pub new_value: Option<V>,
    /// The value before (`None`: there was none).
    pub old_value: Option<V>,
}

impl<V> Change<V> {
    /// `Change { new_value, old_value }`.
    pub fn new(new_value: Option<V>, old_value: Option<V>) -> Self {
        Change { new_value, old_value }
    }
}
