//! The type-erased node a task runs: a typed processor behind `dyn Any` records, so one task can hold a graph of
//! processors with different key and value types. The DSL wires types correctly; a wiring mistake in the
//! Processor API shows up as `StreamsError::TypeMismatch` at the node, never as a panic.

use std::any::Any;
use std::marker::PhantomData;

use super::{Processor, ProcessorContext};
use crate::task::TaskCore;
use crate::{Record, StreamsError};

pub(crate) type AnyRecord = Box<dyn Any + Send>;

pub(crate) trait ErasedNode: Send {
    fn init(&mut self, core: &mut TaskCore, node: usize) -> Result<(), StreamsError>;
    fn process(&mut self, record: AnyRecord, core: &mut TaskCore, node: usize) -> Result<(), StreamsError>;
    fn close(&mut self);
}

pub(crate) struct TypedNode<P, KIn, VIn, KOut, VOut> {
    processor: P,
    _types: PhantomData<fn(KIn, VIn, KOut, VOut)>,
}

impl<P, KIn, VIn, KOut, VOut> TypedNode<P, KIn, VIn, KOut, VOut> {
    pub(crate) fn new(processor: P) -> Self {
        TypedNode { processor, _types: PhantomData }
    }
}

impl<P, KIn, VIn, KOut, VOut> ErasedNode for TypedNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: 'static,
    VIn: 'static,
    KOut: 'static,
    VOut: 'static,
{
    fn init(&mut self, core: &mut TaskCore, node: usize) -> Result<(), StreamsError> {
        let mut ctx = ProcessorContext::new(core, node);
        let result = self.processor.init(&mut ctx);
        result.map_err(|e| StreamsError::from_processor(&core.names[node], e))
    }

    fn process(&mut self, record: AnyRecord, core: &mut TaskCore, node: usize) -> Result<(), StreamsError> {
        let record = record.downcast::<Record<KIn, VIn>>().map_err(|_| StreamsError::TypeMismatch {
            node: core.names[node].clone(),
            expected: std::any::type_name::<Record<KIn, VIn>>(),
        })?;
        core.set_clock(record.timestamp());
        let mut ctx = ProcessorContext::new(core, node);
        let result = self.processor.process(*record, &mut ctx);
        result.map_err(|e| StreamsError::from_processor(&core.names[node], e))
    }

    fn close(&mut self) {
        self.processor.close();
    }
}
