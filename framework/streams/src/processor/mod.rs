//! The Processor API: the `Processor` trait, its `ProcessorContext`, punctuators, and the type-erased node a
//! task runs. The DSL is built on exactly this.

mod context;
pub(crate) mod node;
#[allow(clippy::module_inception)]
mod processor;
mod punctuation;
pub(crate) mod source_sink;
pub use source_sink::TimestampExtractor;

pub use context::ProcessorContext;
pub(crate) use processor::FnProcessor;
pub use processor::Processor;
pub(crate) use punctuation::next_time;
pub use punctuation::{Cancellable, PunctuationType};
