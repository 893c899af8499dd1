//! Operator economics against a live network: the real `depin` binary and a real
//! `depin serve` over loopback, with a real node agent earning in 2-second epochs.
//!
//! `depin estimate --coordinator` must refuse to extrapolate such a young, tiny network
//! to months, and say on what the rates rest when told to go ahead.

mod common;

use common::{Api, depin};
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(60);

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    common::stdout(&o)
}

fn fails(o: Output) -> String {
    assert!(
        !o.status.success(),
        "expected failure, got: {}",
        common::stdout(&o)
    );
    common::stderr(&o)
}

/// An operator key and one storage node that has earned in a few closed epochs.
/// Returns the operator's hex key.
fn operator_with_an_earning_node(dir: &Path, url: &str, api: &Api) -> String {
    std::fs::write(dir.join("pass.txt"), "correct horse\n").unwrap();
    let op = ok(depin(
        &[
            "keygen",
            "--out",
            "op.key",
            "--passphrase-file",
            "pass.txt",
            "--insecure-fast-kdf",
        ],
        dir,
    ))
    .trim()
    .to_string();
    ok(depin(
        &[
            "node",
            "init",
            "--sector",
            "storage",
            "--operator-key",
            "op.key",
            "--coordinator",
            url,
            "--data-dir",
            "n1",
            "--passphrase-file",
            "pass.txt",
        ],
        dir,
    ));
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
    // Wait for three closed epochs, one of them with a reward for the node, and for the
    // epoch of its last heartbeat: from then on its earnings no longer change.
    let policy = api.rt.block_on(api.c.policy()).unwrap();
    let stopped_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let last_hb_epoch =
        ((stopped_ms - policy.genesis_unix_ms) / 1000) as u64 / policy.epoch_seconds;
    let start = Instant::now();
    loop {
        let e = api.epochs();
        if e.len() >= 3
            && e.iter().any(|e| e["minted"].as_u64() > Some(0))
            && e.last().and_then(|e| e["epoch"].as_u64()) >= Some(last_hb_epoch)
        {
            break;
        }
        assert!(start.elapsed() < BOUND, "no epoch paid the node: {e:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    op
}

#[test]
fn estimate_refuses_a_tiny_young_network_and_says_what_it_rests_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_server, url) = common::serve(dir, "2", BOUND);
    let api = Api::new(&url);
    operator_with_an_earning_node(dir, &url, &api);

    let e = fails(depin(
        &[
            "estimate",
            "--device",
            "spare-disk-4tb",
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(
        e.contains("--coordinator: too little data to extrapolate to months")
            && e.contains("hours of data")
            && e.contains("epochs of 2 s")
            && e.contains("only 1 storage device earned")
            && e.contains("--allow-thin-rates"),
        "{e}"
    );
    // --rank checks every sector it ranks: the network has no compute devices.
    let e = fails(depin(&["estimate", "--rank", "--coordinator", &url], dir));
    assert!(e.contains("only 0 compute devices"), "{e}");

    // Told to go ahead: the figures come with the reasons they are not a forecast, and
    // stderr says what the rates rest on (the epoch length the policy really has).
    let o = depin(
        &[
            "estimate",
            "--device",
            "spare-disk-4tb",
            "--coordinator",
            &url,
            "--allow-thin-rates",
            "--paths",
            "200",
            "--json",
        ],
        dir,
    );
    let err = common::stderr(&o);
    let v: Value = serde_json::from_str(&ok(o)).unwrap();
    assert!(
        err.contains("live rates from policy ")
            && err.contains("closed epochs of 2 s")
            && err.contains("1 storage device"),
        "{err}"
    );
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    // Hours and devices are too thin whatever the timing; the epochs may be too.
    assert_eq!(warnings[0], "live_rates_too_thin", "{v}");
    assert!(
        warnings
            .iter()
            .filter(|w| **w == "live_rates_too_thin")
            .count()
            >= 2,
        "{v}"
    );
    let source = v["inputs"]["rewards"]["source"].as_str().unwrap();
    assert!(source.contains("closed epochs of 2 s"), "{source}");
    // The policy's 15%/year emission decay came along with the rates.
    assert_eq!(
        v["inputs"]["rewards"]["emission_decay_per_year"], 0.15,
        "{v}"
    );
}

#[test]
fn operator_earnings_csv_adds_up_to_the_devices_rewards() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_server, url) = common::serve(dir, "2", BOUND);
    let api = Api::new(&url);
    let op = operator_with_an_earning_node(dir, &url, &api);
    let device = api
        .rt
        .block_on(api.c.operator_devices_json(&op.parse().unwrap()))
        .unwrap()[0]
        .clone();
    let device_hex = device["device"].as_str().unwrap().to_string();

    let csv = ok(depin(
        &[
            "operator",
            "earnings",
            "--operator",
            &op,
            "--coordinator",
            &url,
            "--csv",
        ],
        dir,
    ));
    let mut lines = csv.split("\r\n");
    assert_eq!(
        lines.next().unwrap(),
        depin_economics::earnings::EARNINGS_CSV_HEADER
    );
    let rows: Vec<Vec<&str>> = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    assert!(!rows.is_empty(), "{csv}");
    // The rewards the server lists for the device, read after the CSV: the CSV can only
    // have fewer (epochs keep closing, the stopped device earns nothing more in them).
    let lines = api
        .rt
        .block_on(api.c.operator_rewards(&op.parse().unwrap()))
        .unwrap();
    let total: u64 = lines["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["reward"].as_u64().unwrap() + l["fees"].as_u64().unwrap())
        .sum();
    let mut csv_base = 0u64;
    for r in &rows {
        assert_eq!(r.len(), 11, "{r:?}");
        // ISO date of the first of a month; the device; its sector; the default price.
        assert!(
            r[0].len() == 10 && r[0].ends_with("-01") && r[0].as_bytes()[4] == b'-',
            "{r:?}"
        );
        assert_eq!(
            (r[1], r[2], r[3]),
            ("month", device_hex.as_str(), "storage")
        );
        let (whole, frac) = r[5].split_once('.').unwrap();
        assert_eq!(frac.len(), 6);
        csv_base += whole.parse::<u64>().unwrap() * 1_000_000 + frac.parse::<u64>().unwrap();
        let price: f64 = r[6].parse().unwrap();
        assert_eq!(r[7], "defaults");
        let earned: f64 = r[8].parse().unwrap();
        let tokens: f64 = r[5].parse().unwrap();
        assert!((earned - tokens * price).abs() < 1e-6, "{r:?}");
        // Unknown hardware class: no costs, so no net either.
        let running = r[9];
        if !running.is_empty() {
            let net: f64 = r[10].parse().unwrap();
            assert!((net - (earned - running.parse::<f64>().unwrap())).abs() < 1e-5);
        }
    }
    assert!(csv_base > 0 && csv_base <= total, "{csv_base} of {total}");
    assert_eq!(
        csv_base,
        device["rewards_total"].as_u64().unwrap(),
        "the CSV adds up to what the device view said before it"
    );

    // One month by day: the same tokens, in daily rows.
    let month = &rows[0][0][..7];
    let daily = ok(depin(
        &[
            "operator",
            "earnings",
            "--operator",
            &op,
            "--coordinator",
            &url,
            "--csv",
            "--month",
            month,
        ],
        dir,
    ));
    assert!(
        daily
            .split("\r\n")
            .skip(1)
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with(month) && l.contains(",day,")),
        "{daily}"
    );
    let table = ok(depin(
        &[
            "operator",
            "earnings",
            "--operator",
            &op,
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(table.contains("tokens valued at USD"), "{table}");

    let e = fails(depin(
        &[
            "operator",
            "earnings",
            "--operator",
            &op,
            "--coordinator",
            &url,
            "--month",
            "2026-13",
        ],
        dir,
    ));
    assert!(e.contains("--month"), "{e}");
    let e = fails(depin(
        &[
            "operator",
            "earnings",
            "--operator",
            &"ab".repeat(32),
            "--coordinator",
            &url,
        ],
        dir,
    ));
    assert!(e.contains("no devices"), "{e}");
}
