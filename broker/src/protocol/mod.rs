//! The Kafka protocol server: framing, request headers, one handler per API.
//!
//! Every wire message is a `kafka-protocol` type; this module only frames, dispatches and composes them.
//! `connection.rs` owns a socket, `frame.rs` reads length-prefixed frames, `decode_guard.rs` makes decoding
//! safe against hostile lengths, `api_versions.rs` states what we speak, `dispatch.rs` routes a decoded request
//! to its file in `handlers/`.

pub mod api_versions;
pub mod connection;
pub mod decode_guard;
pub mod dispatch;
pub mod errors;
pub mod frame;
pub mod handlers;
