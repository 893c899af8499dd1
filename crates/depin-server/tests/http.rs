//! The API over real HTTP on loopback: happy path, every bad-input class, and
//! that the server keeps serving after garbage.

mod common;

use common::{cert, start};
use depin_protocol::{
    Envelope, Heartbeat, SigningKey, device_keypair_from_seed, encode_batch, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_server::now_ms;
use serde_json::Value;
use std::time::Duration;

fn hb(dev: &SigningKey, seq: u64) -> depin_protocol::Signed {
    let h = Heartbeat {
        uptime_s: 1,
        temperature_centi_c: 5_000,
        firmware_version: "0.1.0".into(),
        power_mw: 170_000,
    };
    sign(&Envelope::new(public_key_of(dev), seq, now_ms(), &h), dev)
}

async fn expect_error(resp: reqwest::Response, status: u16, code: &str) {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("error bodies are JSON, got {got} {text:?}"));
    assert_eq!(v["error"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_end_to_end_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // Epochs of 2 s starting now, so one closes within the test.
    let policy = RewardPolicy {
        genesis_unix_ms: now_ms(),
        heartbeat_interval_seconds: 1,
        close_grace_seconds: 1,
        min_uptime_bps: 1,
        ..RewardPolicy::devnet(2)
    };
    let server = common::start_with_body_limit(dir.path(), policy.clone(), 64 * 1024).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let op = device_keypair_from_seed([11; 32]);
    let dev = device_keypair_from_seed([12; 32]);

    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let p: Value = http
        .get(format!("{base}/v1/policy"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["policy_id"], policy.id());

    let r = http
        .post(format!("{base}/v1/devices"))
        .body(cert(&op, &dev, "rtx-3060", "0.1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["sector"], "compute");
    expect_error(
        http.post(format!("{base}/v1/devices"))
            .body(cert(&op, &dev, "rtx-3060", "0.1.0"))
            .send()
            .await
            .unwrap(),
        409,
        "already_registered",
    )
    .await;

    // Bad input, each with its clear error; the server keeps serving.
    let full = encode_batch(&[hb(&dev, 1)]);
    let ab = "ab".repeat(32);
    /// method, path, body, expected status, expected error code
    type Case = (reqwest::Method, String, Option<Vec<u8>>, u16, &'static str);
    let cases: Vec<Case> = vec![
        (
            reqwest::Method::POST,
            "/v1/reports".into(),
            Some(vec![0xff; 100]),
            400,
            "malformed",
        ),
        (
            reqwest::Method::POST,
            "/v1/reports".into(),
            Some(vec![]),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::POST,
            "/v1/reports".into(),
            Some(vec![0; 100 * 1024]),
            413,
            "payload_too_large",
        ),
        (
            reqwest::Method::POST,
            "/v1/reports".into(),
            Some(full[..full.len() - 3].to_vec()),
            400,
            "malformed",
        ),
        (
            reqwest::Method::POST,
            "/v1/devices".into(),
            Some(b"{\"not\": \"an envelope\"}".to_vec()),
            400,
            "malformed",
        ),
        (
            reqwest::Method::GET,
            "/v1/devices/xyz".into(),
            None,
            400,
            "bad_request",
        ),
        (
            reqwest::Method::GET,
            format!("/v1/devices/{ab}"),
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            "/v1/epochs/-1".into(),
            None,
            400,
            "bad_request",
        ),
        (
            reqwest::Method::GET,
            "/v1/balances/bogus:1".into(),
            None,
            400,
            "bad_request",
        ),
        (
            reqwest::Method::GET,
            "/v1/nope".into(),
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::DELETE,
            "/v1/reports".into(),
            None,
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::GET,
            "/v1/economics/rates?window=x".into(),
            None,
            400,
            "bad_request",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let mut req = http.request(method, format!("{base}{path}"));
        if let Some(b) = body {
            req = req.body(b);
        }
        expect_error(req.send().await.unwrap(), status, code).await;
    }

    // Per-report verdicts: one good, one replay, one forged.
    let mut forged = hb(&dev, 3);
    forged.signature[5] ^= 0x40;
    let batch = encode_batch(&[hb(&dev, 1), hb(&dev, 1), forged]);
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
    let reasons: Vec<&str> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["replayed_sequence", "bad_signature"]);

    // Keep heartbeating until epoch 0 closes and pays the operator.
    let mut seq = 1;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let balance = loop {
        seq += 1;
        let _ = http
            .post(format!("{base}/v1/reports"))
            .body(encode_batch(&[hb(&dev, seq)]))
            .send()
            .await
            .unwrap();
        let b: Value = http
            .get(format!("{base}/v1/balances/{}", public_key_of(&op)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if b["balance"].as_i64().unwrap() > 0 {
            break b["balance"].as_i64().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "epoch 0 did not close in time"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let e: Value = http
        .get(format!("{base}/v1/epochs/0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claim: Value = http
        .get(format!("{base}/v1/claims/0/{}", public_key_of(&op)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(claim["root"], e["claim_root"]);
    assert_eq!(claim["amount"], balance.to_string());
    let dump = http
        .get(format!("{base}/v1/claims/0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tree = depin_merkle::StandardMerkleTree::from_json(&dump).unwrap();
    assert_eq!(
        depin_merkle::to_hex(&tree.root()),
        e["claim_root"].as_str().unwrap()
    );
    let d: Value = http
        .get(format!("{base}/v1/devices/{}", public_key_of(&dev)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(d["rewards_total"].as_u64().unwrap() > 0);
    // The forged report named this device as its signer, but a claimed signer
    // proves nothing: the device's public page shows only what it really
    // signed (the replay), never the forgery planted on it.
    assert!(d["reasons"].get("bad_signature").is_none(), "{d}");
    assert_eq!(d["reasons"]["replayed_sequence"], 1, "{d}");
    assert!(d["telemetry"]["power_w"].as_f64().unwrap() > 100.0);
    let rates: Value = http
        .get(format!("{base}/v1/economics/rates"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(rates["sectors"]["compute"].is_object(), "{rates}");

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("depin_reports_accepted_total"),
        "{metrics}"
    );
    assert!(metrics.contains("depin_epochs_closed_total"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), RewardPolicy::default_v1()).await;
    let base = format!("http://{}", server.addr);
    let doc: Value = reqwest::get(format!("{base}/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // The router and the document come from one table; check the document's
    // side over HTTP: every listed (path, method) reaches a handler, never
    // the "no such endpoint" fallback or "method not allowed".
    let http = reqwest::Client::new();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 18, "{}", paths.len());
    for (path, methods) in paths {
        let concrete = path
            .replace("{epoch}", "0")
            .replace("{device}", &"ab".repeat(32))
            .replace("{operator}", &"ab".repeat(32))
            .replace("{account}", &"ab".repeat(32));
        for method in methods.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = http
                .request(m, format!("{base}{concrete}"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path}: {text}");
            assert!(
                !(status == 404 && text.contains("no such endpoint")),
                "{method} {path} is documented but not routed"
            );
        }
    }
    server.stop().await.unwrap();
}

/// Garbage on every POST endpoint gets a 4xx JSON error, never a 5xx, and
/// the server keeps serving. Random bodies plus single-byte mutations of a
/// valid report batch, from a fixed seed so a failure replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_4xx_and_server_survives() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), RewardPolicy::default_v1()).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let valid = encode_batch(&[
        hb(&device_keypair_from_seed([3; 32]), 1),
        hb(&device_keypair_from_seed([4; 32]), 9),
    ]);
    let bodies = proptest::collection::vec(proptest::num::u8::ANY, 1..2048);
    for case in 0..400u32 {
        let body = if case % 2 == 0 {
            bodies.new_tree(&mut runner).unwrap().current()
        } else {
            let mut b = valid.clone();
            let i = (case as usize * 7919) % b.len();
            b[i] ^= 1 << (case % 8);
            b
        };
        let path = [
            "/v1/reports",
            "/v1/devices",
            "/v1/devices/revoke",
            "/v1/devices/rotate",
        ][case as usize % 4];
        let r = http
            .post(format!("{base}{path}"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("case {case}: not JSON: {status} {text:?}"));
        assert!(
            status == 200 || (400..500).contains(&status),
            "case {case}: {path} gave {status} {v}"
        );
        if status != 200 {
            assert!(v["error"].is_string(), "{v}");
        }
    }
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    server.stop().await.unwrap();
}

/// 150 validly signed heartbeats from as many unregistered keys, drawn from
/// `from`: input that proves nothing about its sender.
fn strangers(from: u8) -> Vec<depin_protocol::Signed> {
    (0..150u32)
        .map(|i| {
            let mut seed = [from; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            hb(&device_keypair_from_seed(seed), 1)
        })
        .collect()
}

/// Unverifiable reports (random signer keys, bad signatures) are stored
/// nowhere — the attack that added 200,000 rows in 6 s adds none — and a
/// client address that keeps sending them is refused before any work, while
/// registered devices' verified reports are never charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverifiable_reports_store_nothing_and_are_bounded_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let policy = RewardPolicy {
        genesis_unix_ms: now_ms() - 1_000,
        max_reports_per_device_per_epoch: 10_000,
        ..RewardPolicy::devnet(3_600)
    };
    let server = common::start_with(dir.path(), policy, |c| c.unverified_per_minute = 500).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let op = device_keypair_from_seed([21; 32]);
    let dev = device_keypair_from_seed([22; 32]);
    let r = http
        .post(format!("{base}/v1/devices"))
        .body(cert(&op, &dev, "rtx-3060", "0.1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // Verified reports of a registered device, many of them: never charged.
    let honest: Vec<_> = (1..=600).map(|s| hb(&dev, s)).collect();
    let r = http
        .post(format!("{base}/v1/reports"))
        .body(encode_batch(&honest))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["accepted"], 600, "{}", v["rejected"][0]);
    // Batches of 150 reports from random keys against a budget of 500: the
    // fourth overdraws it (charged in full), the fifth is refused.
    for from in [1u8, 2, 3, 4, 5] {
        let r = http
            .post(format!("{base}/v1/reports"))
            .body(encode_batch(&strangers(from)))
            .send()
            .await
            .unwrap();
        if from <= 4 {
            assert_eq!(r.status().as_u16(), 200, "request {from}");
        } else {
            expect_error(r, 429, "rate_limited").await;
        }
    }
    // The limit is per address: even this honest device's next report from
    // the same address waits (a shared NAT pays for its worst member).
    let r = http
        .post(format!("{base}/v1/reports"))
        .body(encode_batch(&[hb(&dev, 601)]))
        .send()
        .await
        .unwrap();
    expect_error(r, 429, "rate_limited").await;
    server.stop().await.unwrap();
    let store = depin_store::Store::open_in_dir(dir.path()).await.unwrap();
    let counts = store.rejection_counts(None).await.unwrap();
    assert!(
        counts.is_empty(),
        "nothing unverified is stored: {counts:?}"
    );
    assert_eq!(store.devices(None).await.unwrap().len(), 1);
}

/// A device without a temperature sensor reports 0, which the device view
/// shows as unknown (`null`), not 0.0 °C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_temperature_sensor_is_null() {
    let dir = tempfile::tempdir().unwrap();
    let policy = RewardPolicy {
        genesis_unix_ms: now_ms() - 1_000,
        ..RewardPolicy::devnet(3_600)
    };
    let server = start(dir.path(), policy).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let op = device_keypair_from_seed([41; 32]);
    let (cold, warm) = (
        device_keypair_from_seed([42; 32]),
        device_keypair_from_seed([43; 32]),
    );
    for (dev, centi) in [(&cold, 0), (&warm, 1)] {
        let r = http
            .post(format!("{base}/v1/devices"))
            .body(cert(&op, dev, "rtx-3060", "0.1.0"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let h = Heartbeat {
            uptime_s: 1,
            temperature_centi_c: centi,
            firmware_version: "0.1.0".into(),
            power_mw: 1_000,
        };
        let s = sign(&Envelope::new(public_key_of(dev), 1, now_ms(), &h), dev);
        let v: Value = http
            .post(format!("{base}/v1/reports"))
            .body(encode_batch(&[s]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["accepted"], 1, "{v}");
    }
    let view = |dev: &SigningKey| {
        let url = format!("{base}/v1/devices/{}", public_key_of(dev));
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert!(view(&cold).await["telemetry"]["temperature_c"].is_null());
    assert_eq!(view(&warm).await["telemetry"]["temperature_c"], 0.01);
    server.stop().await.unwrap();
}

/// Behind a trusted load balancer (here: loopback itself), the budget is per
/// client named in `X-Forwarded-For`, so one abuser does not throttle the
/// others who come through the same balancer. (The addresses are only text
/// in a header; all traffic stays on loopback.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_follows_forwarded_for_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let policy = RewardPolicy {
        genesis_unix_ms: now_ms() - 1_000,
        ..RewardPolicy::devnet(3_600)
    };
    let server = common::start_with(dir.path(), policy, |c| {
        c.unverified_per_minute = 100;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let strangers = strangers(9);
    let send = |who: &'static str| {
        let http = http.clone();
        let body = encode_batch(&strangers);
        let url = format!("{base}/v1/reports");
        async move {
            http.post(url)
                .header("x-forwarded-for", who)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(send("192.0.2.1").await.status().as_u16(), 200);
    expect_error(send("192.0.2.1").await, 429, "rate_limited").await;
    assert_eq!(
        send("192.0.2.2").await.status().as_u16(),
        200,
        "another client is not throttled"
    );
    server.stop().await.unwrap();
}
