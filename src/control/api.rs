//! The control API's requests and replies as plain functions: a method, a
//! path and a body in; a status and a JSON document out. No I/O here
//! ([`super::http`] does the HTTP), so every route is testable directly.
//!
//! Routes, matched in this order:
//! ```text
//! POST   /v1/caches            create {name, description?, usage_limits?, auth?: {token?},
//!                                      cluster_mode?: "enabled" | "disabled",
//!                                      engine?: "redis" | "memcached",
//!                                      item_size_max?: bytes (memcached: 1 KiB-128 MiB)}
//! GET    /v1/caches            list
//! GET    /v1/caches/{name}     describe: status, endpoint, limits, usage now
//! PATCH  /v1/caches/{name}     change description, limits; auth: {rotate: true} or {token}
//!                               item_size_max (memcached); cluster_mode and engine
//!                               are fixed at creation: 400
//! DELETE /v1/caches/{name}     delete (data released, token refused)
//! GET    /v1/caches/{name}/partitions  partition map: slot ranges, keys, bytes, ECPU/s, age
//! GET    /v1/caches/{name}/usage  billing view: ECPU, commands, storage, throttled, ...
//! GET    /v1/placement         every cache on a node with its node and token hashes
//!                               (what proxies read from control)
//! GET    /v1/nodes             `stratus control`'s nodes: id, addr, state
//!                               (up/draining/down), the partitions each hosts, keys,
//!                               bytes and ECPU/s
//! POST   /v1/nodes/{id}/drain  move every partition off a node and keep it empty
//! POST   /v1/caches/{name}/partitions/{id}/move   {node}: to that node
//! POST   /v1/caches/{name}/partitions/{id}/split  {at}: split at a slot
//! POST   /v1/caches/{name}/partitions/{id}/merge  {with}: merge its right neighbour in
//! POST   /v1/caches/{name}/users           add a user {name, access_string, passwords?}
//! GET    /v1/caches/{name}/users[/{user}]  list / describe (never a password)
//! PATCH  /v1/caches/{name}/users/{user}    {access_string?, passwords?, disconnect?}
//! DELETE /v1/caches/{name}/users/{user}    delete (its connections close)
//! POST   /v1/caches/{name}/acl  a proxy's client's ACL change, applied here:
//!                               {setuser: {name, rules}} | {deluser: {names}}
//! POST   /v1/proxies/{id}      a proxy checks in {used: {cache: ECPU/s}}: the caches to
//!                               serve (as /v1/placement) and its ECPU/s share of each
//! ```
//! Every bad request gets a 4xx and `{"error": {"code", "message"}}`; the codes
//! are the one list in [`ErrorCode`] (the README's table mirrors it).
//!
//! Requests with a body (POST, PATCH) must say `Content-Type: application/json`
//! (parameters such as `; charset=utf-8` allowed), else 415
//! `unsupported_media_type` and nothing changes. Why: without an admin token the
//! API listens on loopback, and a web page in an operator's browser may send a
//! cross-origin `text/plain` POST without a CORS preflight ("simple request");
//! a JSON content type needs a preflight, which this API never grants.

use std::time::{SystemTime, UNIX_EPOCH};

use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::placement::PlaceError;
use super::registry::{Cache, NewCache, Registry, RegistryError, UsageLimits};
use crate::pool::PartitionView;

/// Longest description accepted.
const MAX_DESCRIPTION: usize = 255;

/// Every error the control API answers, with its code (the `error.code` of
/// the JSON body) and HTTP status. This is the one list: the README's table
/// mirrors it and a test checks that it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the body is not JSON.
    InvalidJson,
    /// 400: well-formed JSON with a wrong type, an unknown field, a bad name,
    /// token or limit.
    InvalidRequest,
    /// 401: the admin bearer token is missing or wrong.
    Unauthorized,
    /// 404: no such cache, or no such route.
    NotFound,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: a cache of that name exists.
    AlreadyExists,
    /// 413: the body is larger than [`super::http::MAX_BODY`].
    PayloadTooLarge,
    /// 415: a POST or PATCH without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// 503: a node could not do what was asked (a move stopped: the slots
    /// stay where they were), or the metadata store did not answer.
    Unavailable,
    /// 503: this control is a standby; the message names the leader.
    NotLeader,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::AlreadyExists,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Unavailable,
        ErrorCode::NotLeader,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NotLeader => "not_leader",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidJson | ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::AlreadyExists => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Unavailable | ErrorCode::NotLeader => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A JSON reply with its status.
pub struct ApiReply {
    pub status: StatusCode,
    pub body: Json,
}

impl ApiReply {
    fn ok(status: StatusCode, body: Json) -> ApiReply {
        ApiReply { status, body }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> ApiReply {
        ApiReply {
            status: code.status(),
            body: json!({"error": {"code": code.as_str(), "message": message.into()}}),
        }
    }
}

impl From<RegistryError> for ApiReply {
    fn from(e: RegistryError) -> ApiReply {
        let code = match &e {
            RegistryError::Exists(_) => ErrorCode::AlreadyExists,
            RegistryError::NotFound(_) => ErrorCode::NotFound,
            RegistryError::Invalid(_) => ErrorCode::InvalidRequest,
        };
        ApiReply::error(code, e.to_string())
    }
}

/// The one media type a request body may have.
const JSON_MEDIA_TYPE: &str = "application/json";

/// Whether a `Content-Type` value is `application/json`, in any case, with
/// or without parameters (`application/json; charset=utf-8`). `None` (no
/// header, several headers, or one that is not text) is not.
pub fn is_json_media_type(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type.and_then(|v| std::str::from_utf8(v).ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(JSON_MEDIA_TYPE)
}

/// Refuses a body that does not say it is JSON (see the module doc).
fn require_json(content_type: Option<&[u8]>) -> Result<(), ApiReply> {
    if is_json_media_type(content_type) {
        return Ok(());
    }
    let got = content_type.map_or_else(
        || "none".to_string(),
        |v| String::from_utf8_lossy(&v[..v.len().min(64)]).into_owned(),
    );
    Err(ApiReply::error(
        ErrorCode::UnsupportedMediaType,
        format!("request bodies must be sent with Content-Type: {JSON_MEDIA_TYPE} (got {got})"),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    usage_limits: Option<UsageLimits>,
    #[serde(default)]
    auth: Option<CreateAuth>,
    /// `"enabled"` (default) or `"disabled"`; fixed for the cache's life.
    #[serde(default)]
    cluster_mode: Option<String>,
    /// `"redis"` (default) or `"memcached"`; fixed for the cache's life.
    #[serde(default)]
    engine: Option<String>,
    /// Memcached engine: the largest item, bytes (default 1 MiB).
    #[serde(default)]
    item_size_max: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAuth {
    #[serde(default)]
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchRequest {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    usage_limits: Option<UsageLimits>,
    #[serde(default)]
    auth: Option<PatchAuth>,
    /// Refused with a clear message: the mode is chosen at creation only.
    #[serde(default)]
    cluster_mode: Option<Json>,
    /// Refused as `cluster_mode` is: chosen at creation only.
    #[serde(default)]
    engine: Option<Json>,
    /// Memcached engine: a new item size limit, bytes.
    #[serde(default)]
    item_size_max: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchAuth {
    #[serde(default)]
    rotate: bool,
    #[serde(default)]
    token: Option<String>,
    /// The previous token stays valid beside the new one (rotation).
    #[serde(default)]
    keep_previous: bool,
    /// Only the newest token stays valid (the end of a rotation).
    #[serde(default)]
    revoke_previous: bool,
}

/// Where clients connect: shown in cache descriptions (the RESP listener;
/// the Memcached one, if any, for memcached-engine caches).
#[derive(Debug, Clone)]
pub struct Endpoint(pub Address, pub Option<Address>);

pub use crate::config::Address;

/// One control request, as [`super::http`] hands it over.
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    /// The `Content-Type` header; `None` if absent or given more than once.
    pub content_type: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// Routes one control request.
pub fn handle(registry: &Registry, endpoint: &Endpoint, req: ApiRequest<'_>) -> ApiReply {
    let ApiRequest {
        method,
        path,
        content_type,
        body,
    } = req;
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["v1", "caches"]) => match require_json(content_type) {
            Ok(()) => create(registry, endpoint, body),
            Err(e) => e,
        },
        (&Method::GET, ["v1", "nodes"]) => ApiReply::ok(StatusCode::OK, nodes(registry)),
        (&Method::POST, ["v1", "proxies", proxy]) => match require_json(content_type) {
            Ok(()) => check_in(registry, proxy, body),
            Err(e) => e,
        },
        (&Method::GET, ["v1", "placement"]) => {
            ApiReply::ok(StatusCode::OK, json!({ "caches": registry.placement() }))
        }
        (&Method::GET, ["v1", "caches"]) => {
            let caches: Vec<Json> = registry
                .list()
                .iter()
                .map(|c| describe(c, endpoint))
                .collect();
            ApiReply::ok(StatusCode::OK, json!({ "caches": caches }))
        }
        (&Method::GET, ["v1", "caches", name]) => match registry.get(name) {
            Some(c) => ApiReply::ok(StatusCode::OK, describe(&c, endpoint)),
            None => RegistryError::NotFound(name.to_string()).into(),
        },
        (&Method::PATCH, ["v1", "caches", name]) => match require_json(content_type) {
            Ok(()) => patch(registry, endpoint, name, body),
            Err(e) => e,
        },
        (&Method::GET, ["v1", "caches", name, "partitions"]) => match registry.get(name) {
            Some(c) => ApiReply::ok(StatusCode::OK, partitions(registry, &c)),
            None => RegistryError::NotFound(name.to_string()).into(),
        },
        (&Method::GET, ["v1", "caches", name, "usage"]) => match registry.get(name) {
            Some(c) => ApiReply::ok(StatusCode::OK, usage(&c)),
            None => RegistryError::NotFound(name.to_string()).into(),
        },
        (&Method::DELETE, ["v1", "caches", name]) => match registry.delete(name) {
            Ok(()) => ApiReply::ok(StatusCode::OK, json!({ "deleted": name })),
            Err(e) => e.into(),
        },
        (&Method::POST, ["v1", "caches", name, "users"]) => match require_json(content_type) {
            Ok(()) => with_cache(registry, name, |c| create_user(c, body)),
            Err(e) => e,
        },
        (&Method::GET, ["v1", "caches", name, "users"]) => with_cache(registry, name, |c| {
            let users: Vec<Json> = c.users().iter().map(|u| describe_user(c, u)).collect();
            ApiReply::ok(StatusCode::OK, json!({ "users": users }))
        }),
        (&Method::GET, ["v1", "caches", name, "users", user]) => {
            with_cache(registry, name, |c| match c.user(user) {
                Some(u) => ApiReply::ok(StatusCode::OK, describe_user(c, &u)),
                None => RegistryError::NotFound(format!("{name}.{user}")).into(),
            })
        }
        (&Method::PATCH, ["v1", "caches", name, "users", user]) => match require_json(content_type)
        {
            Ok(()) => with_cache(registry, name, |c| patch_user(c, user, body)),
            Err(e) => e,
        },
        (&Method::DELETE, ["v1", "caches", name, "users", user]) => {
            with_cache(registry, name, |c| match c.delete_user(user) {
                Ok(()) => ApiReply::ok(
                    StatusCode::OK,
                    json!({ "deleted": format!("{name}.{user}") }),
                ),
                Err(e) => e.into(),
            })
        }
        (&Method::POST, ["v1", "caches", name, "acl"]) => match require_json(content_type) {
            Ok(()) => with_cache(registry, name, |c| acl(c, body)),
            Err(e) => e,
        },
        (
            _,
            ["v1", "caches"]
            | ["v1", "caches", _]
            | ["v1", "caches", _, "usage" | "partitions" | "users" | "acl"]
            | ["v1", "caches", _, "users", _],
        ) => ApiReply::error(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed on {path}"),
        ),
        _ => ApiReply::error(ErrorCode::NotFound, format!("no route for {path}")),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiReply> {
    serde_json::from_slice(body).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => ErrorCode::InvalidRequest,
            _ => ErrorCode::InvalidJson,
        };
        ApiReply::error(code, e.to_string())
    })
}

fn check_description(d: &Option<String>) -> Result<(), ApiReply> {
    match d {
        Some(d) if d.len() > MAX_DESCRIPTION => Err(ApiReply::error(
            ErrorCode::InvalidRequest,
            format!("description is longer than {MAX_DESCRIPTION} bytes"),
        )),
        _ => Ok(()),
    }
}

fn create(registry: &Registry, endpoint: &Endpoint, body: &[u8]) -> ApiReply {
    let req: CreateRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if let Err(e) = check_description(&req.description) {
        return e;
    }
    let cluster_mode = match req.cluster_mode.as_deref().map(str::parse).transpose() {
        Ok(mode) => mode.unwrap_or_default(),
        Err(e) => return ApiReply::error(ErrorCode::InvalidRequest, e),
    };
    let engine = match req.engine.as_deref().map(str::parse).transpose() {
        Ok(engine) => engine.unwrap_or_default(),
        Err(e) => return ApiReply::error(ErrorCode::InvalidRequest, e),
    };
    let new = NewCache {
        cluster_mode,
        engine,
        item_size_max: req.item_size_max,
        name: req.name,
        description: req.description.unwrap_or_default(),
        limits: req.usage_limits.unwrap_or_default(),
        token: req.auth.and_then(|a| a.token),
        open: false,
        created_at: None,
    };
    match registry.create(new) {
        Ok((cache, token)) => {
            let mut body = describe(&cache, endpoint);
            body["token"] = json!(token);
            ApiReply::ok(StatusCode::CREATED, body)
        }
        Err(e) => e.into(),
    }
}

fn patch(registry: &Registry, endpoint: &Endpoint, name: &str, body: &[u8]) -> ApiReply {
    let req: PatchRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if req.cluster_mode.is_some() {
        return ApiReply::error(
            ErrorCode::InvalidRequest,
            "cluster_mode cannot be changed: it is chosen when the cache is created",
        );
    }
    if req.engine.is_some() {
        return ApiReply::error(
            ErrorCode::InvalidRequest,
            "engine cannot be changed: it is chosen when the cache is created",
        );
    }
    if let Err(e) = check_description(&req.description) {
        return e;
    }
    if let Some(n) = req.item_size_max {
        match registry.get(name) {
            None => return RegistryError::NotFound(name.to_string()).into(),
            Some(c) if c.engine != super::registry::Engine::Memcached => {
                return ApiReply::error(
                    ErrorCode::InvalidRequest,
                    "item_size_max is a setting of memcached-engine caches",
                );
            }
            Some(c) => match super::registry::validate_item_size_max(n) {
                Ok(()) => c.settings.write().item_size_max = n,
                Err(e) => return ApiReply::error(ErrorCode::InvalidRequest, e),
            },
        }
    }
    let token = match &req.auth {
        Some(a) if a.rotate && a.token.is_some() => {
            return ApiReply::error(
                ErrorCode::InvalidRequest,
                "give auth.rotate or auth.token, not both",
            );
        }
        Some(a) if !a.rotate && a.token.is_none() && !a.revoke_previous => {
            return ApiReply::error(
                ErrorCode::InvalidRequest,
                "auth needs rotate: true, a token or revoke_previous: true",
            );
        }
        Some(a) if a.revoke_previous && (a.rotate || a.token.is_some() || a.keep_previous) => {
            return ApiReply::error(ErrorCode::InvalidRequest, "auth.revoke_previous goes alone");
        }
        Some(a) if a.revoke_previous => match registry.revoke_previous_tokens(name) {
            Ok(()) => None,
            Err(e) => return e.into(),
        },
        Some(a) => match registry.rotate_token(name, a.token.clone(), a.keep_previous) {
            Ok(t) => Some(t),
            Err(e) => return e.into(),
        },
        None => None,
    };
    match registry.update(name, req.description, req.usage_limits) {
        Ok(cache) => {
            let mut body = describe(&cache, endpoint);
            if let Some(t) = token {
                body["token"] = json!(t);
            }
            ApiReply::ok(StatusCode::OK, body)
        }
        Err(e) => e.into(),
    }
}

fn with_cache(registry: &Registry, name: &str, f: impl FnOnce(&Cache) -> ApiReply) -> ApiReply {
    match registry.get(name) {
        Some(c) => f(&c),
        None => RegistryError::NotFound(name.to_string()).into(),
    }
}

/// `ACL SETUSER` / `DELUSER` of a proxy's client, applied by control
/// (which owns the users).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum AclRequest {
    Setuser { name: String, rules: Vec<String> },
    Deluser { names: Vec<String> },
}

fn acl(cache: &Cache, body: &[u8]) -> ApiReply {
    match parse::<AclRequest>(body) {
        Err(e) => e,
        Ok(AclRequest::Setuser { name, rules }) => match cache.set_user_rules(&name, &rules) {
            Ok(()) => ApiReply::ok(StatusCode::OK, json!({ "ok": true })),
            Err(e) => e.into(),
        },
        Ok(AclRequest::Deluser { names }) => {
            let deleted = names
                .iter()
                .filter(|n| cache.delete_user(n).is_ok())
                .count();
            ApiReply::ok(StatusCode::OK, json!({ "deleted": deleted }))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserRequest {
    name: String,
    access_string: String,
    #[serde(default)]
    passwords: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchUserRequest {
    #[serde(default)]
    access_string: Option<String>,
    /// Replaces every password.
    #[serde(default)]
    passwords: Option<Vec<String>>,
    /// Closes the connections logged in as this user.
    #[serde(default)]
    disconnect: bool,
}

fn create_user(cache: &Cache, body: &[u8]) -> ApiReply {
    let req: CreateUserRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match cache.add_user(&req.name, &req.access_string, &req.passwords) {
        Ok(u) => ApiReply::ok(StatusCode::CREATED, describe_user(cache, &u)),
        Err(e) => e.into(),
    }
}

fn patch_user(cache: &Cache, user: &str, body: &[u8]) -> ApiReply {
    let req: PatchUserRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match cache.update_user(
        user,
        req.access_string.as_deref(),
        req.passwords.as_deref(),
        req.disconnect,
    ) {
        Ok(u) => ApiReply::ok(StatusCode::OK, describe_user(cache, &u)),
        Err(e) => e.into(),
    }
}

/// A user as the API shows it: never its passwords, only how many.
fn describe_user(cache: &Cache, user: &crate::acl::User) -> Json {
    let access = user.access();
    json!({
        "name": user.name,
        "login": format!("{}.{}", cache.name, user.name),
        "enabled": access.enabled(),
        "access_string": access.describe(),
        "passwords": access.password_count(),
    })
}

/// The JSON description of a cache (never its tokens).
pub fn describe(cache: &Cache, endpoint: &Endpoint) -> Json {
    let settings = cache.settings.read().clone();
    let totals = cache.pool.totals();
    let usage = &cache.usage;
    let load = crate::metering::Usage::load;
    let address = match (cache.engine, &endpoint.1) {
        (super::registry::Engine::Memcached, Some(mc)) => mc,
        _ => &endpoint.0,
    };
    let mut body = json!({
        "name": cache.name,
        "description": settings.description,
        "status": if cache.is_deleted() { "deleting" } else { "available" },
        "created_at": rfc3339(cache.created_at),
        "endpoint": {"address": &*address.host, "port": address.port},
        "auth": {"required": !cache.open, "tokens": usize::from(cache.has_tokens())},
        "engine": cache.engine.as_str(),
        "cluster_mode": cache.pool.cluster_mode().as_str(),
        "usage_limits": settings.limits,
        "usage": {
            "items": totals.keys,
            "data_stored_bytes": totals.used_bytes,
            "connections": load(&usage.connected),
            "commands_processed": usage.commands_processed(),
        },
        "partitions": cache.pool.partitions().len(),
    });
    if cache.engine == super::registry::Engine::Memcached {
        body["item_size_max"] = json!(settings.item_size_max);
    }
    body
}

/// The partition map of a cache, in slot order. On `stratus control`, the
/// ranges and nodes are control's table as last sent to the nodes, with
/// the figures the nodes last reported.
pub fn partitions(registry: &Registry, cache: &Cache) -> Json {
    let view = |v: PartitionView, node: Option<String>| {
        json!({
            "id": v.id,
            "slots": {"first": v.stats.first_slot, "last": v.stats.last_slot},
            "keys": v.stats.keys,
            "bytes": v.stats.used_bytes,
            "ecpu_per_second": v.ecpu_per_sec,
            "age_seconds": v.age.as_secs(),
            "last_change": {"kind": v.last_event.kind, "reason": v.last_event.reason, "at": rfc3339(v.last_event.at)},
            "hot_slot": v.hot_slot,
            "node": node,
        })
    };
    let parts: Vec<Json> = match registry.placer() {
        Some(placer) => placer
            .ranges(&cache.name)
            .into_iter()
            .map(|part| {
                let mut v = match cache.pool.partition(part.id) {
                    Some(h) => h.view(),
                    None => PartitionView::placed(part.id),
                };
                // The table's range, whatever the figures last said.
                (v.stats.first_slot, v.stats.last_slot) = (part.first, part.last);
                view(v, Some(part.node.to_string()))
            })
            .collect(),
        None => cache
            .pool
            .partitions()
            .into_iter()
            .map(|p| view(p.view(), p.node().map(|n| n.to_string())))
            .collect(),
    };
    json!({"name": cache.name, "epoch": cache.pool.epoch(), "partitions": parts})
}

/// A proxy checks in (`stratus proxy`, each follow period): it reports
/// the ECPU/s it used by cache and gets the caches to serve and its share
/// of each cache's ECPU/s limit.
fn check_in(registry: &Registry, proxy: &str, body: &[u8]) -> ApiReply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CheckIn {
        used: std::collections::HashMap<String, f64>,
        /// Milli-ECPU each slot served since the proxy's last check-in,
        /// by cache: `[[slot, milli-ECPU], ...]`, slots with none left out.
        #[serde(default)]
        loads: std::collections::HashMap<String, Vec<(u16, u64)>>,
    }
    let mut req: CheckIn = match parse(body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if proxy.is_empty() || proxy.len() > 64 {
        return ApiReply::error(
            ErrorCode::InvalidRequest,
            "a proxy id is 1 to 64 characters",
        );
    }
    let used = std::mem::take(&mut req.used)
        .into_iter()
        .filter(|(_, v)| v.is_finite() && *v >= 0.0)
        .collect();
    // What the proxies served adds to each slot's load: control's
    // autoscaler splits on it.
    for (name, loads) in &req.loads {
        if let Some(cache) = registry.get(name) {
            for &(slot, milli) in loads {
                if slot < crate::partition::SLOTS {
                    cache.pool.record_load(slot, milli);
                }
            }
        }
    }
    match registry.check_in(proxy, used) {
        Ok(shares) => ApiReply::ok(
            StatusCode::OK,
            json!({ "caches": registry.placement(), "shares": shares }),
        ),
        Err(e) => e.into(),
    }
}

/// The nodes caches are placed on (`stratus control`), each with its
/// state, the partitions it hosts, and their keys, bytes and ECPU/s as
/// last read.
fn nodes(registry: &Registry) -> Json {
    let Some(placer) = registry.placer() else {
        return json!({ "nodes": [] });
    };
    let placed = placer.partitions();
    let caches = registry.list();
    let nodes: Vec<Json> = placer
        .nodes()
        .iter()
        .map(|node| {
            let mut partitions = Vec::new();
            let (mut keys, mut bytes, mut load) = (0, 0, 0.0);
            for (cache, id, _) in placed.iter().filter(|(_, _, n)| *n == node.addr()) {
                partitions.push(json!({"cache": cache, "id": id}));
                let part = caches
                    .iter()
                    .find(|c| &c.name == cache)
                    .and_then(|c| c.pool.partition(*id));
                if let Some(part) = part {
                    let v = part.view();
                    keys += v.stats.keys;
                    bytes += v.stats.used_bytes;
                    load += v.ecpu_per_sec;
                }
            }
            let state = match (node.client.up(), node.draining()) {
                (false, _) => "down",
                (true, true) => "draining",
                (true, false) => "up",
            };
            json!({
                "id": node.id,
                "addr": node.addr().to_string(),
                "state": state,
                "partitions": partitions,
                "keys": keys,
                "bytes": bytes,
                "ecpu_per_second": load,
            })
        })
        .collect();
    json!({ "nodes": nodes })
}

/// Routes that change where partitions are (`stratus control`): they wait
/// for nodes, so they run here, not in [`handle`]; `None` for any other
/// request.
///
/// ```text
/// POST /v1/caches/{name}/partitions/{id}/move   {"node": "<node id>"}
/// POST /v1/caches/{name}/partitions/{id}/split  {"at": slot}
/// POST /v1/caches/{name}/partitions/{id}/merge  {"with": <right neighbour id>}
/// POST /v1/nodes/{id}/drain                     (empty body)
/// ```
pub async fn handle_placement(registry: &Registry, req: ApiRequest<'_>) -> Option<ApiReply> {
    let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(1).collect();
    let op = match (req.method, segments.as_slice()) {
        (&Method::POST, ["v1", "caches", name, "partitions", id, op])
            if matches!(*op, "move" | "split" | "merge") =>
        {
            Some((*name, *id, *op))
        }
        (&Method::POST, ["v1", "nodes", _, "drain"]) => None,
        _ => return None,
    };
    let Some(placer) = registry.placer() else {
        return Some(ApiReply::error(
            ErrorCode::NotFound,
            "partitions are placed by stratus control",
        ));
    };
    let Some((name, id, op)) = op else {
        let node = segments[2];
        return Some(match placer.drain(node) {
            Ok(id) => ApiReply::ok(StatusCode::ACCEPTED, json!({"draining": id})),
            Err(e) => placement_error(e),
        });
    };
    if let Err(e) = require_json(req.content_type) {
        return Some(e);
    }
    if registry.get(name).is_none() {
        return Some(RegistryError::NotFound(name.to_string()).into());
    }
    let Ok(id) = id.parse::<u64>() else {
        return Some(ApiReply::error(
            ErrorCode::NotFound,
            format!("no partition {id}"),
        ));
    };
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Move {
        node: String,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Split {
        at: u16,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Merge {
        with: u64,
    }
    let done = match op {
        "move" => match parse::<Move>(req.body) {
            Ok(Move { node }) => placer.move_partition(name, id, &node).await.map(
                |moved| json!({"partition": moved, "node": placer.node(&node).map(|n| n.id.clone())}),
            ),
            Err(bad) => return Some(bad),
        },
        "split" => match parse::<Split>(req.body) {
            Ok(Split { at }) => placer
                .split(name, id, at)
                .await
                .map(|new| json!({"partition": id, "new_partition": new})),
            Err(bad) => return Some(bad),
        },
        _ => match parse::<Merge>(req.body) {
            Ok(Merge { with }) => placer
                .merge(name, id, with)
                .await
                .map(|()| json!({"partition": id})),
            Err(bad) => return Some(bad),
        },
    };
    if let Some(cache) = registry.get(name) {
        // What the API shows next: the table as the nodes have it now.
        let _ = cache.pool.load_routes().await;
    }
    Some(match done {
        Ok(body) => ApiReply::ok(StatusCode::OK, body),
        Err(e) => placement_error(e),
    })
}

fn placement_error(e: PlaceError) -> ApiReply {
    let code = match e {
        PlaceError::NotFound(_) => ErrorCode::NotFound,
        PlaceError::Invalid(_) => ErrorCode::InvalidRequest,
        PlaceError::Failed(_) => ErrorCode::Unavailable,
    };
    ApiReply::error(code, e.to_string())
}

/// The billing view of a cache: the same figures `/metrics` exports.
pub fn usage(cache: &Cache) -> Json {
    let u = &cache.usage;
    let load = crate::metering::Usage::load;
    let ecpu = |milli: u64| milli as f64 / 1000.0;
    let totals = cache.pool.totals();
    let limits = cache.limits();
    let by_family = |f: &dyn Fn(crate::cmd::Family) -> Json| -> serde_json::Map<String, Json> {
        crate::cmd::Family::ALL
            .iter()
            .map(|fam| (fam.label().to_string(), f(*fam)))
            .collect()
    };
    let rejected: serde_json::Map<String, Json> = crate::metering::Rejection::ALL
        .iter()
        .map(|r| (r.label().to_string(), json!(u.rejected(*r))))
        .collect();
    json!({
        "name": cache.name,
        "ecpu_total": ecpu(u.ecpu_total_milli()),
        "ecpu_by_family": by_family(&|f| json!(ecpu(load(&u.ecpu_milli[f.index()])))),
        "commands_total": u.commands_total(),
        "commands_by_family": by_family(&|f| json!(load(&u.commands[f.index()]))),
        "unmetered_commands": load(&u.unmetered),
        "throttled_commands": u.rejected(crate::metering::Rejection::Throttled),
        "oom_rejections": u.rejected(crate::metering::Rejection::Oom),
        "rejected_commands": rejected,
        "data_stored_bytes": totals.used_bytes,
        "billed_data_stored_bytes": (totals.used_bytes as u64).max(limits.min_storage_bytes()),
        "data_stored_byte_seconds": load(&u.byte_seconds) + load(&u.billed_by_control[0]),
        "billed_data_stored_byte_seconds":
            load(&u.billed_byte_seconds) + load(&u.billed_by_control[1]),
        "items": totals.keys,
        "cache_hits": totals.events.hits,
        "cache_misses": totals.events.misses,
        "evictions": totals.events.evicted,
        "expired_keys": totals.events.expired,
        "network_bytes_in": load(&u.net_in),
        "network_bytes_out": load(&u.net_out),
        "connections": load(&u.connected),
        "usage_limits": limits,
    })
}

/// Formats a time as RFC 3339 UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn setup() -> (Registry, &'static Endpoint) {
        (
            Registry::new(Arc::new(crate::metrics::Metrics::new())),
            Box::leak(Box::new(Endpoint("127.0.0.1:6379".parse().unwrap(), None))),
        )
    }

    fn call(r: &Registry, e: &Endpoint, m: Method, path: &str, body: &str) -> (u16, Json) {
        call_typed(r, e, m, path, Some(b"application/json"), body)
    }

    fn call_typed(
        r: &Registry,
        e: &Endpoint,
        m: Method,
        path: &str,
        content_type: Option<&[u8]>,
        body: &str,
    ) -> (u16, Json) {
        let req = ApiRequest {
            method: &m,
            path,
            content_type,
            body: body.as_bytes(),
        };
        let reply = handle(r, e, req);
        (reply.status.as_u16(), reply.body)
    }

    #[test]
    fn json_media_type_is_recognised() {
        let yes: &[&[u8]] = &[
            b"application/json",
            b"Application/JSON",
            b"application/json; charset=utf-8",
            b"application/json;charset=UTF-8",
            b"  application/json  ; charset=utf-8",
        ];
        for v in yes {
            assert!(is_json_media_type(Some(v)), "{v:?}");
        }
        let no: &[&[u8]] = &[
            b"",
            b"text/plain",
            b"text/plain; charset=utf-8",
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=x",
            b"application/jsonp",
            b"application/json-patch+json",
            b"application/ json",
            b"\xffapplication/json",
        ];
        for v in no {
            assert!(!is_json_media_type(Some(v)), "{v:?}");
        }
        assert!(!is_json_media_type(None));
    }

    #[test]
    fn bodies_without_json_content_type_get_415_and_change_nothing() {
        let (r, e) = setup();
        let create = r#"{"name": "orders"}"#;
        for ct in [
            None,
            Some(&b"text/plain"[..]),
            Some(b"application/x-www-form-urlencoded"),
        ] {
            let (s, j) = call_typed(&r, e, Method::POST, "/v1/caches", ct, create);
            assert_eq!(
                (s, j["error"]["code"].as_str().unwrap()),
                (415, "unsupported_media_type"),
                "{ct:?}: {j}"
            );
        }
        assert!(r.list().is_empty());
        let (s, _) = call(&r, e, Method::POST, "/v1/caches", create);
        assert_eq!(s, 201);
        let (s, j) = call_typed(
            &r,
            e,
            Method::PATCH,
            "/v1/caches/orders",
            Some(b"text/plain"),
            r#"{"description": "changed"}"#,
        );
        assert_eq!(
            (s, j["error"]["code"].as_str().unwrap()),
            (415, "unsupported_media_type")
        );
        assert_eq!(r.get("orders").unwrap().settings.read().description, "");
        // Bodiless methods need no content type.
        let (s, _) = call_typed(&r, e, Method::GET, "/v1/caches/orders", None, "");
        assert_eq!(s, 200);
    }

    /// The README's table of error codes lists exactly [`ErrorCode::ALL`].
    #[test]
    fn readme_lists_every_error_code() {
        let readme = include_str!("../../README.md");
        let mut listed: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once("` | "))
            .filter(|(code, rest)| {
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    && rest.trim_start().starts_with(|c: char| c.is_ascii_digit())
            })
            .map(|(code, _)| code)
            .collect();
        listed.sort_unstable();
        let mut all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        all.sort_unstable();
        assert_eq!(listed, all);
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
            assert!(readme.contains(&row), "README row {row:?}");
        }
    }

    #[test]
    fn bad_requests_get_4xx_with_error_codes() {
        let (r, e) = setup();
        let cases: &[(Method, &str, &str, u16, &str)] = &[
            (Method::POST, "/v1/caches", "{", 400, "invalid_json"),
            (Method::POST, "/v1/caches", "[]", 400, "invalid_request"),
            (
                Method::POST,
                "/v1/caches",
                r#"{"name": 5}"#,
                400,
                "invalid_request",
            ),
            (
                Method::POST,
                "/v1/caches",
                r#"{"name": "a", "colour": 1}"#,
                400,
                "invalid_request",
            ),
            (
                Method::POST,
                "/v1/caches",
                r#"{"name": "Bad_Name"}"#,
                400,
                "invalid_request",
            ),
            (
                Method::POST,
                "/v1/caches",
                r#"{"name": "a", "usage_limits": {"ecpu_per_second": {"maximum": -1}}}"#,
                400,
                "invalid_request",
            ),
            (
                Method::POST,
                "/v1/caches",
                r#"{"name": "a", "usage_limits": {"ecpu_per_second": {"maximun": 5}}}"#,
                400,
                "invalid_request",
            ),
            (
                Method::POST,
                "/v1/caches",
                r#"{"name": "a", "usage_limits": {"data_storage": {"minimum": 5, "maximum": 1}}}"#,
                400,
                "invalid_request",
            ),
            (
                Method::POST,
                "/v1/caches",
                r#"{"name": "a", "usage_limits": {"data_storage": {"unit": "TB"}}}"#,
                400,
                "invalid_request",
            ),
            (
                Method::POST,
                "/v1/caches",
                r#"{"name": "a", "auth": {"token": "short"}}"#,
                400,
                "invalid_request",
            ),
            (Method::GET, "/v1/caches/nope", "", 404, "not_found"),
            (Method::DELETE, "/v1/caches/nope", "", 404, "not_found"),
            (Method::PATCH, "/v1/caches/nope", "{}", 404, "not_found"),
            (Method::PUT, "/v1/caches", "", 405, "method_not_allowed"),
            (Method::GET, "/v2/whatever", "", 404, "not_found"),
        ];
        for (m, path, body, status, code) in cases {
            let (s, j) = call(&r, e, m.clone(), path, body);
            assert_eq!(
                (s, j["error"]["code"].as_str().unwrap()),
                (*status, *code),
                "{m} {path} {body}: {j}"
            );
        }
        assert!(r.list().is_empty());
    }

    #[test]
    fn create_describe_patch_delete() {
        let (r, e) = setup();
        let (s, j) = call(
            &r,
            e,
            Method::POST,
            "/v1/caches",
            r#"{"name": "orders", "usage_limits": {"DataStorage": {"Maximum": 10, "Unit": "GB"}, "ECPUPerSecond": {"Maximum": 15000}}}"#,
        );
        assert_eq!(s, 201, "{j}");
        assert_eq!(j["token"].as_str().unwrap().len(), 40);
        assert_eq!(j["usage_limits"]["data_storage"]["maximum"], 10);
        assert_eq!(j["usage_limits"]["ecpu_per_second"]["maximum"], 15000);
        let (s, j) = call(&r, e, Method::POST, "/v1/caches", r#"{"name": "orders"}"#);
        assert_eq!(
            (s, j["error"]["code"].as_str().unwrap()),
            (409, "already_exists")
        );
        let (s, j) = call(&r, e, Method::GET, "/v1/caches/orders", "");
        assert_eq!(s, 200);
        assert!(j.get("token").is_none());
        assert_eq!(j["endpoint"]["port"], 6379);
        let (s, j) = call(
            &r,
            e,
            Method::PATCH,
            "/v1/caches/orders",
            r#"{"description": "d", "auth": {"rotate": true}}"#,
        );
        assert_eq!(s, 200);
        assert_eq!(j["description"], "d");
        assert!(j["token"].is_string());
        let (_, j) = call(&r, e, Method::GET, "/v1/caches", "");
        assert_eq!(j["caches"].as_array().unwrap().len(), 1);
        let (s, _) = call(&r, e, Method::DELETE, "/v1/caches/orders", "");
        assert_eq!(s, 200);
        assert!(r.get("orders").is_none());
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_651_200)),
            "2026-11-26T00:00:00Z"
        );
    }
}
