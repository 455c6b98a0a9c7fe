//! Per-record outcomes of batch listeners (what Spring's `BatchListenerFailedException` says about one record, for
//! any number of records): a batch handler returns `Err(BatchFailed)` naming the records that failed, each with
//! its error. The container counts the others as handled, retries only the failed ones (calling the handler
//! again with just them) per the back-off, and recovers each one whose retries are exhausted.

use crate::listener::{BoxError, ListenerError};
use crate::record::Record;

#[derive(Debug)]
enum FailedRef {
    Index(usize),
    Offset { topic: String, partition: i32, offset: i64 },
}

/// The records of a batch that failed, each with its error; the records not named were handled.
///
/// ```
/// use spate::{BatchFailed, Json};
/// #[derive(serde::Deserialize)]
/// struct Payment { amount: i64 }
///
/// #[spate::kafka_listener(topics = "payments", batch = true)]
/// async fn on_payments(payments: Vec<Json<Payment>>) -> Result<(), BatchFailed> {
///     // Ok where it worked, Err where it did not; `collect` names the failures by index.
///     BatchFailed::collect(payments.iter().map(|Json(p)| {
///         if p.amount < 0 { Err("negative amount") } else { Ok(()) }
///     }))
/// }
/// ```
#[derive(Debug, Default)]
pub struct BatchFailed {
    failures: Vec<(FailedRef, BoxError)>,
}

impl BatchFailed {
    /// No failures yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record at `index` in the delivered batch failed with `error`.
    pub fn index(mut self, index: usize, error: impl Into<BoxError>) -> Self {
        self.push_index(index, error);
        self
    }

    /// Adds a failure by index.
    pub fn push_index(&mut self, index: usize, error: impl Into<BoxError>) {
        self.failures.push((FailedRef::Index(index), error.into()));
    }

    /// `record` (of the delivered batch) failed with `error`; found by topic, partition and offset.
    pub fn record(mut self, record: &Record, error: impl Into<BoxError>) -> Self {
        self.push_record(record, error);
        self
    }

    /// Adds a failure by record coordinates.
    pub fn push_record(&mut self, record: &Record, error: impl Into<BoxError>) {
        let r = FailedRef::Offset {
            topic: record.topic().to_string(),
            partition: record.partition(),
            offset: record.offset(),
        };
        self.failures.push((r, error.into()));
    }

    /// `Ok(())` when every result is `Ok`, else the failures, by position in the iterator (which must follow the
    /// batch's order).
    pub fn collect<I, E>(results: I) -> Result<(), BatchFailed>
    where
        I: IntoIterator<Item = Result<(), E>>,
        E: Into<BoxError>,
    {
        let mut f = BatchFailed::new();
        for (i, r) in results.into_iter().enumerate() {
            if let Err(e) = r {
                f.push_index(i, e);
            }
        }
        if f.is_empty() {
            Ok(())
        } else {
            Err(f)
        }
    }

    /// Number of failed records.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// Whether no record failed.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

impl std::fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} record(s) of the batch failed", self.failures.len())?;
        if let Some((_, e)) = self.failures.first() {
            write!(f, "; first: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BatchFailed {}

/// What a failed batch call means for its records.
#[derive(Debug)]
pub(crate) enum BatchFailure {
    /// These records (by index into the delivered batch, ascending, distinct) failed; the rest were handled.
    Records(Vec<(usize, ListenerError)>),
    /// The record at this index could not be deserialized; the others were not handled.
    Poison(usize, ListenerError),
    /// The whole call failed.
    Whole(ListenerError),
}

/// Splits the error of a batch call into what failed.
pub(crate) fn split(records: &[Record], error: ListenerError) -> BatchFailure {
    match error {
        ListenerError::Handler(e) if e.is::<BatchFailed>() => {
            let failed = match e.downcast::<BatchFailed>() {
                Ok(f) => *f,
                Err(e) => return BatchFailure::Whole(ListenerError::Handler(e)),
            };
            resolve(records, failed)
        }
        ListenerError::Deserialization { error, record } => {
            match records.iter().position(|r| same(r, record.topic(), record.partition(), record.offset())) {
                Some(i) => BatchFailure::Poison(i, ListenerError::Deserialization { error, record }),
                None => BatchFailure::Whole(ListenerError::Deserialization { error, record }),
            }
        }
        other => BatchFailure::Whole(other),
    }
}

fn same(r: &Record, topic: &str, partition: i32, offset: i64) -> bool {
    r.offset() == offset && r.partition() == partition && r.topic() == topic
}

fn resolve(records: &[Record], failed: BatchFailed) -> BatchFailure {
    let mut out: Vec<(usize, ListenerError)> = Vec::with_capacity(failed.failures.len());
    let mut unresolved = Vec::new();
    for (r, e) in failed.failures {
        let index = match &r {
            FailedRef::Index(i) => (*i < records.len()).then_some(*i),
            FailedRef::Offset { topic, partition, offset } => {
                records.iter().position(|rec| same(rec, topic, *partition, *offset))
            }
        };
        match index {
            // A record named twice keeps its first error.
            Some(i) if out.iter().any(|(j, _)| *j == i) => {}
            Some(i) => out.push((i, ListenerError::Handler(e))),
            None => unresolved.push(r),
        }
    }
    if !unresolved.is_empty() {
        // A failure that names no record of the batch cannot be attributed: retrying everything loses nothing.
        tracing::warn!(unresolved = ?unresolved, "BatchFailed names records not in the batch; failing the whole batch");
        return BatchFailure::Whole(ListenerError::handler(format!(
            "batch listener reported failures for records not in the batch: {unresolved:?}"
        )));
    }
    if out.is_empty() {
        return BatchFailure::Records(Vec::new());
    }
    out.sort_by_key(|(i, _)| *i);
    BatchFailure::Records(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Vec<Record> {
        (0..5).map(|o| Record::new("t", 0, 10 + o)).collect()
    }

    #[test]
    fn failures_by_index_and_by_record_resolve_sorted() {
        let b = batch();
        let e = BatchFailed::new().index(3, "three").record(&b[1], "one").index(3, "again");
        match split(&b, ListenerError::handler(e)) {
            BatchFailure::Records(v) => {
                let got: Vec<_> = v.iter().map(|(i, e)| (*i, e.to_string())).collect();
                assert_eq!(got, [(1, "handler failed: one".to_string()), (3, "handler failed: three".to_string())]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_records_fail_the_whole_batch() {
        let b = batch();
        let e = BatchFailed::new().index(9, "nine");
        assert!(matches!(split(&b, ListenerError::handler(e)), BatchFailure::Whole(_)));
    }

    #[test]
    fn other_errors_fail_the_whole_batch() {
        assert!(matches!(split(&batch(), ListenerError::handler("boom")), BatchFailure::Whole(_)));
    }

    #[test]
    fn collect_names_failures_by_position() {
        assert!(BatchFailed::collect([Ok::<(), &str>(()), Ok(())]).is_ok());
        let f = BatchFailed::collect([Ok(()), Err("x"), Ok(()), Err("y")]).unwrap_err();
        assert_eq!(f.len(), 2);
        match split(&batch(), ListenerError::handler(f)) {
            BatchFailure::Records(v) => assert_eq!(v.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 3]),
            other => panic!("unexpected {other:?}"),
        }
    }
}
