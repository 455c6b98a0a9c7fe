//! State stores: the byte-level store traits with their in-memory (and persistent) implementations, the typed
//! handles processors use, the builders that create one store per task, and the changelog hook.

mod changelog;
mod key_value;
mod persistent;
mod session;
mod store_builder;
mod value_and_timestamp;
mod window;

pub(crate) use changelog::ChangeLogger;
pub use changelog::{changelog_topic, ChangelogHook, ChangelogRecord};
pub use key_value::{InMemoryKeyValueStore, KeyValueBytesStore, KeyValueStore};
pub use persistent::{RedbKeyValueStore, RedbSessionStore, RedbWindowStore};
pub use session::{InMemorySessionStore, SessionBytesStore, SessionStore};
pub use store_builder::{
    KeyValueBytesStoreSupplier, SessionBytesStoreSupplier, StoreBuilder, StoreContext, StoreHandle, StoreKind, Stores,
    WindowBytesStoreSupplier,
};
pub use value_and_timestamp::ValueAndTimestamp;
pub(crate) use value_and_timestamp::{join_timestamp, split_timestamp};
pub use window::{InMemoryWindowStore, WindowBytesStore, WindowStore};

use spate::{Decode, Encode, RecordPart};

/// Key-value entries in bytes, in key order.
pub type KeyValueEntries = Vec<(Vec<u8>, Vec<u8>)>;
/// Window entries in bytes: key, window start, value.
pub type WindowEntries = Vec<(Vec<u8>, i64, Vec<u8>)>;
/// Session entries in bytes: key, session window, value.
pub type SessionEntries = Vec<(Vec<u8>, crate::Window, Vec<u8>)>;

use crate::StreamsError;

/// Serializes a store key; a null key cannot be stored.
pub(crate) fn encode_key<K: Encode>(store: &str, key: &K) -> Result<Vec<u8>, StreamsError> {
    key.encode()
        .map_err(|source| StreamsError::Serialization { node: store.to_owned(), source })?
        .ok_or_else(|| StreamsError::store(store, "a null key cannot be stored"))
}

pub(crate) fn encode_value<V: Encode>(store: &str, value: &V) -> Result<Vec<u8>, StreamsError> {
    Ok(value
        .encode()
        .map_err(|source| StreamsError::Serialization { node: store.to_owned(), source })?
        .unwrap_or_default())
}

pub(crate) fn decode<T: Decode>(store: &str, bytes: &[u8], part: RecordPart) -> Result<T, StreamsError> {
    T::decode(Some(bytes), part).map_err(|source| StreamsError::Deserialization { node: store.to_owned(), source })
}
