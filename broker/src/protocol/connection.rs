//! One client connection: frames are read and decoded as they arrive, handled one at a time in arrival order,
//! and answered in that order, as Kafka clients rely on.
//!
//! Three stages run concurrently per connection so that reading ahead (up to
//! `max_in_flight_requests_per_connection` decoded requests), handling, and writing overlap: the reader
//! decodes frames, the handler answers them strictly in order (as Kafka's muted channel does, so one client's
//! produce requests to a partition are appended in the order sent), and responses are written as they come.
//! A frame that cannot be a valid request closes this connection only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

use super::api_versions;
use super::decode_guard::decode_request;
use super::dispatch::{dispatch, Reply, RequestContext};
use super::frame::{read_frame, HeaderPrefix};
use crate::broker::BrokerState;

/// Counts open connections and lets shutdown wait for them to finish.
#[derive(Default)]
pub struct ConnectionTracker {
    open: AtomicUsize,
    closed: Notify,
}

impl ConnectionTracker {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until every connection has closed, or `limit` has passed.
    pub async fn wait_idle(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.open() > 0 {
                let notified = self.closed.notified();
                if self.open() == 0 {
                    break;
                }
                notified.await;
            }
        })
        .await;
    }
}

struct ConnectionGuard(Arc<BrokerState>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.open.fetch_sub(1, Ordering::AcqRel);
        self.0.connections.closed.notify_waiters();
    }
}

/// Accepts connections until the task is aborted.
pub async fn accept_loop(listener: TcpListener, state: Arc<BrokerState>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let open = state.connections.open.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = ConnectionGuard(state.clone());
        if open > state.config.max_connections {
            tracing::warn!(%peer, max_connections = state.config.max_connections, "refusing connection over the limit");
            drop(guard);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let _guard = guard;
            serve(stream, peer, state).await;
        });
    }
}

/// A decoded request waiting to be handled.
struct Decoded {
    header: RequestHeader,
    api: ApiKey,
    body: RequestKind,
}

/// What the reader hands the handler stage.
enum Incoming {
    Request(Box<Decoded>),
    /// Answered without a handler (ApiVersions at a version we do not know).
    Immediate(Bytes),
}

async fn serve(stream: TcpStream, peer: SocketAddr, state: Arc<BrokerState>) {
    let (mut reader, mut writer) = stream.into_split();
    let (req_tx, mut req_rx) = mpsc::channel::<Incoming>(state.config.max_in_flight_requests_per_connection.max(1));
    let (resp_tx, mut resp_rx) = mpsc::channel::<Bytes>(state.config.max_in_flight_requests_per_connection.max(1));
    let idle = Duration::from_millis(state.config.connections_max_idle_ms);
    let max_frame = state.config.socket_request_max_bytes;
    let mut shutdown = state.shutdown.clone();

    let read_stage = async move {
        loop {
            let frame = tokio::select! {
                r = tokio::time::timeout(idle, read_frame(&mut reader, max_frame)) => r,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let frame = match frame {
                Err(_) => {
                    tracing::debug!(%peer, "closing idle connection");
                    return;
                }
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "closing connection: bad frame");
                    return;
                }
            };
            match decode(frame) {
                Ok(incoming) => {
                    if req_tx.send(incoming).await.is_err() {
                        return;
                    }
                }
                Err(reason) => {
                    tracing::info!(%peer, %reason, "closing connection: malformed request");
                    return;
                }
            }
        }
    };

    let handle_state = state.clone();
    let handle_stage = async move {
        while let Some(incoming) = req_rx.recv().await {
            let bytes = match incoming {
                Incoming::Immediate(bytes) => bytes,
                Incoming::Request(decoded) => {
                    let Decoded { header, api, body } = *decoded;
                    let ctx = RequestContext { state: handle_state.clone(), header, peer };
                    match dispatch(&ctx, body).await {
                        Reply::Response(response) => match encode_response(api, &ctx.header, &response) {
                            Ok(bytes) => bytes,
                            Err(e) => {
                                tracing::error!(%peer, api = ?api, error = %e, "cannot encode response; closing connection");
                                return;
                            }
                        },
                        Reply::NoResponse => continue,
                        Reply::Close(reason) => {
                            tracing::info!(%peer, api = ?api, %reason, "closing connection");
                            return;
                        }
                    }
                }
            };
            if resp_tx.send(bytes).await.is_err() {
                return;
            }
        }
    };

    let write_stage = async move {
        while let Some(bytes) = resp_rx.recv().await {
            if let Err(e) = writer.write_all(&bytes).await {
                tracing::debug!(%peer, error = %e, "write failed; closing connection");
                return;
            }
        }
        let _ = writer.shutdown().await;
    };

    // The reader ends first on EOF or error; the handler then drains what was read and the writer what was
    // answered. A failed write ends the writer, which makes the handler's sends fail, which ends it, and the
    // reader's next send fails too.
    tokio::join!(read_stage, handle_stage, write_stage);
}

/// Decodes a frame into a request, or says why the connection must close.
fn decode(mut frame: Bytes) -> Result<Incoming, String> {
    let prefix = HeaderPrefix::peek(&frame).ok_or("frame shorter than a request header")?;
    let api = ApiKey::try_from(prefix.api_key).map_err(|_| format!("unknown api key {}", prefix.api_key))?;
    if api == ApiKey::ApiVersions && api_versions::supported_range(api).is_some_and(|(_, max)| prefix.api_version > max)
    {
        // KIP-511: answer with our versions at v0 so the client can pick one we speak.
        let body = api_versions::api_versions_response(ResponseError::UnsupportedVersion.code());
        let header = ResponseHeader::default().with_correlation_id(prefix.correlation_id);
        return frame_response(&header, 0, &ResponseKind::ApiVersions(body), 0)
            .map(Incoming::Immediate)
            .map_err(|e| format!("cannot encode ApiVersions: {e}"));
    }
    if !api_versions::is_supported(api, prefix.api_version) {
        return Err(format!("unsupported version {} of {api:?}", prefix.api_version));
    }
    let header_version = api.request_header_version(prefix.api_version);
    let header =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| RequestHeader::decode(&mut frame, header_version)))
            .map_err(|_| "request header with impossible lengths".to_string())?
            .map_err(|e| format!("malformed request header: {e}"))?;
    let body = decode_request(api, &mut frame, prefix.api_version).map_err(|e| e.to_string())?;
    Ok(Incoming::Request(Box::new(Decoded { header, api, body })))
}

fn encode_response(api: ApiKey, request: &RequestHeader, response: &ResponseKind) -> Result<Bytes, String> {
    let header = ResponseHeader::default().with_correlation_id(request.correlation_id);
    let version = request.request_api_version;
    frame_response(&header, api.response_header_version(version), response, version)
}

/// Size-prefixed response frame.
fn frame_response(
    header: &ResponseHeader,
    header_version: i16,
    body: &ResponseKind,
    version: i16,
) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    header.encode(&mut buf, header_version).map_err(|e| format!("{e:#}"))?;
    body.encode(&mut buf, version).map_err(|e| format!("{e:#}"))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}
