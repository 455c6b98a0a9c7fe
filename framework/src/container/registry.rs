//! The registry of listener containers (Spring's `KafkaListenerEndpointRegistry`): look containers up by id, and
//! start, stop and list them while the application runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::broadcast;

use super::{ContainerError, ContainerEvent, ListenerContainer};

/// Every listener container of an application, by listener id.
///
/// ```no_run
/// # async fn f(app: spate::RunningApp) -> Result<(), spate::ContainerError> {
/// let registry = app.registry();
/// for id in registry.listener_container_ids() {
///     println!("{id}: running = {}", registry.listener_container(&id).unwrap().is_running());
/// }
/// registry.stop("billing").await?;
/// registry.start("billing").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ListenerEndpointRegistry {
    containers: Arc<RwLock<BTreeMap<String, ListenerContainer>>>,
    events: broadcast::Sender<ContainerEvent>,
}

impl Default for ListenerEndpointRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ListenerEndpointRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerEndpointRegistry").field("ids", &self.listener_container_ids()).finish()
    }
}

impl ListenerEndpointRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        ListenerEndpointRegistry { containers: Arc::new(RwLock::new(BTreeMap::new())), events }
    }

    pub(crate) fn events_sender(&self) -> broadcast::Sender<ContainerEvent> {
        self.events.clone()
    }

    pub(crate) fn register(&self, container: ListenerContainer) {
        self.containers.write().insert(container.id().to_string(), container);
    }

    /// The container of a listener.
    pub fn listener_container(&self, id: &str) -> Option<ListenerContainer> {
        self.containers.read().get(id).cloned()
    }

    /// All listener ids, sorted.
    pub fn listener_container_ids(&self) -> Vec<String> {
        self.containers.read().keys().cloned().collect()
    }

    /// All containers.
    pub fn listener_containers(&self) -> Vec<ListenerContainer> {
        self.containers.read().values().cloned().collect()
    }

    /// Starts a container.
    pub async fn start(&self, id: &str) -> Result<(), ContainerError> {
        let c = self.listener_container(id).ok_or_else(|| ContainerError::UnknownId(id.to_string()))?;
        c.start().await
    }

    /// Stops a container gracefully.
    pub async fn stop(&self, id: &str) -> Result<(), ContainerError> {
        let c = self.listener_container(id).ok_or_else(|| ContainerError::UnknownId(id.to_string()))?;
        c.stop().await;
        Ok(())
    }

    /// Starts every container whose `auto_startup` is true.
    pub async fn start_auto_startup(&self) -> Result<(), ContainerError> {
        for c in self.listener_containers() {
            if c.auto_startup() {
                c.start().await?;
            }
        }
        Ok(())
    }

    /// Stops every container, concurrently.
    pub async fn stop_all(&self) {
        let stops = self.listener_containers().into_iter().map(|c| async move { c.stop().await });
        futures::future::join_all(stops).await;
    }

    /// Events of every container.
    pub fn subscribe(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }
}
