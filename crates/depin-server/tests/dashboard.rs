//! The dashboard's assets and the read-only endpoints it added, over real
//! HTTP: pages with a strict Content-Security-Policy, assets that are GETs
//! only, `/v1/network`, `/v1/reasons` and `/v1/operators/{op}/rewards`
//! against the ledger, and bad input answered with JSON errors. The pages
//! in a real browser: `depin-cli/tests/dashboard_browser.rs`.

mod common;

use common::cert;
use depin_core::Reason;
use depin_protocol::{
    Envelope, Heartbeat, SigningKey, device_keypair_from_seed, encode_batch, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_server::now_ms;
use serde_json::Value;
use std::time::{Duration, Instant};

fn hb(dev: &SigningKey, seq: u64) -> depin_protocol::Signed {
    let h = Heartbeat {
        uptime_s: seq,
        temperature_centi_c: 4_200,
        firmware_version: "0.1.0".into(),
        power_mw: 170_000,
    };
    sign(&Envelope::new(public_key_of(dev), seq, now_ms(), &h), dev)
}

async fn error(resp: reqwest::Response, status: u16, code: &str) {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(v["error"], code, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_assets_and_its_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let policy = RewardPolicy {
        genesis_unix_ms: now_ms(),
        heartbeat_interval_seconds: 1,
        close_grace_seconds: 1,
        min_uptime_bps: 1,
        ..RewardPolicy::devnet(2)
    };
    let server = common::start(dir.path(), policy).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();

    // ---- the pages and assets
    for (path, content_type, needle) in [
        ("/", "text/html", "<title>depin dashboard</title>"),
        (
            "/operator/0000000000000000000000000000000000000000000000000000000000000000",
            "text/html",
            "/dashboard/app.js",
        ),
        // Any text after /operator/ gets the page; the script explains a bad key.
        ("/operator/%3Cscript%3E", "text/html", "/dashboard/app.js"),
        ("/network", "text/html", "operator-key"),
        ("/dashboard/app.js", "text/javascript", "textContent"),
        ("/dashboard/style.css", "text/css", ":root"),
        ("/dashboard/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        let ct = h["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path}");
        // Nothing is fetched from another origin.
        for other in ["http://", "https://", "//cdn"] {
            let outside = body
                .match_indices(other)
                .any(|(i, _)| !body[i..].starts_with("http://www.w3.org/"));
            assert!(!outside, "{path} refers to {other}…");
        }
    }
    // The page never builds markup from strings: no innerHTML, no inline handlers.
    let js = http
        .get(format!("{base}/dashboard/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for banned in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.contains(banned), "app.js uses {banned}");
    }
    // The assets are GETs only; writes are refused as JSON.
    for path in ["/", "/dashboard/app.js", "/network"] {
        let r = http
            .post(format!("{base}{path}"))
            .body("x")
            .send()
            .await
            .unwrap();
        error(r, 405, "method_not_allowed").await;
    }
    let r = http
        .get(format!("{base}/dashboard/nothing.js"))
        .send()
        .await
        .unwrap();
    error(r, 404, "not_found").await;

    // ---- /v1/reasons: every code, each with its meaning
    let reasons: Value = http
        .get(format!("{base}/v1/reasons"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = reasons
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    let all: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(codes, all);
    assert!(
        reasons
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["meaning"].as_str().unwrap().is_empty())
    );

    // ---- an operator with two devices, one of them heartbeating
    let op = device_keypair_from_seed([71; 32]);
    let opk = public_key_of(&op);
    let dev = device_keypair_from_seed([72; 32]);
    let idle = device_keypair_from_seed([73; 32]);
    for d in [&dev, &idle] {
        let r = http
            .post(format!("{base}/v1/devices"))
            .body(cert(&op, d, "rtx-3060", "0.1.0"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Before any close: an empty window, not an error.
    let r: Value = http
        .get(format!("{base}/v1/operators/{opk}/rewards"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["epochs"], serde_json::json!([]), "{r}");
    assert!(r["last_epoch"].is_null());

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = 0;
    let balance = loop {
        seq += 1;
        let v: Value = http
            .post(format!("{base}/v1/reports"))
            .body(encode_batch(&[hb(&dev, seq)]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["accepted"], 1, "{v}");
        let b: Value = http
            .get(format!("{base}/v1/balances/{opk}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let b = b["balance"].as_i64().unwrap();
        if b > 0 {
            break b;
        }
        assert!(Instant::now() < deadline, "no epoch paid in time");
        // One heartbeat per interval, as an agent sends them (no rate limit hit).
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    // The rewards window adds up to the ledger balance (no fees, no claims
    // paid out), and to what the economics call earned, device by device.
    let r: Value = http
        .get(format!("{base}/v1/operators/{opk}/rewards?epochs=720"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let epochs = r["epochs"].as_array().unwrap();
    // Genesis is the test's start: every epoch from 0 closed, and each is listed.
    assert_eq!(r["first_epoch"], 0, "{r}");
    assert_eq!(
        epochs.len() as u64,
        r["last_epoch"].as_u64().unwrap() + 1,
        "every closed epoch of the window is listed: {r}"
    );
    let mut per_device: std::collections::BTreeMap<String, i64> = Default::default();
    let mut total = 0i64;
    for e in epochs {
        let mut sum = 0;
        for l in e["devices"].as_array().unwrap() {
            let a = l["reward"].as_i64().unwrap() + l["fees"].as_i64().unwrap();
            sum += a;
            *per_device
                .entry(l["device"].as_str().unwrap().to_string())
                .or_default() += a;
            assert!(l["reasons"].is_array());
        }
        assert_eq!(e["earned"].as_i64().unwrap(), sum, "{e}");
        assert!(e["closed_ms"].is_i64(), "{e}");
        total += sum;
    }
    let economics: Value = http
        .get(format!("{base}/v1/operators/{opk}/economics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for d in economics["devices"].as_array().unwrap() {
        let hex = d["device"].as_str().unwrap();
        assert_eq!(
            per_device.get(hex).copied().unwrap_or(0),
            d["earned"]["base_units"].as_i64().unwrap(),
            "{hex}"
        );
    }
    // Later epochs may have closed between the two reads (they pay the idle
    // device nothing, the heartbeating one only if it sent more), so the
    // balance read first is at most the window's total.
    assert!(total >= balance && balance > 0, "{total} vs {balance}");
    // The idle device's lines carry the reason it earned nothing.
    let idle_hex = public_key_of(&idle).to_hex();
    let idle_reasons: Vec<&str> = epochs
        .iter()
        .flat_map(|e| e["devices"].as_array().unwrap())
        .filter(|l| l["device"] == idle_hex.as_str())
        .flat_map(|l| l["reasons"].as_array().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(idle_reasons.contains(&"no_reports"), "{idle_reasons:?}");

    // A window of one is the last closed epoch alone; 0 is clamped to 1.
    for q in ["1", "0"] {
        let one: Value = http
            .get(format!("{base}/v1/operators/{opk}/rewards?epochs={q}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(one["epochs"].as_array().unwrap().len(), 1, "{one}");
        assert_eq!(one["first_epoch"], one["last_epoch"]);
    }

    // ---- /v1/network
    let net: Value = http
        .get(format!("{base}/v1/network"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(net["epoch_seconds"], 2);
    assert_eq!(net["devices"]["active"], 2, "{net}");
    assert_eq!(net["devices"]["revoked"], 0, "{net}");
    assert_eq!(net["devices"]["by_sector"]["compute"]["active"], 2, "{net}");
    assert!(net["last_closed_epoch"].as_u64().is_some(), "{net}");
    assert!(net["rejections"].is_object(), "{net}");

    // ---- bad input: JSON errors naming the parameter, at 0, max and max+1
    for (path, status, code) in [
        ("/v1/operators/xyz/rewards", 400, "bad_request"),
        ("/v1/operators/00/rewards?epochs=1", 400, "bad_request"),
        (
            &format!("/v1/operators/{opk}/rewards?epochs=-1"),
            400,
            "bad_request",
        ),
        (
            &format!("/v1/operators/{opk}/rewards?epochs=ten"),
            400,
            "bad_request",
        ),
        (
            &format!("/v1/operators/{opk}/rewards?epochs=9223372036854775808"),
            400,
            "out_of_range",
        ),
        (
            &format!("/v1/operators/{opk}/rewards?epochs=18446744073709551616"),
            400,
            "out_of_range",
        ),
        (
            &format!("/v1/operators/{opk}/rewards?epochs=1&epochs=2"),
            400,
            "bad_request",
        ),
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        error(r, status, code).await;
    }
    let max = http
        .get(format!(
            "{base}/v1/operators/{opk}/rewards?epochs=9223372036854775807"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(max.status(), 200, "i64::MAX is clamped to the window limit");
    // An operator with nothing: empty lines, not an error.
    let stranger = public_key_of(&device_keypair_from_seed([74; 32]));
    let s: Value = http
        .get(format!("{base}/v1/operators/{stranger}/rewards"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        s["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["devices"] == serde_json::json!([]) && e["earned"] == 0),
        "{s}"
    );

    server.stop().await.unwrap();
}
