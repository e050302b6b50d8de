//! The HTTP server of the control plane (hyper, HTTP/1.1).
//!
//! Endpoints, matched in this order:
//! ```text
//! GET  /healthz      liveness: 200 "ok"
//! GET  /readyz       readiness: 200 "ready" (a proxy: once it has read
//!                    control's caches; 503 before)
//! GET  /metrics      Prometheus text exposition
//! *    /v1/...       the control API (see [`super::api`]); needs
//!                    `Authorization: Bearer <admin token>` when one is configured
//! ```
//! A `/v1/` request is checked in this order: admin token (401), body size
//! (bodies larger than [`MAX_BODY`] get 413), then [`super::api`] routes it and
//! checks the body's `Content-Type` (415). Nothing a client sends gets a 5xx.

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
use super::registry::{Placed, Registry};
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
}

/// Largest placement list a proxy reads from control, bytes.
const MAX_PLACEMENT: usize = 64 * 1024 * 1024;

/// What control answers a proxy's check-in.
#[derive(Debug, serde::Deserialize)]
pub struct CheckedIn {
    /// The caches to serve.
    pub caches: Vec<Placed>,
    /// This proxy's ECPU/s share of each limited cache.
    pub shares: std::collections::HashMap<String, u64>,
}

/// One request to control over its own HTTP/1.1 connection (a proxy:
/// check-ins and the API writes it forwards): control's status and body
/// (at most `limit` bytes), or why there is none. Bounded in time: 2 s to
/// connect, 5 s for the answer.
pub async fn call(
    control: SocketAddr,
    admin_token: Option<&str>,
    method: Method,
    path: &str,
    content_type: Option<&[u8]>,
    body: Bytes,
    limit: usize,
) -> Result<(StatusCode, Bytes), String> {
    let stream = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(control),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, control.to_string());
    if let Some(ct) = content_type {
        request = request.header(CONTENT_TYPE, ct);
    }
    if let Some(token) = admin_token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    })
    .await
    .map_err(|_| "control did not answer in time".to_string())?;
    driver.abort();
    answer
}

/// A proxy checks in with control (`POST /v1/proxies/{id}`): it reports
/// the ECPU/s it used by cache and what each slot served, and reads the
/// caches to serve and its shares.
pub async fn check_in(
    control: SocketAddr,
    admin_token: Option<&str>,
    proxy: &str,
    used: &std::collections::HashMap<String, f64>,
    loads: &std::collections::HashMap<String, Vec<(u16, u64)>>,
) -> Result<CheckedIn, String> {
    let body = serde_json::to_vec(&serde_json::json!({ "used": used, "loads": loads }))
        .map_err(|e| e.to_string())?;
    let (status, body) = call(
        control,
        admin_token,
        Method::POST,
        &format!("/v1/proxies/{proxy}"),
        Some(b"application/json"),
        Bytes::from(body),
        MAX_PLACEMENT,
    )
    .await?;
    if status != StatusCode::OK {
        return Err(format!("control answered {status}"));
    }
    serde_json::from_slice::<CheckedIn>(&body).map_err(|e| format!("control's answer: {e}"))
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
            let body = state.registry.publish_metrics(true).unwrap_or_default();
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
            if let Some(reply) = api::handle_placement(&state.registry, request).await {
                return json(reply);
            }
            json(api::handle(&state.registry, state.endpoint, request))
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
                reply["endpoint"] = api::describe(&cache, state.endpoint)["endpoint"].take();
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
