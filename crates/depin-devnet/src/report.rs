//! `report.html`: the run as a page a person reads, written beside
//! `summary.json`. Self-contained (inline CSS and SVG, no script, no font,
//! no image, nothing fetched), so it opens offline and attaches to a bug
//! report as one file. Pure: built from the summary and the device lines
//! alone, with no clock, so the same seed gives the same bytes.
//!
//! Charts: rewards by sector and by behaviour, cheats caught by reason
//! code, tokens minted / fees / burned per epoch with the ledger totals,
//! and the distribution of the operators' net profit. Each chart has a
//! text title and its numbers in a table beside it, so it reads without
//! the picture too (screen readers, a terminal's `lynx`).

use crate::output::{DeviceLine, Summary};
use depin_core::{Amount, format_tokens};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One horizontal bar chart: `(label, value, shown value)` rows. Bars are
/// scaled to the largest value; a chart of zeros draws empty bars.
fn bars(title: &str, rows: &[(String, f64, String)], colour: &str) -> String {
    const ROW: usize = 22;
    const LABEL_W: usize = 170;
    const BAR_W: f64 = 360.0;
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max);
    let height = ROW * rows.len().max(1) + 8;
    let mut svg = format!(
        "<svg role=\"img\" aria-labelledby=\"{id}\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\">\
         <title id=\"{id}\">{t}</title>",
        id = slug(title),
        w = LABEL_W + BAR_W as usize + 140,
        t = esc(title),
    );
    for (i, (label, value, shown)) in rows.iter().enumerate() {
        let y = i * ROW + 4;
        let len = if max > 0.0 {
            (value / max * BAR_W).max(if *value > 0.0 { 1.0 } else { 0.0 })
        } else {
            0.0
        };
        let _ = write!(
            svg,
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{bx}\" y=\"{y}\" width=\"{len:.1}\" height=\"{bh}\" fill=\"{colour}\"/>\
             <text x=\"{vx:.1}\" y=\"{ty}\">{shown}</text>",
            lx = LABEL_W - 8,
            ty = y + 14,
            label = esc(label),
            bx = LABEL_W,
            bh = ROW - 6,
            vx = LABEL_W as f64 + len + 6.0,
            shown = esc(shown),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Lines of `series` over the epochs, each `(name, colour, values)`.
fn lines(title: &str, epochs: &[u64], series: &[(&str, &str, Vec<f64>)]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 220.0;
    const PAD: f64 = 40.0;
    let max = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .fold(0.0_f64, f64::max);
    let n = epochs.len();
    let x = |i: usize| {
        if n <= 1 {
            PAD + (W - 2.0 * PAD) / 2.0
        } else {
            PAD + i as f64 * (W - 2.0 * PAD) / (n - 1) as f64
        }
    };
    let y = |v: f64| {
        if max > 0.0 {
            H - PAD - v / max * (H - 2.0 * PAD)
        } else {
            H - PAD
        }
    };
    let mut svg = format!(
        "<svg role=\"img\" aria-labelledby=\"{id}\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
         <title id=\"{id}\">{t}</title>\
         <line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#555\"/>\
         <line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#555\"/>\
         <text x=\"4\" y=\"{top}\">{maxv}</text><text x=\"4\" y=\"{b}\">0</text>",
        id = slug(title),
        t = esc(title),
        b = H - PAD,
        r = W - PAD,
        top = PAD + 4.0,
        maxv = esc(&tokens_short(max)),
    );
    for (i, e) in epochs.iter().enumerate() {
        if n <= 12 || i % n.div_ceil(12) == 0 || i + 1 == n {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{e}</text>",
                x(i),
                H - PAD + 16.0
            );
        }
    }
    for (k, (name, colour, values)) in series.iter().enumerate() {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                svg,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
        // The legend runs along the top, above the plot, so it never
        // covers a line.
        let lx = PAD + 90.0 * k as f64;
        let _ = write!(
            svg,
            "<rect x=\"{lx}\" y=\"8\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{tx}\" y=\"17\">{name}</text>",
            tx = lx + 14.0,
            name = esc(name),
        );
    }
    svg.push_str("</svg>");
    svg
}

fn slug(title: &str) -> String {
    let s: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("chart-{s}")
}

fn tokens(amount: Amount) -> String {
    format!("{} tokens", format_tokens(amount))
}

fn tokens_short(base_units: f64) -> String {
    format!(
        "{:.0}",
        base_units / depin_core::BASE_UNITS_PER_TOKEN as f64
    )
}

fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Dollars with the sign in front: `-$0.21`, `$35.97`.
fn usd(v: f64) -> String {
    let v = crate::output::cents(v);
    if v < 0.0 {
        format!("-${:.2}", -v)
    } else {
        format!("${v:.2}")
    }
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(t, "<th scope=\"col\">{}</th>", esc(h));
    }
    t.push_str("</tr></thead><tbody>");
    for r in rows {
        t.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            if i == 0 {
                let _ = write!(t, "<th scope=\"row\">{}</th>", esc(c));
            } else {
                let _ = write!(t, "<td>{}</td>", esc(c));
            }
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// Each operator's net profit over the run (USD), in operator order.
fn operator_net(devices: &[DeviceLine]) -> Vec<f64> {
    let mut by: BTreeMap<&str, f64> = BTreeMap::new();
    for d in devices {
        *by.entry(d.operator.as_str()).or_default() += d.net_usd;
    }
    by.into_values().collect()
}

/// Ten equal bins from the lowest to the highest value:
/// `(from, to, count)`.
fn histogram(values: &[f64]) -> Vec<(f64, f64, u64)> {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() || !lo.is_finite() || !hi.is_finite() {
        return Vec::new();
    }
    let bins = 10usize;
    let width = ((hi - lo) / bins as f64).max(0.01);
    let mut counts = vec![0u64; bins];
    for v in values {
        let i = (((v - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (lo + i as f64 * width, lo + (i + 1) as f64 * width, c))
        .collect()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#111;background:#fff}\
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}\
section{display:flex;flex-wrap:wrap;gap:2rem;align-items:flex-start}\
svg{font-size:12px;fill:#111;max-width:100%;height:auto}\
table{border-collapse:collapse;font-size:.9rem}th,td{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:right}\
th[scope=row],thead th:first-child{text-align:left}.ok{color:#05620f}.bad{color:#a10000}\
@media (prefers-color-scheme:dark){body{color:#eee;background:#111}svg{fill:#eee}th,td{border-color:#444}.ok{color:#7fd88a}.bad{color:#ff8a8a}}";

/// The page (see the module docs).
pub fn render(s: &Summary, devices: &[DeviceLine]) -> String {
    let mut h = String::new();
    let f = &s.flags;
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>depin devnet: seed {seed}</title><style>{STYLE}</style></head><body><main>\
         <h1>depin devnet: seed {seed}, {nodes} devices, {epochs} epochs</h1>\
         <p>Scenario <b>{scenario}</b>, faults <b>{faults}</b>, policy <code>{policy}</code>. \
         Epochs of {secs} s. Reports sent {sent}, accepted {acc}, refused {rej}.</p>",
        seed = f.seed,
        nodes = f.nodes,
        epochs = f.epochs,
        scenario = esc(&f.scenario),
        faults = esc(&f.faults),
        policy = esc(&s.policy_id),
        secs = s.epoch_seconds,
        sent = s.reports.sent,
        acc = s.reports.accepted,
        rej = s.reports.rejected,
    );

    // Checks first: a person wants to know whether the run is sound.
    let c = &s.checks;
    let ok = |b: bool| {
        if b {
            "<span class=\"ok\">yes</span>"
        } else {
            "<span class=\"bad\">NO</span>"
        }
    };
    let _ = write!(
        h,
        "<h2>Checks</h2><ul>\
         <li>Every report to accept accepted exactly once: {} ({} of {})</li>\
         <li>Reports stored equal reports accepted: {}</li>\
         <li>No epoch closed twice: {} ({} closed)</li>\
         <li>Every epoch reproduced by audit-epoch: {} ({} audited)</li>\
         <li>Ledger balanced: {}</li></ul>\
         <p>Faults: {}, {}, {}, {}, {}.</p>",
        ok(c.accepted_exactly_once == c.reports_to_accept),
        c.accepted_exactly_once,
        c.reports_to_accept,
        ok(c.reports_stored == c.accepted_exactly_once),
        ok(c.closed_twice == 0),
        c.epochs_closed,
        ok(c.epochs_audited == c.epochs_closed),
        c.epochs_audited,
        ok(c.ledger_balanced),
        count(s.faults.restarts, "restart", "restarts"),
        count(
            s.faults.retried_deliveries,
            "retried delivery",
            "retried deliveries"
        ),
        count(s.faults.retried_closes, "retried close", "retried closes"),
        count(
            s.faults.reordered_deliveries,
            "reordered delivery",
            "reordered deliveries"
        ),
        count(
            s.faults.duplicates_delivered,
            "duplicate delivered",
            "duplicates delivered"
        ),
    );

    // Rewards by sector.
    let rows: Vec<(String, f64, String)> = s
        .sectors
        .iter()
        .map(|(k, l)| (k.clone(), l.minted as f64, tokens(l.minted)))
        .collect();
    let trows: Vec<Vec<String>> = s
        .sectors
        .iter()
        .map(|(k, l)| {
            vec![
                k.clone(),
                l.devices.to_string(),
                l.rewarded.to_string(),
                format_tokens(l.minted),
            ]
        })
        .collect();
    let _ = write!(
        h,
        "<h2>Rewards by sector</h2><section>{}{}</section>",
        bars("Tokens minted to each sector's devices", &rows, "#1f5fa8"),
        table(&["sector", "devices", "rewarded", "tokens"], &trows)
    );

    // Rewards by behaviour.
    let rows: Vec<(String, f64, String)> = s
        .behaviours
        .iter()
        .filter(|(_, l)| l.devices > 0)
        .map(|(k, l)| (k.clone(), l.rewards as f64, tokens(l.rewards)))
        .collect();
    let trows: Vec<Vec<String>> = s
        .behaviours
        .iter()
        .filter(|(_, l)| l.devices > 0)
        .map(|(k, l)| {
            vec![
                k.clone(),
                l.devices.to_string(),
                l.rewarded.to_string(),
                format_tokens(l.rewards),
            ]
        })
        .collect();
    let _ = write!(
        h,
        "<h2>Rewards by behaviour</h2><p>Cheats must earn nothing; honest devices must all earn.</p><section>{}{}</section>",
        bars("Tokens earned by each behaviour", &rows, "#2e7d32"),
        table(&["behaviour", "devices", "rewarded", "tokens"], &trows)
    );

    // Cheats caught.
    let rows: Vec<(String, f64, String)> = s
        .rejections
        .iter()
        .map(|(k, n)| (k.clone(), *n as f64, n.to_string()))
        .collect();
    let trows: Vec<Vec<String>> = s
        .rejections
        .iter()
        .map(|(k, n)| vec![k.clone(), n.to_string()])
        .collect();
    let _ = write!(
        h,
        "<h2>Reports refused, by reason code</h2><section>{}{}</section>",
        if rows.is_empty() {
            "<p>None refused.</p>".to_string()
        } else {
            bars("Refused reports by reason code", &rows, "#b3261e")
        },
        table(&["reason", "reports"], &trows)
    );

    // Ledger.
    let epochs: Vec<u64> = s.epochs.iter().map(|e| e.epoch).collect();
    let series = [
        (
            "minted",
            "#1f5fa8",
            s.epochs.iter().map(|e| e.minted as f64).collect(),
        ),
        (
            "fees",
            "#8a5a00",
            s.epochs.iter().map(|e| e.fees as f64).collect(),
        ),
        (
            "burned",
            "#b3261e",
            s.epochs.iter().map(|e| e.burned as f64).collect(),
        ),
    ];
    let erows: Vec<Vec<String>> = s
        .epochs
        .iter()
        .map(|e| {
            vec![
                e.epoch.to_string(),
                format_tokens(e.minted),
                format_tokens(e.fees),
                format_tokens(e.burned),
                format!("{}/{}", e.rewarded, e.devices),
                format!("{:.4}", e.token_price_usd),
            ]
        })
        .collect();
    let _ = write!(
        h,
        "<h2>Ledger</h2><p>Minted {}, burned {}, held by accounts {}.</p><section>{}{}</section>",
        tokens(s.ledger.minted),
        tokens(s.ledger.burned),
        tokens(s.ledger.balances_total),
        lines(
            "Tokens per epoch: minted, fees and burned",
            &epochs,
            &series
        ),
        table(
            &["epoch", "minted", "fees", "burned", "rewarded", "token USD"],
            &erows
        )
    );

    // Operators.
    let nets = operator_net(devices);
    let hist = histogram(&nets);
    let rows: Vec<(String, f64, String)> = hist
        .iter()
        .map(|(from, to, n)| {
            (
                format!("{} to {}", usd(*from), usd(*to)),
                *n as f64,
                n.to_string(),
            )
        })
        .collect();
    let o = &s.operators;
    let _ = write!(
        h,
        "<h2>Operators' net profit</h2><p>{} operators over {:.2} months: revenue {}, costs {}; \
         net per operator p10 {}, median {}, p90 {}; {} paying back.</p><section>{}</section>",
        o.operators,
        o.months,
        usd(o.revenue_usd),
        usd(o.costs_usd),
        usd(o.net_profit_usd.p10),
        usd(o.net_profit_usd.p50),
        usd(o.net_profit_usd.p90),
        o.paying_back,
        bars(
            "Operators by net profit over the run (USD)",
            &rows,
            "#6a3d9a"
        ),
    );
    h.push_str("</main></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_put_the_sign_first() {
        assert_eq!(usd(-0.214), "-$0.21");
        assert_eq!(usd(35.965), "$35.97");
        assert_eq!(usd(-0.001), "$0.00");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn histogram_bins_every_value_once() {
        let h = histogram(&[-5.0, 0.0, 5.0, 5.0]);
        assert_eq!(h.len(), 10);
        assert_eq!(h.iter().map(|b| b.2).sum::<u64>(), 4);
        assert_eq!(h[0].2, 1);
        assert_eq!(h[9].2, 2);
        // One value, all equal, none: no division by zero, no panic.
        assert_eq!(histogram(&[3.0]).iter().map(|b| b.2).sum::<u64>(), 1);
        assert_eq!(histogram(&[2.0, 2.0]).iter().map(|b| b.2).sum::<u64>(), 2);
        assert!(histogram(&[]).is_empty());
    }

    #[test]
    fn bars_scale_to_the_largest_and_draw_zeros_empty() {
        let svg = bars(
            "t",
            &[
                ("a".into(), 0.0, "0".into()),
                ("b<".into(), 2.0, "2".into()),
            ],
            "#000",
        );
        assert!(svg.contains("width=\"0.0\""), "{svg}");
        assert!(svg.contains("width=\"360.0\""), "{svg}");
        assert!(svg.contains("b&lt;"), "{svg}");
        let empty = bars("t", &[("a".into(), 0.0, "0".into())], "#000");
        assert!(empty.contains("width=\"0.0\""));
    }
}
