//! `depin operator status|settings|claim` and `depin node status` as an
//! operator runs them: the real binary against a real `depin serve` over
//! loopback, a real node agent earning in short epochs, and every output
//! checked against the coordinator's API.

mod common;

use common::{Api, depin};
use depin_core::PublicKey;
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(60);
const EPOCH_SECONDS: &str = "3";

fn out(o: &Output) -> String {
    common::stdout(o)
}

fn err(o: &Output) -> String {
    common::stderr(o)
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    out(&o)
}

/// Runs `depin` expecting failure; returns stderr.
fn fails(o: Output) -> String {
    assert!(!o.status.success(), "expected failure, got: {}", out(&o));
    err(&o)
}

fn json_of(o: Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn serve(dir: &Path) -> (common::Server, String) {
    common::serve(dir, EPOCH_SECONDS, BOUND)
}

/// The cumulative claim of `op` as of `epoch`, 0 when it has none.
fn cumulative(api: &Api, epoch: u64, op: &PublicKey) -> u128 {
    match api.rt.block_on(api.c.claim(epoch, op)) {
        Ok(v) => v.amount.as_str().unwrap().parse().unwrap(),
        Err(e) if e.status() == Some(404) => 0,
        Err(e) => panic!("{e}"),
    }
}

fn keygen(dir: &Path, out_file: &str) -> String {
    ok(depin(
        &[
            "keygen",
            "--out",
            out_file,
            "--passphrase-file",
            "pass.txt",
            "--insecure-fast-kdf",
        ],
        dir,
    ))
    .trim()
    .to_string()
}

/// Drops the fields of a device view that move while the coordinator keeps
/// closing epochs without the (stopped) device: every such close adds a
/// reduced-reward reason to its counts.
fn stable(mut devices: Value) -> Value {
    for d in devices.as_array_mut().unwrap() {
        d.as_object_mut().unwrap().remove("reasons");
    }
    devices
}

#[test]
fn operator_commands_against_a_live_coordinator() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("pass.txt"), "correct horse\n").unwrap();
    std::fs::write(dir.join("wrong.txt"), "wrong horse\n").unwrap();
    std::fs::write(dir.join("garbage.key"), "not a key\n").unwrap();
    let op_hex = keygen(dir, "op.key");
    let op: PublicKey = op_hex.parse().unwrap();
    let stranger = keygen(dir, "stranger.key");
    let (_server, url) = serve(dir);
    let api = Api::new(&url);
    let pass = ["--passphrase-file", "pass.txt"];

    // ---- errors before anything exists
    let e = fails(depin(
        &[
            "operator",
            "status",
            "--operator",
            &op_hex,
            "--coordinator",
            "http://127.0.0.1:1",
        ],
        dir,
    ));
    assert!(e.contains("cannot reach the coordinator"), "{e}");
    let e = fails(depin(
        &[
            "operator",
            "status",
            "--operator",
            &stranger,
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(
        e.contains("unknown to the coordinator") && e.contains(&stranger),
        "{e}"
    );
    let e = fails(depin(
        &[
            "operator",
            "status",
            "--operator-key",
            "garbage.key",
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(
        e.contains("--operator-key") && e.contains("garbage.key"),
        "{e}"
    );
    let e = fails(depin(
        &[
            "operator",
            "status",
            "--operator",
            "xyz",
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(e.contains("--operator"), "{e}");

    // ---- a device that first cannot reach the coordinator: its spool fills
    let mut init = vec![
        "node",
        "init",
        "--sector",
        "storage",
        "--operator-key",
        "op.key",
        "--coordinator",
        &url,
        "--data-dir",
        "n1",
        "--hardware-class",
        "raspberry-pi-5",
        "--watts",
        "6",
    ];
    init.extend(pass);
    ok(depin(&init, dir));
    let device =
        serde_json::from_str::<Value>(&std::fs::read_to_string(dir.join("n1/node.json")).unwrap())
            .unwrap()["device"]
            .as_str()
            .unwrap()
            .to_string();
    let fresh = json_of(depin(
        &["node", "status", "--data-dir", "n1", "--json"],
        dir,
    ));
    assert_eq!(fresh["device"], device.as_str());
    assert_eq!(fresh["operator"], op_hex.as_str());
    assert_eq!(fresh["sector"], "storage");
    assert_eq!(fresh["coordinator"], url.as_str());
    assert_eq!(fresh["spool_pending"], 0);
    assert!(fresh["status"].is_null(), "{fresh}");
    let human = ok(depin(&["node", "status", "--data-dir", "n1"], dir));
    assert!(
        human.contains("has not run yet") && human.contains(&device),
        "{human}"
    );
    let e = fails(depin(&["node", "status", "--data-dir", "nowhere"], dir));
    assert!(e.contains("not initialised"), "{e}");

    ok(depin(
        &[
            "node",
            "run",
            "--data-dir",
            "n1",
            "--coordinator",
            "http://127.0.0.1:1",
            "--max-heartbeats",
            "2",
            "--interval-seconds",
            "0.1",
            "--max-backoff-seconds",
            "0.2",
        ],
        dir,
    ));
    let offline = json_of(depin(
        &["node", "status", "--data-dir", "n1", "--json"],
        dir,
    ));
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("n1/status.json")).unwrap())
            .unwrap();
    assert_eq!(offline["spool_pending"], 2, "{offline}");
    assert_eq!(offline["status"], on_disk, "the status file, as it is");
    assert!(offline["status"]["consecutive_failures"].as_u64().unwrap() > 0);
    let human = ok(depin(&["node", "status", "--data-dir", "n1"], dir));
    assert!(
        human.contains("2 pending") && human.contains("last accepted never"),
        "{human}"
    );

    // ---- settings before any are stored
    let none = json_of(depin(
        &[
            "operator",
            "settings",
            "get",
            "--operator",
            &op_hex,
            "--coordinator",
            &url,
            "--json",
        ],
        dir,
    ));
    assert!(
        none["settings"].is_null() && none["defaults"].is_object(),
        "{none}"
    );
    let human = ok(depin(
        &[
            "operator",
            "settings",
            "get",
            "--operator-key",
            "op.key",
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(human.contains("has stored no settings"), "{human}");

    // ---- store settings by flags (signed); then from a TOML file
    let set = |extra: &[&str], passfile: &str| {
        let mut a = vec![
            "operator",
            "settings",
            "set",
            "--operator-key",
            "op.key",
            "--coordinator",
            &url,
            "--passphrase-file",
            passfile,
        ];
        a.extend_from_slice(extra);
        depin(&a, dir)
    };
    let e = fails(set(&["--token-price", "2"], "wrong.txt"));
    assert!(e.contains("wrong passphrase"), "{e}");
    let e = fails(depin(
        &[
            "operator",
            "settings",
            "set",
            "--operator-key",
            "garbage.key",
            "--coordinator",
            &url,
            "--passphrase-file",
            "pass.txt",
            "--token-price",
            "2",
        ],
        dir,
    ));
    assert!(e.contains("garbage.key"), "{e}");
    let e = fails(depin(
        &[
            "operator",
            "settings",
            "get",
            "--operator",
            &op_hex,
            "--coordinator",
            "http://127.0.0.1:1",
        ],
        dir,
    ));
    assert!(e.contains("cannot reach the coordinator"), "{e}");
    let e = fails(set(&["--internet-share", "1.5"], "pass.txt"));
    assert!(e.contains("internet_share"), "{e}");
    let stored = json_of(set(
        &["--kwh-price", "0.3", "--token-price", "2", "--json"],
        "pass.txt",
    ));
    let from_api = api.rt.block_on(api.c.operator_settings(&op)).unwrap();
    assert_eq!(
        stored, from_api,
        "what set printed is what the server stores"
    );
    assert_eq!(from_api["settings"]["kwh_price_usd"], 0.3);
    assert_eq!(from_api["settings"]["token_price_usd"], 2.0);
    // What was stored is the signed envelope `set` sent: kind 7, signed by
    // the operator key, carrying the settings in their canonical form.
    let envelope = hex::decode(from_api["envelope"].as_str().unwrap()).unwrap();
    let signed = depin_protocol::decode_signed(&envelope).unwrap();
    signed.verify_signature().unwrap();
    assert_eq!(signed.envelope.signer, op);
    assert_eq!(
        signed.envelope.timestamp_ms,
        from_api["signed_ms"].as_i64().unwrap()
    );
    let document = signed
        .envelope
        .decode_payload::<depin_protocol::OperatorSettings>()
        .unwrap()
        .document;
    let parsed = depin_economics::operator::OperatorCostSettings::from_canonical_json(
        document.as_bytes(),
        &depin_economics::Catalogue::builtin(),
    )
    .unwrap();
    assert_eq!(serde_json::to_value(parsed).unwrap(), from_api["settings"]);
    // Flags alone keep the other stored figures.
    let defaults = none["defaults"]["internet_usd_per_month"].clone();
    assert_eq!(from_api["settings"]["internet_usd_per_month"], defaults);

    std::fs::write(
        dir.join("costs.toml"),
        "kwh_price_usd = 0.25\ninternet_usd_per_month = 40.0\ntoken_price_usd = 2.0\nmaintenance_usd_per_month = 1.5\n",
    )
    .unwrap();
    ok(set(&["--file", "costs.toml"], "pass.txt"));
    let got = json_of(depin(
        &[
            "operator",
            "settings",
            "get",
            "--operator",
            &op_hex,
            "--coordinator",
            &url,
            "--json",
        ],
        dir,
    ));
    assert_eq!(got, api.rt.block_on(api.c.operator_settings(&op)).unwrap());
    assert_eq!(got["settings"]["internet_usd_per_month"], 40.0);
    assert_eq!(got["settings"]["maintenance_usd_per_month"], 1.5);
    let human = ok(depin(
        &[
            "operator",
            "settings",
            "get",
            "--operator",
            &op_hex,
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(
        human.contains("USD 0.25/kWh") && human.contains("USD 40/month"),
        "{human}"
    );

    // Malformed files name the field; nothing is stored.
    for (name, body, needle) in [
        (
            "bad1.json",
            r#"{"kwh_price_usd": "cheap", "internet_usd_per_month": 1, "token_price_usd": 1}"#,
            "kwh_price_usd",
        ),
        (
            "bad2.json",
            r#"{"kwh_prise": 0.3, "internet_usd_per_month": 1, "token_price_usd": 1}"#,
            "kwh_prise",
        ),
        (
            "bad3.toml",
            "kwh_price_usd = 0.3\ntoken_price_usd = 1.0\n",
            "internet_usd_per_month",
        ),
        ("bad4.json", "{not json", "not valid JSON"),
    ] {
        std::fs::write(dir.join(name), body).unwrap();
        let e = fails(set(&["--file", name], "pass.txt"));
        assert!(e.contains(needle), "{name}: {e}");
    }
    assert_eq!(
        api.rt.block_on(api.c.operator_settings(&op)).unwrap(),
        got,
        "a refused file changes nothing"
    );

    // ---- the device delivers its spool and heartbeats through a few epochs
    ok(depin(
        &[
            "node",
            "run",
            "--data-dir",
            "n1",
            "--for-seconds",
            "8",
            "--interval-seconds",
            "0.25",
        ],
        dir,
    ));
    let after = json_of(depin(
        &["node", "status", "--data-dir", "n1", "--json"],
        dir,
    ));
    assert_eq!(after["spool_pending"], 0, "{after}");
    let created = after["status"]["heartbeats_created"].as_u64().unwrap();
    assert!(created > 2);
    // With 3-second epochs the two reports spooled while offline may be too
    // old by now (`stale_timestamp`); either way none is left or lost.
    let n = |k: &str| after["status"][k].as_u64().unwrap();
    assert_eq!(
        n("accepted_total") + n("already_had_total") + n("dropped_total"),
        created,
        "{after}"
    );
    assert!(n("accepted_total") >= created - 2, "{after}");
    assert_eq!(after["status"]["consecutive_failures"], 0);
    let human = ok(depin(&["node", "status", "--data-dir", "n1"], dir));
    assert!(
        human.contains("0 pending") && human.contains("failures      0"),
        "{human}"
    );

    // Wait until the epoch of the last heartbeat has closed: from then on
    // the operator's earnings no longer change.
    let dev: PublicKey = device.parse().unwrap();
    let policy = api.rt.block_on(api.c.policy()).unwrap();
    let view = api.rt.block_on(api.c.device(&dev)).unwrap();
    let last_hb = view.telemetry.unwrap().timestamp_ms;
    let last_hb_epoch = ((last_hb - policy.genesis_unix_ms) / 1000) as u64 / policy.epoch_seconds;
    let start = Instant::now();
    while api.last_closed() < Some(last_hb_epoch) {
        assert!(
            start.elapsed() < BOUND,
            "epoch {last_hb_epoch} never closed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // ---- operator status, JSON, against the API
    let st = json_of(depin(
        &[
            "operator",
            "status",
            "--operator-key",
            "op.key",
            "--coordinator",
            &url,
            "--json",
        ],
        dir,
    ));
    let devices_api = api.rt.block_on(api.c.operator_devices_json(&op)).unwrap();
    assert_eq!(stable(st["devices"].clone()), stable(devices_api.clone()));
    assert_eq!(st["devices"][0]["device"], device.as_str());
    let rewards = devices_api[0]["rewards_total"].as_u64().unwrap();
    assert!(
        rewards > 0,
        "the device earned in the short epochs: {devices_api}"
    );
    let last = api.last_closed().unwrap();
    let cum = cumulative(&api, last, &op);
    assert_eq!(
        cum,
        u128::from(rewards),
        "one device: its rewards are the operator's"
    );
    let cum_s = cum.to_string();
    assert_eq!(st["earnings"]["cumulative"]["base_units"], cum_s.as_str());
    assert_eq!(
        st["earnings"]["last_30_days"]["earned"]["base_units"],
        cum_s.as_str()
    );
    let l = st["earnings"]["last_closed_epoch"]["epoch"]
        .as_u64()
        .unwrap();
    let in_l = cumulative(&api, l, &op) - l.checked_sub(1).map_or(0, |p| cumulative(&api, p, &op));
    assert_eq!(
        st["earnings"]["last_closed_epoch"]["earned"]["base_units"],
        in_l.to_string().as_str()
    );
    let balance = api.rt.block_on(api.c.balance(&op_hex)).unwrap();
    assert_eq!(
        st["balance"]["amount"]["base_units"],
        balance.balance.to_string().as_str()
    );
    assert_eq!(
        u128::try_from(balance.balance).unwrap(),
        cum,
        "nothing withdrawn"
    );
    assert_eq!(st["token_price_usd"], 2.0);
    assert_eq!(st["token_price_source"], "operator");
    let usd = st["balance"]["amount"]["usd"].as_f64().unwrap();
    assert!(
        (usd - balance.balance as f64 / 1e6 * 2.0).abs() < 1e-9,
        "{usd}"
    );
    let econ = api.rt.block_on(api.c.operator_economics(&op)).unwrap();
    assert_eq!(
        st["economics"]["earned_tokens"],
        econ["total"]["earned_tokens"]
    );
    assert_eq!(st["economics"]["devices"], 1);
    // Alerts depend on the clock (a stopped device turns `offline`), so
    // compare their shape and devices rather than two readings in time.
    for a in st["alerts"].as_array().unwrap() {
        assert_eq!(a["device"], device.as_str(), "{a}");
        for k in ["code", "severity", "message", "action"] {
            assert!(a[k].is_string(), "{a}");
        }
    }
    let api_alerts = api.rt.block_on(api.c.operator_alerts(&op)).unwrap();
    assert!(api_alerts.is_array());

    // ---- operator status, human
    let human = ok(depin(
        &[
            "operator",
            "status",
            "--operator",
            &op_hex,
            "--coordinator",
            &url,
        ],
        dir,
    ));
    let tokens = format!("{}.{:06}", cum / 1_000_000, cum % 1_000_000);
    assert!(
        human.contains(&format!("balance      {tokens} tokens (USD ")),
        "{human}"
    );
    assert!(
        human.contains("in the last 30 days") && human.contains(&device),
        "{human}"
    );
    assert!(
        human.contains("USD 2 (your settings)") && human.contains("storage"),
        "{human}"
    );

    // ---- claim: JSON for a distributor, checked against the API and the proof
    let claim = json_of(depin(
        &[
            "operator",
            "claim",
            "--epoch",
            &last.to_string(),
            "--operator",
            &op_hex,
            "--coordinator",
            &url,
            "--json",
        ],
        dir,
    ));
    let api_claim = api.rt.block_on(api.c.claim(last, &op)).unwrap();
    assert_eq!(claim["account"], format!("0x{op_hex}"));
    assert_eq!(claim["amount"], cum_s.as_str());
    assert_eq!(claim["root"], api_claim.root.as_str());
    let proof: Vec<String> = serde_json::from_value(claim["proof"].clone()).unwrap();
    assert_eq!(proof, api_claim.proof);
    let root = depin_merkle::parse_hex(claim["root"].as_str().unwrap()).unwrap();
    let hashes: Vec<_> = proof
        .iter()
        .map(|p| depin_merkle::parse_hex(p).unwrap())
        .collect();
    assert!(
        depin_merkle::verify(&root, &depin_merkle::Leaf::for_key(&op, cum), &hashes),
        "the proof verifies like MerkleProof.verify"
    );
    let human = ok(depin(
        &[
            "operator",
            "claim",
            "--epoch",
            &last.to_string(),
            "--operator-key",
            "op.key",
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(
        human.contains(&format!("cumulative   {tokens} tokens ({cum} base units)")),
        "{human}"
    );
    assert!(human.contains(&api_claim.root), "{human}");
    let e = fails(depin(
        &[
            "operator",
            "claim",
            "--epoch",
            &last.to_string(),
            "--operator",
            &stranger,
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(e.contains("no claim") && e.contains(&stranger), "{e}");
    let e = fails(depin(
        &[
            "operator",
            "claim",
            "--epoch",
            "999999",
            "--operator",
            &op_hex,
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(e.contains("999999"), "{e}");
    let e = fails(depin(
        &[
            "operator",
            "claim",
            "--epoch",
            "0",
            "--operator",
            &op_hex,
            "--coordinator",
            "http://127.0.0.1:1",
        ],
        dir,
    ));
    assert!(e.contains("cannot reach the coordinator"), "{e}");
}
