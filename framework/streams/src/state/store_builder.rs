//! How stores are declared (Kafka's `Stores` factory, suppliers and `StoreBuilder`) and created once per task,
//! with changelog logging wired in. A topology holds builders; each task builds its own stores from them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::key_value::KvInner;
use super::session::SessionInner;
use super::window::WindowInner;
use super::{
    ChangeLogger, InMemoryKeyValueStore, InMemorySessionStore, InMemoryWindowStore, KeyValueBytesStore,
    SessionBytesStore, WindowBytesStore,
};
use crate::StreamsError;

/// What a store implementation learns when a task creates it.
#[derive(Debug, Clone)]
pub struct StoreContext {
    /// `application.id`.
    pub application_id: String,
    /// The task, as `<subtopology>_<partition>` (Kafka's task id format).
    pub task_id: String,
    /// `state.dir` (persistent stores live in `<state.dir>/<application.id>/<task>/<store>`).
    pub state_dir: PathBuf,
}

type KvFactory = Arc<dyn Fn(&StoreContext) -> Result<Box<dyn KeyValueBytesStore>, StreamsError> + Send + Sync>;
type WindowFactory = Arc<dyn Fn(&StoreContext) -> Result<Box<dyn WindowBytesStore>, StreamsError> + Send + Sync>;
type SessionFactory = Arc<dyn Fn(&StoreContext) -> Result<Box<dyn SessionBytesStore>, StreamsError> + Send + Sync>;

/// Creates key-value stores of one name (Kafka's `KeyValueBytesStoreSupplier`).
#[derive(Clone)]
pub struct KeyValueBytesStoreSupplier {
    name: String,
    factory: KvFactory,
    persistent: bool,
}

impl KeyValueBytesStoreSupplier {
    /// A supplier of your own store implementation.
    pub fn new(
        name: impl Into<String>,
        factory: impl Fn(&StoreContext) -> Result<Box<dyn KeyValueBytesStore>, StreamsError> + Send + Sync + 'static,
    ) -> Self {
        KeyValueBytesStoreSupplier { name: name.into(), factory: Arc::new(factory), persistent: false }
    }

    /// Marks the store as keeping its data across restarts (in `<state.dir>`), so the runtime restores it from its
    /// checkpointed changelog offset instead of from the beginning.
    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }
}

/// Creates window stores of one name.
#[derive(Clone)]
pub struct WindowBytesStoreSupplier {
    name: String,
    window_size: i64,
    factory: WindowFactory,
    persistent: bool,
}

/// Creates session stores of one name.
#[derive(Clone)]
pub struct SessionBytesStoreSupplier {
    name: String,
    factory: SessionFactory,
    persistent: bool,
}

/// Kafka's `Stores` factory.
///
/// ```
/// use spate_streams::Stores;
/// let builder = Stores::key_value_store_builder(Stores::in_memory_key_value_store("counts")).with_logging_disabled();
/// assert_eq!(builder.name(), "counts");
/// ```
pub struct Stores;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Stores {
    /// An in-memory key-value store.
    pub fn in_memory_key_value_store(name: impl Into<String>) -> KeyValueBytesStoreSupplier {
        KeyValueBytesStoreSupplier::new(name, |_| Ok(Box::new(InMemoryKeyValueStore::default())))
    }

    /// A persistent key-value store on redb, in `<state.dir>/<application.id>/<task>/<name>.redb`.
    pub fn persistent_key_value_store(name: impl Into<String>) -> KeyValueBytesStoreSupplier {
        let name = name.into();
        let file = format!("{name}.redb");
        KeyValueBytesStoreSupplier::new(name.clone(), move |ctx| {
            let path = ctx.state_dir.join(&ctx.application_id).join(&ctx.task_id).join(&file);
            Ok(Box::new(super::RedbKeyValueStore::open(&name, &path)?))
        })
        .persistent()
    }

    /// An in-memory window store keeping windows of `window_size` for `retention`.
    pub fn in_memory_window_store(
        name: impl Into<String>,
        retention: Duration,
        window_size: Duration,
        retain_duplicates: bool,
    ) -> WindowBytesStoreSupplier {
        let retention = millis(retention);
        WindowBytesStoreSupplier {
            name: name.into(),
            window_size: millis(window_size),
            factory: Arc::new(move |_| Ok(Box::new(InMemoryWindowStore::new(retention, retain_duplicates)))),
            persistent: false,
        }
    }

    /// A persistent window store on redb, in `<state.dir>/<application.id>/<task>/<name>.redb`.
    pub fn persistent_window_store(
        name: impl Into<String>,
        retention: Duration,
        window_size: Duration,
        retain_duplicates: bool,
    ) -> WindowBytesStoreSupplier {
        let name = name.into();
        let retention = millis(retention);
        let file = format!("{name}.redb");
        let store_name = name.clone();
        WindowBytesStoreSupplier {
            name,
            window_size: millis(window_size),
            factory: Arc::new(move |ctx| {
                let path = ctx.state_dir.join(&ctx.application_id).join(&ctx.task_id).join(&file);
                Ok(Box::new(super::RedbWindowStore::open(&store_name, &path, retention, retain_duplicates)?))
            }),
            persistent: true,
        }
    }

    /// An in-memory session store keeping sessions for `retention`.
    pub fn in_memory_session_store(name: impl Into<String>, retention: Duration) -> SessionBytesStoreSupplier {
        let retention = millis(retention);
        SessionBytesStoreSupplier {
            name: name.into(),
            factory: Arc::new(move |_| Ok(Box::new(InMemorySessionStore::new(retention)))),
            persistent: false,
        }
    }

    /// A persistent session store on redb, in `<state.dir>/<application.id>/<task>/<name>.redb`.
    pub fn persistent_session_store(name: impl Into<String>, retention: Duration) -> SessionBytesStoreSupplier {
        let name = name.into();
        let retention = millis(retention);
        let file = format!("{name}.redb");
        let store_name = name.clone();
        SessionBytesStoreSupplier {
            name,
            factory: Arc::new(move |ctx| {
                let path = ctx.state_dir.join(&ctx.application_id).join(&ctx.task_id).join(&file);
                Ok(Box::new(super::RedbSessionStore::open(&store_name, &path, retention)?))
            }),
            persistent: true,
        }
    }

    /// A key-value store for the Processor API (values stored as they are).
    pub fn key_value_store_builder(supplier: KeyValueBytesStoreSupplier) -> StoreBuilder {
        StoreBuilder::new(
            supplier.name.clone(),
            StoreFactory::KeyValue(supplier.factory),
            false,
            0,
            supplier.persistent,
        )
    }

    /// A key-value store whose values carry a timestamp ([`ValueAndTimestamp`](crate::ValueAndTimestamp)).
    pub fn timestamped_key_value_store_builder(supplier: KeyValueBytesStoreSupplier) -> StoreBuilder {
        StoreBuilder::new(supplier.name.clone(), StoreFactory::KeyValue(supplier.factory), true, 0, supplier.persistent)
    }

    /// A window store.
    pub fn window_store_builder(supplier: WindowBytesStoreSupplier) -> StoreBuilder {
        let persistent = supplier.persistent;
        StoreBuilder::new(
            supplier.name,
            StoreFactory::Window(supplier.factory),
            false,
            supplier.window_size,
            persistent,
        )
    }

    /// A window store whose values carry a timestamp.
    pub fn timestamped_window_store_builder(supplier: WindowBytesStoreSupplier) -> StoreBuilder {
        let persistent = supplier.persistent;
        StoreBuilder::new(supplier.name, StoreFactory::Window(supplier.factory), true, supplier.window_size, persistent)
    }

    /// A session store.
    pub fn session_store_builder(supplier: SessionBytesStoreSupplier) -> StoreBuilder {
        StoreBuilder::new(supplier.name.clone(), StoreFactory::Session(supplier.factory), false, 0, supplier.persistent)
    }
}

#[derive(Clone)]
enum StoreFactory {
    KeyValue(KvFactory),
    Window(WindowFactory),
    Session(SessionFactory),
}

/// The kind of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Key-value.
    KeyValue,
    /// Window.
    Window,
    /// Session.
    Session,
}

/// Declares a store: a supplier plus logging and timestamp options (Kafka's `StoreBuilder`).
#[derive(Clone)]
pub struct StoreBuilder {
    name: String,
    factory: StoreFactory,
    logging: bool,
    timestamped: bool,
    window_size: i64,
    persistent: bool,
}

impl StoreBuilder {
    fn new(name: String, factory: StoreFactory, timestamped: bool, window_size: i64, persistent: bool) -> Self {
        StoreBuilder { name, factory, logging: true, timestamped, window_size, persistent }
    }

    /// Whether the store keeps its data on disk across restarts (the `persistent_*` suppliers).
    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether writes go to a changelog topic (default: yes).
    pub fn logging_enabled(&self) -> bool {
        self.logging
    }

    /// Keeps the store local: no changelog, so nothing to restore after a migration.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Logs writes to `<application.id>-<name>-changelog` (the default).
    pub fn with_logging_enabled(mut self) -> Self {
        self.logging = true;
        self
    }

    /// The kind of store this builds.
    pub fn kind(&self) -> StoreKind {
        match self.factory {
            StoreFactory::KeyValue(_) => StoreKind::KeyValue,
            StoreFactory::Window(_) => StoreKind::Window,
            StoreFactory::Session(_) => StoreKind::Session,
        }
    }

    /// Creates the store for one task; `logger` is `None` when logging is disabled.
    pub(crate) fn build(
        &self,
        ctx: &StoreContext,
        logger: Option<ChangeLogger>,
        clock: std::sync::Arc<std::sync::atomic::AtomicI64>,
    ) -> Result<StoreHandle, StreamsError> {
        let logger = if self.logging { logger } else { None };
        let name = self.name.clone();
        Ok(match &self.factory {
            StoreFactory::KeyValue(f) => StoreHandle::KeyValue(Arc::new(Mutex::new(KvInner {
                name,
                bytes: f(ctx)?,
                logger,
                timestamped: self.timestamped,
                clock,
            }))),
            StoreFactory::Window(f) => StoreHandle::Window(Arc::new(Mutex::new(WindowInner {
                name,
                bytes: f(ctx)?,
                logger,
                timestamped: self.timestamped,
                window_size: self.window_size,
                seq: 0,
                clock,
            }))),
            StoreFactory::Session(f) => {
                StoreHandle::Session(Arc::new(Mutex::new(SessionInner { name, bytes: f(ctx)?, logger })))
            }
        })
    }
}

/// A task's store, untyped: what the runtime restores from the changelog and what typed handles wrap.
#[derive(Clone)]
pub enum StoreHandle {
    /// A key-value store.
    KeyValue(Arc<Mutex<KvInner>>),
    /// A window store.
    Window(Arc<Mutex<WindowInner>>),
    /// A session store.
    Session(Arc<Mutex<SessionInner>>),
}

impl StoreHandle {
    /// The store's name.
    pub fn name(&self) -> String {
        match self {
            StoreHandle::KeyValue(s) => s.lock().name.clone(),
            StoreHandle::Window(s) => s.lock().name.clone(),
            StoreHandle::Session(s) => s.lock().name.clone(),
        }
    }

    /// The store's kind.
    pub fn kind(&self) -> StoreKind {
        match self {
            StoreHandle::KeyValue(_) => StoreKind::KeyValue,
            StoreHandle::Window(_) => StoreKind::Window,
            StoreHandle::Session(_) => StoreKind::Session,
        }
    }

    /// Applies one changelog record (key and value as logged, the record's timestamp) without logging it again:
    /// how a store is rebuilt on start or after a migration.
    pub fn restore(&self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<(), StreamsError> {
        match self {
            StoreHandle::KeyValue(s) => s.lock().restore(key, value, timestamp),
            StoreHandle::Window(s) => s.lock().restore(key, value, timestamp),
            StoreHandle::Session(s) => s.lock().restore(key, value),
        }
    }

    /// A typed view of a key-value store (plain values also for timestamped stores), for interactive queries.
    pub fn key_value_store<K: spate::Encode + spate::Decode, V: spate::Encode + spate::Decode>(
        &self,
    ) -> Option<super::KeyValueStore<K, V>> {
        match self {
            StoreHandle::KeyValue(s) => {
                let plain = s.lock().timestamped;
                Some(super::KeyValueStore::new(s.clone(), plain))
            }
            _ => None,
        }
    }

    /// A typed view of a window store (plain values also for timestamped stores).
    pub fn window_store<K: spate::Encode + spate::Decode, V: spate::Encode + spate::Decode>(
        &self,
    ) -> Option<super::WindowStore<K, V>> {
        match self {
            StoreHandle::Window(s) => {
                let plain = s.lock().timestamped;
                Some(super::WindowStore::new(s.clone(), plain))
            }
            _ => None,
        }
    }

    /// A typed view of a session store.
    pub fn session_store<K: spate::Encode + spate::Decode + Clone, V: spate::Encode + spate::Decode>(
        &self,
    ) -> Option<super::SessionStore<K, V>> {
        match self {
            StoreHandle::Session(s) => Some(super::SessionStore::new(s.clone())),
            _ => None,
        }
    }

    /// Flushes a persistent store.
    pub fn flush(&self) -> Result<(), StreamsError> {
        match self {
            StoreHandle::KeyValue(s) => s.lock().bytes.flush(),
            StoreHandle::Window(s) => s.lock().bytes.flush(),
            StoreHandle::Session(s) => s.lock().bytes.flush(),
        }
    }
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle").field("name", &self.name()).field("kind", &self.kind()).finish()
    }
}
