//! The live operator view over real loopback HTTP: settings as signed
//! envelopes with every refusal, economics against a hand computation, and
//! every alert code from crafted telemetry.

mod common;

use common::{cert, start};
use depin_economics::operator::{MS_PER_MONTH, OperatorCostSettings};
use depin_protocol::{
    ENVELOPE_VERSION, Envelope, Heartbeat, OperatorSettings, PayloadKind, SigningKey,
    decode_signed, device_keypair_from_seed, encode_batch, limits, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_server::now_ms;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// 2-second epochs from now, 1-second heartbeats, a 60% uptime gate (one
/// heartbeat of the two an epoch expects earns nothing).
fn short_policy() -> RewardPolicy {
    RewardPolicy {
        genesis_unix_ms: now_ms(),
        heartbeat_interval_seconds: 1,
        close_grace_seconds: 1,
        min_uptime_bps: 6000,
        ..RewardPolicy::devnet(2)
    }
}

struct Dev {
    key: SigningKey,
    seq: u64,
    temperature_centi_c: i32,
    firmware: String,
    power_mw: u32,
}

impl Dev {
    fn new(seed: u8, firmware: &str) -> Dev {
        Dev {
            key: device_keypair_from_seed([seed; 32]),
            seq: 0,
            temperature_centi_c: 6_000,
            firmware: firmware.into(),
            power_mw: 100_000,
        }
    }
    fn hex(&self) -> String {
        public_key_of(&self.key).to_hex()
    }
    /// Sends one heartbeat stamped `ts`; panics unless it was accepted.
    async fn beat(&mut self, http: &reqwest::Client, base: &str, ts: i64) {
        self.seq += 1;
        let h = Heartbeat {
            uptime_s: 1,
            temperature_centi_c: self.temperature_centi_c,
            firmware_version: self.firmware.clone(),
            power_mw: self.power_mw,
        };
        let batch = encode_batch(&[sign(
            &Envelope::new(public_key_of(&self.key), self.seq, ts, &h),
            &self.key,
        )]);
        let v: Value = http
            .post(format!("{base}/v1/reports"))
            .body(batch)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["accepted"], 1, "{v}");
    }
}

async fn onboard(http: &reqwest::Client, base: &str, op: &SigningKey, dev: &Dev, class: &str) {
    let r = http
        .post(format!("{base}/v1/devices"))
        .body(cert(op, &dev.key, class, &dev.firmware))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
}

async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> String {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("error bodies are JSON, got {got} {text:?}"));
    assert_eq!(v["error"], code, "{v}");
    v["message"].as_str().unwrap().to_string()
}

/// The canonical document of a settings JSON value (what the CLI signs).
fn canonical(settings: &Value) -> String {
    let s: OperatorCostSettings = serde_json::from_value(settings.clone()).unwrap();
    String::from_utf8(s.canonical_json()).unwrap()
}

/// A kind-7 envelope around any payload bytes (even ones the typed payload
/// cannot hold), for signer `signer`, signed by `key`.
fn raw_settings_envelope(
    signer: &SigningKey,
    key: &SigningKey,
    ts: i64,
    payload: Vec<u8>,
) -> Vec<u8> {
    let env = Envelope {
        version: ENVELOPE_VERSION,
        signer: public_key_of(signer),
        seq: 0,
        timestamp_ms: ts,
        kind: PayloadKind::OperatorSettings,
        payload,
    };
    sign(&env, key).encode()
}

/// The `OperatorSettings` payload bytes of any document: field 1, bytes.
fn document_payload(document: &[u8]) -> Vec<u8> {
    let mut b = vec![0x0a];
    let mut n = document.len() as u64;
    while n >= 0x80 {
        b.push((n as u8) | 0x80);
        n >>= 7;
    }
    b.push(n as u8);
    b.extend_from_slice(document);
    b
}

fn settings_url(base: &str, op: &SigningKey) -> String {
    format!(
        "{base}/v1/operators/{}/settings",
        public_key_of(op).to_hex()
    )
}

/// PUTs `settings` in canonical form, signed by `op` at `ts`, as the client does.
fn signed_put(
    http: &reqwest::Client,
    base: &str,
    op: &SigningKey,
    ts: i64,
    settings: &Value,
) -> reqwest::RequestBuilder {
    put_document(http, base, op, ts, canonical(settings).as_bytes())
}

/// PUTs a properly signed envelope around `document`, whatever its bytes.
fn put_document(
    http: &reqwest::Client,
    base: &str,
    op: &SigningKey,
    ts: i64,
    document: &[u8],
) -> reqwest::RequestBuilder {
    http.put(settings_url(base, op)).body(raw_settings_envelope(
        op,
        op,
        ts,
        document_payload(document),
    ))
}

async fn last_closed(http: &reqwest::Client, base: &str) -> Option<u64> {
    let v: Value = http
        .get(format!("{base}/v1/epochs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["epoch"].as_u64())
        .max()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_signed_envelopes_validated_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), short_policy()).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let op = device_keypair_from_seed([21; 32]);
    let hex = public_key_of(&op).to_hex();
    let url = settings_url(&base, &op);
    let dev = "cd".repeat(32);
    let settings = json!({
        "kwh_price_usd": 0.3, "internet_usd_per_month": 40.0, "internet_share": 0.2, "maintenance_usd_per_month": 1.5,
        "token_price_usd": 0.8, "hardware": { dev.clone(): { "profile": "rtx-4090", "price_usd": 1500.0 } }
    });

    expect_error(http.get(&url).send().await.unwrap(), 404, "not_found").await;
    // Through the client, as `depin operator settings set` sends them.
    let client = depin_client::Client::new(&base).unwrap();
    let t0 = now_ms();
    let put = client
        .put_operator_settings(&op, t0, canonical(&settings))
        .await
        .unwrap();
    let got: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, put, "PUT answers what GET shows");
    assert_eq!(got["settings"], settings);
    assert_eq!(got["signed_ms"], t0);
    assert_eq!(got["operator"], hex);
    // The stored envelope is the one signed: anyone can re-verify it.
    let sent = depin_client::operator_settings(&op, t0, canonical(&settings)).encode();
    let stored = hex::decode(got["envelope"].as_str().unwrap()).unwrap();
    assert_eq!(stored, sent, "stored as received, byte for byte");
    let verified = decode_signed(&stored).unwrap();
    verified.verify_signature().unwrap();
    assert_eq!(verified.envelope.signer, public_key_of(&op));
    assert_eq!(
        verified
            .envelope
            .decode_payload::<OperatorSettings>()
            .unwrap()
            .document,
        canonical(&settings)
    );

    // The same envelope again is a replay; an older one is stale.
    expect_error(
        http.put(&url).body(sent.clone()).send().await.unwrap(),
        409,
        "stale_settings",
    )
    .await;
    expect_error(
        signed_put(&http, &base, &op, t0 - 1, &settings)
            .send()
            .await
            .unwrap(),
        409,
        "stale_settings",
    )
    .await;

    // Not an envelope at all.
    expect_error(http.put(&url).send().await.unwrap(), 400, "bad_request").await;
    expect_error(
        http.put(&url)
            .body(b"{\"kwh_price_usd\": 1}".to_vec())
            .send()
            .await
            .unwrap(),
        400,
        "malformed",
    )
    .await;
    let mut t = t0 + 1;
    // Another kind signed by the operator.
    let hb = Heartbeat {
        uptime_s: 1,
        temperature_centi_c: 0,
        firmware_version: "1.0.0".into(),
        power_mw: 1,
    };
    expect_error(
        http.put(&url)
            .body(sign(&Envelope::new(public_key_of(&op), 1, t, &hb), &op).encode())
            .send()
            .await
            .unwrap(),
        400,
        "wrong_payload_kind",
    )
    .await;
    // Another operator's own, valid envelope sent to this operator's path.
    let other = device_keypair_from_seed([22; 32]);
    let m = expect_error(
        http.put(&url)
            .body(depin_client::operator_settings(&other, t, canonical(&settings)).encode())
            .send()
            .await
            .unwrap(),
        403,
        "wrong_signer",
    )
    .await;
    assert!(m.contains(&public_key_of(&other).to_hex()), "{m}");
    // Naming this operator but signed by another key.
    let forged = raw_settings_envelope(
        &op,
        &other,
        t,
        document_payload(canonical(&settings).as_bytes()),
    );
    expect_error(
        http.put(&url).body(forged).send().await.unwrap(),
        403,
        "bad_signature",
    )
    .await;
    // Outside the clock window, either way.
    for (ts, code) in [
        (now_ms() - 10 * 60_000, "stale_timestamp"),
        (now_ms() + 10 * 60_000, "future_timestamp"),
    ] {
        expect_error(
            signed_put(&http, &base, &op, ts, &settings)
                .send()
                .await
                .unwrap(),
            400,
            code,
        )
        .await;
    }
    // A device key cannot keep settings, even signed by itself for its own path.
    let device = device_keypair_from_seed([23; 32]);
    let r = http
        .post(format!("{base}/v1/devices"))
        .body(cert(&op, &device, "rtx-4090", "1.0.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    expect_error(
        signed_put(&http, &base, &device, now_ms(), &settings)
            .send()
            .await
            .unwrap(),
        403,
        "device_key",
    )
    .await;
    expect_error(
        http.get(settings_url(&base, &device)).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;

    // The document: empty, oversized, not UTF-8 (bad_payload from the decoder).
    let max = limits::MAX_SETTINGS_DOCUMENT_LEN;
    let mut padded = canonical(&settings).into_bytes();
    padded.resize(max + 1, b' ');
    for doc in [
        &b""[..],
        &padded[..],
        &[0xff, 0xfe][..],
        &[b'{', 0xc0, 0xaf, b'}'][..],
    ] {
        t += 1;
        expect_error(
            put_document(&http, &base, &op, t, doc)
                .send()
                .await
                .unwrap(),
            400,
            "bad_payload",
        )
        .await;
    }
    // Not JSON, or not settings JSON.
    for doc in [
        &b"{\"kwh_price_usd\": "[..],
        &br#"{"kwh_price_usd":1.0,"internet_usd_per_month":1.0,"token_price_usd":1.0,"kwh":2}"#[..],
    ] {
        t += 1;
        expect_error(
            put_document(&http, &base, &op, t, doc)
                .send()
                .await
                .unwrap(),
            400,
            "malformed_json",
        )
        .await;
    }
    // The same settings written any other way than the one byte form.
    let text = canonical(&settings);
    for doc in [
        serde_json::to_string(&settings).unwrap(),
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&text).unwrap()).unwrap(),
        format!("{text}\n"),
        text.replace("40.0", "40"),
        text.replace(r#""kwh_price_usd":0.3,"#, r#""kwh_price_usd":0.30,"#),
    ] {
        assert_ne!(doc, text);
        t += 1;
        let m = expect_error(
            put_document(&http, &base, &op, t, doc.as_bytes())
                .send()
                .await
                .unwrap(),
            400,
            "bad_payload",
        )
        .await;
        assert!(m.contains("canonical"), "{m}");
    }
    // Canonical but invalid: the error names the field.
    for (patch, field) in [
        (json!({"kwh_price_usd": -0.1}), "kwh_price_usd"),
        (
            json!({"internet_usd_per_month": -1.0}),
            "internet_usd_per_month",
        ),
        (json!({"internet_share": 1.5}), "internet_share"),
        (
            json!({"maintenance_usd_per_month": -2.0}),
            "maintenance_usd_per_month",
        ),
        (json!({"token_price_usd": -0.5}), "token_price_usd"),
        (
            json!({"hardware": {dev.clone(): {"profile": null, "price_usd": -3.0}}}),
            "price_usd",
        ),
        (
            json!({"hardware": {dev.clone(): {"profile": "rtx-9999", "price_usd": 3.0}}}),
            "profile",
        ),
        (
            json!({"hardware": {"xyz": {"profile": null}}}),
            "hardware.xyz",
        ),
    ] {
        let mut s = settings.clone();
        for (k, v) in patch.as_object().unwrap() {
            s[k] = v.clone();
        }
        t += 1;
        let m = expect_error(
            signed_put(&http, &base, &op, t, &s).send().await.unwrap(),
            400,
            "invalid_settings",
        )
        .await;
        assert!(m.contains(field), "{field}: {m}");
    }
    // Nothing refused changed what is stored.
    let after: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(after, got);
    expect_error(
        http.get(format!("{base}/v1/operators/nothex/economics"))
            .send()
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;

    // A newer signed update replaces; the stored value is what was signed.
    let newer =
        json!({"kwh_price_usd": 0.1, "internet_usd_per_month": 0.0, "token_price_usd": 2.0});
    let r = signed_put(&http, &base, &op, t + 1, &newer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let got: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        got["settings"],
        json!({"kwh_price_usd": 0.1, "internet_usd_per_month": 0.0, "internet_share": null,
               "maintenance_usd_per_month": null, "token_price_usd": 2.0, "hardware": {}})
    );
    assert_eq!(got["signed_ms"], t + 1);

    // Every operator route is in the OpenAPI document.
    let doc: Value = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for line in include_str!("../src/operator.rs")
        .lines()
        .filter(|l| l.trim_start().starts_with(".route(\""))
    {
        let path = line.split('"').nth(1).unwrap();
        assert!(
            doc["paths"][path].is_object(),
            "route {path} missing from the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/v1/operators/{operator}/settings"]["put"].is_object());
    server.stop().await.unwrap();
}

#[track_caller]
fn close(a: &Value, b: f64) {
    let a = a.as_f64().unwrap_or_else(|| panic!("not a number: {a}"));
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn economics_match_a_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), short_policy()).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let op = device_keypair_from_seed([31; 32]);
    let ophex = public_key_of(&op).to_hex();
    let mut gpu = Dev::new(32, "1.0.0");
    let rig = Dev::new(33, "1.0.0");
    onboard(&http, &base, &op, &gpu, "rtx-3060").await;
    onboard(&http, &base, &op, &rig, "custom-rig").await;

    // Before any settings: catalogue defaults, said so.
    let e: Value = http
        .get(format!("{base}/v1/operators/{ophex}/economics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["settings_source"], "defaults", "{e}");

    let settings = json!({
        "kwh_price_usd": 0.5, "internet_usd_per_month": 30.0, "internet_share": 0.5, "maintenance_usd_per_month": 2.0,
        "token_price_usd": 2.0, "hardware": { gpu.hex(): { "profile": null, "price_usd": 100.0 } }
    });
    let r = signed_put(&http, &base, &op, now_ms(), &settings)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Heartbeats with crafted power draws every ~0.5 s until two epochs paid.
    let mut sent: Vec<(i64, u32)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0u32;
    while last_closed(&http, &base).await.is_none_or(|e| e < 1) {
        assert!(Instant::now() < deadline, "epochs did not close in time");
        gpu.power_mw = 100_000 + (i % 3) * 50_000;
        let ts = now_ms();
        gpu.beat(&http, &base, ts).await;
        sent.push((ts, gpu.power_mw));
        i += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Stop beating and let the epoch of the last heartbeat close too, so the
    // paid total no longer changes.
    let last_epoch =
        (sent.last().unwrap().0 - short_policy_genesis(&http, &base).await) as u64 / 2000;
    while last_closed(&http, &base)
        .await
        .is_none_or(|e| e < last_epoch)
    {
        assert!(
            Instant::now() < deadline + Duration::from_secs(5),
            "last epoch did not close"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let e: Value = http
        .get(format!("{base}/v1/operators/{ophex}/economics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let view: Value = http
        .get(format!("{base}/v1/devices/{}", gpu.hex()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["settings_source"], "operator");
    let d = e["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == gpu.hex())
        .unwrap();

    // By hand: each heartbeat's draw for the gap since the previous (1 s for the first, capped at 3 s).
    let mut uj: u64 = 0;
    for (k, (ts, p)) in sent.iter().enumerate() {
        let gap = if k == 0 {
            1000
        } else {
            (ts - sent[k - 1].0).clamp(0, 3000) as u64
        };
        uj += u64::from(*p) * gap;
    }
    let kwh = uj as f64 / 3.6e12;
    let months = (e["as_of_ms"].as_i64().unwrap() - view["registered_ms"].as_i64().unwrap()) as f64
        / MS_PER_MONTH;
    let earned = view["rewards_total"].as_u64().unwrap();
    assert!(earned > 0, "{view}");
    let earned_usd = earned as f64 / 1e6 * 2.0;
    let running = kwh * 0.5 + 30.0 * 0.5 * months + 2.0 * months;
    let depreciation = 100.0 * months / 48.0;
    assert_eq!(d["earned"]["base_units"], earned);
    close(&d["earned"]["usd"], earned_usd);
    close(&d["months_active"], months);
    close(&d["energy"]["kwh"], kwh);
    assert_eq!(d["energy"]["heartbeats"], sent.len());
    close(&d["costs_usd"]["electricity"], kwh * 0.5);
    close(&d["costs_usd"]["internet"], 15.0 * months);
    close(&d["costs_usd"]["maintenance"], 2.0 * months);
    close(&d["costs_usd"]["running"], running);
    close(&d["costs_usd"]["hardware_depreciation"], depreciation);
    close(&d["net_operating_usd"], earned_usd - running);
    close(&d["net_usd"], earned_usd - running - depreciation);
    close(
        &d["payback_progress_pct"],
        (earned_usd - running) / 100.0 * 100.0,
    );
    assert_eq!(d["profile"], "rtx-3060");
    assert_eq!(d["hardware_price_usd"], 100.0);
    let p = &d["projection"];
    assert!(p["net_profit_usd_per_month"]["p50"].is_number(), "{d}");
    assert!(
        p["payback_month"].is_object() && p["payback_within_lifetime_probability"].is_number(),
        "{p}"
    );
    assert_eq!(p["basis"]["lifetime_months"], 48);

    // The unknown rig: earnings and electricity known, the rest says unknown.
    let r = e["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == rig.hex())
        .unwrap();
    assert_eq!(r["profile_source"], "unknown");
    assert!(r["note"].as_str().unwrap().starts_with("unknown"), "{r}");
    assert!(
        r["hardware_price_usd"].is_null()
            && r["costs_usd"]["hardware_depreciation"].is_null()
            && r["net_usd"].is_null()
    );
    let rig_months = (e["as_of_ms"].as_i64().unwrap() - r["registered_ms"].as_i64().unwrap())
        as f64
        / MS_PER_MONTH;
    close(&r["costs_usd"]["internet"], 15.0 * rig_months);
    assert!(r["projection"].is_null() && r["projection_note"].is_string());

    // Totals add the known figures; a second read integrates nothing new.
    assert_eq!(e["total"]["devices"], 2);
    close(&e["total"]["earned_usd"], earned_usd);
    close(&e["total"]["energy_kwh"], kwh);
    close(
        &e["total"]["payback_progress_pct"],
        (earned_usd - running) / 100.0 * 100.0,
    );
    let again: Value = http
        .get(format!("{base}/v1/operators/{ophex}/economics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["devices"][0]["energy"], e["devices"][0]["energy"]);
    server.stop().await.unwrap();
}

async fn short_policy_genesis(http: &reqwest::Client, base: &str) -> i64 {
    let p: Value = http
        .get(format!("{base}/v1/policy"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    p["genesis_unix_ms"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; MSRV is 1.85
async fn every_alert_from_crafted_telemetry_and_none_for_a_healthy_device() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), short_policy()).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let op = device_keypair_from_seed([41; 32]);
    let ophex = public_key_of(&op).to_hex();
    let mut healthy = Dev::new(42, "1.2.0");
    let mut hot = Dev::new(43, "1.2.0");
    hot.temperature_centi_c = 9_500; // rtx-3060 limit is 83 °C; +10 is critical
    let mut old = Dev::new(44, "1.0.0");
    let mut lazy = Dev::new(45, "1.2.0");
    let mut dead = Dev::new(46, "1.2.0");
    let mut odd = Dev::new(47, "1.2.0");
    for d in [&healthy, &hot, &old, &lazy, &dead] {
        onboard(&http, &base, &op, d, "rtx-3060").await;
    }
    onboard(&http, &base, &op, &odd, "custom-rig").await;

    // Ticks of 0.5 s: the healthy ones beat every tick (more than the 1 s
    // cadence asks), lazy every 5th (one per 2.5 s: under the 60% gate, never 3 s silent), dead once.
    let start_at = Instant::now();
    let mut tick = 0u32;
    loop {
        let ts = now_ms();
        for d in [&mut healthy, &mut hot, &mut old, &mut odd] {
            d.beat(&http, &base, ts).await;
        }
        if tick % 5 == 0 {
            lazy.beat(&http, &base, ts).await;
        }
        if tick == 0 {
            dead.beat(&http, &base, ts).await;
        }
        tick += 1;
        if last_closed(&http, &base).await.is_some_and(|e| e >= 2)
            && start_at.elapsed() > Duration::from_secs(6)
        {
            break;
        }
        assert!(
            start_at.elapsed() < Duration::from_secs(18),
            "epochs did not close in time"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let alerts: Value = http
        .get(format!("{base}/v1/operators/{ophex}/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codes = |d: &Dev| -> Vec<String> {
        let mut c: Vec<String> = alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["device"] == d.hex())
            .map(|a| a["code"].as_str().unwrap().to_string())
            .collect();
        c.sort();
        c
    };
    for a in alerts.as_array().unwrap() {
        for k in ["device", "code", "severity", "message", "action"] {
            assert!(a[k].as_str().is_some_and(|s| !s.is_empty()), "{a}");
        }
    }
    assert_eq!(codes(&healthy), Vec::<String>::new(), "{alerts:#}");
    assert_eq!(codes(&hot), ["overheating"], "{alerts:#}");
    assert_eq!(codes(&old), ["outdated_firmware"], "{alerts:#}");
    assert_eq!(
        codes(&lazy),
        ["earnings_below_median", "low_uptime"],
        "{alerts:#}"
    );
    assert_eq!(
        codes(&dead),
        ["earnings_below_median", "low_uptime", "offline"],
        "{alerts:#}"
    );
    assert_eq!(codes(&odd), ["unknown_hardware"], "{alerts:#}");
    let sev = |d: &Dev, code: &str| {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["device"] == d.hex() && a["code"] == code)
            .unwrap()["severity"]
            .clone()
    };
    assert_eq!(sev(&hot, "overheating"), "critical");
    assert_eq!(sev(&dead, "offline"), "critical");
    assert_eq!(sev(&lazy, "low_uptime"), "critical");
    assert_eq!(sev(&odd, "unknown_hardware"), "info");
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["code"] == "outdated_firmware"
                && a["message"].as_str().unwrap().contains("1.2.0"))
    );

    // A published firmware version overrides what devices report.
    let store_url = depin_store::sqlite_url(&dir.path().join("depin.sqlite"));
    let store = depin_store::Store::open(&store_url).await.unwrap();
    store
        .publish_firmware("rtx-3060", "1.3.0", now_ms())
        .await
        .unwrap();
    store.close().await;
    let alerts: Value = http
        .get(format!("{base}/v1/operators/{ophex}/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outdated = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["code"] == "outdated_firmware")
        .count();
    assert_eq!(
        outdated, 5,
        "every rtx-3060 device is now outdated, the custom rig is not: {alerts:#}"
    );
    server.stop().await.unwrap();
}
