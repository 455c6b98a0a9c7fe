//! Windowed keys (Kafka's `Windowed<K>` and `Window`): what a windowed aggregation's table is keyed by.

use spate::{Encode, SerializationError};

/// A time interval `[start, end)` in milliseconds (session windows: `[start, end]`, both inclusive, as in Kafka).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Start (inclusive).
    pub start: i64,
    /// End (exclusive for time windows, inclusive for session windows).
    pub end: i64,
}

impl Window {
    /// A window from `start` to `end`.
    pub fn new(start: i64, end: i64) -> Self {
        Window { start, end }
    }
}

/// A key together with the window it was aggregated in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// `Windowed::new(key, window)`.
    pub fn new(key: K, window: Window) -> Self {
        Windowed { key, window }
    }
}

/// Kafka's `TimeWindowedSerializer` layout: the key's bytes, then the window start as a big-endian i64.
impl<K: Encode> Encode for Windowed<K> {
    fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError> {
        let mut bytes = self.key.encode()?.unwrap_or_default();
        bytes.extend_from_slice(&self.window.start.to_be_bytes());
        Ok(Some(bytes))
    }
}

impl<K: std::fmt::Display> std::fmt::Display for Windowed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}@{}/{}]", self.key, self.window.start, self.window.end)
    }
}

/// Reads Kafka's `TimeWindowedSerializer` layout back: all but the last 8 bytes are the key. The window's end is
/// not in the bytes, so it is `i64::MAX`, as Kafka's `TimeWindowedDeserializer` without a window size does.
impl<K: spate::Decode> spate::Decode for Windowed<K> {
    fn decode(data: Option<&[u8]>, part: spate::RecordPart) -> Result<Self, spate::DeserializationError> {
        let bytes = data.unwrap_or_default();
        if bytes.len() < 8 {
            return Err(spate::DeserializationError {
                part,
                type_name: "Windowed",
                message: "shorter than its 8-byte window start".into(),
            });
        }
        let (k, start) = bytes.split_at(bytes.len() - 8);
        let start = i64::decode(Some(start), part)?;
        Ok(Windowed::new(K::decode(Some(k), part)?, Window::new(start, i64::MAX)))
    }
}
