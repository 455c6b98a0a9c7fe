//! Procedural macros for Spate. `#[kafka_listener]` and `#[spate::main]` arrive with "Framework, part 1";
//! see `macros/README.md`.
