//! The live operator view: an operator's cost settings, earnings and costs so
//! far with payback progress and a projection, and alerts from telemetry.
//!
//! - `PUT /v1/operators/{operator}/settings` stores cost settings. The body is
//!   a signed envelope like every operator message (`SignedEnvelope` bytes,
//!   kind 7 `operator_settings`, see `depin_client::operator_settings`)
//!   signed by the operator in the path, carrying the settings document:
//!   [`OperatorCostSettings`] as JSON in its one byte form
//!   ([`OperatorCostSettings::from_canonical_json`]). Why sign what is not a
//!   money move: the settings drive what the network tells the operator about
//!   profit and alerts, and anyone could otherwise overwrite another
//!   operator's view. The envelope's timestamp must be within
//!   [`SETTINGS_MAX_SKEW_MS`] of the server clock and newer than the stored
//!   settings' (no replay or roll-back), and the key must not be a device key
//!   (storing settings claims it as an operator key). The envelope is decoded
//!   once and stored as received, so the stored settings can be re-verified.
//! - `GET …/settings` returns them with that envelope in hex (settings are
//!   not secret; economics are computed from public data anyway).
//! - `GET …/economics`: per device and in total, see [`economics`].
//! - `GET …/alerts`: see [`alerts`].
//!
//! Newest firmware per hardware class: the version configured in the
//! `firmware_releases` table (`Store::publish_firmware`) when there is one,
//! else the highest semver among the registry and telemetry versions of
//! non-revoked devices of the class. The latter can be pushed up by any
//! operator registering a device that claims a high version; the alert is
//! advisory, and publishing a version removes that influence.

use crate::routes::{ApiPath, Endpoint, RawBody, parse_key};
use crate::{ApiError, AppState, now_ms};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use depin_coordinator::CoordError;
use depin_core::{PublicKey, Reason, Sector};
use depin_economics::operator::{
    self as rules, Alert, EnergyAccumulator, FirmwareSource, OperatorCostSettings,
    SETTINGS_MAX_SKEW_MS, SettingsDocumentError,
};
use depin_economics::{Catalogue, live};
use depin_protocol::{AdmissionPolicy, Heartbeat, PayloadKind, admit, decode_signed};
use depin_store::{DeviceEnergyRow, DeviceRow, OperatorSettingsRow, SettingsWrite, Store};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

type AppResult<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

/// Heartbeats decoded per store read while integrating energy.
const ENERGY_BATCH: u32 = 5000;

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(
            "get",
            "/v1/operators/{operator}/settings",
            "An operator's stored cost settings: { operator, settings, signed_ms, updated_ms, envelope } with the signed envelope they came in, in hex, so anyone can re-verify them.",
            get(get_settings),
        ),
        Endpoint::new(
            "put",
            "/v1/operators/{operator}/settings",
            "Store an operator's cost settings. Body: a SignedEnvelope of kind 7 (operator_settings) signed by the operator in the path, timestamp within 5 minutes of the server clock and newer than the stored settings' (else 409 stale_settings); its document is the settings JSON in canonical form (compact serde_json of OperatorCostSettings).",
            put(put_settings),
        ),
        Endpoint::new(
            "get",
            "/v1/operators/{operator}/economics",
            "Per device and total: earnings and costs so far, net, payback progress and a projection.",
            get(economics),
        ),
        Endpoint::new(
            "get",
            "/v1/operators/{operator}/alerts",
            "Alerts per device: offline, low_uptime, overheating, outdated_firmware, earnings_below_median, unknown_hardware.",
            get(alerts),
        ),
    ]
}

fn catalogue() -> &'static Catalogue {
    static CAT: OnceLock<Catalogue> = OnceLock::new();
    CAT.get_or_init(Catalogue::builtin)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

// ----------------------------------------------------------------- settings

/// A refusal with a protocol reason code, answered with the same status as
/// every other endpoint gives that reason.
fn refused(reason: Reason, message: impl Into<String>) -> ApiError {
    CoordError::Rejected {
        reason,
        message: message.into(),
    }
    .into()
}

/// Checks a settings envelope for `operator` at server time `now`, reading
/// nothing stored: its shape, kind, signer, signature and clock first (an
/// unauthenticated request learns nothing about the content), then the
/// document. Returns what the store keeps beside the envelope bytes.
fn check_settings_envelope(
    operator: &PublicKey,
    bytes: &[u8],
    now: i64,
) -> AppResult<CheckedSettings> {
    let signed = decode_signed(bytes).map_err(|r| {
        refused(
            r,
            "the body must be a signed envelope (SignedEnvelope bytes) of kind 7, operator_settings",
        )
    })?;
    let env = &signed.envelope;
    if env.kind != PayloadKind::OperatorSettings {
        return Err(refused(
            Reason::WrongPayloadKind,
            format!(
                "expected an operator_settings envelope (kind 7), got kind {}",
                env.kind.as_u32()
            ),
        ));
    }
    if env.signer != *operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_signer",
            format!(
                "the envelope is signed by {}, not by operator {operator}: only an operator's own key stores its settings",
                env.signer
            ),
        ));
    }
    signed.verify_signature().map_err(|r| {
        refused(
            r,
            "the signature does not verify under the operator key for these envelope bytes",
        )
    })?;
    let clock = AdmissionPolicy {
        max_skew_past_ms: SETTINGS_MAX_SKEW_MS,
        max_skew_future_ms: SETTINGS_MAX_SKEW_MS,
    };
    admit(&clock, now, env, None).map_err(|r| {
        refused(
            r,
            format!(
                "the envelope timestamp {} is more than {} s from the server clock {now}",
                env.timestamp_ms,
                SETTINGS_MAX_SKEW_MS / 1000
            ),
        )
    })?;
    let payload: depin_protocol::OperatorSettings = env.decode_payload().map_err(|r| {
        refused(
            r,
            format!(
                "the settings document must be 1 to {} bytes of UTF-8 JSON",
                depin_protocol::limits::MAX_SETTINGS_DOCUMENT_LEN
            ),
        )
    })?;
    // Checked here; the views parse the stored document again when they read it.
    OperatorCostSettings::from_canonical_json(payload.document.as_bytes(), catalogue()).map_err(
        |e| match e {
            SettingsDocumentError::Malformed(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string())
            }
            SettingsDocumentError::NonCanonical { .. } => {
                refused(Reason::BadPayload, e.to_string())
            }
            SettingsDocumentError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_settings", e.to_string())
            }
        },
    )?;
    Ok(CheckedSettings {
        signed_ms: env.timestamp_ms,
        document: payload.document,
    })
}

/// A settings envelope that passed [`check_settings_envelope`].
struct CheckedSettings {
    signed_ms: i64,
    /// The settings document as the envelope carries it, checked canonical
    /// and valid.
    document: String,
}

fn settings_view(row: &OperatorSettingsRow) -> AppResult<Value> {
    let settings: Value = serde_json::from_str(&row.body).map_err(internal)?;
    Ok(json!({
        "operator": row.operator,
        "settings": settings,
        "signed_ms": row.signed_ms,
        "updated_ms": row.updated_ms,
        "envelope": hex::encode(&row.envelope),
    }))
}

async fn put_settings(
    State(st): St,
    ApiPath(operator): ApiPath<String>,
    RawBody(body): RawBody,
) -> AppResult<Json<Value>> {
    let op = parse_key(&operator, "operator")?;
    let now = now_ms();
    let checked = check_settings_envelope(&op, &body, now)?;
    // Decode once, keep the bytes: the envelope is stored as it arrived, the
    // document beside it as the envelope carries it.
    let row = OperatorSettingsRow {
        operator: op,
        body: checked.document,
        envelope: body.to_vec(),
        signed_ms: checked.signed_ms,
        updated_ms: now,
    };
    match st.coordinator.store().put_operator_settings(&row).await? {
        SettingsWrite::Stored => Ok(Json(settings_view(&row)?)),
        SettingsWrite::Stale => Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale_settings",
            "settings signed at or after this timestamp are already stored: sign the new settings with a newer timestamp",
        )),
        SettingsWrite::DeviceKey => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "device_key",
            format!(
                "{op} is a registered device key; a key is a device key or an operator key, never both: sign settings with the operator key"
            ),
        )),
    }
}

async fn get_settings(State(st): St, ApiPath(operator): ApiPath<String>) -> AppResult<Json<Value>> {
    let op = parse_key(&operator, "operator")?;
    let row = st
        .coordinator
        .store()
        .operator_settings(&op)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("operator {op} has stored no settings")))?;
    Ok(Json(settings_view(&row)?))
}

/// The operator's stored settings, or the defaults; and which.
async fn settings_or_defaults(
    store: &Store,
    op: &PublicKey,
) -> AppResult<(OperatorCostSettings, live::SettingsSource)> {
    match store.operator_settings(op).await? {
        Some(row) => Ok((
            serde_json::from_str(&row.body).map_err(internal)?,
            live::SettingsSource::Operator,
        )),
        None => Ok((
            OperatorCostSettings::defaults(),
            live::SettingsSource::Defaults,
        )),
    }
}

// ---------------------------------------------------------------- economics

/// A device's integrated energy up to the newest heartbeat in the report
/// log: the stored cursor plus the heartbeats after it, decoded now. Reads
/// only, so a GET never writes; [`advance_energy_cursors`] moves the stored
/// cursors forward in the background, which keeps this cheap.
async fn integrate_energy(
    store: &Store,
    device: &PublicKey,
    interval_ms: u64,
) -> AppResult<EnergyAccumulator> {
    Ok(energy_and_cursor(store, device, interval_ms).await?.0)
}

/// Advances the stored energy cursors of up to `limit` devices after
/// `after` in key order; returns where the next pass starts (`None`: from
/// the beginning again). Run by the server's closing loop, never by a
/// request.
pub(crate) async fn advance_energy_cursors(
    store: &Store,
    interval_ms: u64,
    after: Option<PublicKey>,
    limit: u32,
) -> AppResult<Option<PublicKey>> {
    let page = store.device_keys_after(after.as_ref(), limit).await?;
    for device in &page {
        if let (_, Some(row)) = energy_and_cursor(store, device, interval_ms).await? {
            store.put_device_energy(&row).await?;
        }
    }
    Ok(if page.len() < limit as usize {
        None
    } else {
        page.last().copied()
    })
}

/// The accumulator, and the cursor row to store when it moved past the
/// stored one.
#[allow(clippy::collapsible_if)] // let chains need Rust 1.88; MSRV is 1.85
async fn energy_and_cursor(
    store: &Store,
    device: &PublicKey,
    interval_ms: u64,
) -> AppResult<(EnergyAccumulator, Option<DeviceEnergyRow>)> {
    let stored = store.device_energy(device).await?;
    let mut acc = stored
        .as_ref()
        .map_or_else(EnergyAccumulator::default, |r| EnergyAccumulator {
            last_seq: Some(r.last_seq),
            last_timestamp_ms: Some(r.last_ms),
            energy_uj: r.energy_uj,
            covered_ms: r.covered_ms,
            heartbeats: r.heartbeats,
        });
    let kind = PayloadKind::Heartbeat.as_u32();
    loop {
        let batch = store
            .reports_after(device, kind, acc.last_seq, ENERGY_BATCH)
            .await?;
        for r in &batch {
            match decode_signed(&r.raw)
                .ok()
                .and_then(|s| Heartbeat::decode(&s.envelope.payload).ok())
            {
                Some(hb) => acc.add(r.seq, r.timestamp_ms, hb.power_mw, interval_ms),
                None => {
                    // Ingest stored only decodable heartbeats; skip rather than stall the view.
                    tracing::warn!(%device, seq = r.seq, "stored heartbeat does not decode; skipped in energy");
                    acc.last_seq = Some(r.seq);
                }
            }
        }
        if batch.len() < ENERGY_BATCH as usize {
            break;
        }
    }
    let mut moved = None;
    if let (Some(last_seq), Some(last_ms)) = (acc.last_seq, acc.last_timestamp_ms) {
        if stored.as_ref().is_none_or(|s| s.last_seq < last_seq) {
            moved = Some(DeviceEnergyRow {
                device: *device,
                last_seq,
                last_ms,
                energy_uj: acc.energy_uj,
                covered_ms: acc.covered_ms,
                heartbeats: acc.heartbeats,
            });
        }
    }
    Ok((acc, moved))
}

/// `GET /v1/operators/{operator}/economics`: per device, earnings so far
/// (reward sheets × the operator's token price), costs so far (electricity
/// from the heartbeats' power draw, internet share and maintenance pro-rated
/// since registration, straight-line hardware depreciation), net, payback
/// progress and a projection from the observed rate; and the totals. The
/// handler only loads the facts; `depin_economics::live` assembles the view.
async fn economics(State(st): St, ApiPath(operator): ApiPath<String>) -> AppResult<Json<Value>> {
    let op = parse_key(&operator, "operator")?;
    let store = st.coordinator.store();
    let policy = st.coordinator.policy();
    let interval_ms = policy.heartbeat_interval_seconds.max(1) * 1000;
    let network = live::Network {
        now_ms: now_ms(),
        epoch_seconds: policy.epoch_seconds,
        yearly_decay_bps: policy.yearly_decay_bps,
    };
    let (settings, source) = settings_or_defaults(store, &op).await?;
    let mut facts = Vec::new();
    for d in store.devices(Some(&op)).await? {
        let energy = integrate_energy(store, &d.device, interval_ms).await?;
        let earned_per_epoch = store
            .device_rewards(&d.device)
            .await?
            .iter()
            .map(|(_, l)| l.reward.saturating_add(l.fees))
            .collect();
        facts.push(live::DeviceFacts {
            device: d.device,
            sector: Sector::from_code(d.sector).map(|s| s.as_str()),
            hardware_class: d.hardware_class,
            registered_ms: d.registered_ms,
            revoked_ms: d.revoked_ms,
            earned_per_epoch,
            energy,
        });
    }
    // The projections' Monte Carlo is CPU work: off the async threads.
    let view = tokio::task::spawn_blocking(move || {
        live::operator_economics(catalogue(), op, &settings, source, network, &facts)
    })
    .await
    .map_err(internal)?;
    Ok(Json(serde_json::to_value(view).map_err(internal)?))
}

// ------------------------------------------------------------------- alerts

fn alert_json(device: &PublicKey, a: Alert) -> Value {
    json!({ "device": device, "code": a.code, "severity": a.severity, "message": a.message, "action": a.action })
}

/// The newest firmware of a class and where that figure comes from.
async fn newest_firmware(
    store: &Store,
    class: &str,
) -> AppResult<Option<(String, FirmwareSource)>> {
    if let Some(v) = store.published_firmware(class).await? {
        return Ok(Some((v, FirmwareSource::Published)));
    }
    let seen = store.firmware_versions(class).await?;
    Ok(rules::newest_version(seen.iter().map(String::as_str))
        .map(|v| (v.to_string(), FirmwareSource::SeenOnNetwork)))
}

/// `GET /v1/operators/{operator}/alerts`: for each non-revoked device,
/// `offline`, `low_uptime`, `overheating`, `outdated_firmware`,
/// `earnings_below_median` and `unknown_hardware`, each with a severity, a
/// message and a suggested action. Thresholds are the named constants in
/// `depin_economics::operator`.
#[allow(clippy::collapsible_if)] // let chains need Rust 1.88; MSRV is 1.85
async fn alerts(State(st): St, ApiPath(operator): ApiPath<String>) -> AppResult<Json<Value>> {
    let op = parse_key(&operator, "operator")?;
    let store = st.coordinator.store();
    let policy = st.coordinator.policy();
    let interval_ms = policy.heartbeat_interval_seconds.max(1) * 1000;
    let now = now_ms();
    let (settings, _) = settings_or_defaults(store, &op).await?;
    let devices: Vec<DeviceRow> = store
        .devices(Some(&op))
        .await?
        .into_iter()
        .filter(|d| d.revoked_ms.is_none())
        .collect();

    // Per-epoch earnings of every device per sector over the recent window.
    let mut sector_rates: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    let mut device_rates: BTreeMap<PublicKey, (f64, u64)> = BTreeMap::new();
    if !devices.is_empty() {
        if let Some(last) = store.last_closed_epoch().await? {
            let first = (last + 1).saturating_sub(rules::EARNINGS_WINDOW_EPOCHS);
            for r in store.device_earnings_since(first).await? {
                let rate = r.earned as f64 / r.lines.max(1) as f64;
                sector_rates.entry(r.sector).or_default().push(rate);
                device_rates.insert(r.device, (rate, r.lines));
            }
        }
    }

    let mut firmware: BTreeMap<String, Option<(String, FirmwareSource)>> = BTreeMap::new();
    let kind = PayloadKind::Heartbeat.as_u32();
    let mut out = Vec::new();
    for d in &devices {
        let telemetry = store.telemetry(&d.device).await?;
        if let Some(a) = rules::offline_alert(
            now,
            telemetry.as_ref().map(|t| t.timestamp_ms),
            d.registered_ms,
            interval_ms,
        ) {
            out.push(alert_json(&d.device, a));
        }
        let window_start =
            (now - (interval_ms * rules::UPTIME_WINDOW_INTERVALS) as i64).max(d.registered_ms);
        let span = now - window_start;
        let heartbeats = store
            .report_count_between(
                &d.device,
                kind,
                window_start,
                now + policy.max_clock_skew_ms.max(0),
            )
            .await?;
        let uptime = rules::uptime_fraction(heartbeats, span, interval_ms);
        if let Some(a) =
            rules::low_uptime_alert(uptime, f64::from(policy.min_uptime_bps) / 10_000.0, span)
        {
            out.push(alert_json(&d.device, a));
        }
        let (profile, _) =
            live::resolve_profile(catalogue(), &d.device, &d.hardware_class, &settings);
        if let Some(t) = &telemetry {
            let limit = profile.and_then(|p| p.max_temperature_c);
            if let Some(a) = rules::temperature_alert(
                t.temperature_centi_c as f64 / 100.0,
                limit,
                &d.hardware_class,
            ) {
                out.push(alert_json(&d.device, a));
            }
        }
        if !firmware.contains_key(&d.hardware_class) {
            firmware.insert(
                d.hardware_class.clone(),
                newest_firmware(store, &d.hardware_class).await?,
            );
        }
        if let Some(Some((newest, source))) = firmware.get(&d.hardware_class) {
            let current = telemetry
                .as_ref()
                .map_or(d.firmware_version.as_str(), |t| t.firmware_version.as_str());
            if let Some(a) = rules::firmware_alert(current, newest, *source) {
                out.push(alert_json(&d.device, a));
            }
        }
        if let Some((rate, lines)) = device_rates.get(&d.device) {
            let sector = Sector::from_code(d.sector).map_or("unknown", |s| s.as_str());
            let peers = sector_rates.get(&d.sector).map_or(&[][..], Vec::as_slice);
            if let Some(a) = rules::earnings_alert(*rate, *lines, peers, sector) {
                out.push(alert_json(&d.device, a));
            }
        }
        if profile.is_none() {
            out.push(alert_json(
                &d.device,
                rules::unknown_hardware_alert(&d.hardware_class),
            ));
        }
    }
    Ok(Json(Value::Array(out)))
}
