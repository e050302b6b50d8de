//! `stratus drain`: a node's pre-stop step (Kubernetes' `preStop`). It asks
//! the control leader to move every partition off the node
//! (`POST /v1/nodes/{id}/drain`) and waits until `GET /v1/nodes` shows it
//! empty, so the node stops without losing data.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};

use super::follow::ControlClient;
use crate::config::DrainConfig;

/// Largest answer read from control, bytes.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Drains `config.node`; `Ok` once it hosts no partition.
pub async fn run(config: &DrainConfig) -> Result<(), String> {
    let store = match config.meta.etcd.is_empty() {
        true => None,
        false => Some(
            crate::meta::open(&config.meta.etcd)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    let control = ControlClient::new(config.control.clone(), store, config.admin_token.clone());
    let end = Instant::now() + Duration::from_secs(config.timeout);
    let path = format!("/v1/nodes/{}/drain", config.node);
    // Asked until control takes it (a new leader may be settling).
    loop {
        match control
            .ask(Method::POST, &path, None, Bytes::new(), MAX_ANSWER)
            .await
        {
            Ok((StatusCode::ACCEPTED, _)) => break,
            Ok((status, body)) if !status.is_server_error() => {
                return Err(format!(
                    "control refused the drain ({status}): {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            Ok((status, _)) if Instant::now() >= end => {
                return Err(format!("control kept answering {status}"));
            }
            Err(e) if Instant::now() >= end => return Err(e),
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    tracing::info!(node = %config.node, "draining");
    loop {
        // Asked again each round: a new leader does not know of a drain
        // its predecessor started.
        let _ = control
            .ask(Method::POST, &path, None, Bytes::new(), MAX_ANSWER)
            .await;
        let left = hosted(&control, &config.node).await;
        match left {
            Ok(0) => {
                tracing::info!(node = %config.node, "drained: no partition left");
                return Ok(());
            }
            Ok(n) => tracing::info!(node = %config.node, partitions = n, "waiting for the drain"),
            Err(e) => tracing::warn!("cannot read the nodes: {e}"),
        }
        if Instant::now() >= end {
            return Err(format!(
                "the node still hosts partitions after {} s",
                config.timeout
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How many partitions `node` hosts, as control shows it.
async fn hosted(control: &ControlClient, node: &str) -> Result<usize, String> {
    let (status, body) = control
        .ask(Method::GET, "/v1/nodes", None, Bytes::new(), MAX_ANSWER)
        .await?;
    if status != StatusCode::OK {
        return Err(format!("control answered {status}"));
    }
    let nodes: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("control's answer: {e}"))?;
    nodes["nodes"]
        .as_array()
        .and_then(|all| all.iter().find(|n| n["id"] == node))
        .and_then(|n| n["partitions"].as_array())
        .map(Vec::len)
        .ok_or_else(|| format!("control lists no node {node}"))
}
