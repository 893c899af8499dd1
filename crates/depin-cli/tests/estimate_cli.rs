//! `depin estimate` end to end: the flags added in economics v2 and the output layout.

use std::process::Command;

fn run(args: &str) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_depin"))
        .arg("estimate")
        .args(args.split_whitespace())
        .output()
        .expect("depin runs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(args: &str) -> String {
    let (success, out, err) = run(args);
    assert!(success, "{args}: {err}");
    out
}

fn fails(args: &str) -> String {
    let (success, out, err) = run(args);
    assert!(!success, "{args} should fail: {out}");
    err
}

#[test]
fn list_devices_keeps_its_columns_apart() {
    let out = ok("--list-devices");
    // lorawan-indoor-hotspot: 48 months and "1 coverage" were printed as "481 coverage".
    let line = out
        .lines()
        .find(|l| l.starts_with("lorawan-indoor-hotspot"))
        .unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &cells[..7],
        [
            "lorawan-indoor-hotspot",
            "wireless",
            "150.00",
            "8",
            "48",
            "1",
            "coverage"
        ],
        "{line}"
    );
    let header = out.lines().next().unwrap();
    assert!(header.contains("months  capacity"), "{header}");
}

#[test]
fn payback_legend_never_and_null() {
    // A 4090 rented 10% of the time never pays back: "never" in the table, null in JSON.
    let out = ok("--device rtx-4090 --utilisation 0.1 --paths 200");
    assert!(
        out.contains("p10 (bad)") && out.contains("p10 is the bad case"),
        "{out}"
    );
    let line = out.lines().find(|l| l.contains("payback, months")).unwrap();
    assert!(line.contains("never"), "{line}");
    let v: serde_json::Value = serde_json::from_str(&ok(
        "--device rtx-4090 --utilisation 0.1 --paths 200 --json",
    ))
    .unwrap();
    assert!(
        v["payback_months"]["p10"].is_null(),
        "{}",
        v["payback_months"]
    );
    assert_eq!(v["inputs"]["rental"]["utilisation_p50"], 0.1);
    assert_eq!(v["inputs"]["hardware"]["already_owned"], false);
}

#[test]
fn already_own_and_utilisation_flags() {
    // 100% rented: 730.5 h × USD 0.35 = 255.675 a month, below 329 (100% at 0.45); the
    // platform keeps 10%: 230.1075.
    let v: serde_json::Value =
        serde_json::from_str(&ok("--device rtx-4090 --utilisation 1 --json --paths 100")).unwrap();
    let p90 = v["revenue_usd_per_month"]["p90"].as_f64().unwrap();
    assert!(
        (p90 - 230.1075).abs() < 1e-6 && p90 <= 730.5 * 0.45,
        "{p90}"
    );
    // Already owned: the opportunity cost is 1800 × 0.5 = 900.
    let out = ok("--device rtx-4090 --already-own --paths 100");
    assert!(
        out.contains("selling it would fetch USD 900.00 (50% of USD 1800)"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok("--device rtx-4090 --already-own --json --paths 100")).unwrap();
    assert_eq!(v["inputs"]["hardware"]["already_owned"], true);
    assert!(fails("--rank --already-own").contains("--already-own describes one device"));
    assert!(
        fails("--device dashcam --utilisation 0.3")
            .contains("--utilisation: dashcam is a sensor device")
    );
    assert!(fails("--device rtx-4090 --utilisation 1.5").contains("--utilisation:"));
}

#[test]
fn bad_input_names_the_flag_or_field() {
    assert!(fails("--device rtx-4090 --kwh-price 5").contains("--kwh-price: USD 5/kWh is above"));
    assert!(fails("--device rtx-4090 --kwh-price NaN").contains("--kwh-price: must be a number"));
    assert!(fails("--device rtx-4090 --watts -3").contains("--watts:"));
    assert!(fails("--device rtx-4090 --utilisation -0.2").contains("--utilisation:"));
    // A 500 W hotspot is allowed, with a warning that names the field.
    let out = ok("--device lorawan-indoor-hotspot --watts 500 --paths 100");
    assert!(
        out.contains("watts: 500 W is far above what a wireless device draws"),
        "{out}"
    );
}

#[test]
fn storage_is_paid_on_data_held_with_held_back_pay() {
    let out = ok("--device spare-disk-4tb --paths 200");
    for want in [
        "disk full after, months",
        "data held at month 60, TB",
        "75/75/75/50/50/50/25/25/25% held back in months 1–9",
        "no token rewards assumed",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&ok("--device spare-disk-4tb --paths 200 --json")).unwrap();
    assert_eq!(v["inputs"]["storage"]["usd_per_tb_month"], 1.5);
    // A 4 TB disk at the median 0.5 TB/month: 0.1 TB in 2 vetting months, then 3.9 / 0.5
    // = 7.8 → full after month 10 (the median path's rate may make it 11).
    let p50 = v["months_to_fill"]["p50"].as_f64().unwrap();
    assert!(p50 == 10.0 || p50 == 11.0, "{p50}");
    assert!(fails("--device spare-disk-4tb --utilisation 0.5").contains("--utilisation:"));
}

#[test]
fn csv_output() {
    let out = ok("--device weather-station --csv --paths 100");
    assert!(out.starts_with("device,figure,p10,p50,p90\n"), "{out}");
    assert!(out.contains("weather-station,payback_months,"), "{out}");
    let out = ok("--rank --csv --paths 100");
    assert!(out.starts_with("rank,device,sector,price_usd,"), "{out}");
    assert!(fails("--device dashcam --csv --json").contains("--csv"));
}

#[test]
fn plot_writes_an_svg_with_the_three_charts() {
    let path = std::env::temp_dir().join(format!("depin-estimate-{}.svg", std::process::id()));
    let arg = format!(
        "--device weather-station --paths 200 --plot {}",
        path.display()
    );
    let (success, out, err) = run(&arg);
    assert!(success, "{err}");
    assert!(
        out.contains("payback, months"),
        "the table is still printed: {out}"
    );
    assert!(err.contains("charts written to"), "{err}");
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for want in [
        "weather-station: running cash, USD",
        "p90 (good)",
        "what moves the median cash",
        "site: p10 site",
        "payback month over 200 paths",
    ] {
        assert!(svg.contains(want), "{want}");
    }
    assert!(fails("--rank --plot x.svg").contains("--plot draws one device's estimate"));
    let bad = fails("--device dashcam --paths 50 --plot /nonexistent-dir/x.svg");
    assert!(bad.contains("--plot: cannot write"), "{bad}");
}
