//! The Processor API's core trait (Kafka's `api.Processor<KIn, VIn, KOut, VOut>`): what every DSL operator is
//! built from and what users implement for custom logic with stores and punctuators.

use super::ProcessorContext;
use crate::{BoxError, Record};

/// A node of a topology: receives records, may read and write stores, forwards records to its children.
///
/// The context is passed to each call instead of being kept (Rust's borrow rules); keep store handles, which are
/// cheap clones, as fields after [`init`](Processor::init).
///
/// ```
/// use spate_streams::{BoxError, KeyValueStore, Processor, ProcessorContext, Record};
///
/// /// Counts records per key in the store "counts" and forwards the running count.
/// #[derive(Default)]
/// struct Counter { store: Option<KeyValueStore<String, i64>> }
///
/// impl Processor<String, String, String, i64> for Counter {
///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), BoxError> {
///         self.store = Some(ctx.get_key_value_store("counts")?);
///         Ok(())
///     }
///     fn process(&mut self, record: Record<String, String>, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), BoxError> {
///         let store = self.store.as_ref().ok_or("not initialised")?;
///         let count = store.get(record.key())?.unwrap_or(0) + 1;
///         store.put(record.key(), &count)?;
///         ctx.forward(record.with_value(count))?;
///         Ok(())
///     }
/// }
/// ```
pub trait Processor<KIn, VIn, KOut, VOut>: Send + 'static {
    /// Called once when the task starts, before any record: fetch stores, schedule punctuators.
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), BoxError> {
        let _ = ctx;
        Ok(())
    }

    /// Handles one record.
    fn process(&mut self, record: Record<KIn, VIn>, ctx: &mut ProcessorContext<'_, KOut, VOut>)
        -> Result<(), BoxError>;

    /// Called when the task closes.
    fn close(&mut self) {}
}

/// A processor made of a closure: what most DSL operators are.
pub(crate) struct FnProcessor<F> {
    pub(crate) f: F,
}

impl<KIn, VIn, KOut, VOut, F> Processor<KIn, VIn, KOut, VOut> for FnProcessor<F>
where
    F: FnMut(Record<KIn, VIn>, &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), BoxError> + Send + 'static,
{
    fn process(
        &mut self,
        record: Record<KIn, VIn>,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), BoxError> {
        (self.f)(record, ctx)
    }
}
