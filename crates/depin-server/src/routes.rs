//! HTTP routes under `/v1`. Handlers parse, call the coordinator or store,
//! and shape JSON; no rule lives here.

use crate::{ApiError, AppState, now_ms};
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use depin_core::{PublicKey, Sector};
use depin_store::DeviceRow;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::IntErrorKind;
use std::sync::Arc;
use std::time::Duration;

type AppResult<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

/// The whole application: the API routes behind the request-target length
/// check and the request timeout.
pub fn router(
    state: Arc<AppState>,
    config: &crate::ServerConfig,
    sector_endpoints: Vec<Endpoint>,
) -> Router {
    let max_uri_bytes = config.max_uri_bytes;
    let request_timeout = config.request_timeout;
    // The API sits in an outer router as its fallback service so that the
    // limits run before any path matching or percent-decoding: an oversized
    // target is refused without being looked at, whichever route it names.
    // The last layer added runs first.
    Router::new()
        .fallback_service(api(state, config.max_body_bytes, sector_endpoints))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            limit_request_time(request_timeout, req, next)
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            limit_uri_length(max_uri_bytes, req, next)
        }))
}

/// One endpoint: the router mounts it and the OpenAPI document lists it, from
/// this one value, so no route can be missing from the document.
pub struct Endpoint {
    pub doc: crate::openapi::Doc,
    pub handler: MethodRouter<Arc<AppState>>,
}

impl Endpoint {
    pub fn new(
        method: &'static str,
        path: &'static str,
        summary: &'static str,
        handler: MethodRouter<Arc<AppState>>,
    ) -> Endpoint {
        Endpoint {
            doc: crate::openapi::Doc {
                path,
                method,
                summary,
            },
            handler,
        }
    }
}

/// The backbone's endpoints; `operator::endpoints` adds the operator view.
fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(
            "get",
            "/healthz",
            "Liveness: `ok`, or 503 with what is wrong (writer, closer, storage).",
            get(healthz),
        ),
        Endpoint::new(
            "get",
            "/metrics",
            "Prometheus metrics in text format.",
            get(metrics),
        ),
        Endpoint::new(
            "get",
            "/v1/policy",
            "The reward policy in force, with its id.",
            get(policy),
        ),
        Endpoint::new(
            "post",
            "/v1/devices",
            "Register a device: body is a DeviceCertificate envelope signed by the operator key, carrying the device key's possession signature.",
            post(onboard),
        ),
        Endpoint::new(
            "post",
            "/v1/devices/revoke",
            "Revoke a device key: body is a Revocation envelope signed by its operator.",
            post(revoke),
        ),
        Endpoint::new(
            "post",
            "/v1/devices/rotate",
            "Replace a device key: body is a KeyRotation envelope signed by its operator and, inside, by the new key.",
            post(rotate),
        ),
        Endpoint::new(
            "get",
            "/v1/devices/{device}",
            "A device: registration, latest telemetry, rewards and reason counts.",
            get(device),
        ),
        Endpoint::new(
            "get",
            "/v1/operators/{operator}/devices",
            "An operator's devices.",
            get(operator_devices),
        ),
        Endpoint::new(
            "get",
            "/v1/operators/{operator}/earnings",
            "Every reward line of an operator's devices (all closed epochs), with the epoch's end time: what `depin operator earnings` turns into a tax CSV.",
            get(operator_rewards),
        ),
        Endpoint::new(
            "post",
            "/v1/reports",
            "Submit a ReportBatch of device-signed envelopes; returns a verdict per report. 503 storage_unavailable: nothing was stored, send again.",
            post(reports),
        ),
        Endpoint::new("get", "/v1/epochs", "Closed epochs.", get(epochs)),
        Endpoint::new(
            "get",
            "/v1/epochs/{epoch}",
            "One closed epoch: emission, minted, per-sector totals, claim root.",
            get(epoch),
        ),
        Endpoint::new(
            "get",
            "/v1/balances/{account}",
            "Ledger balance of an account (operator hex key or ledger account key).",
            get(balance),
        ),
        Endpoint::new(
            "get",
            "/v1/claims/{epoch}",
            "The epoch's claim tree as an OpenZeppelin StandardMerkleTree dump.",
            get(claims_dump),
        ),
        Endpoint::new(
            "get",
            "/v1/claims/{epoch}/{account}",
            "An account's cumulative claim with its Merkle proof.",
            get(claim),
        ),
        Endpoint::new(
            "get",
            "/v1/economics/rates",
            "Current reward rates per sector and H3 cell from recent epochs.",
            get(rates),
        ),
    ]
}

const OPENAPI_DOC: crate::openapi::Doc = crate::openapi::Doc {
    path: "/v1/openapi.json",
    method: "get",
    summary: "This document.",
};

fn api(state: Arc<AppState>, max_body_bytes: usize, sector_endpoints: Vec<Endpoint>) -> Router {
    let table: Vec<Endpoint> = endpoints()
        .into_iter()
        .chain(crate::operator::endpoints())
        .chain(crate::consumer::endpoints())
        .chain(crate::work::endpoints())
        .chain(crate::dashboard::endpoints())
        .chain(sector_endpoints)
        .collect();
    let mut docs: Vec<crate::openapi::Doc> = table.iter().map(|e| e.doc).collect();
    docs.push(OPENAPI_DOC);
    let document = Arc::new(crate::openapi::document(&docs));
    // Several methods on one path share one MethodRouter.
    let mut by_path: BTreeMap<&'static str, MethodRouter<Arc<AppState>>> = BTreeMap::new();
    for e in table {
        let merged = match by_path.remove(e.doc.path) {
            Some(existing) => existing.merge(e.handler),
            None => e.handler,
        };
        by_path.insert(e.doc.path, merged);
    }
    let mut router = Router::new().route(
        OPENAPI_DOC.path,
        get(move || {
            let document = document.clone();
            async move { Json((*document).clone()) }
        }),
    );
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    router
        // the route template for the request metrics (see metrics.rs)
        .route_layer(middleware::from_fn(crate::metrics::mark_route))
        .fallback(|| async { ApiError::not_found("no such endpoint; see /v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server hit a bug handling this request",
            )
            .into_response()
        }))
        .with_state(state)
}

/// Answers `414 uri_too_long` for a request target longer than `max` bytes.
/// Hyper refuses request heads beyond its 64 KiB limit with an empty `431`
/// before any request exists (see `lib.rs`); every target short enough to
/// fit reaches this check and gets our JSON shape.
async fn limit_uri_length(max: usize, req: Request, next: Next) -> Response {
    let uri = req.uri();
    // The target as the client sent it: origin form is the path and query,
    // absolute form adds the authority (the scheme is a few bytes at most).
    let len = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if len > max {
        return ApiError::uri_too_long(format!(
            "the request target is {len} bytes; the server accepts at most {max}"
        ))
        .into_response();
    }
    next.run(req).await
}

/// Bounds the whole handling of a request, reading its body included, so a
/// client that announces a body and never sends it (or a handler stuck on the
/// store) cannot hold a connection and a task forever. On expiry the handler
/// future is dropped and the client gets `408 request_timeout`; hyper then
/// closes the connection if the body was not read to its end, since the
/// framing of whatever follows is unknown.
async fn limit_request_time(limit: Duration, req: Request<Body>, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::request_timeout(format!(
            "the request was not received and answered within {} ms",
            limit.as_millis()
        ))
        .into_response(),
    }
}

/// `axum::extract::Path` whose rejections (text that is not UTF-8 once
/// percent-decoded, a value that does not deserialize) come back as JSON
/// errors like every other. Every handler takes its path parameters through
/// this, never through `Path` itself.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(rejection(e.status(), "path", e.body_text())),
        }
    }
}

/// `axum::extract::Query` with JSON rejections; see [`ApiPath`].
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(rejection(e.status(), "query string", e.body_text())),
        }
    }
}

/// An extractor rejection as an [`ApiError`]. axum marks the ones caused by a
/// mismatch between a route and its extractor (a programming error) as 5xx;
/// everything else is the client's input.
fn rejection(status: StatusCode, what: &str, text: String) -> ApiError {
    if status.is_server_error() {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the server cannot read this {what}: {text}"),
        )
    } else {
        ApiError::bad_request(format!("the request {what} is invalid: {text}"))
    }
}

/// A raw request body whose rejections (too large, unreadable) come back as
/// JSON errors like every other.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(b) if b.is_empty() => Err(ApiError::bad_request("the request body is empty")),
            Ok(b) => Ok(RawBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the server accepts",
            )),
            Err(e) => Err(ApiError::bad_request(format!(
                "unreadable body: {}",
                e.body_text()
            ))),
        }
    }
}

pub fn parse_key(s: &str, what: &str) -> AppResult<PublicKey> {
    s.parse().map_err(|e| {
        ApiError::bad_request(format!("{what} must be a 64-character hex public key: {e}"))
    })
}

/// The largest integer a path or query parameter may carry: the store keeps
/// integers as i64, and a larger value would only fail deeper down (it used
/// to reach a panic in the store's conversion).
const MAX_PARAM: u64 = i64::MAX as u64;

/// Parses a non-negative integer parameter in `0..=i64::MAX`: garbage and
/// negative numbers are `bad_request`, well-formed numbers beyond the limit
/// `out_of_range`, each naming the parameter.
pub(crate) fn parse_index(s: &str, what: &str) -> AppResult<u64> {
    let out_of_range = || {
        ApiError::out_of_range(format!(
            "{what} must be at most {MAX_PARAM} (i64::MAX), got {s:?}"
        ))
    };
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_PARAM => Ok(n),
        Ok(_) => Err(out_of_range()),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => Err(out_of_range()),
        Err(_) => Err(ApiError::bad_request(format!(
            "{what} must be a non-negative integer, got {s:?}"
        ))),
    }
}

fn parse_epoch(s: &str) -> AppResult<u64> {
    parse_index(s, "epoch")
}

async fn metrics(State(st): St) -> Response {
    crate::metrics::scrape(&st).await
}

async fn policy(State(st): St) -> AppResult<Json<Value>> {
    let p = st.coordinator.policy();
    let mut v = serde_json::to_value(p)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    v["policy_id"] = json!(p.id());
    Ok(Json(v))
}

// ------------------------------------------------------------------ devices

/// A heartbeat's temperature for people: agents send 0 for "no sensor" (a
/// real reading of exactly 0.00 °C is sent as 0.01), so 0 is shown as unknown
/// (`null`), never as a freezing device.
fn temperature_c(centi: i64) -> Option<f64> {
    (centi != 0).then(|| centi as f64 / 100.0)
}

async fn device_view(st: &AppState, d: &DeviceRow) -> AppResult<Value> {
    let store = st.coordinator.store();
    let telemetry = store.telemetry(&d.device).await?;
    let rewards = store.device_rewards(&d.device).await?;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for (_, line) in &rewards {
        for r in line.reasons.split(',').filter(|r| !r.is_empty()) {
            *reasons.entry(r.to_string()).or_default() += 1;
        }
    }
    for (r, n) in store.rejection_counts(Some(&d.device)).await? {
        *reasons.entry(r).or_default() += n;
    }
    let total: u64 = rewards.iter().map(|(_, l)| l.reward + l.fees).sum();
    Ok(json!({
        "device": d.device,
        "operator": d.operator,
        "sector": Sector::from_code(d.sector).map(|s| s.as_str()),
        "hardware_class": d.hardware_class,
        "firmware_version": d.firmware_version,
        "location": d.lat_micro.zip(d.lon_micro).map(|(la, lo)| json!({"lat": la as f64 / 1e6, "lon": lo as f64 / 1e6, "h3": d.h3_cell.map(|c| format!("{:x}", c as u64))})),
        "registered_ms": d.registered_ms,
        "revoked_ms": d.revoked_ms,
        "replaced_by": d.replaced_by,
        "last_seq": d.last_seq,
        "telemetry": telemetry.map(|t| json!({
            "timestamp_ms": t.timestamp_ms,
            "uptime_s": t.uptime_s,
            "temperature_c": temperature_c(t.temperature_centi_c),
            "firmware_version": t.firmware_version,
            "power_w": t.power_mw as f64 / 1000.0,
        })),
        "rewards_total": total,
        "epochs_rewarded": rewards.iter().filter(|(_, l)| l.reward > 0).count(),
        "reasons": reasons,
    }))
}

/// Refuses a client that spent its budget for unaccountable work (see
/// [`crate::budget`]) before the request costs anything.
/// The client a request is charged to (see [`crate::budget`]).
pub(crate) fn client_ip(
    st: &AppState,
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
) -> std::net::IpAddr {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    st.budget.client(peer.ip(), forwarded)
}

pub(crate) fn check_budget(st: &AppState, client: std::net::IpAddr) -> AppResult<()> {
    if st.budget.allows(client) {
        return Ok(());
    }
    metrics::counter!("depin_unverified_budget_refusals_total").increment(1);
    Err(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many unverifiable messages or registrations from {client}; wait a minute and send only signed reports of registered devices"
        ),
    ))
}

async fn onboard(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> AppResult<(StatusCode, Json<Value>)> {
    let client = client_ip(&st, peer, &headers);
    check_budget(&st, client)?;
    // Every registration costs a row whoever asks: charge it, taken or not.
    st.budget.charge(client, 1);
    let row = st.coordinator.onboard(now_ms(), &body).await?;
    Ok((StatusCode::CREATED, Json(device_view(&st, &row).await?)))
}

async fn revoke(State(st): St, RawBody(body): RawBody) -> AppResult<Json<Value>> {
    let row = st.coordinator.revoke(now_ms(), &body).await?;
    Ok(Json(device_view(&st, &row).await?))
}

async fn rotate(State(st): St, RawBody(body): RawBody) -> AppResult<Json<Value>> {
    let row = st.coordinator.rotate(now_ms(), &body).await?;
    Ok(Json(device_view(&st, &row).await?))
}

async fn device(State(st): St, ApiPath(device): ApiPath<String>) -> AppResult<Json<Value>> {
    let key = parse_key(&device, "device")?;
    let row = st
        .coordinator
        .store()
        .device(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {key} is not registered")))?;
    Ok(Json(device_view(&st, &row).await?))
}

async fn operator_devices(
    State(st): St,
    ApiPath(operator): ApiPath<String>,
) -> AppResult<Json<Value>> {
    let key = parse_key(&operator, "operator")?;
    let mut out = Vec::new();
    for d in st.coordinator.store().devices(Some(&key)).await? {
        out.push(device_view(&st, &d).await?);
    }
    Ok(Json(Value::Array(out)))
}

/// Every reward line of the operator's devices (revoked ones included), in
/// epoch order per device, each with its epoch's end time so a client can
/// date it. Amounts are base units; `fees` is usage income net of the
/// protocol fee.
async fn operator_rewards(
    State(st): St,
    ApiPath(operator): ApiPath<String>,
) -> AppResult<Json<Value>> {
    let key = parse_key(&operator, "operator")?;
    let store = st.coordinator.store();
    let policy = st.coordinator.policy();
    let mut lines = Vec::new();
    for d in store.devices(Some(&key)).await? {
        for (epoch, l) in store.device_rewards(&d.device).await? {
            lines.push(json!({
                "device": d.device,
                "sector": Sector::from_code(l.sector).map(|s| s.as_str()),
                "epoch": epoch,
                "epoch_end_ms": policy.epoch_end_ms(epoch),
                "reward": l.reward,
                "fees": l.fees,
            }));
        }
    }
    Ok(Json(json!({
        "operator": key,
        "epoch_seconds": policy.epoch_seconds,
        "lines": lines,
    })))
}

// ------------------------------------------------------------------ reports

async fn reports(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> AppResult<Json<Value>> {
    let client = client_ip(&st, peer, &headers);
    check_budget(&st, client)?;
    let outcome = match st.coordinator.ingest(now_ms(), body.to_vec()).await {
        Ok(o) => o,
        Err(e) => {
            if matches!(e, depin_coordinator::CoordError::Rejected { .. }) {
                st.budget.charge(client, 1);
            }
            return Err(e.into());
        }
    };
    st.budget.charge(client, outcome.unverified);
    Ok(Json(
        serde_json::to_value(outcome).expect("outcome serialises"),
    ))
}

async fn healthz(State(st): St) -> Response {
    let problems = st.health.problems(st.coordinator.writer_alive());
    if problems.is_empty() {
        "ok".into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            problems.join("; "),
        )
        .into_response()
    }
}

// ------------------------------------------------------------------- epochs

async fn epoch_view(st: &AppState, row: &depin_store::EpochRow) -> AppResult<Value> {
    let totals = st.coordinator.store().sector_totals(row.epoch).await?;
    let per_sector: BTreeMap<&str, Value> = totals
        .iter()
        .filter_map(|t| {
            Sector::from_code(t.sector).map(|s| {
                (s.as_str(), json!({"emission": t.emission, "distributed": t.distributed, "devices": t.devices, "rewarded": t.rewarded}))
            })
        })
        .collect();
    Ok(json!({
        "epoch": row.epoch,
        "policy_id": row.policy_id,
        "closed_ms": row.closed_ms,
        "emission": row.emission,
        "minted": row.minted,
        "fees": row.fees,
        "burned": row.burned,
        "devices": row.devices,
        "sheet_hash": hex::encode(&row.sheet_hash),
        "claim_root": format!("0x{}", hex::encode(&row.claim_root)),
        "per_sector": per_sector,
    }))
}

async fn epochs(State(st): St) -> AppResult<Json<Value>> {
    let mut out = Vec::new();
    for row in st.coordinator.store().epochs().await? {
        out.push(epoch_view(&st, &row).await?);
    }
    Ok(Json(Value::Array(out)))
}

async fn epoch(State(st): St, ApiPath(epoch): ApiPath<String>) -> AppResult<Json<Value>> {
    let n = parse_epoch(&epoch)?;
    let row = st
        .coordinator
        .store()
        .epoch(n)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("epoch {n} is not closed")))?;
    Ok(Json(epoch_view(&st, &row).await?))
}

// ---------------------------------------------------------- money and claims

async fn balance(State(st): St, ApiPath(account): ApiPath<String>) -> AppResult<Json<Value>> {
    let key = if account.len() == 64 && account.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("operator:{}", account.to_ascii_lowercase())
    } else {
        depin_ledger::Account::parse_key(&account)
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .to_key()
    };
    let balance = st.coordinator.store().balance(&key).await?;
    Ok(Json(json!({ "account": key, "balance": balance })))
}

async fn tree(st: &AppState, epoch: u64) -> AppResult<Arc<depin_merkle::StandardMerkleTree>> {
    if let Some((_, t)) = st
        .claim_cache
        .lock()
        .expect("cache lock")
        .iter()
        .find(|(e, _)| *e == epoch)
    {
        return Ok(t.clone());
    }
    let t = Arc::new(st.coordinator.claim_tree(epoch).await?);
    let mut cache = st.claim_cache.lock().expect("cache lock");
    cache.push((epoch, t.clone()));
    // Closed epochs never change, so a small cache of recent trees is always valid.
    if cache.len() > 4 {
        cache.remove(0);
    }
    Ok(t)
}

async fn claims_dump(State(st): St, ApiPath(epoch): ApiPath<String>) -> AppResult<Response> {
    let t = tree(&st, parse_epoch(&epoch)?).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], t.to_json()).into_response())
}

async fn claim(
    State(st): St,
    ApiPath((epoch, account)): ApiPath<(String, String)>,
) -> AppResult<Json<Value>> {
    let n = parse_epoch(&epoch)?;
    let key = parse_key(&account, "account")?;
    let t = tree(&st, n).await?;
    let i = t.find(key.as_bytes()).ok_or_else(|| {
        ApiError::not_found(format!("account {key} has no claim as of epoch {n}"))
    })?;
    let leaf = t.leaves()[i];
    Ok(Json(json!({
        "epoch": n,
        "account": key,
        "amount": leaf.amount.to_string(),
        "leaf": depin_merkle::to_hex(&depin_merkle::leaf_hash(&leaf)),
        "proof": t.proof(i).iter().map(depin_merkle::to_hex).collect::<Vec<_>>(),
        "root": depin_merkle::to_hex(&t.root()),
    })))
}

// ---------------------------------------------------------------- economics

/// The query of `GET /v1/economics/rates`. The window is taken as text and
/// parsed by [`parse_index`] so that its errors name the parameter and the
/// limit; other parameters are ignored, a repeated `window` is refused.
#[derive(Deserialize)]
struct RatesQuery {
    window: Option<String>,
}

/// Current reward rates per sector and cell, from the last `window` closed
/// epochs: what `depin estimate --coordinator` projects from.
async fn rates(State(st): St, ApiQuery(q): ApiQuery<RatesQuery>) -> AppResult<Json<Value>> {
    let window = match q.window.as_deref() {
        None => 24,
        Some(w) => parse_index(w, "window (a number of epochs)")?,
    }
    .clamp(1, 24 * 30);
    let store = st.coordinator.store();
    let policy = st.coordinator.policy();
    let Some(last) = store.last_closed_epoch().await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_epochs",
            "no epoch has closed yet: no live rates to report",
        ));
    };
    let first = last.saturating_sub(window - 1);
    let mut per_device: BTreeMap<PublicKey, (Sector, u64)> = BTreeMap::new();
    // Only epochs that closed count towards the window: a network younger than the
    // window has fewer, and dividing its rewards by the full window would understate
    // them (and hide from `estimate` how little data there is).
    let mut closed = 0u64;
    for e in first..=last {
        if store.epoch(e).await?.is_none() {
            continue;
        }
        closed += 1;
        for l in store.reward_lines(e).await? {
            if let Some(s) = Sector::from_code(l.sector) {
                per_device.entry(l.device).or_insert((s, 0)).1 += l.reward + l.fees;
            }
        }
    }
    let devices = store.devices(None).await?;
    let cells: BTreeMap<PublicKey, String> = devices
        .iter()
        .filter_map(|d| d.h3_cell.map(|c| (d.device, format!("{:x}", c as u64))))
        .collect();
    let rewards: Vec<depin_economics::DeviceWindowReward> = per_device
        .iter()
        .map(|(d, (s, a))| depin_economics::DeviceWindowReward {
            sector: *s,
            base_units: *a,
            h3_cell: cells.get(d).cloned(),
        })
        .collect();
    let rates = depin_economics::rates_from_rewards(
        &policy.id(),
        policy.epoch_seconds,
        closed,
        &rewards,
        None,
    )
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(serde_json::to_value(rates).expect("rates serialise")))
}
