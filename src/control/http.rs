//! The HTTP server of the control plane (hyper, HTTP/1.1).
//!
//! Endpoints, matched in this order:
//! ```text
//! GET  /healthz      liveness: 200 "ok"
//! GET  /readyz       readiness: 200 "ready" (a proxy: once it has read
//!                    control's caches; control: while it leads; 503 else)
//! GET  /metrics      Prometheus text exposition
//! *    /v1/...       the control API (see [`super::api`]); needs
//!                    `Authorization: Bearer <admin token>` when one is configured
//! ```
//! A `/v1/` request is checked in this order: admin token (401), body size
//! (bodies larger than [`MAX_BODY`] get 413), a standby control (503
//! `not_leader`), then [`super::api`] routes it and checks the body's
//! `Content-Type` (415). Nothing a client sends gets a 5xx; control's
//! changes answer once the metadata store has them (503 if it did not
//! answer).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::api::{self, ApiReply, ApiRequest, Endpoint, ErrorCode};
use super::follow::Follower;
use super::keeper::Keeper;
use super::registry::Registry;
use crate::tls::Tls;

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// What the HTTP handlers need.
pub struct HttpState {
    pub registry: Arc<Registry>,
    pub endpoint: Endpoint,
    pub admin_token: Option<String>,
    /// What `/readyz` answers.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// `stratus proxy`: control, where the API's writes go.
    pub follower: Option<Arc<Follower>>,
    /// `stratus control`: its leadership and the store it records in.
    pub keeper: Option<Arc<Keeper>>,
}

/// Serves the control API on `listener` until `shutdown` is cancelled;
/// with `tls`, HTTPS only (a handshake must finish within `handshake_limit`).
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    tls: Option<Arc<Tls>>,
    handshake_limit: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, state, shutdown).await,
                Some(tls) => {
                    let handshake =
                        tokio::time::timeout(handshake_limit, tls.acceptor().accept(stream));
                    match handshake.await {
                        Ok(Ok(s)) => serve_connection(s, peer, state, shutdown).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// One HTTP/1.1 connection, plain or TLS.
async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    state: Arc<HttpState>,
    shutdown: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(&state, req, peer).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn route(
    state: &HttpState,
    req: Request<Incoming>,
    _peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => {
            if state.ready.load(std::sync::atomic::Ordering::Acquire) {
                text(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready\n".into(),
                )
            }
        }
        (&Method::GET, "/metrics") => {
            // Rendered on a worker (`SCHED_IDLE`): every cache's figures
            // are milliseconds of work with many caches, which a reactor's
            // clients would wait for.
            let registry = state.registry.clone();
            let body = crate::pool::workers::get()
                .run(move || registry.publish_metrics(true))
                .await
                .flatten()
                .unwrap_or_default();
            text(StatusCode::OK, "text/plain; version=0.0.4", body)
        }
        _ if path.starts_with("/v1/") || path == "/v1" => {
            if !authorized(state, &req) {
                return json(ApiReply::error(
                    ErrorCode::Unauthorized,
                    "missing or wrong admin bearer token",
                ));
            }
            let content_type = single_content_type(&req);
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return json(ApiReply::error(
                        ErrorCode::PayloadTooLarge,
                        format!("request body is larger than {MAX_BODY} bytes"),
                    ));
                }
            };
            if let Some(follower) = &state.follower
                && forwarded(&method, &path)
            {
                return forward(state, follower, method, &path, content_type, body).await;
            }
            let request = ApiRequest {
                method: &method,
                path: &path,
                content_type: content_type.as_ref().map(HeaderValue::as_bytes),
                body: &body,
            };
            if let Some(keeper) = &state.keeper
                && !keeper.leading()
            {
                let leader = keeper.leader().await;
                let at = leader.map_or("no control leads now".into(), |l| {
                    format!("the leader is {} at {}", l.id, l.http)
                });
                return json(ApiReply::error(
                    ErrorCode::NotLeader,
                    format!("this control is a standby: {at}"),
                ));
            }
            let reply = match api::handle_placement(&state.registry, request).await {
                Some(reply) => reply,
                None => api::handle(&state.registry, &state.endpoint, request),
            };
            // An acknowledged change is in the metadata store.
            if let Some(keeper) = &state.keeper
                && method != Method::GET
                && reply.status.is_success()
                && let Err(e) = keeper.save(&state.registry).await
            {
                return json(ApiReply::error(
                    ErrorCode::Unavailable,
                    format!(
                        "the change was made but not recorded (recorded within a second if the store answers): {e}"
                    ),
                ));
            }
            json(reply)
        }
        _ => json(ApiReply::error(
            ErrorCode::NotFound,
            format!("no route for {path}"),
        )),
    }
}

/// What a proxy passes on to control: every change (control owns the
/// caches, their tokens, limits and users, the placement and the nodes),
/// the list of nodes and a cache's partitions (control's table, with each
/// partition's node, load and hot slot). It answers the other reads
/// itself, from its copy ([`Follower`]).
fn forwarded(method: &Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    method != Method::GET || path == "/v1/nodes" || path.ends_with("/partitions")
}

/// Control's answer to a request a proxy passed on, as it is — but where
/// it describes a cache, with this proxy's endpoint (where the client
/// connects through it).
async fn forward(
    state: &HttpState,
    follower: &Follower,
    method: Method,
    path: &str,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let answer = follower
        .forward(
            method,
            path,
            content_type.as_ref().map(HeaderValue::as_bytes),
            body,
        )
        .await;
    let (status, body) = match answer {
        Ok(a) => a,
        Err(e) => {
            return json(ApiReply::error(
                ErrorCode::Unavailable,
                format!("control cannot be reached: {e}"),
            ));
        }
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut reply) => {
            let cache = reply
                .get("name")
                .and_then(|n| n.as_str())
                .and_then(|n| state.registry.get(n));
            if let Some(cache) = cache.filter(|_| reply.get("endpoint").is_some()) {
                reply["endpoint"] = api::describe(&cache, &state.endpoint)["endpoint"].take();
            }
            Bytes::from(reply.to_string())
        }
        Err(_) => body,
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The request's `Content-Type`; `None` when absent or repeated (two values
/// are ambiguous: refused rather than guessed).
fn single_content_type(req: &Request<Incoming>) -> Option<HeaderValue> {
    let mut values = req.headers().get_all(CONTENT_TYPE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => Some(v.clone()),
        _ => None,
    }
}

fn authorized(state: &HttpState, req: &Request<Incoming>) -> bool {
    let Some(expected) = &state.admin_token else {
        return true;
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json(reply: ApiReply) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_string_pretty(&reply.body).unwrap_or_else(|_| "{}".into());
    body.push('\n');
    text(reply.status, "application/json", body)
}
