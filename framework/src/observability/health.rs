//! Health (Spring Boot actuator's `HealthIndicator`s): `kafka` (a metadata request to the default cluster with a
//! short timeout) and `listeners` (each container's state), plus the liveness and readiness groups.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{json, Map, Value};

use crate::config::{Config, ConfigError};
use crate::container::ListenerEndpointRegistry;

/// A health status, ordered as Spring Boot orders them when aggregating (worst first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Not working.
    Down,
    /// Deliberately not serving (readiness while starting, stopping or while a container is stopped).
    OutOfService,
    /// Working.
    Up,
}

impl Status {
    /// Spring Boot's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Down => "DOWN",
            Status::OutOfService => "OUT_OF_SERVICE",
            Status::Up => "UP",
        }
    }

    /// Whether the HTTP answer is 200 (`UP`) or 503 (anything else), as in Spring Boot.
    pub fn is_up(self) -> bool {
        self == Status::Up
    }
}

/// One component's status and details.
#[derive(Debug, Clone)]
pub struct Component {
    /// The status.
    pub status: Status,
    /// What the indicator found.
    pub details: Value,
}

impl Component {
    fn to_json(&self) -> Value {
        json!({ "status": self.status.as_str(), "details": self.details })
    }
}

/// Computes the application's health from the broker and the listener containers.
#[derive(Clone)]
pub struct HealthIndicator {
    registry: ListenerEndpointRegistry,
    // Taken (and closed off the runtime) at shutdown.
    probe: Arc<Mutex<Option<Arc<BaseConsumer>>>>,
    timeout: Duration,
    shutting_down: Arc<AtomicBool>,
}

impl std::fmt::Debug for HealthIndicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthIndicator").field("timeout", &self.timeout).finish()
    }
}

impl HealthIndicator {
    /// Indicators for the default cluster of `config` and the containers of `registry`; the broker check waits
    /// at most `timeout` for a metadata answer.
    pub fn new(config: &Config, registry: ListenerEndpointRegistry, timeout: Duration) -> Result<Self, ConfigError> {
        let props = config.kafka().default_cluster().admin_props("kafka");
        let probe: BaseConsumer = props.client_config().create().map_err(|e| {
            props.explain(&e).unwrap_or_else(|| ConfigError::InvalidValue {
                value: props.fingerprint(),
                context: "management health check client".to_string(),
                message: e.to_string(),
            })
        })?;
        Ok(HealthIndicator {
            registry,
            probe: Arc::new(Mutex::new(Some(Arc::new(probe)))),
            timeout,
            shutting_down: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The `kafka` component: UP when a broker answered a metadata request within the timeout.
    pub async fn kafka(&self) -> Component {
        let Some(probe) = self.probe.lock().clone() else {
            return Component { status: Status::Down, details: json!({ "error": "application stopping" }) };
        };
        let timeout = self.timeout;
        // A metadata request blocks its thread until the broker answers or the timeout passes.
        let answer = tokio::task::spawn_blocking(move || {
            probe.fetch_metadata(None, timeout).map(|md| (md.brokers().len(), md.orig_broker_name().to_string()))
        })
        .await;
        match answer {
            Ok(Ok((brokers, answered_by))) => {
                Component { status: Status::Up, details: json!({ "brokers": brokers, "answered_by": answered_by }) }
            }
            Ok(Err(e)) => Component { status: Status::Down, details: json!({ "error": e.to_string() }) },
            Err(e) => Component { status: Status::Down, details: json!({ "error": e.to_string() }) },
        }
    }

    /// The `listeners` component: each container's state (`running`, `stopped`, or `failed` when a consumer
    /// task of a running container ended); DOWN when one failed.
    pub fn listeners(&self) -> Component {
        let mut details = Map::new();
        let mut status = Status::Up;
        for c in self.registry.listener_containers() {
            let failed = c.failed_consumers();
            let state = if failed > 0 {
                status = Status::Down;
                "failed"
            } else if c.is_running() {
                "running"
            } else {
                "stopped"
            };
            details.insert(
                c.id().to_string(),
                json!({
                    "state": state,
                    "group": c.group_id(),
                    "concurrency": c.concurrency(),
                    "auto_startup": c.auto_startup(),
                    "paused": c.is_paused(),
                    "assigned_partitions": c.assigned_partitions().len(),
                }),
            );
        }
        Component { status, details: Value::Object(details) }
    }

    /// `/actuator/health`: every component, the worst status overall.
    pub async fn health(&self) -> (Status, Value) {
        let kafka = self.kafka().await;
        let listeners = self.listeners();
        let status = kafka.status.min(listeners.status);
        let body = json!({
            "status": status.as_str(),
            "components": { "kafka": kafka.to_json(), "listeners": listeners.to_json() },
        });
        (status, body)
    }

    /// `/actuator/health/liveness`: DOWN only when a container failed (a restart may help); a broker outage does
    /// not make the application dead.
    pub fn liveness(&self) -> (Status, Value) {
        let status = self.listeners().status;
        (status, json!({ "status": status.as_str() }))
    }

    /// `/actuator/health/readiness`: UP when the application is not stopping, the broker is reachable, and every
    /// container that starts with the application is running; otherwise OUT_OF_SERVICE.
    pub async fn readiness(&self) -> (Status, Value) {
        let containers_ready = self
            .registry
            .listener_containers()
            .iter()
            .all(|c| c.failed_consumers() == 0 && (c.is_running() || !c.auto_startup()));
        let status = if self.shutting_down.load(Ordering::Acquire) || !containers_ready {
            Status::OutOfService
        } else if self.kafka().await.status.is_up() {
            Status::Up
        } else {
            Status::OutOfService
        };
        (status, json!({ "status": status.as_str() }))
    }

    /// Readiness turns OUT_OF_SERVICE from now on (called when shutdown begins).
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Closes the broker check's client off the runtime's threads.
    pub(crate) async fn close(&self) {
        let probe = self.probe.lock().take();
        if let Some(probe) = probe {
            let _ = tokio::task::spawn_blocking(move || drop(probe)).await;
        }
    }
}
