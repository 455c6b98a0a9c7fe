//! The management HTTP server (Spring Boot actuator's paths) on axum, and its `management` configuration section.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::health::{HealthIndicator, Status};
use crate::config::{Config, ConfigError};
use crate::container::ListenerEndpointRegistry;

/// The `management` section. Checked like `kafka`: an unknown key is an error.
///
/// ```toml
/// [management.server]
/// port = 8081          # no port: no server
/// address = "0.0.0.0"
///
/// [management.health.kafka]
/// timeout_ms = 3000
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementProperties {
    /// Where the server listens.
    #[serde(default)]
    pub server: ManagementServerProperties,
    /// Health indicators.
    #[serde(default)]
    pub health: HealthProperties,
}

/// `management.server`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementServerProperties {
    /// The port; the server runs only when it is set (0: any free port, see `RunningApp::management_address`).
    pub port: Option<u16>,
    /// The address to bind (default all interfaces, as Spring Boot).
    #[serde(default = "default_address")]
    pub address: IpAddr,
}

impl Default for ManagementServerProperties {
    fn default() -> Self {
        ManagementServerProperties { port: None, address: default_address() }
    }
}

fn default_address() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// `management.health`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthProperties {
    /// `management.health.kafka`.
    #[serde(default)]
    pub kafka: KafkaHealthProperties,
}

/// `management.health.kafka`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaHealthProperties {
    /// How long the broker check waits for a metadata answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for KafkaHealthProperties {
    fn default() -> Self {
        KafkaHealthProperties { timeout_ms: default_timeout_ms() }
    }
}

fn default_timeout_ms() -> u64 {
    3000
}

impl ManagementProperties {
    /// Reads the `management` section of `config` (defaults when absent).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        if config.figment().find_value("management").is_err() {
            return Ok(ManagementProperties::default());
        }
        config.extract("management")
    }
}

/// A running management server. Stop it with [`stop`](Self::stop) (`RunningApp::shutdown` does).
#[derive(Debug)]
pub struct ManagementServer {
    address: SocketAddr,
    health: HealthIndicator,
    shutdown: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
}

impl ManagementServer {
    /// Starts the server when `management.server.port` is set.
    pub async fn start_if_configured(
        config: &Config,
        registry: &ListenerEndpointRegistry,
    ) -> Result<Option<ManagementServer>, ConfigError> {
        let props = ManagementProperties::from_config(config)?;
        let Some(port) = props.server.port else {
            return Ok(None);
        };
        let health =
            HealthIndicator::new(config, registry.clone(), Duration::from_millis(props.health.kafka.timeout_ms))?;
        Self::start(SocketAddr::new(props.server.address, port), health).await.map(Some)
    }

    /// Starts the server on `address` with `health`.
    pub async fn start(address: SocketAddr, health: HealthIndicator) -> Result<ManagementServer, ConfigError> {
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| ConfigError::InvalidValue {
            value: address.to_string(),
            context: "management.server.address / management.server.port".to_string(),
            message: format!("cannot listen: {e}"),
        })?;
        let bound = listener.local_addr().unwrap_or(address);
        let router = Router::new()
            .route("/actuator/health", get(health_all))
            .route("/actuator/health/liveness", get(liveness))
            .route("/actuator/health/readiness", get(readiness))
            .route("/actuator/prometheus", get(prometheus))
            .with_state(health.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            let served = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = served.await {
                tracing::error!(error = %e, "management server failed");
            }
        });
        tracing::info!(address = %bound, "management server started");
        Ok(ManagementServer { address: bound, health, shutdown: Some(tx), join: Some(join) })
    }

    /// The address it listens on (with the actual port when configured as 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The health indicators it serves.
    pub fn health(&self) -> &HealthIndicator {
        &self.health
    }

    /// Stops serving and closes the broker check's client.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(j) = self.join.take() {
            let _ = j.await;
        }
        self.health.close().await;
    }
}

fn answer((status, body): (Status, Value)) -> Response {
    let code = if status.is_up() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn health_all(State(h): State<HealthIndicator>) -> Response {
    answer(h.health().await)
}

async fn liveness(State(h): State<HealthIndicator>) -> Response {
    answer(h.liveness())
}

async fn readiness(State(h): State<HealthIndicator>) -> Response {
    answer(h.readiness().await)
}

async fn prometheus() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], super::metrics::render()).into_response()
}
