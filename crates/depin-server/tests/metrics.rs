//! `/metrics` as Prometheus sees it: a real server over loopback, some
//! traffic, one epoch closed, then the scrape checked by `promtool check
//! metrics`; the checked-in alert rules by `promtool check rules`; and every
//! metric the rules and the Grafana dashboard name is one the server exports.
//!
//! promtool comes with Debian's `prometheus` package. Without it the promtool
//! steps say so and are skipped, unless `DEPIN_REQUIRE_PROMTOOL=1` (set by
//! `.ci/run`), which makes a missing promtool a failure.

mod common;

use common::cert;
use depin_protocol::{
    Envelope, Heartbeat, SigningKey, device_keypair_from_seed, encode_batch, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_server::now_ms;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `promtool` to run, or `None` (after saying why) when it is missing
/// and not required.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        depin_testkit::skip(
            "DEPIN_REQUIRE_PROMTOOL",
            "promtool is not on PATH (apt-get install prometheus): the promtool checks did not run",
        );
    }
    found
}

/// Runs `promtool ARGS` with `stdin` and fails the test with its output
/// unless it succeeds.
fn run_promtool(promtool: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(promtool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start promtool");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn hb(dev: &SigningKey, seq: u64) -> depin_protocol::Signed {
    let h = Heartbeat {
        uptime_s: 1,
        temperature_centi_c: 4_000,
        firmware_version: "0.1.0".into(),
        power_mw: 5_000,
    };
    sign(&Envelope::new(public_key_of(dev), seq, now_ms(), &h), dev)
}

/// Metric names in a scrape (the `# TYPE` lines), with their types.
fn exported(scrape: &str) -> Vec<(String, String)> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut it = l.split_whitespace();
            (
                it.next().unwrap().to_string(),
                it.next().unwrap().to_string(),
            )
        })
        .collect()
}

/// The value of the series `series` (name with labels, as rendered).
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Every `depin_…` identifier in `text` (PromQL in rules or panels).
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("depin_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        // `depin_` alone (prose such as "every depin_* metric") names nothing.
        if boundary && end > start + "depin_".len() {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

/// A histogram is referenced by its `_bucket`/`_sum`/`_count` series.
fn base_name(name: &str, histograms: &BTreeSet<String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(b) = name.strip_suffix(suffix)
            && histograms.contains(b)
        {
            return b.to_string();
        }
    }
    name.to_string()
}

/// Starts a server, sends traffic of every kind the dashboard shows (a
/// registration, accepted and refused reports, a 404), waits for epoch 0 to
/// close, and returns the scrape.
async fn scrape_after_traffic() -> String {
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

    // A fresh server already exports every metric, before any traffic.
    let fresh = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(fresh.status(), 200);
    let fresh = fresh.text().await.unwrap();
    for name in [
        "depin_http_requests_total",
        "depin_http_request_duration_seconds",
        "depin_reports_accepted_total",
        "depin_reports_rejected_total",
        "depin_epoch_close_duration_seconds",
        "depin_epoch_close_lag_epochs",
        "depin_epoch_close_lag_seconds",
        "depin_ledger_minted_base_units",
        "depin_ledger_burned_base_units",
        "depin_ledger_held_base_units",
        "depin_store_errors_total",
        "depin_epochs_closed_total",
    ] {
        assert!(
            fresh.contains(&format!("# HELP {name} ")),
            "a fresh server does not describe {name}:\n{fresh}"
        );
    }

    let op = device_keypair_from_seed([41; 32]);
    let dev = device_keypair_from_seed([42; 32]);
    let r = http
        .post(format!("{base}/v1/devices"))
        .body(cert(&op, &dev, "test-box", "0.1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // One accepted, one replay, one forged.
    let mut forged = hb(&dev, 9);
    forged.signature[3] ^= 0x10;
    let r = http
        .post(format!("{base}/v1/reports"))
        .body(encode_batch(&[hb(&dev, 1), hb(&dev, 1), forged]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let device_url = format!("{base}/v1/devices/{}", public_key_of(&dev));
    assert_eq!(http.get(&device_url).send().await.unwrap().status(), 200);
    assert_eq!(
        http.get(format!("{base}/no/such/thing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Heartbeat until epoch 0 closes and pays (epochs of 2 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = 1;
    loop {
        seq += 1;
        let _ = http
            .post(format!("{base}/v1/reports"))
            .body(encode_batch(&[hb(&dev, seq)]))
            .send()
            .await
            .unwrap();
        let epochs: serde_json::Value = http
            .get(format!("{base}/v1/epochs"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if epochs.as_array().is_some_and(|a| !a.is_empty())
            || epochs["epochs"].as_array().is_some_and(|a| !a.is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline, "epoch 0 did not close: {epochs}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let scrape = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    server.stop().await.unwrap();

    // Route templates, not raw paths: the device key never becomes a label.
    assert!(
        scrape.contains("route=\"/v1/devices/{device}\""),
        "no templated route in\n{scrape}"
    );
    assert!(
        !scrape.contains(&public_key_of(&dev).to_hex()),
        "a raw path became a label"
    );
    assert!(
        scrape.contains("route=\"unmatched\""),
        "the 404 is not counted"
    );
    assert!(value(&scrape, "depin_reports_accepted_total").unwrap() >= 1.0);
    assert!(
        value(
            &scrape,
            "depin_reports_rejected_total{reason=\"replayed_sequence\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        value(
            &scrape,
            "depin_reports_rejected_total{reason=\"bad_signature\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(value(&scrape, "depin_epoch_close_duration_seconds_count").unwrap() >= 1.0);
    assert!(value(&scrape, "depin_ledger_minted_base_units").unwrap() > 0.0);
    assert!(value(&scrape, "depin_ledger_held_base_units{holder=\"operator\"}").unwrap() > 0.0);
    assert!(value(&scrape, "depin_last_closed_epoch").unwrap() >= 0.0);
    scrape
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_prometheus_conventions_and_ops_files_name_only_real_metrics() {
    let scrape = scrape_after_traffic().await;

    // Conventions, checked here too so they hold without promtool.
    let names = exported(&scrape);
    assert!(!names.is_empty());
    for (name, kind) in &names {
        assert!(name.starts_with("depin_"), "{name} lacks the depin_ prefix");
        assert!(
            scrape.contains(&format!("# HELP {name} ")),
            "{name} has no HELP text"
        );
        match kind.as_str() {
            "counter" => assert!(
                name.ends_with("_total"),
                "counter {name} must end in _total"
            ),
            "histogram" => assert!(
                name.ends_with("_seconds"),
                "histogram {name} is not in seconds"
            ),
            "gauge" => assert!(
                !name.ends_with("_total"),
                "gauge {name} is named like a counter"
            ),
            other => panic!("{name} is a {other}; durations must be histograms"),
        }
    }

    // Every depin_ metric the alert rules and the dashboard name is exported.
    let histograms: BTreeSet<String> = names
        .iter()
        .filter(|(_, k)| k == "histogram")
        .map(|(n, _)| n.clone())
        .collect();
    let known: BTreeSet<String> = names.iter().map(|(n, _)| n.clone()).collect();
    let rules = std::fs::read_to_string(repo_root().join("deploy/prometheus/rules.yml")).unwrap();
    let dashboard =
        std::fs::read_to_string(repo_root().join("deploy/grafana/depin-coordinator.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 9, "the dashboard lost its panels");
    for (file, text) in [
        ("rules.yml", rules.clone()),
        ("dashboard", exprs.join("\n") + &dashboard),
    ] {
        let refs = referenced(&text);
        assert!(!refs.is_empty(), "{file} names no metric");
        for r in refs {
            let b = base_name(&r, &histograms);
            assert!(
                known.contains(&b),
                "{file} uses {r}, which the server does not export"
            );
        }
    }
    for needed in [
        "depin_http_requests_total",
        "depin_http_request_duration_seconds_bucket",
        "depin_reports_rejected_total",
        "depin_epoch_close_duration_seconds_bucket",
        "depin_epoch_close_lag_seconds",
        "depin_ledger_minted_base_units",
        "depin_ledger_burned_base_units",
        "depin_ledger_held_base_units",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "no panel shows {needed}"
        );
    }

    let Some(promtool) = promtool() else { return };
    let out = run_promtool(&promtool, &["check", "metrics"], Some(&scrape));
    // promtool prints lint problems and may still exit 0 for some of them.
    assert!(
        out.trim().is_empty(),
        "promtool check metrics complained:\n{out}\n{scrape}"
    );
    let rules_path = repo_root().join("deploy/prometheus/rules.yml");
    let out = run_promtool(
        &promtool,
        &["check", "rules", rules_path.to_str().unwrap()],
        None,
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let config_path = repo_root().join("deploy/prometheus/prometheus.yml");
    run_promtool(
        &promtool,
        &["check", "config", config_path.to_str().unwrap()],
        None,
    );
}

/// The checker above must be able to fail: a name the server does not
/// export is found in PromQL, histogram series map to their histogram.
#[test]
fn the_reference_checker_finds_names_in_promql() {
    let refs = referenced(
        "sum(rate(depin_nope_total{job=\"x\"}[5m])) / histogram_quantile(0.5, depin_a_seconds_bucket) and my_depin_x # every depin_* metric",
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        ["depin_a_seconds_bucket", "depin_nope_total"]
    );
    let h: BTreeSet<String> = ["depin_a_seconds".to_string()].into();
    assert_eq!(base_name("depin_a_seconds_bucket", &h), "depin_a_seconds");
    assert_eq!(base_name("depin_b_count", &h), "depin_b_count");
}
