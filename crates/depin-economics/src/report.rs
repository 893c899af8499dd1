//! What `depin estimate` shows: warnings in words, the JSON documents, the plain tables.
//!
//! JSON: every simulated figure is an object `{ "p10", "p50", "p90" }` under a key that
//! names the figure and its unit; `null` inside it means "never" (payback), "no price is
//! enough" (break-even) or "undefined" (a ratio over zero revenue). Every row reads the
//! same way: p10 is the bad case and p90 the good case, so for payback months p10 is the
//! slow case (or `null`, never) and for costs and the break-even price p10 is the high one. The document echoes
//! its inputs and carries warnings as `{ "code", "message" }`. Its `schema` key names the
//! shape (`depin.estimate.device.v1`, `…rank.v1`, `…portfolio.v1`).

use crate::model::EstimateInputs;
use crate::portfolio::PortfolioEstimate;
use crate::sim::{Estimate, Figures, OptSpread, Spread, TodayFigures};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// A warning for the operator: a stable machine code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub code: String,
    pub message: String,
}

fn warn(code: &str, message: String) -> Warning {
    Warning {
        code: code.to_string(),
        message,
    }
}

/// Electricity above this share of revenue gets a warning.
pub const ELECTRICITY_SHARE_WARNING_PCT: f64 = 25.0;

pub(crate) fn warnings_for(i: &EstimateInputs, f: &Figures, today: &TodayFigures) -> Vec<Warning> {
    let mut w = Vec::new();
    let life = i.hardware.lifetime_months;
    let price = i.market.token_price_usd;
    w.extend(i.plausibility_warnings());
    if let Some(cat) = i
        .hardware
        .catalogue_price_usd
        .filter(|c| !i.hardware.already_owned && *c > 0.0 && i.hardware.price_usd > 1.2 * c)
    {
        w.push(warn(
            "overpriced_hardware",
            format!(
                "you pay {:.0}% above the catalogue price (USD {}); hardware bought in a hype cycle takes longer to pay back",
                (i.hardware.price_usd / cat - 1.0) * 100.0,
                num(cat)
            ),
        ));
    }
    if today.revenue_tokens_per_month <= 0.0 && today.revenue_usd_per_month <= 0.0 {
        w.push(warn(
            "no_rewards",
            "the device earns no tokens at these rates".into(),
        ));
    } else if today.net_operating_usd_per_month <= 0.0 {
        w.push(warn(
            "running_costs_exceed_revenue",
            format!(
                "at today's rates running costs (USD {}/month) exceed revenue (USD {}/month): the device loses money before its hardware price is even counted",
                num(today.running_costs_usd_per_month),
                num(today.revenue_usd_per_month)
            ),
        ));
    } else if let Some(pb) = today.payback_months.filter(|pb| *pb > life as f64) {
        w.push(warn(
            "payback_after_lifetime",
            format!("hardware price pays back after its lifetime at today's rates: it needs {pb:.0} months, the hardware lasts {life}"),
        ));
    } else if f.payback_months.p50.is_none() {
        w.push(warn(
            "median_never_pays_back",
            format!("pays back at today's rates, but on the median path network growth and the token price leave it short within its {life}-month lifetime"),
        ));
    } else if f.payback_within_lifetime_probability < 0.5 {
        w.push(warn(
            "low_payback_probability",
            format!(
                "only {:.0}% of simulated paths pay back within the {life}-month lifetime",
                f.payback_within_lifetime_probability * 100.0
            ),
        ));
    }
    if let Some(share) = f
        .electricity_share_of_revenue_pct
        .p50
        .filter(|s| *s >= ELECTRICITY_SHARE_WARNING_PCT)
    {
        w.push(warn(
            "electricity_share_high",
            format!("electricity takes {share:.0}% of revenue"),
        ));
    }
    if let Some(be) = f
        .break_even_token_price_usd
        .p50
        .filter(|be| *be > 0.5 * price)
    {
        w.push(warn(
            "token_price_dependency",
            format!(
                "earnings depend on a token price above USD {} (today USD {})",
                num(be),
                num(price)
            ),
        ));
    }
    if i.rewards.uptime < 0.9 {
        w.push(warn(
            "low_uptime",
            format!(
                "rewards assume {:.0}% uptime; watch uptime, cooling and firmware updates",
                i.rewards.uptime * 100.0
            ),
        ));
    }
    w
}

/// A number for people: no needless digits, but small amounts keep their cents.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn opt(v: Option<f64>, none: &str) -> String {
    v.map(num).unwrap_or_else(|| none.to_string())
}

fn months(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.0}"))
        .unwrap_or_else(|| "never".into())
}

fn row(out: &mut String, label: &str, a: String, b: String, c: String) {
    let _ = writeln!(out, "  {label:<34}{a:>12}{b:>12}{c:>12}");
}

fn spread_row(out: &mut String, label: &str, s: &Spread) {
    row(out, label, num(s.p10), num(s.p50), num(s.p90));
}

fn opt_row(out: &mut String, label: &str, s: &OptSpread, none: &str) {
    row(
        out,
        label,
        opt(s.p10, none),
        opt(s.p50, none),
        opt(s.p90, none),
    );
}

/// The legend printed under every table of quantiles.
pub const QUANTILE_LEGEND: &str = "p10 is the bad case and p90 the good case on every row (1 path in 10 does worse than p10): for costs, payback and the break-even token price p10 is the high value, for the break-even electricity price (the most a kWh may cost before the lifetime cash, before tax, turns negative) the low one; \"never\" means the running cash total does not stay at or above zero within the horizon; cash rows do not count the resale value except \"cash if sold then\".";

fn figures_table(out: &mut String, f: &Figures, window: u32) {
    row(
        out,
        "",
        "p10 (bad)".into(),
        "p50".into(),
        "p90 (good)".into(),
    );
    if let Some(u) = &f.utilisation {
        row(
            out,
            "rented, % of hours",
            format!("{:.0}", u.p10 * 100.0),
            format!("{:.0}", u.p50 * 100.0),
            format!("{:.0}", u.p90 * 100.0),
        );
    }
    if let Some(m) = &f.months_to_fill {
        row(
            out,
            "disk full after, months",
            months(m.p10),
            months(m.p50),
            months(m.p90),
        );
    }
    if let Some(s) = &f.stored_tb_at_window_end {
        spread_row(out, &format!("data held at month {window}, TB"), s);
    }
    if let Some(s) = &f.held_back_usd_at_window_end {
        spread_row(out, &format!("held back at month {window}, USD"), s);
    }
    spread_row(out, "revenue, tokens/month", &f.revenue_tokens_per_month);
    spread_row(out, "revenue, USD/month", &f.revenue_usd_per_month);
    spread_row(out, "electricity, USD/month", &f.electricity_usd_per_month);
    spread_row(out, "internet share, USD/month", &f.internet_usd_per_month);
    spread_row(out, "maintenance, USD/month", &f.maintenance_usd_per_month);
    spread_row(
        out,
        "hardware depreciation, USD/month",
        &f.hardware_depreciation_usd_per_month,
    );
    spread_row(
        out,
        "net before hardware, USD/month",
        &f.net_operating_usd_per_month,
    );
    if f.tax_usd_per_month.p10 > 0.0 {
        spread_row(out, "income tax, USD/month", &f.tax_usd_per_month);
    }
    spread_row(out, "net profit, USD/month", &f.net_profit_usd_per_month);
    spread_row(
        out,
        &format!("cash after {window} months, USD"),
        &f.cumulative_net_usd,
    );
    spread_row(
        out,
        &format!("resale value at month {window}, USD"),
        &Spread::constant(f.resale_value_usd_at_window_end),
    );
    spread_row(
        out,
        "cash if sold then, USD",
        &f.cumulative_net_with_resale_usd,
    );
    // Without token revenue (a rented GPU) no token price matters: n/a, not "none".
    let no_tokens = f.revenue_tokens_per_month.p90 <= 0.0;
    opt_row(
        out,
        "break-even token price, USD",
        &f.break_even_token_price_usd,
        if no_tokens { "n/a" } else { "none" },
    );
    if let Some(k) = &f.break_even_kwh_price_usd {
        opt_row(out, "break-even electricity, USD/kWh", k, "none");
    }
    row(
        out,
        "payback, months",
        months(f.payback_months.p10),
        months(f.payback_months.p50),
        months(f.payback_months.p90),
    );
    opt_row(out, "ROI at 12 months, %", &f.roi_12_months_pct, "n/a");
    opt_row(out, "ROI at 24 months, %", &f.roi_24_months_pct, "n/a");
    spread_row(
        out,
        &format!("token price after {window} months, USD"),
        &f.token_price_usd_at_window_end,
    );
    let _ = writeln!(out, "  ({QUANTILE_LEGEND})");
}

fn warnings_text(out: &mut String, w: &[Warning]) {
    if w.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nwarnings:");
    for x in w {
        let _ = writeln!(out, "  - {}", x.message);
    }
}

/// The token-price assumptions in words: scenario, drift, volatility and crashes.
pub fn scenario_text(m: &crate::Market) -> String {
    let name = match m.scenario {
        Some(s) if s.parameters() == scenario_of(m) => format!("scenario {}", s.as_str()),
        Some(s) => format!("scenario {} with your overrides", s.as_str()),
        None => "your own token assumptions".to_string(),
    };
    let crashes = if m.crash_probability_per_year > 0.0 && m.crash_size > 0.0 {
        format!(
            "crashes of −{:.0}% at {} a year on average (about one in {:.0} years)",
            m.crash_size * 100.0,
            num(m.crash_probability_per_year),
            1.0 / m.crash_probability_per_year
        )
    } else {
        "no crashes".to_string()
    };
    format!(
        "{name}: token price USD {}, median drift {:+.0}%/year (×{:.2} a year), volatility {:.0}%/year, {crashes}",
        num(m.token_price_usd),
        m.token_drift_per_year * 100.0,
        m.token_drift_per_year.exp(),
        m.token_volatility_per_year * 100.0,
    )
}

fn scenario_of(m: &crate::Market) -> crate::ScenarioParameters {
    crate::ScenarioParameters {
        token_drift_per_year: m.token_drift_per_year,
        token_volatility_per_year: m.token_volatility_per_year,
        crash_probability_per_year: m.crash_probability_per_year,
        crash_size: m.crash_size,
    }
}

fn market_line(out: &mut String, i: &EstimateInputs, emission: bool) {
    let m = &i.market;
    let _ = writeln!(out, "{}", scenario_text(m));
    let _ = writeln!(
        out,
        "network growth {:.1}%/month ± {:.1}%; uptime {:.0}%",
        m.network_growth_per_month * 100.0,
        m.network_growth_volatility_per_month * 100.0,
        i.rewards.uptime * 100.0
    );
    let r = &i.rewards;
    if !emission {
        return;
    }
    if let Some(h) = &r.halving {
        let _ = writeln!(
            out,
            "emission halves in month {} and every {} months after ({})",
            h.first_month, h.interval_months, h.note
        );
    }
    if r.emission_decay_per_year > 0.0 {
        let _ = writeln!(
            out,
            "emission falls {:.0}% a year",
            r.emission_decay_per_year * 100.0
        );
    }
}

/// The plain table for one device.
pub fn device_table(e: &Estimate) -> String {
    let i = &e.inputs;
    let h = &i.hardware;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): USD {}, {} W, {} months; {} paths, seed {}",
        h.name,
        h.sector,
        num(h.price_usd),
        h.watts,
        h.lifetime_months,
        e.simulation.paths,
        e.simulation.seed
    );
    let _ = writeln!(out, "rate: {}", i.rewards.source);
    if let Some(p) = &i.placement {
        let _ = writeln!(
            out,
            "placement: {:.0}% of sites are in a cell that is already full and earn nothing; elsewhere a site earns {}–{}× the median rate (p10–p90){}",
            p.full_cell_probability * 100.0,
            num(p.spread_p10),
            num(p.spread_p90),
            if p.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", p.note)
            }
        );
    }
    if let Some(s) = &i.storage
        && !i.rewards.source.contains(&s.describe())
    {
        let _ = writeln!(out, "storage: {}", s.describe());
    }
    if h.already_owned {
        let _ = writeln!(
            out,
            "already owned: no cash outlay; selling it would fetch USD {} ({:.0}% of USD {}), the opportunity cost payback is measured against",
            num(h.capital_usd()),
            h.resale_fraction * 100.0,
            num(h.price_usd)
        );
    }
    market_line(&mut out, i, true);
    let pay = i.payout();
    if pay != crate::model::PayoutTerms::default() {
        let _ = writeln!(
            out,
            "payouts: the platform keeps {:.0}%; paid once the balance reaches USD {} (a balance below it when the device stops is lost), USD {} fee per payout",
            pay.platform_fee * 100.0,
            num(pay.payout_threshold_usd),
            num(pay.payout_fee_usd)
        );
    }
    let _ = writeln!(
        out,
        "costs: electricity USD {}/kWh, internet USD {}/month × {:.0}% share, maintenance USD {}/month{}{}\n",
        num(i.costs.kwh_price_usd),
        num(i.costs.internet_usd_per_month),
        i.costs.internet_share * 100.0,
        num(i.costs.maintenance_usd_per_month),
        driving_text(i),
        if i.costs.tax_rate > 0.0 {
            format!(
                "; income tax {:.0}% of each month's profit after depreciation (no loss carried forward)",
                i.costs.tax_rate * 100.0
            )
        } else {
            String::new()
        }
    );
    figures_table(&mut out, &e.figures, e.months);
    let _ = writeln!(
        out,
        "\npays back (cash stays at or above zero) within the {}-month lifetime on {:.0}% of paths",
        h.lifetime_months,
        e.figures.payback_within_lifetime_probability * 100.0
    );
    warnings_text(&mut out, &e.warnings);
    out
}

/// The JSON document for one device.
pub fn device_json(e: &Estimate) -> serde_json::Value {
    let mut v = serde_json::to_value(e).expect("estimates serialise");
    v["schema"] = "depin.estimate.device.v1".into();
    v["scenario"] = scenario_json(&e.inputs.market);
    v
}

/// `{ "name", "token_drift_per_year", "token_volatility_per_year",
/// "crash_probability_per_year", "crash_size", "description" }`; `name` is null for
/// assumptions given one by one.
pub fn scenario_json(m: &crate::Market) -> serde_json::Value {
    serde_json::json!({
        "name": m.scenario.map(|s| s.as_str()),
        "token_drift_per_year": m.token_drift_per_year,
        "token_volatility_per_year": m.token_volatility_per_year,
        "crash_probability_per_year": m.crash_probability_per_year,
        "crash_size": m.crash_size,
        "description": scenario_text(m),
    })
}

/// One row of `--rank`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankRow {
    pub rank: usize,
    pub device: String,
    pub sector: depin_core::Sector,
    pub price_usd: f64,
    pub net_profit_usd_per_month: Spread,
    pub payback_months: OptSpread,
    pub payback_within_lifetime_probability: f64,
    /// The most a kWh may cost before the median path's lifetime cash turns negative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_even_kwh_price_usd: Option<OptSpread>,
    pub never_pays_back: bool,
    /// What the row rests on: where the income figure comes from and today's running
    /// costs, so the order explains itself.
    pub basis: String,
    pub warnings: Vec<Warning>,
}

/// ", driving USD x/month (…)" when the device has a driving cost, else "".
fn driving_text(i: &EstimateInputs) -> String {
    if i.costs.driving_usd_per_month > 0.0 {
        format!(
            ", driving USD {}/month (in the maintenance row)",
            num(i.costs.driving_usd_per_month)
        )
    } else {
        String::new()
    }
}

/// A rank row's [`RankRow::basis`].
fn rank_basis(e: &Estimate) -> String {
    let i = &e.inputs;
    format!(
        "{}; running costs USD {}/month (electricity {} at USD {}/kWh{})",
        i.rewards.source,
        num(i.running_costs_usd_per_month()),
        num(i.electricity_usd_per_month()),
        num(i.costs.kwh_price_usd),
        driving_text(i)
    )
}

/// Orders estimates by p50 payback (never last), then by p50 net profit, then by name.
pub fn rank(estimates: &[Estimate]) -> Vec<RankRow> {
    let mut v: Vec<&Estimate> = estimates.iter().collect();
    v.sort_by(|a, b| {
        let pa = a.figures.payback_months.p50.unwrap_or(f64::INFINITY);
        let pb = b.figures.payback_months.p50.unwrap_or(f64::INFINITY);
        pa.total_cmp(&pb)
            .then(
                b.figures
                    .net_profit_usd_per_month
                    .p50
                    .total_cmp(&a.figures.net_profit_usd_per_month.p50),
            )
            .then(a.inputs.hardware.name.cmp(&b.inputs.hardware.name))
    });
    v.into_iter()
        .enumerate()
        .map(|(k, e)| RankRow {
            rank: k + 1,
            device: e.inputs.hardware.name.clone(),
            sector: e.inputs.hardware.sector,
            price_usd: e.inputs.hardware.price_usd,
            net_profit_usd_per_month: e.figures.net_profit_usd_per_month,
            payback_months: e.figures.payback_months,
            payback_within_lifetime_probability: e.figures.payback_within_lifetime_probability,
            break_even_kwh_price_usd: e.figures.break_even_kwh_price_usd,
            never_pays_back: e.figures.payback_months.p50.is_none(),
            basis: rank_basis(e),
            warnings: e.warnings.clone(),
        })
        .collect()
}

pub fn rank_table(rows: &[RankRow], first: Option<&Estimate>) -> String {
    let mut out = String::new();
    if let Some(e) = first {
        let _ = writeln!(
            out,
            "what pays back, for your costs (electricity USD {}/kWh, internet USD {}/month); {} paths, seed {}",
            num(e.inputs.costs.kwh_price_usd),
            num(e.inputs.costs.internet_usd_per_month),
            e.simulation.paths,
            e.simulation.seed
        );
        market_line(&mut out, &e.inputs, false);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{:>4}  {:<24}{:<10}{:>10}{:>16}{:>23}{:>11}{:>14}",
        "rank",
        "device",
        "sector",
        "price USD",
        "net USD/mo p50",
        "payback bad/p50/good",
        "pays back",
        "max USD/kWh"
    );
    for r in rows {
        let pb = &r.payback_months;
        let payback = if pb.p90.is_none() {
            "never".to_string()
        } else {
            format!(
                "{} / {} / {}",
                months(pb.p10),
                months(pb.p50),
                months(pb.p90)
            )
        };
        let _ = writeln!(
            out,
            "{:>4}  {:<24}{:<10}{:>10}{:>16}{:>23}{:>10.0}%{:>14}{}",
            r.rank,
            r.device,
            r.sector.as_str(),
            num(r.price_usd),
            num(r.net_profit_usd_per_month.p50),
            payback,
            r.payback_within_lifetime_probability * 100.0,
            match &r.break_even_kwh_price_usd {
                None => "n/a".to_string(),
                Some(k) => opt(k.p50, "none"),
            },
            if r.never_pays_back {
                "  NEVER PAYS BACK (median)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "\npayback in months: p10 (bad, slow) / p50 / p90 (good, fast); max USD/kWh: the electricity price at which the median path's lifetime cash before tax is zero (\"none\": no price is low enough); {QUANTILE_LEGEND}"
    );
    let _ = writeln!(
        out,
        "\nwhat each row rests on (sources in --list-devices --json):"
    );
    for r in rows {
        let _ = writeln!(out, "  {}: {}", r.device, r.basis);
    }
    out
}

pub fn rank_json(rows: &[RankRow], estimates: &[Estimate]) -> serde_json::Value {
    serde_json::json!({
        "schema": "depin.estimate.rank.v1",
        "simulation": estimates.first().map(|e| e.simulation),
        "market": estimates.first().map(|e| &e.inputs.market),
        "scenario": estimates.first().map(|e| scenario_json(&e.inputs.market)),
        "devices": rows,
    })
}

pub fn portfolio_table(p: &PortfolioEstimate) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "portfolio of {} holdings, {} paths, seed {}",
        p.holdings.len(),
        p.simulation.paths,
        p.simulation.seed
    );
    let _ = writeln!(out, "{}", scenario_text(&p.market));
    let _ = writeln!(
        out,
        "{:<26}{:<10}{:>6}{:>12}{:>16}{:>10}",
        "device", "sector", "count", "price USD", "net USD/mo p50", "payback"
    );
    for h in &p.holdings {
        let _ = writeln!(
            out,
            "{:<26}{:<10}{:>6}{:>12}{:>16}{:>10}",
            h.device,
            h.sector.as_str(),
            h.count,
            num(h.price_usd),
            num(h.net_profit_usd_per_month.p50),
            months(h.payback_months.p50)
        );
    }
    out.push_str("\ncombined\n");
    figures_table(&mut out, &p.combined, p.months);
    let _ = writeln!(
        out,
        "\npays back (cash stays at or above zero) within the longest lifetime on {:.0}% of paths",
        p.combined.payback_within_lifetime_probability * 100.0
    );
    let d = &p.diversification;
    let _ = writeln!(out, "\ndiversification across {} sector(s):", d.sectors);
    let _ = writeln!(
        out,
        "  at a fixed token price, the spread of cash after {} months is USD {} (sd), against USD {} with the same money in one sector: {:.0}% less",
        p.months,
        num(d.token_price_free_sd_usd),
        num(d.one_sector_token_price_free_sd_usd),
        d.token_price_free_spread_removed_pct
    );
    let _ = writeln!(
        out,
        "  with the token price swinging too (it moves every sector together), p10–p90 width is USD {} against USD {}: {:.0}% less",
        num(d.width_usd),
        num(d.one_sector_width_usd),
        d.spread_removed_pct
    );
    warnings_text(&mut out, &p.warnings);
    out
}

pub fn portfolio_json(p: &PortfolioEstimate) -> serde_json::Value {
    let mut v = serde_json::to_value(p).expect("portfolio estimates serialise");
    v["schema"] = "depin.estimate.portfolio.v1".into();
    v["scenario"] = scenario_json(&p.market);
    v
}

// ---------------------------------------------------------------------------------------
// CSV

/// One CSV field: quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A number for a CSV: at most 4 decimals, no trailing zeros; empty for `None`.
fn csv_num(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(x) => {
            let s = format!("{x:.4}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" { "0".into() } else { s.to_string() }
        }
    }
}

/// One figure: its name with the unit, p10, p50, p90.
pub type FigureRow = (String, Option<f64>, Option<f64>, Option<f64>);

/// The rows of a figures table as (name with unit, p10, p50, p90); every row reads p10
/// bad, p90 good, as in the table; `None` is "never" / "none" / "undefined".
pub fn figure_rows(f: &Figures) -> Vec<FigureRow> {
    let s = |name: &str, x: &Spread| (name.to_string(), Some(x.p10), Some(x.p50), Some(x.p90));
    let o = |name: &str, x: &OptSpread| (name.to_string(), x.p10, x.p50, x.p90);
    let mut v = Vec::new();
    if let Some(u) = &f.utilisation {
        v.push(s("utilisation_share_of_hours", u));
    }
    if let Some(m) = &f.months_to_fill {
        v.push(o("months_to_fill", m));
    }
    if let Some(x) = &f.stored_tb_at_window_end {
        v.push(s("stored_tb_at_window_end", x));
    }
    if let Some(x) = &f.held_back_usd_at_window_end {
        v.push(s("held_back_usd_at_window_end", x));
    }
    v.push(s("revenue_tokens_per_month", &f.revenue_tokens_per_month));
    v.push(s("revenue_usd_per_month", &f.revenue_usd_per_month));
    v.push(s("electricity_kwh_per_month", &f.electricity_kwh_per_month));
    v.push(s("electricity_usd_per_month", &f.electricity_usd_per_month));
    v.push(s("internet_usd_per_month", &f.internet_usd_per_month));
    v.push(s("maintenance_usd_per_month", &f.maintenance_usd_per_month));
    v.push(s(
        "hardware_depreciation_usd_per_month",
        &f.hardware_depreciation_usd_per_month,
    ));
    v.push(s("tax_usd_per_month", &f.tax_usd_per_month));
    v.push(s("total_cost_usd_per_month", &f.total_cost_usd_per_month));
    v.push(s(
        "net_operating_usd_per_month",
        &f.net_operating_usd_per_month,
    ));
    v.push(s("net_profit_usd_per_month", &f.net_profit_usd_per_month));
    v.push(s("cumulative_net_usd", &f.cumulative_net_usd));
    v.push(s(
        "resale_value_usd_at_window_end",
        &Spread::constant(f.resale_value_usd_at_window_end),
    ));
    v.push(s(
        "cumulative_net_with_resale_usd",
        &f.cumulative_net_with_resale_usd,
    ));
    v.push(o(
        "break_even_token_price_usd",
        &f.break_even_token_price_usd,
    ));
    if let Some(k) = &f.break_even_kwh_price_usd {
        v.push(o("break_even_kwh_price_usd", k));
    }
    v.push(o("payback_months", &f.payback_months));
    v.push(o("roi_12_months_pct", &f.roi_12_months_pct));
    v.push(o("roi_24_months_pct", &f.roi_24_months_pct));
    v.push(o(
        "electricity_share_of_revenue_pct",
        &f.electricity_share_of_revenue_pct,
    ));
    v.push(s(
        "token_price_usd_at_window_end",
        &f.token_price_usd_at_window_end,
    ));
    let p = f.payback_within_lifetime_probability;
    v.push((
        "payback_within_lifetime_probability".into(),
        Some(p),
        Some(p),
        Some(p),
    ));
    for m in &f.cumulative_net_usd_by_month {
        v.push(s(
            &format!("cumulative_net_usd_month_{}", m.month),
            &m.cumulative_net_usd,
        ));
    }
    v
}

fn figures_csv(out: &mut String, device: &str, f: &Figures) {
    for (name, a, b, c) in figure_rows(f) {
        let _ = writeln!(
            out,
            "{},{name},{},{},{}",
            csv_field(device),
            csv_num(a),
            csv_num(b),
            csv_num(c)
        );
    }
}

/// The estimate as CSV: `device,figure,p10,p50,p90`, one row per figure (names carry the
/// unit, as in the JSON), then one per month of the running cash. An empty cell is
/// "never" (payback), "none" (break-even) or "undefined".
pub fn device_csv(e: &Estimate) -> String {
    let mut out = String::from("device,figure,p10,p50,p90\n");
    figures_csv(&mut out, &e.inputs.hardware.name, &e.figures);
    out
}

/// The portfolio's combined figures as CSV, in the shape of [`device_csv`] with the
/// device column `portfolio`.
pub fn portfolio_csv(p: &PortfolioEstimate) -> String {
    let mut out = String::from("device,figure,p10,p50,p90\n");
    figures_csv(&mut out, "portfolio", &p.combined);
    out
}

/// `--rank` as CSV, one row per device.
pub fn rank_csv(rows: &[RankRow]) -> String {
    let mut out = String::from(
        "rank,device,sector,price_usd,net_profit_usd_per_month_p10,net_profit_usd_per_month_p50,net_profit_usd_per_month_p90,payback_months_p10,payback_months_p50,payback_months_p90,payback_within_lifetime_probability,break_even_kwh_price_usd_p50,never_pays_back\n",
    );
    for r in rows {
        let n = &r.net_profit_usd_per_month;
        let pb = &r.payback_months;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.rank,
            csv_field(&r.device),
            r.sector.as_str(),
            csv_num(Some(r.price_usd)),
            csv_num(Some(n.p10)),
            csv_num(Some(n.p50)),
            csv_num(Some(n.p90)),
            csv_num(pb.p10),
            csv_num(pb.p50),
            csv_num(pb.p90),
            csv_num(Some(r.payback_within_lifetime_probability)),
            csv_num(r.break_even_kwh_price_usd.and_then(|k| k.p50)),
            r.never_pays_back
        );
    }
    out
}
