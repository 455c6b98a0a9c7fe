//! Testing a topology without a broker (Kafka's `TopologyTestDriver`): pipe records into input topics, read what
//! the topology produced from output topics, advance wall-clock time, look into stores. Repartition topics are
//! passed through in-process; changelog records can be read like any output topic.

mod driver;
mod input_topic;
mod output_topic;

pub use driver::TopologyTestDriver;
pub use input_topic::TestInputTopic;
pub use output_topic::{TestOutputTopic, TestRecord};
