//! Which failures are worth retrying (Spring's exception classification in `DefaultErrorHandler`). Deserialization
//! and extraction failures never are; a [`ValidationError`] anywhere in the error's chain is not by default; other
//! error types are classified by downcasting each error of the chain, outermost first.

use std::error::Error as StdError;
use std::sync::{Arc, RwLock};

use crate::listener::{BoxError, ListenerError};

/// An error a handler returns to say "this record is invalid; retrying will not help" — it skips the retries and
/// goes straight to the recoverer (the dead-letter topic, for example).
///
/// ```
/// use spate::{Json, ValidationError};
/// #[derive(serde::Deserialize)]
/// struct Order { amount: i64 }
/// async fn on_order(Json(o): Json<Order>) -> Result<(), ValidationError> {
///     if o.amount <= 0 {
///         return Err(ValidationError::new("amount must be positive"));
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl ValidationError {
    /// A validation failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ValidationError { message: message.into(), source: None }
    }

    /// A validation failure caused by `source`.
    pub fn with_source(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        ValidationError { message: message.into(), source: Some(source.into()) }
    }
}

/// Matches one error of a chain.
pub(crate) type Matcher = fn(&(dyn StdError + 'static)) -> bool;

pub(crate) fn matcher<E: StdError + 'static>() -> Matcher {
    |e| e.is::<E>()
}

/// The errors of a failure, outermost first: the handler's (or reply's) error, then its sources. The
/// [`ListenerError`] wrapper itself is not part of it.
pub fn error_chain(error: &ListenerError) -> impl Iterator<Item = &(dyn StdError + 'static)> {
    let first: Option<&(dyn StdError + 'static)> = match error {
        ListenerError::Handler(e) => Some(e.as_ref()),
        ListenerError::Deserialization { error, .. } => Some(error),
        ListenerError::Reply(e) => Some(e),
        ListenerError::Extraction(_) | ListenerError::Panic(_) => None,
    };
    std::iter::successors(first, |e: &&(dyn StdError + 'static)| (*e).source())
}

/// The retryable / not-retryable classification of error types.
#[derive(Clone)]
pub(crate) struct Classifier {
    /// Most recent first, so a later `add_*` overrides an earlier one (and the defaults).
    rules: Vec<(Matcher, bool)>,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier { rules: vec![(matcher::<ValidationError>(), false)] }
    }
}

impl Classifier {
    pub(crate) fn add<E: StdError + 'static>(&mut self, retryable: bool) {
        register_type_name::<E>();
        self.rules.insert(0, (matcher::<E>(), retryable));
    }

    /// Whether the failure should be retried: never for deserialization and extraction failures; otherwise the
    /// rule of the outermost error in the chain that has one; otherwise yes.
    pub(crate) fn is_retryable(&self, error: &ListenerError) -> bool {
        if !error.is_retryable() {
            return false;
        }
        for e in error_chain(error) {
            if let Some((_, retryable)) = self.rules.iter().find(|(m, _)| m(e)) {
                return *retryable;
            }
        }
        true
    }
}

type TypeNames = Vec<(Matcher, &'static str)>;

fn type_names() -> &'static RwLock<TypeNames> {
    static NAMES: std::sync::OnceLock<RwLock<TypeNames>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        RwLock::new(vec![
            (matcher::<ValidationError>(), std::any::type_name::<ValidationError>()),
            (matcher::<super::batch::BatchFailed>(), std::any::type_name::<super::batch::BatchFailed>()),
            (matcher::<crate::DeserializationError>(), std::any::type_name::<crate::DeserializationError>()),
            (matcher::<crate::SendError>(), std::any::type_name::<crate::SendError>()),
            (matcher::<tower::timeout::error::Elapsed>(), std::any::type_name::<tower::timeout::error::Elapsed>()),
            (matcher::<std::io::Error>(), std::any::type_name::<std::io::Error>()),
            (matcher::<serde_json::Error>(), std::any::type_name::<serde_json::Error>()),
            (matcher::<tokio::time::error::Elapsed>(), std::any::type_name::<tokio::time::error::Elapsed>()),
            (matcher::<rdkafka::error::KafkaError>(), std::any::type_name::<rdkafka::error::KafkaError>()),
        ])
    })
}

/// Makes `E`'s type name known for dead-letter headers (`kafka_dlt-exception-cause-fqcn`): a boxed error does not
/// carry its type's name, so the names of the types the application mentions are kept here. Types given to
/// `add_retryable`, `add_not_retryable` and `back_off_for` are registered automatically.
pub fn register_type_name<E: StdError + 'static>() {
    let name = std::any::type_name::<E>();
    let mut names = type_names().write().unwrap_or_else(|p| p.into_inner());
    if !names.iter().any(|(_, n)| *n == name) {
        names.push((matcher::<E>(), name));
    }
}

/// The type name of `e`, when it is a registered type.
pub(crate) fn type_name_of(e: &(dyn StdError + 'static)) -> Option<&'static str> {
    let names = type_names().read().unwrap_or_else(|p| p.into_inner());
    names.iter().find(|(m, _)| m(e)).map(|(_, n)| *n)
}

/// A name for the failure's kind: the [`ListenerError`] variant (`spate::ListenerError::Handler`, ...).
pub(crate) fn variant_name(error: &ListenerError) -> &'static str {
    match error {
        ListenerError::Deserialization { .. } => "spate::ListenerError::Deserialization",
        ListenerError::Extraction(_) => "spate::ListenerError::Extraction",
        ListenerError::Handler(_) => "spate::ListenerError::Handler",
        ListenerError::Panic(_) => "spate::ListenerError::Panic",
        ListenerError::Reply(_) => "spate::ListenerError::Reply",
    }
}

/// The back-off chosen by error type (`DefaultErrorHandler::back_off_for`).
pub(crate) type BackOffRule = (Matcher, Arc<dyn super::BackOff>);

/// The back-off for `error`: that of the outermost error in the chain with a rule, else `default`.
pub(crate) fn back_off_for<'a>(
    rules: &'a [BackOffRule],
    default: &'a Arc<dyn super::BackOff>,
    error: &ListenerError,
) -> &'a Arc<dyn super::BackOff> {
    for e in error_chain(error) {
        if let Some((_, b)) = rules.iter().find(|(m, _)| m(e)) {
            return b;
        }
    }
    default
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("other")]
    struct Other;

    fn handler(e: impl Into<BoxError>) -> ListenerError {
        ListenerError::handler(e)
    }

    #[test]
    fn handler_errors_are_retryable_by_default() {
        assert!(Classifier::default().is_retryable(&handler(Other)));
    }

    #[test]
    fn validation_errors_are_not_retryable_even_when_wrapped() {
        let c = Classifier::default();
        assert!(!c.is_retryable(&handler(ValidationError::new("bad"))));
        assert!(!c.is_retryable(&ListenerError::Extraction("x".into())));
    }

    #[test]
    fn classification_downcasts_through_the_source_chain() {
        let mut c = Classifier::default();
        c.add::<std::io::Error>(false);
        assert!(!c.is_retryable(&handler(Outer(std::io::Error::other("disk")))));
        assert!(c.is_retryable(&handler(Other)));
        // The outermost classified error decides.
        c.add::<Outer>(true);
        assert!(c.is_retryable(&handler(Outer(std::io::Error::other("disk")))));
    }

    #[test]
    fn add_retryable_overrides_the_validation_default() {
        let mut c = Classifier::default();
        c.add::<ValidationError>(true);
        assert!(c.is_retryable(&handler(ValidationError::new("bad"))));
    }

    #[test]
    fn type_names_of_registered_types_are_known() {
        // A type no other test registers (the registry is process-wide).
        #[derive(Debug, thiserror::Error)]
        #[error("named")]
        struct Named(#[source] std::io::Error);
        let e = handler(Named(std::io::Error::other("disk")));
        let names: Vec<_> = error_chain(&e).map(type_name_of).collect();
        assert_eq!(names, [None, Some("std::io::error::Error")]);
        register_type_name::<Named>();
        assert!(type_name_of(error_chain(&e).next().unwrap()).unwrap().ends_with("Named"));
    }
}
