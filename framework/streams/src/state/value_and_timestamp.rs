//! A value with the timestamp of its last update: what timestamped stores (every DSL store) keep. Stored as
//! Kafka's `ValueAndTimestampSerializer` does: the timestamp as a big-endian i64, then the value's bytes.

use spate::{Decode, DeserializationError, Encode, RecordPart, SerializationError};

/// A value and its timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueAndTimestamp<V> {
    /// The value.
    pub value: V,
    /// Its timestamp (ms).
    pub timestamp: i64,
}

impl<V> ValueAndTimestamp<V> {
    /// `ValueAndTimestamp::make(value, timestamp)`.
    pub fn make(value: V, timestamp: i64) -> Self {
        ValueAndTimestamp { value, timestamp }
    }
}

impl<V: Encode> Encode for ValueAndTimestamp<V> {
    fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError> {
        let mut bytes = self.timestamp.to_be_bytes().to_vec();
        if let Some(v) = self.value.encode()? {
            bytes.extend_from_slice(&v);
        }
        Ok(Some(bytes))
    }
}

impl<V: Decode> Decode for ValueAndTimestamp<V> {
    fn decode(data: Option<&[u8]>, part: RecordPart) -> Result<Self, DeserializationError> {
        let (timestamp, rest) = split_timestamp(data.unwrap_or_default()).ok_or_else(|| DeserializationError {
            part,
            type_name: "ValueAndTimestamp",
            message: "shorter than its 8-byte timestamp".into(),
        })?;
        Ok(ValueAndTimestamp { value: V::decode(Some(rest), part)?, timestamp })
    }
}

/// Splits a stored timestamped value into its timestamp and the plain value bytes.
pub(crate) fn split_timestamp(bytes: &[u8]) -> Option<(i64, &[u8])> {
    if bytes.len() < 8 {
        return None;
    }
    let (ts, rest) = bytes.split_at(8);
    let ts: [u8; 8] = ts.try_into().ok()?;
    Some((i64::from_be_bytes(ts), rest))
}

pub(crate) fn join_timestamp(timestamp: i64, value: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + value.len());
    bytes.extend_from_slice(&timestamp.to_be_bytes());
    bytes.extend_from_slice(value);
    bytes
}
