//! One HTTP/1.1 request on a connection of its own (hyper's client): what
//! a proxy and `stratus drain` send control, and what the metadata store
//! sends etcd. Bounded: [`CONNECT_TIMEOUT`] to connect, the caller's
//! `answer_within` for the answer, at most `limit` bytes of body read.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What to send.
pub struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub content_type: Option<&'a [u8]>,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer: Option<&'a str>,
    pub body: Bytes,
    /// Most body bytes read from the answer.
    pub limit: usize,
    pub answer_within: Duration,
}

/// Sends `call` to `host` (`host:port`, a name or an IP): the answer's
/// status and body, or why there is none.
pub async fn request(host: &str, call: Call<'_>) -> Result<(StatusCode, Bytes), String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(host))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let mut request = Request::builder()
        .method(call.method)
        .uri(call.path)
        .header(HOST, host);
    if let Some(ct) = call.content_type {
        request = request.header(CONTENT_TYPE, ct);
    }
    if let Some(token) = call.bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(call.body))
        .map_err(|e| e.to_string())?;
    let limit = call.limit;
    let answer = tokio::time::timeout(call.answer_within, async {
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
    .map_err(|_| "no answer in time".to_string());
    driver.abort();
    answer?
}
