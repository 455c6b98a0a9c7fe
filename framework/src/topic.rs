//! Typed topics: one constant names a topic together with its key and value types (and so their codecs), shared
//! by templates and listeners so both sides always agree.

use std::marker::PhantomData;

/// A topic with its key type `K` and value type `V`.
///
/// ```
/// use spate::{Json, Topic};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Order { id: u64 }
/// pub const ORDERS: Topic<String, Json<Order>> = Topic::new("orders");
/// assert_eq!(ORDERS.name(), "orders");
/// ```
///
/// A `KafkaTemplate<K, V>` accepts `&ORDERS` only when its `K` and `V` match, and a listener declared with
/// `topics = ORDERS` only compiles when its payload and key extractors match.
pub struct Topic<K, V> {
    name: &'static str,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Topic<K, V> {
    /// Declares a topic.
    pub const fn new(name: &'static str) -> Self {
        Topic { name, _types: PhantomData }
    }

    /// Its name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<K, V> Clone for Topic<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Topic<K, V> {}

impl<K, V> std::fmt::Debug for Topic<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Topic({})", self.name)
    }
}

/// Something that names a topic for a `KafkaTemplate<K, V>`: a string, or a [`Topic`] of the same types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a topic for a KafkaTemplate<{K}, {V}>",
    note = "pass a topic name or a `Topic<{K}, {V}>` whose key and value types match the template's"
)]
pub trait TopicName<K, V> {
    /// The topic's name.
    fn topic_name(&self) -> String;
}

impl<K, V> TopicName<K, V> for &str {
    fn topic_name(&self) -> String {
        (*self).to_string()
    }
}

impl<K, V> TopicName<K, V> for String {
    fn topic_name(&self) -> String {
        self.clone()
    }
}

impl<K, V> TopicName<K, V> for &String {
    fn topic_name(&self) -> String {
        (*self).clone()
    }
}

impl<K, V> TopicName<K, V> for Topic<K, V> {
    fn topic_name(&self) -> String {
        self.name.to_string()
    }
}

impl<K, V> TopicName<K, V> for &Topic<K, V> {
    fn topic_name(&self) -> String {
        self.name.to_string()
    }
}
