//! Serialization: how keys and values become bytes and back. The type names the format — `Json<T>` is JSON,
//! `String` is UTF-8, `Bytes`/`Vec<u8>` are raw, `i32`/`i64` are big-endian like Kafka's `IntegerSerializer` and
//! `LongSerializer` — so a `Topic<K, V>`, a `KafkaTemplate<K, V>` and a listener's extractors cannot disagree.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value failed to serialize.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialize {type_name}: {message}")]
pub struct SerializationError {
    /// The Rust type that failed.
    pub type_name: &'static str,
    /// Why.
    pub message: String,
}

/// Whether a deserialization failure concerned the key or the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPart {
    /// The record key.
    Key,
    /// The record value.
    Value,
}

/// A key or value failed to deserialize. Never retried: the container hands it straight to the error handler's
/// recoverer with the raw record, so a poison record cannot loop.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot deserialize the record {part:?} as {type_name}: {message}")]
pub struct DeserializationError {
    /// Key or value.
    pub part: RecordPart,
    /// The Rust type the bytes were meant to become.
    pub type_name: &'static str,
    /// Why.
    pub message: String,
}

impl DeserializationError {
    pub(crate) fn new(part: RecordPart, type_name: &'static str, message: impl Into<String>) -> Self {
        DeserializationError { part, type_name, message: message.into() }
    }
}

/// Turns a key or value into bytes; `None` is Kafka's null.
pub trait Encode {
    /// Serializes `self`.
    fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError>;
}

/// Builds a key or value from bytes (`None` is Kafka's null).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read from a Kafka record",
    label = "not a payload type",
    note = "payloads are `Json<T>` (T: Deserialize), `String`, `Bytes`, `Vec<u8>`, `i32`, `i64`, or `Option<_>` of one"
)]
pub trait Decode: Sized {
    /// Deserializes `data` (the key or value of `part`).
    fn decode(data: Option<&[u8]>, part: RecordPart) -> Result<Self, DeserializationError>;

    /// Deserializes a consumed record's key or value, given with the buffer it lives in. The container calls this
    /// one: `Bytes` shares the buffer instead of copying it; every other type reads the slice through
    /// [`decode`](Self::decode), which is the default.
    fn decode_shared(data: Option<RecordBytes<'_>>, part: RecordPart) -> Result<Self, DeserializationError> {
        Self::decode(data.map(|d| d.as_slice()), part)
    }
}

/// A consumed record's key or value: its bytes, in the buffer the record shares with others of its poll.
#[derive(Clone, Copy)]
pub struct RecordBytes<'a> {
    buf: &'a Bytes,
    start: usize,
    end: usize,
}

impl<'a> RecordBytes<'a> {
    pub(crate) fn new(buf: &'a Bytes, range: std::ops::Range<usize>) -> Self {
        RecordBytes { buf, start: range.start, end: range.end }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &'a [u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// The bytes as `Bytes` sharing the buffer: a reference count, no copy.
    pub fn to_bytes(&self) -> Bytes {
        self.buf.slice(self.start..self.end)
    }
}

/// JSON via serde: the default format for structured keys and values. Also the handler argument
/// ([`FromRecord`](crate::extract::FromRecord)) that deserializes the value.
///
/// ```
/// use spate::{Decode, Encode, Json};
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Order { id: u32 }
/// let bytes = Json(Order { id: 7 }).encode().unwrap().unwrap();
/// let back = Json::<Order>::decode(Some(&bytes), spate::RecordPart::Value).unwrap();
/// assert_eq!(back.0, Order { id: 7 });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Json<T> {
    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

fn missing(part: RecordPart, type_name: &'static str) -> DeserializationError {
    DeserializationError::new(part, type_name, "null (absent) where a value was required; use Option<_>")
}

impl<T: Serialize> Encode for Json<T> {
    fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError> {
        serde_json::to_vec(&self.0)
            .map(Some)
            .map_err(|e| SerializationError { type_name: std::any::type_name::<T>(), message: e.to_string() })
    }
}

impl<T: DeserializeOwned> Decode for Json<T> {
    fn decode(data: Option<&[u8]>, part: RecordPart) -> Result<Self, DeserializationError> {
        let name = std::any::type_name::<T>();
        let data = data.ok_or_else(|| missing(part, name))?;
        serde_json::from_slice(data).map(Json).map_err(|e| DeserializationError::new(part, name, e.to_string()))
    }
}

impl Encode for String {
    fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError> {
        Ok(Some(self.as_bytes().to_vec()))
    }
}

impl Encode for &str {
    fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError> {
        Ok(Some(self.as_bytes().to_vec()))
    }
}

impl Decode for String {
    fn decode(data: Option<&[u8]>, part: RecordPart) -> Result<Self, DeserializationError> {
        let data = data.ok_or_else(|| missing(part, "String"))?;
        std::str::from_utf8(data)
            .map(str::to_owned)
            .map_err(|e| DeserializationError::new(part, "String", e.to_string()))
    }
}

impl Encode for Bytes {
    fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError> {
        Ok(Some(self.to_vec()))
    }
}

impl Decode for Bytes {
    fn decode(data: Option<&[u8]>, part: RecordPart) -> Result<Self, DeserializationError> {
        data.map(Bytes::copy_from_slice).ok_or_else(|| missing(part, "Bytes"))
    }

    fn decode_shared(data: Option<RecordBytes<'_>>, part: RecordPart) -> Result<Self, DeserializationError> {
        data.map(|d| d.to_bytes()).ok_or_else(|| missing(part, "Bytes"))
    }
}

impl Encode for Vec<u8> {
    fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError> {
        Ok(Some(self.clone()))
    }
}

impl Decode for Vec<u8> {
    fn decode(data: Option<&[u8]>, part: RecordPart) -> Result<Self, DeserializationError> {
        data.map(<[u8]>::to_vec).ok_or_else(|| missing(part, "Vec<u8>"))
    }
}

macro_rules! big_endian {
    ($t:ty, $n:expr) => {
        impl Encode for $t {
            fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError> {
                Ok(Some(self.to_be_bytes().to_vec()))
            }
        }
        impl Decode for $t {
            fn decode(data: Option<&[u8]>, part: RecordPart) -> Result<Self, DeserializationError> {
                let name = stringify!($t);
                let data = data.ok_or_else(|| missing(part, name))?;
                let arr: [u8; $n] = data.try_into().map_err(|_| {
                    DeserializationError::new(part, name, format!("expected {} bytes, got {}", $n, data.len()))
                })?;
                Ok(<$t>::from_be_bytes(arr))
            }
        }
    };
}
big_endian!(i32, 4);
big_endian!(i64, 8);

/// `None` is a null key or value (a tombstone).
impl<T: Encode> Encode for Option<T> {
    fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError> {
        match self {
            Some(v) => v.encode(),
            None => Ok(None),
        }
    }
}

/// A null key or value becomes `None` instead of an error.
impl<T: Decode> Decode for Option<T> {
    fn decode(data: Option<&[u8]>, part: RecordPart) -> Result<Self, DeserializationError> {
        match data {
            None => Ok(None),
            Some(d) => T::decode(Some(d), part).map(Some),
        }
    }

    fn decode_shared(data: Option<RecordBytes<'_>>, part: RecordPart) -> Result<Self, DeserializationError> {
        match data {
            None => Ok(None),
            Some(d) => T::decode_shared(Some(d), part).map(Some),
        }
    }
}

/// The unit key: always null. `KafkaTemplate<(), V>` sends unkeyed records.
impl Encode for () {
    fn encode(&self) -> Result<Option<Vec<u8>>, SerializationError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bytes_payload_shares_the_consumed_buffer_instead_of_copying_it() {
        let consumed = Bytes::from_static(b"key+payload");
        let part = || Some(RecordBytes::new(&consumed, 4..11));
        let value = Bytes::decode_shared(part(), RecordPart::Value).unwrap();
        assert_eq!(value, "payload");
        assert_eq!(value.as_ptr(), consumed[4..].as_ptr());
        let optional = Option::<Bytes>::decode_shared(part(), RecordPart::Value).unwrap();
        assert_eq!(optional.map(|b| b.as_ptr()), Some(consumed[4..].as_ptr()));
    }

    #[test]
    fn other_payload_types_decode_the_shared_buffer_as_a_slice() {
        let consumed = Bytes::from_static(b"\x00\x00\x00\x07hi");
        assert_eq!(i32::decode_shared(Some(RecordBytes::new(&consumed, 0..4)), RecordPart::Value).unwrap(), 7);
        assert_eq!(String::decode_shared(Some(RecordBytes::new(&consumed, 4..6)), RecordPart::Key).unwrap(), "hi");
        assert_eq!(Option::<String>::decode_shared(None, RecordPart::Key).unwrap(), None);
        assert!(Bytes::decode_shared(None, RecordPart::Value).is_err());
    }
}
