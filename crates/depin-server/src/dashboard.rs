//! The web dashboard at `/`: one static page, its script, style sheet and
//! icon, compiled into the binary (`include_str!`), so an operator's
//! coordinator serves it offline and nothing is fetched from elsewhere. The
//! page is a client of the public JSON API and holds no figures of its own:
//! every number it shows comes from `/v1/…`, so the dashboard and `depin
//! operator status` cannot disagree about what was earned.
//!
//! The pages are GETs that never write. Each answer carries a strict
//! `Content-Security-Policy` (`default-src 'self'`, no inline script or
//! style), so even a string from the API that slipped past the script's
//! escaping (it sets `textContent`, never `innerHTML`) could not run.
//!
//! Besides the assets, this module adds the read-only endpoints the pages
//! need and the API lacked: the network summary, an operator's reward lines
//! per epoch, and the reason codes with their meanings.

use crate::routes::{ApiPath, ApiQuery, Endpoint, parse_index, parse_key};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use depin_core::{Reason, Sector};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

type AppResult<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

const INDEX_HTML: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const STYLE_CSS: &str = include_str!("../dashboard/style.css");
const ICON_SVG: &str = include_str!("../dashboard/icon.svg");

/// Only this origin's script, style, images and API; no inline code, no
/// framing, no form posting elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Epochs of reward lines `…/rewards` returns when the query names none, and
/// the most it returns (a month of hourly epochs).
const DEFAULT_REWARD_EPOCHS: u64 = 48;
const MAX_REWARD_EPOCHS: u64 = 24 * 30;

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(
            "get",
            "/",
            "The dashboard (HTML): enter an operator key, or open the network view.",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        ),
        Endpoint::new(
            "get",
            "/operator/{operator}",
            "The dashboard's operator page (HTML) for an operator public key.",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        ),
        Endpoint::new(
            "get",
            "/network",
            "The dashboard's network page (HTML).",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        ),
        Endpoint::new(
            "get",
            "/dashboard/app.js",
            "The dashboard's script.",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        ),
        Endpoint::new(
            "get",
            "/dashboard/style.css",
            "The dashboard's style sheet.",
            get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }),
        ),
        Endpoint::new(
            "get",
            "/dashboard/icon.svg",
            "The dashboard's icon.",
            get(|| async { page(ICON_SVG, "image/svg+xml") }),
        ),
        Endpoint::new(
            "get",
            "/v1/network",
            "Network summary: epoch length, last closed epoch, devices per sector (active and revoked), refused reports by reason.",
            get(network),
        ),
        Endpoint::new(
            "get",
            "/v1/reasons",
            "Every reason code with what it means.",
            get(reasons),
        ),
        Endpoint::new(
            "get",
            "/v1/operators/{operator}/rewards",
            "An operator's reward lines per closed epoch and device (reward, fees, score, reason codes) over the last `epochs` closed epochs (default 48, at most 720).",
            get(operator_rewards),
        ),
    ]
}

/// A dashboard asset with the headers every one carries. `no-cache` (revalidate,
/// not "do not store"): a coordinator upgraded in place serves its new page at once.
fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn network(State(st): St) -> AppResult<Json<Value>> {
    let store = st.coordinator.store();
    let policy = st.coordinator.policy();
    let mut by_sector: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for d in store.devices(None).await? {
        // A code this build does not know is shown as such, not folded into another.
        let sector = Sector::from_code(d.sector).map_or_else(
            || format!("unknown sector code {}", d.sector),
            |s| s.as_str().to_string(),
        );
        let counts = by_sector.entry(sector).or_default();
        if d.revoked_ms.is_some() {
            counts.1 += 1;
        } else {
            counts.0 += 1;
        }
    }
    let active: u64 = by_sector.values().map(|c| c.0).sum();
    let revoked: u64 = by_sector.values().map(|c| c.1).sum();
    Ok(Json(json!({
        "policy_id": policy.id(),
        "epoch_seconds": policy.epoch_seconds,
        "last_closed_epoch": store.last_closed_epoch().await?,
        "devices": {
            "active": active,
            "revoked": revoked,
            "by_sector": by_sector
                .iter()
                .map(|(s, (a, r))| (s.clone(), json!({"active": a, "revoked": r})))
                .collect::<serde_json::Map<_, _>>(),
        },
        "rejections": store.rejection_counts(None).await?,
    })))
}

async fn reasons() -> Json<Value> {
    Json(Value::Array(
        Reason::ALL
            .iter()
            .map(|r| json!({"code": r.as_str(), "meaning": r.explain()}))
            .collect(),
    ))
}

#[derive(Deserialize)]
struct RewardsQuery {
    epochs: Option<String>,
}

/// `GET /v1/operators/{operator}/rewards`: what each of the operator's devices
/// was paid in each recent closed epoch, straight from the stored reward
/// sheets, newest epoch last. Closed epochs in the window where no device of
/// the operator has a line are listed with an empty `devices`, so a chart
/// shows the gap.
async fn operator_rewards(
    State(st): St,
    ApiPath(operator): ApiPath<String>,
    ApiQuery(q): ApiQuery<RewardsQuery>,
) -> AppResult<Json<Value>> {
    let op = parse_key(&operator, "operator")?;
    let window = match q.epochs.as_deref() {
        None => DEFAULT_REWARD_EPOCHS,
        Some(w) => parse_index(w, "epochs (a number of closed epochs)")?,
    }
    .clamp(1, MAX_REWARD_EPOCHS);
    let store = st.coordinator.store();
    let Some(last) = store.last_closed_epoch().await? else {
        return Ok(Json(
            json!({"operator": op, "first_epoch": null, "last_epoch": null, "epochs": []}),
        ));
    };
    // Only closed epochs are listed: a coordinator started long after genesis
    // has none before its first close.
    let first = (last + 1).saturating_sub(window);
    let mut per_epoch: BTreeMap<u64, (i64, Vec<Value>, u64)> = store
        .epochs()
        .await?
        .into_iter()
        .filter(|row| row.epoch >= first)
        .map(|row| (row.epoch, (row.closed_ms, Vec::new(), 0)))
        .collect();
    for d in store.devices(Some(&op)).await? {
        for (epoch, line) in store.device_rewards(&d.device).await? {
            let Some(e) = per_epoch.get_mut(&epoch) else {
                continue;
            };
            e.2 += line.reward + line.fees;
            e.1.push(json!({
                "device": line.device,
                "sector": Sector::from_code(line.sector).map(|s| s.as_str()),
                "score_ppm": line.score_ppm,
                "reward": line.reward,
                "fees": line.fees,
                "reasons": line.reasons.split(',').filter(|r| !r.is_empty()).collect::<Vec<_>>(),
            }));
        }
    }
    let per_epoch_first = per_epoch.keys().next().copied();
    let epochs: Vec<Value> = per_epoch
        .into_iter()
        .map(|(epoch, (closed_ms, devices, total))| {
            json!({"epoch": epoch, "closed_ms": closed_ms, "earned": total, "devices": devices})
        })
        .collect();
    Ok(Json(json!({
        "operator": op,
        "first_epoch": per_epoch_first,
        "last_epoch": last,
        "epochs": epochs,
    })))
}
