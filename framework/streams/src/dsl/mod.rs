//! The Streams DSL: `StreamsBuilder`, `KStream`, `KTable`, `GlobalKTable`, grouping, windows, joins and the
//! options that name or materialize what they create. Every operator becomes Processor API nodes in a `Topology`.

mod branch;
mod builder;
mod change;
mod cogroup;
mod global_table;
mod grouped_stream;
mod grouped_table;
mod joins;
mod kstream;
mod ktable;
mod options;
mod suppress;
mod windowed_stream;
mod windows;

pub use branch::{Branched, BranchedKStream};
pub use builder::StreamsBuilder;
pub use change::Change;
pub use cogroup::CogroupedKStream;
pub use global_table::GlobalKTable;
pub use grouped_stream::KGroupedStream;
pub use grouped_table::KGroupedTable;
pub use kstream::KStream;
pub use ktable::KTable;
pub use options::{Consumed, Grouped, Materialized, Named, Repartitioned};
pub use suppress::{BufferConfig, Suppressed};
pub use windowed_stream::{SessionWindowedKStream, SlidingWindowedKStream, TimeWindowedKStream};
pub use windows::{JoinWindows, SessionWindows, SlidingWindows, TimeWindows};
