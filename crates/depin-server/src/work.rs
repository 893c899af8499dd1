//! `GET /v1/work`: the work orders open for a device (storage audits,
//! coverage beacons, benchmark jobs). The request carries a `WorkRequest`
//! envelope signed by the device key, hex-encoded in the `X-Depin-Request`
//! header (a GET has no body); the answer lists the device's unanswered
//! orders whose deadline has not passed, soonest first. Devices answer with
//! signed reports at `POST /v1/reports`.

use crate::routes::{Endpoint, check_budget, client_ip};
use crate::{ApiError, AppState, now_ms};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// The header that carries the signed request.
pub const WORK_REQUEST_HEADER: &str = "x-depin-request";

/// Longest header value accepted: a work request envelope is ~150 bytes.
const MAX_REQUEST_HEX: usize = 2_048;

pub fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::new(
        "get",
        "/v1/work",
        "Work orders open for a device. Header X-Depin-Request: hex of a WorkRequest envelope signed by the device key (timestamp within the allowed clock skew). Returns { device, work: [{ id, sector, answer_kind, body, deadline_ms, issued_epoch }] }, body and id in hex.",
        get(open_work),
    )]
}

async fn open_work(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let client = client_ip(&st, peer, &headers);
    check_budget(&st, client)?;
    let bytes = match request_bytes(&headers) {
        Ok(b) => b,
        Err(e) => {
            st.budget.charge(client, 1);
            return Err(e);
        }
    };
    let (device, work) = match st.coordinator.open_work(now_ms(), &bytes).await {
        Ok(w) => w,
        Err(e) => {
            // Unsigned, badly signed or unknown: nobody to hold to account.
            st.budget.charge(client, 1);
            return Err(e.into());
        }
    };
    Ok(Json(json!({
        "device": device.to_hex(),
        "work": work.iter().map(|w| json!({
            "id": hex::encode(w.id),
            "sector": w.sector,
            "answer_kind": w.answer_kind,
            "body": hex::encode(&w.body),
            "deadline_ms": w.deadline_ms,
            "issued_epoch": w.issued_epoch,
        })).collect::<Vec<_>>(),
    })))
}

fn request_bytes(headers: &HeaderMap) -> Result<Vec<u8>, ApiError> {
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m.to_string());
    let value = headers
        .get(WORK_REQUEST_HEADER)
        .ok_or_else(|| {
            bad("missing X-Depin-Request: hex of a WorkRequest envelope signed by the device key")
        })?
        .to_str()
        .map_err(|_| bad("X-Depin-Request is not ASCII hex"))?;
    if value.len() > MAX_REQUEST_HEX {
        return Err(bad("X-Depin-Request is too long for a work request"));
    }
    hex::decode(value).map_err(|_| bad("X-Depin-Request is not hex"))
}
