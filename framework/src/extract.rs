//! Extractors: the types a `#[kafka_listener]` handler may take as arguments, each built from the record (or
//! batch) and the listener context, as axum builds handler arguments from a request. What may not be extracted
//! does not implement the trait, so an impossible signature fails to compile at the argument's span.

use bytes::Bytes;
use serde::Serialize;

use crate::codec::{Decode, Encode, Json, RecordPart};
use crate::listener::{BoxError, ListenerContext, ListenerError, Outcome, Reply};
use crate::record::{Headers, Record, TimestampType};
use crate::template::KafkaTemplate;
use crate::Ack;

/// Built from one record: an argument of a record listener.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a record listener argument",
    label = "not an extractor",
    note = "record listeners take `Json<T>`, `String`, `Bytes`, `Vec<u8>`, `Option<_>`, `Record`, `Key<K>`, `Headers`, `Meta`, `Ack`, `State<T>` or `KafkaTemplate<K, V>`"
)]
pub trait FromRecord: Sized {
    /// Whether the argument reads the record's headers. A listener none of whose parts reads headers skips
    /// librdkafka's header parse for every record (see `ListenerDefinition::reads_headers`), so an extractor that
    /// does not read them says so; the default, `true`, is always safe.
    const READS_HEADERS: bool = true;

    /// Extracts the argument.
    fn from_record(record: &Record, ctx: &ListenerContext) -> Result<Self, ListenerError>;
}

/// Built from the records of one poll: an argument of a batch listener (`batch = true`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a batch listener argument",
    label = "not a batch extractor",
    note = "batch listeners take `Vec<T>` or `Batch<T>` of a payload type (`Json<T>`, `String`, `Bytes`, ...), `Vec<Record>`, `Ack`, `State<T>` or `KafkaTemplate<K, V>`; per-record metadata (`Meta`, `Key`, `Headers`) is read from `Batch<T>` or `Vec<Record>`"
)]
pub trait FromBatch: Sized {
    /// Whether the argument reads the records' headers (as [`FromRecord::READS_HEADERS`]).
    const READS_HEADERS: bool = true;

    /// Extracts the argument.
    fn from_batch(records: &[Record], ctx: &ListenerContext) -> Result<Self, ListenerError>;
}

fn decode_value<T: Decode>(record: &Record) -> Result<T, ListenerError> {
    T::decode_shared(record.value_part(), RecordPart::Value)
        .map_err(|error| ListenerError::Deserialization { error, record: Box::new(record.clone()) })
}

/// Payload types: the value, decoded.
impl<T: Decode> FromRecord for T {
    const READS_HEADERS: bool = false;

    fn from_record(record: &Record, _ctx: &ListenerContext) -> Result<Self, ListenerError> {
        decode_value(record)
    }
}

/// The whole record.
impl FromRecord for Record {
    fn from_record(record: &Record, _ctx: &ListenerContext) -> Result<Self, ListenerError> {
        Ok(record.clone())
    }
}

/// The record key, decoded as `K` (`Key<String>`, `Key<Option<String>>` for nullable keys, `Key<Json<T>>`, ...).
///
/// ```
/// # use spate::{Key, Json};
/// async fn handle(Key(customer): Key<String>, order: Json<serde_json::Value>) { let _ = (customer, order); }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<K>(pub K);

impl<K: Decode> FromRecord for Key<K> {
    const READS_HEADERS: bool = false;

    fn from_record(record: &Record, _ctx: &ListenerContext) -> Result<Self, ListenerError> {
        K::decode_shared(record.key_part(), RecordPart::Key)
            .map(Key)
            .map_err(|error| ListenerError::Deserialization { error, record: Box::new(record.clone()) })
    }
}

impl FromRecord for Headers {
    fn from_record(record: &Record, _ctx: &ListenerContext) -> Result<Self, ListenerError> {
        Ok(record.headers().clone())
    }
}

/// Where a record came from (Spring's `@Header(KafkaHeaders.RECEIVED_*)` values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms since the epoch), when present.
    pub timestamp: Option<i64>,
    /// Producer or broker time.
    pub timestamp_type: TimestampType,
    /// The consumer group.
    pub group_id: String,
    /// The listener id.
    pub listener_id: String,
}

impl FromRecord for Meta {
    const READS_HEADERS: bool = false;

    fn from_record(record: &Record, ctx: &ListenerContext) -> Result<Self, ListenerError> {
        Ok(Meta {
            topic: record.topic().to_string(),
            partition: record.partition(),
            offset: record.offset(),
            timestamp: record.timestamp(),
            timestamp_type: record.timestamp_type(),
            group_id: ctx.shared.group_id.to_string(),
            listener_id: ctx.shared.listener_id.to_string(),
        })
    }
}

fn ack_from(ctx: &ListenerContext) -> Result<Ack, ListenerError> {
    ctx.ack.clone().ok_or_else(|| {
        ListenerError::Extraction("`Ack` is only available with ack_mode MANUAL or MANUAL_IMMEDIATE".into())
    })
}

impl FromRecord for Ack {
    const READS_HEADERS: bool = false;

    fn from_record(_record: &Record, ctx: &ListenerContext) -> Result<Self, ListenerError> {
        ack_from(ctx)
    }
}

impl FromBatch for Ack {
    const READS_HEADERS: bool = false;

    fn from_batch(_records: &[Record], ctx: &ListenerContext) -> Result<Self, ListenerError> {
        ack_from(ctx)
    }
}

/// Application state registered with [`App::state`](crate::App::state), such as a database pool.
///
/// ```
/// #[derive(Clone)]
/// struct Db;
/// async fn handle(spate::State(db): spate::State<Db>, body: String) { let _ = (db, body); }
/// ```
#[derive(Debug, Clone)]
pub struct State<T>(pub T);

fn state_from<T: Clone + Send + Sync + 'static>(ctx: &ListenerContext) -> Result<State<T>, ListenerError> {
    ctx.shared.state.get::<T>().map(State).ok_or_else(|| {
        ListenerError::Extraction(format!("no state of type `{}` (add it with App::state)", std::any::type_name::<T>()))
    })
}

impl<T: Clone + Send + Sync + 'static> FromRecord for State<T> {
    const READS_HEADERS: bool = false;

    fn from_record(_record: &Record, ctx: &ListenerContext) -> Result<Self, ListenerError> {
        state_from(ctx)
    }
}

impl<T: Clone + Send + Sync + 'static> FromBatch for State<T> {
    const READS_HEADERS: bool = false;

    fn from_batch(_records: &[Record], ctx: &ListenerContext) -> Result<Self, ListenerError> {
        state_from(ctx)
    }
}

fn template_from<K: Encode, V: Encode>(ctx: &ListenerContext) -> Result<KafkaTemplate<K, V>, ListenerError> {
    ctx.shared
        .producer
        .as_ref()
        .map(KafkaTemplate::new)
        .ok_or_else(|| ListenerError::Extraction("no producer factory for this listener's cluster".into()))
}

/// A template on the listener's cluster, sharing its producer.
impl<K: Encode, V: Encode> FromRecord for KafkaTemplate<K, V> {
    const READS_HEADERS: bool = false;

    fn from_record(_record: &Record, ctx: &ListenerContext) -> Result<Self, ListenerError> {
        template_from(ctx)
    }
}

impl<K: Encode, V: Encode> FromBatch for KafkaTemplate<K, V> {
    const READS_HEADERS: bool = false;

    fn from_batch(_records: &[Record], ctx: &ListenerContext) -> Result<Self, ListenerError> {
        template_from(ctx)
    }
}

/// The values of a batch, decoded (`Vec<Json<T>>`, `Vec<String>`, ...).
impl<T: Decode> FromBatch for Vec<T> {
    const READS_HEADERS: bool = false;

    fn from_batch(records: &[Record], _ctx: &ListenerContext) -> Result<Self, ListenerError> {
        records.iter().map(decode_value).collect()
    }
}

/// The raw records of a batch.
impl FromBatch for Vec<Record> {
    fn from_batch(records: &[Record], _ctx: &ListenerContext) -> Result<Self, ListenerError> {
        Ok(records.to_vec())
    }
}

/// A batch whose values are decoded as `T`, with each record's metadata at hand.
///
/// ```
/// # use spate::{Batch, Json};
/// async fn handle(batch: Batch<Json<serde_json::Value>>) {
///     for (record, value) in batch.iter() {
///         println!("{}@{}: {:?}", record.partition(), record.offset(), value.0);
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Batch<T> {
    records: Vec<Record>,
    values: Vec<T>,
}

impl<T> Batch<T> {
    /// Records and their decoded values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Record, &T)> {
        self.records.iter().zip(self.values.iter())
    }

    /// The decoded values.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// The raw records.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when empty (never, for a delivered batch).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The decoded values, owned.
    pub fn into_values(self) -> Vec<T> {
        self.values
    }
}

impl<T: Decode> FromBatch for Batch<T> {
    fn from_batch(records: &[Record], _ctx: &ListenerContext) -> Result<Self, ListenerError> {
        let values = records.iter().map(decode_value).collect::<Result<Vec<T>, _>>()?;
        Ok(Batch { records: records.to_vec(), values })
    }
}

/// What a handler without `#[send_to]` may return: `()` or `Result<(), E>`.
///
/// A batch listener may return `Result<(), BatchFailed>` (or a `BoxError` holding a
/// [`BatchFailed`](crate::BatchFailed)) to name the records that failed: the container finds it in
/// `ListenerError::Handler` and retries or recovers only those records.
#[diagnostic::on_unimplemented(
    message = "a listener without #[send_to] must return `()` or `Result<(), E>`, not `{Self}`",
    note = "to send the returned value to a topic, add #[send_to(\"topic\")] below #[kafka_listener]"
)]
pub trait IntoOutcome {
    /// Converts the return value.
    fn into_outcome(self) -> Result<Outcome, ListenerError>;
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Result<Outcome, ListenerError> {
        Ok(Outcome::done())
    }
}

impl<E: Into<BoxError>> IntoOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<Outcome, ListenerError> {
        self.map(|()| Outcome::done()).map_err(|e| ListenerError::Handler(e.into()))
    }
}

/// What a handler with `#[send_to]` may return: a value to send (`Json<T>`, `String`, `Bytes`, `Vec<u8>`),
/// `Option` of one (`None` sends nothing), or `Result` of either.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent as a #[send_to] reply",
    note = "return `Json<T>`, `String`, `Bytes`, `Vec<u8>`, an `Option` of one, or a `Result` of those"
)]
pub trait IntoReply {
    /// Converts the return value.
    fn into_reply(self) -> Result<Outcome, ListenerError>;
}

fn encoded<T: Encode>(v: &T) -> Result<Outcome, ListenerError> {
    let bytes = v.encode().map_err(|e| ListenerError::Handler(Box::new(e)))?;
    Ok(Outcome::reply(Reply::from_bytes(bytes)))
}

impl<T: Serialize> IntoReply for Json<T> {
    fn into_reply(self) -> Result<Outcome, ListenerError> {
        encoded(&self)
    }
}

impl IntoReply for String {
    fn into_reply(self) -> Result<Outcome, ListenerError> {
        encoded(&self)
    }
}

impl IntoReply for Bytes {
    fn into_reply(self) -> Result<Outcome, ListenerError> {
        encoded(&self)
    }
}

impl IntoReply for Vec<u8> {
    fn into_reply(self) -> Result<Outcome, ListenerError> {
        Ok(Outcome::reply(Reply::from_bytes(Some(self))))
    }
}

impl<T: IntoReply> IntoReply for Option<T> {
    fn into_reply(self) -> Result<Outcome, ListenerError> {
        match self {
            Some(v) => v.into_reply(),
            None => Ok(Outcome::done()),
        }
    }
}

impl<T: IntoReply, E: Into<BoxError>> IntoReply for Result<T, E> {
    fn into_reply(self) -> Result<Outcome, ListenerError> {
        match self {
            Ok(v) => v.into_reply(),
            Err(e) => Err(ListenerError::Handler(e.into())),
        }
    }
}

/// Checks at compile time that a listener's arguments fit the key and value types of the `Topic<K, V>` it
/// listens to: payload arguments must be `V` (or raw `Bytes`/`Vec<u8>`/`Record`), `Key<_>` must be `Key<K>`.
#[diagnostic::on_unimplemented(
    message = "argument `{Self}` does not match the listener's topic `Topic<{K}, {V}>`",
    note = "payload arguments must be `{V}` (or raw bytes / `Record`), keys must be `Key<{K}>`"
)]
pub trait FitsTopic<K, V> {}

impl<K, V> FitsTopic<K, Json<V>> for Json<V> {}
impl<K> FitsTopic<K, String> for String {}
impl<K, V> FitsTopic<K, V> for Bytes {}
impl<K, V> FitsTopic<K, V> for u8 {}
impl<K, V> FitsTopic<K, V> for Record {}
impl<K, V> FitsTopic<K, V> for Key<K> {}
impl<K, V> FitsTopic<K, V> for Meta {}
impl<K, V> FitsTopic<K, V> for Headers {}
impl<K, V> FitsTopic<K, V> for Ack {}
impl<K, V, T> FitsTopic<K, V> for State<T> {}
impl<K, V, K2, V2> FitsTopic<K, V> for KafkaTemplate<K2, V2> {}
impl<K, V, T: FitsTopic<K, V>> FitsTopic<K, V> for Option<T> {}
impl<K, V, T: FitsTopic<K, V>> FitsTopic<K, V> for Vec<T> {}
impl<K, V, T: FitsTopic<K, V>> FitsTopic<K, V> for Batch<T> {}

#[doc(hidden)]
pub fn assert_fits_topic<K, V, A: FitsTopic<K, V>>(_topic: &crate::Topic<K, V>) {}
