//! Spate: Spring for Apache Kafka, rebuilt for Rust.
//!
//! The listener containers, `KafkaTemplate`, configuration and test support arrive with the framework issue
//! ("Framework, part 1"); see `framework/README.md` for what this crate will own.
