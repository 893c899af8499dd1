//! Golden cases computed by hand, property tests against the model's promises, the JSON
//! shape, and bad input.

use depin_core::Sector;
use depin_economics::report::{
    device_json, device_table, portfolio_json, rank, rank_json, rank_table,
};
use depin_economics::{
    Catalogue, EconomicsError, EstimateInputs, Hardware, Holding, Market, NetworkRates, Observed,
    OperatorCosts, OperatorSettings, PortfolioFile, RewardAssumptions, Simulation, estimate,
    estimate_many, estimate_portfolio, inputs_for_profile, project_from_observed,
};
use proptest::prelude::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn still_market(price: f64) -> Market {
    Market {
        token_price_usd: price,
        token_volatility_per_year: 0.0,
        token_drift_per_year: 0.0,
        network_growth_per_month: 0.0,
        network_growth_volatility_per_month: 0.0,
        ..Market::default()
    }
}

/// A hotspot for the golden case: USD 120, 5 W, 36 months, 40 tokens/month at USD 0.50.
fn golden_inputs() -> EstimateInputs {
    EstimateInputs {
        hardware: Hardware {
            name: "golden-hotspot".into(),
            sector: Sector::Wireless,
            price_usd: 120.0,
            catalogue_price_usd: None,
            watts: 5.0,
            lifetime_months: 36,
            capacity_units: 1.0,
            already_owned: false,
            resale_fraction: 0.2,
        },
        costs: OperatorCosts {
            kwh_price_usd: 0.20,
            internet_usd_per_month: 40.0,
            internet_share: 0.0,
            maintenance_usd_per_month: 1.0,
            driving_usd_per_month: 0.0,
            tax_rate: 0.0,
        },
        rewards: RewardAssumptions {
            tokens_per_month: 40.0,
            source: "given".into(),
            uptime: 1.0,
            emission_decay_per_year: 0.0,
            halving: None,
        },
        market: still_market(0.50),
        months: 36,
        rental: None,
        storage: None,
        placement: None,
    }
}

fn opts(utilisation: Option<f64>) -> depin_economics::EstimateOptions {
    depin_economics::EstimateOptions {
        utilisation,
        ..Default::default()
    }
}

fn sim(seed: u64) -> Simulation {
    Simulation { seed, paths: 400 }
}

#[test]
fn golden_hotspot_by_hand() {
    // electricity: 5 W × 730.5 h = 3.6525 kWh × USD 0.20 = USD 0.7305 a month
    // running: 0.7305 + 0 internet + 1 maintenance = 1.7305; revenue 40 × 0.5 = 20
    // net before hardware 18.2695; depreciation 120/36 = 3.33333; net profit 14.93617
    // payback: 120 / 18.2695 = 6.57 → cash turns positive in month 7
    // break-even price: (1.7305 + 3.33333) / 40 = 0.1265958
    // ROI 12: (12 × 18.2695 − 120)/120 = 82.695%; ROI 24: 265.39%
    // cash after 36 months: 36 × 18.2695 − 120 = 537.702; electricity share 3.6525%
    let e = estimate(&golden_inputs(), sim(7)).unwrap();
    let f = &e.figures;
    let exact = |s: depin_economics::Spread, v: f64| {
        assert!(
            close(s.p10, v) && close(s.p50, v) && close(s.p90, v),
            "{s:?} vs {v}"
        )
    };
    let exact_opt = |s: depin_economics::OptSpread, v: f64| {
        for x in [s.p10, s.p50, s.p90] {
            assert!(close(x.unwrap(), v), "{s:?} vs {v}");
        }
    };
    exact(f.revenue_tokens_per_month, 40.0);
    exact(f.revenue_usd_per_month, 20.0);
    exact(f.electricity_kwh_per_month, 3.6525);
    exact(f.electricity_usd_per_month, 0.7305);
    exact(f.internet_usd_per_month, 0.0);
    exact(f.maintenance_usd_per_month, 1.0);
    exact(f.hardware_depreciation_usd_per_month, 120.0 / 36.0);
    exact(f.net_operating_usd_per_month, 18.2695);
    exact(f.net_profit_usd_per_month, 18.2695 - 120.0 / 36.0);
    exact(f.cumulative_net_usd, 36.0 * 18.2695 - 120.0);
    exact_opt(f.payback_months, 7.0);
    exact_opt(f.break_even_token_price_usd, (1.7305 + 120.0 / 36.0) / 40.0);
    exact_opt(
        f.roi_12_months_pct,
        (12.0 * 18.2695 - 120.0) / 120.0 * 100.0,
    );
    exact_opt(
        f.roi_24_months_pct,
        (24.0 * 18.2695 - 120.0) / 120.0 * 100.0,
    );
    exact_opt(f.electricity_share_of_revenue_pct, 3.6525);
    assert_eq!(f.payback_within_lifetime_probability, 1.0);
    assert!(close(e.today.payback_months.unwrap(), 120.0 / 18.2695));
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    // The series: month 6 still short, month 7 positive.
    assert!(f.cumulative_net_usd_by_month[5].cumulative_net_usd.p50 < 0.0);
    assert!(f.cumulative_net_usd_by_month[6].cumulative_net_usd.p50 > 0.0);
}

#[test]
fn golden_gpu_that_never_pays_back_warns_in_words() {
    // 300 W at USD 0.40/kWh: 219.15 kWh = USD 87.66; internet 50 × 0.2 = 10; maintenance 5
    // running USD 102.66 against revenue 160 × 0.5 = 80: loses USD 22.66 a month.
    let mut i = golden_inputs();
    i.hardware = Hardware {
        name: "gpu".into(),
        sector: Sector::Compute,
        price_usd: 1800.0,
        catalogue_price_usd: Some(1200.0),
        watts: 300.0,
        lifetime_months: 48,
        capacity_units: 1.0,
        already_owned: false,
        resale_fraction: 0.5,
    };
    i.costs = OperatorCosts {
        kwh_price_usd: 0.40,
        internet_usd_per_month: 50.0,
        internet_share: 0.2,
        maintenance_usd_per_month: 5.0,
        driving_usd_per_month: 0.0,
        tax_rate: 0.0,
    };
    i.rewards.tokens_per_month = 160.0;
    i.months = 48;
    let e = estimate(&i, sim(1)).unwrap();
    assert!(close(
        e.figures.net_operating_usd_per_month.p50,
        80.0 - (219.15 * 0.4 + 10.0 + 5.0)
    ));
    assert_eq!(e.figures.payback_months.p50, None);
    assert_eq!(e.figures.payback_within_lifetime_probability, 0.0);
    let codes: Vec<&str> = e.warnings.iter().map(|w| w.code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "overpriced_hardware",
            "running_costs_exceed_revenue",
            "electricity_share_high",
            "token_price_dependency"
        ]
    );
    let table = device_table(&e);
    assert!(
        table.contains("electricity takes 110% of revenue"),
        "{table}"
    );
    assert!(
        table.contains("earnings depend on a token price above USD"),
        "{table}"
    );
    assert!(
        table.contains("you pay 50% above the catalogue price"),
        "{table}"
    );
    assert!(table.contains("never"), "{table}");
}

#[test]
fn payback_after_lifetime_is_said_in_words() {
    // net 18.2695 a month, but the hardware costs 900 and lasts 36 months: 49 months needed.
    let mut i = golden_inputs();
    i.hardware.price_usd = 900.0;
    let e = estimate(&i, sim(1)).unwrap();
    assert_eq!(e.warnings[0].code, "payback_after_lifetime");
    assert_eq!(
        e.warnings[0].message,
        "hardware price pays back after its lifetime at today's rates: it needs 49 months, the hardware lasts 36"
    );
}

#[test]
fn same_seed_same_estimate_different_seed_different() {
    let mut i = golden_inputs();
    i.market = Market::default();
    let a = estimate(&i, sim(42)).unwrap();
    let b = estimate(&i, sim(42)).unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let c = estimate(&i, sim(43)).unwrap();
    assert_ne!(
        a.figures.revenue_usd_per_month,
        c.figures.revenue_usd_per_month
    );
    // Volatility spreads the figures in the expected order.
    let r = a.figures.revenue_usd_per_month;
    assert!(r.p10 < r.p50 && r.p50 < r.p90);
}

#[test]
fn growth_dilutes_and_decay_reduces() {
    let base = estimate(&golden_inputs(), sim(1)).unwrap();
    let mut grow = golden_inputs();
    grow.market.network_growth_per_month = 0.05;
    let g = estimate(&grow, sim(1)).unwrap();
    // Month t earns 40 / 1.05^t tokens: mean over 36 months = 40 × (1 − 1.05^-36)/(36 × (1 − 1/1.05)).
    let expect = 40.0 * (1.0 - 1.05f64.powi(-36)) / (36.0 * (1.0 - 1.0 / 1.05));
    assert!(
        close(g.figures.revenue_tokens_per_month.p50, expect),
        "{} {expect}",
        g.figures.revenue_tokens_per_month.p50
    );
    assert!(g.figures.payback_months.p50.unwrap() >= base.figures.payback_months.p50.unwrap());
    let mut decay = golden_inputs();
    decay.rewards.emission_decay_per_year = 0.5;
    let d = estimate(&decay, sim(1)).unwrap();
    assert!(d.figures.revenue_tokens_per_month.p50 < 40.0);
}

#[test]
fn observed_projection_continues_from_cash_so_far() {
    // 10 months in, USD 200 earned, USD 17.305 running costs paid: cash −120 + 182.695 > 0.
    let i = golden_inputs();
    let obs = Observed {
        months_elapsed: 10,
        revenue_usd_so_far: 200.0,
        running_costs_usd_so_far: 17.305,
    };
    let e = project_from_observed(&i, &obs, sim(1)).unwrap();
    assert_eq!(e.figures.payback_months.p50, Some(10.0));
    // Remaining 26 months at 18.2695: cash = 62.695 + 26 × 18.2695.
    assert!(close(
        e.figures.cumulative_net_usd.p50,
        200.0 - 17.305 - 120.0 + 26.0 * 18.2695
    ));
    assert_eq!(e.figures.cumulative_net_usd_by_month[0].month, 11);
    // Behind: only USD 20 earned in 10 months; it must pay back later than a fresh device.
    let slow = Observed {
        months_elapsed: 10,
        revenue_usd_so_far: 20.0,
        running_costs_usd_so_far: 17.305,
    };
    let e = project_from_observed(&i, &slow, sim(1)).unwrap();
    // cash −117.305, + 18.2695/month → 7 more months → month 17.
    assert_eq!(e.figures.payback_months.p50, Some(17.0));
    let late = Observed {
        months_elapsed: 36,
        ..slow
    };
    assert!(project_from_observed(&i, &late, sim(1)).is_err());
}

// ---------------------------------------------------------------------------------------
// Payback: the cash must stay at or above zero

#[test]
fn payback_is_when_the_cash_stays_non_negative() {
    use depin_economics::sim::payback_month;
    // Touches zero in month 2, dips to −5 and −20, ends negative: never.
    assert_eq!(payback_month(&[-100.0, -40.0, 0.0, -5.0, -20.0]), None);
    // Touches zero in month 2, dips in month 3, then −5 → 10 → 30 and stays: month 4.
    assert_eq!(
        payback_month(&[-100.0, -40.0, 0.0, -5.0, 10.0, 30.0]),
        Some(4)
    );
    // Crosses in month 2 and stays: month 2.
    assert_eq!(payback_month(&[-100.0, -40.0, 10.0, 30.0]), Some(2));
    // Already at or above zero after the purchase (nothing paid): month 0.
    assert_eq!(payback_month(&[0.0, 5.0]), Some(0));
    assert_eq!(payback_month(&[0.0, -1.0]), None);
}

/// A device whose rewards halve every month (network growth 100%/month, no volatility):
/// revenue 40 tokens × USD 0.50 = 20, then 10, 5, 2.5, 1.25, 0.625 over a 6-month life;
/// running costs USD 4 (maintenance only). Net per month: 16, 6, 1, −1.5, −2.75, −3.375.
fn halving_inputs(price: f64) -> EstimateInputs {
    let mut i = golden_inputs();
    i.hardware.price_usd = price;
    i.hardware.watts = 0.0;
    i.hardware.lifetime_months = 6;
    i.costs.maintenance_usd_per_month = 4.0;
    i.market.network_growth_per_month = 1.0;
    i.months = 6;
    i
}

#[test]
fn a_path_that_touches_zero_and_falls_back_never_pays_back() {
    // Price 20: cash −20, −4, 2, 3, 1.5, −1.25, −4.625. It is ≥ 0 in months 2–4 (the old
    // rule said "month 2"), but ends at −4.625: never, on every path.
    let e = estimate(&halving_inputs(20.0), sim(3)).unwrap();
    let f = &e.figures;
    assert!(
        close(f.cumulative_net_usd.p50, -4.625),
        "{:?}",
        f.cumulative_net_usd
    );
    assert_eq!(f.payback_months.p10, None);
    assert_eq!(f.payback_months.p50, None);
    assert_eq!(f.payback_months.p90, None);
    assert_eq!(f.payback_within_lifetime_probability, 0.0);
    let v = device_json(&e);
    assert!(v["payback_months"]["p10"].is_null() && v["payback_months"]["p90"].is_null());
    // Price 10: cash −10, 6, 12, 13, 11.5, 8.75, 5.375: crosses in month 1 and stays.
    let e = estimate(&halving_inputs(10.0), sim(3)).unwrap();
    assert_eq!(e.figures.payback_months.p50, Some(1.0));
    assert!(close(e.figures.cumulative_net_usd.p50, 5.375));
    assert_eq!(e.figures.payback_within_lifetime_probability, 1.0);
    // Price 20 with a 3-month life: cash −20, −4, 2, 3: crosses in month 2 and stays.
    let mut short = halving_inputs(20.0);
    short.hardware.lifetime_months = 3;
    short.months = 3;
    let e = estimate(&short, sim(3)).unwrap();
    assert_eq!(e.figures.payback_months.p50, Some(2.0));
    assert!(close(e.figures.cumulative_net_usd.p50, 3.0));
}

#[test]
fn payback_p10_is_the_slow_case_and_never_shows_as_never() {
    // The golden hotspot at USD 600 needs 600 / 18.2695 = 32.8 months of its 36 at today's
    // price; with a 90%/year token volatility some paths pay back and many never do.
    let mut i = golden_inputs();
    i.hardware.price_usd = 600.0;
    i.market.token_volatility_per_year = 0.9;
    let e = estimate(
        &i,
        Simulation {
            seed: 5,
            paths: 1000,
        },
    )
    .unwrap();
    let pb = e.figures.payback_months;
    let p = e.figures.payback_within_lifetime_probability;
    assert!(p > 0.1 && p < 0.9, "{p}");
    // More than 10% of paths never pay back, so the bad case (p10) is never …
    assert_eq!(pb.p10, None, "{pb:?}");
    // … and the good case (p90) is a month, earlier than the median when the median has one.
    let fast = pb.p90.expect("the good case pays back");
    assert!(fast <= 36.0 && pb.p50.is_none_or(|m| fast <= m), "{pb:?}");
    // Revenue still has p10 low: every row's p10 is the bad case.
    let r = e.figures.revenue_usd_per_month;
    assert!(r.p10 <= r.p50 && r.p50 <= r.p90);
    let v = device_json(&e);
    assert!(v["payback_months"]["p10"].is_null());
    assert!(v["payback_months"]["p90"].is_number());
    let table = device_table(&e);
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with("payback, months"))
        .unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[2], "never", "{line}");
    assert!(
        table.contains("p10 (bad)") && table.contains("p90 (good)"),
        "{table}"
    );
    assert!(table.contains("p10 is the bad case"), "{table}");
}

// ---------------------------------------------------------------------------------------
// GPU rental and hardware already owned

/// A GPU rented 30% of the time at USD 0.40/h: price 1000, 24 months, load 400 W, idle
/// 50 W, electricity USD 0.20/kWh, no internet or maintenance, no token rewards.
fn rented_gpu(kwh_price: f64) -> EstimateInputs {
    let mut i = golden_inputs();
    i.hardware = Hardware {
        name: "gpu".into(),
        sector: Sector::Compute,
        price_usd: 1000.0,
        catalogue_price_usd: None,
        watts: 250.0,
        lifetime_months: 24,
        capacity_units: 1.0,
        already_owned: false,
        resale_fraction: 0.5,
    };
    i.costs = OperatorCosts {
        kwh_price_usd: kwh_price,
        internet_usd_per_month: 50.0,
        internet_share: 0.0,
        maintenance_usd_per_month: 0.0,
        driving_usd_per_month: 0.0,
        tax_rate: 0.0,
    };
    i.rewards.tokens_per_month = 0.0;
    // The token price swings, but rental revenue is in USD: it must not matter.
    i.market.token_volatility_per_year = 0.9;
    i.months = 24;
    i.rental = Some(depin_economics::Rental {
        usd_per_hour: 0.40,
        utilisation_p10: 0.3,
        utilisation_p50: 0.3,
        utilisation_p90: 0.3,
        load_watts: 400.0,
        idle_watts: 50.0,
        platform_fee: 0.0,
        payout_threshold_usd: 0.0,
        payout_fee_usd: 0.0,
    });
    i
}

#[test]
fn a_gpu_rented_30_percent_of_the_time_by_hand() {
    // rented hours: 0.3 × 730.5 = 219.15 h; revenue 219.15 × 0.40 = USD 87.66/month
    // electricity: 219.15 h × 0.4 kW = 87.66 kWh under load + 511.35 h × 0.05 kW = 25.5675
    //   kWh idle = 113.2275 kWh × USD 0.20 = USD 22.6455/month
    // net before hardware 87.66 − 22.6455 = 65.0145; depreciation 1000/24 = 41.6667
    // cash after 24 months 24 × 65.0145 − 1000 = 560.348; payback 1000/65.0145 = 15.4 → 16
    let e = estimate(&rented_gpu(0.20), sim(4)).unwrap();
    let f = &e.figures;
    for (s, v) in [
        (f.revenue_usd_per_month, 87.66),
        (f.electricity_kwh_per_month, 113.2275),
        (f.electricity_usd_per_month, 22.6455),
        (f.net_operating_usd_per_month, 65.0145),
        (f.net_profit_usd_per_month, 65.0145 - 1000.0 / 24.0),
        (f.cumulative_net_usd, 24.0 * 65.0145 - 1000.0),
    ] {
        assert!(
            close(s.p10, v) && close(s.p50, v) && close(s.p90, v),
            "{s:?} vs {v}"
        );
    }
    assert_eq!(f.revenue_tokens_per_month.p50, 0.0);
    assert_eq!(f.payback_months.p10, Some(16.0));
    assert_eq!(f.payback_months.p90, Some(16.0));
    assert_eq!(f.payback_within_lifetime_probability, 1.0);
    assert!(close(f.utilisation.unwrap().p50, 0.3));
    assert!(close(e.today.payback_months.unwrap(), 1000.0 / 65.0145));
    assert!(
        !e.warnings.iter().any(|w| w.code == "no_rewards"),
        "{:?}",
        e.warnings
    );
}

#[test]
fn rtx_4090_rental_stays_below_full_time_at_the_top_rate() {
    // 100% rented at the top market rate USD 0.45/h: 730.5 × 0.45 = USD 328.725/month.
    let ceiling = 730.5 * 0.45;
    let cat = Catalogue::builtin();
    let p = cat.get("rtx-4090").unwrap();
    let s = OperatorSettings::default();
    let r = NetworkRates::builtin();
    let i = depin_economics::inputs_for_estimate(p, None, &s, &r, None, &opts(None)).unwrap();
    assert_eq!(
        i.rewards.tokens_per_month, 0.0,
        "the built-in token proxy is dropped"
    );
    let f = estimate(&i, Simulation::default()).unwrap().figures;
    let rev = f.revenue_usd_per_month;
    assert!(
        rev.p90 <= ceiling && rev.p10 < rev.p50 && rev.p50 < rev.p90,
        "{rev:?}"
    );
    // The spread is utilisation's, after the platform's 10%: p50 ≈ 0.30 × 730.5 × 0.35 ×
    // 0.9 = 69.03, p90 ≈ 0.60 → 138.06.
    let u = f.utilisation.unwrap();
    assert!(
        (u.p10 - 0.10).abs() < 0.03 && (u.p50 - 0.30).abs() < 0.03 && (u.p90 - 0.60).abs() < 0.03,
        "{u:?}"
    );
    assert!(
        (rev.p50 - 69.03).abs() < 7.0 && (rev.p90 - 138.06).abs() < 11.0,
        "{rev:?}"
    );
    // Rented all the time: 730.5 × 0.35 × 0.9 = 230.1075 (above the USD 25 payout
    // threshold every month), below the ceiling.
    let full =
        depin_economics::inputs_for_estimate(p, None, &s, &r, None, &opts(Some(1.0))).unwrap();
    let rev = estimate(&full, sim(1))
        .unwrap()
        .figures
        .revenue_usd_per_month;
    assert!(close(rev.p90, 230.1075) && rev.p90 <= ceiling, "{rev:?}");
    // Utilisation is for rented devices only, and a fraction.
    let hotspot = cat.get("lorawan-indoor-hotspot").unwrap();
    assert!(matches!(
        depin_economics::inputs_for_estimate(hotspot, None, &s, &r, None, &opts(Some(0.3))),
        Err(EconomicsError::Invalid {
            field: "utilisation",
            ..
        })
    ));
    assert!(matches!(
        depin_economics::inputs_for_estimate(p, None, &s, &r, None, &opts(Some(1.5))),
        Err(EconomicsError::Invalid {
            field: "utilisation",
            ..
        })
    ));
}

#[test]
fn hardware_already_owned_pays_back_against_its_resale_value() {
    // The rented GPU above, already owned: no outlay, but selling it would fetch
    // 1000 × 0.5 = USD 500. Cash starts at −500; +65.0145 a month → 500/65.0145 = 7.7, so
    // payback in month 8; cash after 24 months 24 × 65.0145 − 500 = 1060.348.
    let mut i = rented_gpu(0.20);
    i.hardware.already_owned = true;
    let e = estimate(&i, sim(4)).unwrap();
    assert_eq!(e.figures.payback_months.p50, Some(8.0));
    assert!(close(
        e.figures.cumulative_net_usd.p50,
        24.0 * 65.0145 - 500.0
    ));
    assert!(close(
        e.figures.hardware_depreciation_usd_per_month.p50,
        500.0 / 24.0
    ));
    assert!(device_table(&e).contains("already owned"));
    // At USD 0.80/kWh electricity is 113.2275 × 0.8 = 90.582 > 87.66 revenue: −2.922 a
    // month, cash −500 − 24 × 2.922 = −570.128. The old `--price 0` said "month 0 on 100%
    // of paths"; now it never pays back, on every path.
    let mut dear = rented_gpu(0.80);
    dear.hardware.already_owned = true;
    let f = estimate(&dear, sim(4)).unwrap().figures;
    assert!(close(f.cumulative_net_usd.p50, -500.0 - 24.0 * 2.922));
    assert_eq!(f.payback_months.p50, None);
    assert_eq!(f.payback_within_lifetime_probability, 0.0);
    // Even at price 0 (nothing to recover) a path that ends negative never pays back.
    let mut free = rented_gpu(0.80);
    free.hardware.price_usd = 0.0;
    let f = estimate(&free, sim(4)).unwrap().figures;
    assert_eq!(f.payback_months.p90, None);
    assert_eq!(f.payback_within_lifetime_probability, 0.0);
}

// ---------------------------------------------------------------------------------------
// Resale, fees, payout thresholds, tax, break-even electricity

#[test]
fn resale_value_at_the_horizon_by_hand() {
    // The rented GPU: USD 1000, resale fraction 0.5 at two years, curve 0.5^(age/24).
    // After its 24 months it fetches 1000 × 0.5 = 500; cash if sold 560.348 + 500.
    let f = estimate(&rented_gpu(0.20), sim(4)).unwrap().figures;
    assert!(close(f.resale_value_usd_at_window_end, 500.0));
    assert!(close(f.cumulative_net_with_resale_usd.p50, 1060.348));
    // Already owned, it is two years old now and four at the end: 1000 × 0.5² = 250.
    let mut owned = rented_gpu(0.20);
    owned.hardware.already_owned = true;
    let f = estimate(&owned, sim(4)).unwrap().figures;
    assert!(close(f.resale_value_usd_at_window_end, 250.0));
    assert!(close(
        f.cumulative_net_with_resale_usd.p50,
        24.0 * 65.0145 - 500.0 + 250.0
    ));
    // The golden hotspot: USD 120 × 0.2^(36/24) = 120 × 0.0894427 = 10.7331.
    let f = estimate(&golden_inputs(), sim(1)).unwrap().figures;
    assert!((f.resale_value_usd_at_window_end - 10.7331).abs() < 1e-4);
}

#[test]
fn platform_fee_and_payout_threshold_by_hand() {
    // The GPU rented 30% at USD 0.40/h earns 87.66 a month; the platform keeps 10%:
    // 78.894. Payouts from USD 500 with a USD 1 fee: the balance reaches 552.258 in month
    // 7, so payouts of 551.258 in months 7, 14 and 21 (1653.774); months 22–24 (236.682)
    // are below the threshold when the device stops: lost.
    // Cash: −1000 + 1653.774 − 24 × 22.6455 = 110.282; after month 20, −1000 + 2 ×
    // 551.258 − 20 × 22.6455 = −350.394; after month 21, +178.2185, then falling by
    // 22.6455 a month to 110.282: payback month 21.
    let mut i = rented_gpu(0.20);
    let r = i.rental.as_mut().unwrap();
    r.platform_fee = 0.10;
    r.payout_threshold_usd = 500.0;
    r.payout_fee_usd = 1.0;
    let e = estimate(&i, sim(4)).unwrap();
    let f = &e.figures;
    assert!(
        close(f.cumulative_net_usd.p50, 110.282),
        "{:?}",
        f.cumulative_net_usd
    );
    assert!(close(f.revenue_usd_per_month.p50, 1653.774 / 24.0));
    assert_eq!(f.payback_months.p50, Some(21.0));
    assert!(close(
        f.cumulative_net_usd_by_month[19].cumulative_net_usd.p50,
        -350.394
    ));
    assert!(
        device_table(&e)
            .contains("the platform keeps 10%; paid once the balance reaches USD 500.00")
    );
    // A monthly payout (no threshold) gets all 24 × 78.894 less 24 fees.
    let mut i = rented_gpu(0.20);
    let r = i.rental.as_mut().unwrap();
    r.platform_fee = 0.10;
    r.payout_fee_usd = 1.0;
    let f = estimate(&i, sim(4)).unwrap().figures;
    assert!(close(f.revenue_usd_per_month.p50, 77.894));
    let mut bad = rented_gpu(0.20);
    bad.rental.as_mut().unwrap().platform_fee = 1.0;
    assert!(matches!(
        estimate(&bad, sim(1)),
        Err(EconomicsError::Invalid {
            field: "platform_fee",
            ..
        })
    ));
}

#[test]
fn income_tax_by_hand() {
    // The golden hotspot, taxed 30% on each month's profit after depreciation: 20 −
    // 1.7305 − 3.33333 = 14.93617, tax 4.480850 a month. Net profit 10.45532; monthly
    // cash 18.2695 − 4.48085 = 13.78865 → 120 / 13.78865 = 8.7 → payback month 9;
    // cash after 36 months 36 × 13.78865 − 120 = 376.3914.
    let mut i = golden_inputs();
    i.costs.tax_rate = 0.3;
    let e = estimate(&i, sim(1)).unwrap();
    let f = &e.figures;
    assert!(close(
        f.tax_usd_per_month.p50,
        0.3 * (18.2695 - 120.0 / 36.0)
    ));
    assert!(close(
        f.net_profit_usd_per_month.p50,
        0.7 * (18.2695 - 120.0 / 36.0)
    ));
    assert!(close(
        f.cumulative_net_usd.p50,
        36.0 * (18.2695 - 0.3 * (18.2695 - 120.0 / 36.0)) - 120.0
    ));
    assert_eq!(f.payback_months.p50, Some(9.0));
    let t = device_table(&e);
    assert!(
        t.contains("income tax, USD/month") && t.contains("income tax 30%"),
        "{t}"
    );
    // A month at a loss pays no tax: the GPU at USD 0.80/kWh loses 2.922 a month.
    let mut dear = rented_gpu(0.80);
    dear.costs.tax_rate = 0.3;
    assert_eq!(
        estimate(&dear, sim(1))
            .unwrap()
            .figures
            .tax_usd_per_month
            .p50,
        0.0
    );
    let mut bad = golden_inputs();
    bad.costs.tax_rate = 30.0;
    assert!(matches!(
        estimate(&bad, sim(1)),
        Err(EconomicsError::Invalid {
            field: "tax_rate",
            ..
        })
    ));
}

#[test]
fn break_even_electricity_price_by_hand() {
    // The rented GPU at USD 0.20/kWh: lifetime cash 560.348 on 24 × 113.2275 = 2717.46
    // kWh, so a kWh may cost 0.20 + 560.348 / 2717.46 = 0.406203 before it turns
    // negative. Check: 113.2275 × 0.406203 = 45.9933 a month; 87.66 − 45.9933 = 41.6667
    // = 1000/24, just the hardware.
    let f = estimate(&rented_gpu(0.20), sim(4)).unwrap().figures;
    let k = f.break_even_kwh_price_usd.unwrap();
    assert!(close(k.p50.unwrap(), 0.2 + 560.348 / 2717.46), "{k:?}");
    let mut at = rented_gpu(k.p50.unwrap());
    at.months = 24;
    assert!(
        estimate(&at, sim(4))
            .unwrap()
            .figures
            .cumulative_net_usd
            .p50
            .abs()
            < 1e-6
    );
    // The golden hotspot: 0.2 + 537.702 / (36 × 3.6525) = 4.28930.
    let f = estimate(&golden_inputs(), sim(1)).unwrap().figures;
    assert!((f.break_even_kwh_price_usd.unwrap().p50.unwrap() - 4.28930).abs() < 1e-5);
    // Already owned at USD 0.80/kWh the lifetime cash is −570.128: a kWh must cost at
    // most 0.80 − 570.128 / 2717.46 = 0.590197 for it to reach zero.
    let mut owned = rented_gpu(0.80);
    owned.hardware.already_owned = true;
    let k = estimate(&owned, sim(4))
        .unwrap()
        .figures
        .break_even_kwh_price_usd
        .unwrap();
    assert!(close(k.p50.unwrap(), 0.80 - 570.128 / 2717.46), "{k:?}");
    // A device that loses money even on free electricity has none: null, the bad end.
    let mut i = golden_inputs();
    i.rewards.tokens_per_month = 0.0;
    let k = estimate(&i, sim(1))
        .unwrap()
        .figures
        .break_even_kwh_price_usd
        .unwrap();
    assert_eq!((k.p10, k.p50, k.p90), (None, None, None));
    // No draw at all: no row.
    let mut i = golden_inputs();
    i.hardware.watts = 0.0;
    assert!(
        estimate(&i, sim(1))
            .unwrap()
            .figures
            .break_even_kwh_price_usd
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------
// Downside: halvings, crashes, scenarios

#[test]
fn a_halving_by_hand() {
    // The golden hotspot (40 tokens × USD 0.50 = 20 a month, running 1.7305, USD 120, 36
    // months) on a network that halves its emission in month 7 and every 12 months after:
    //   tokens: months 1–6 40, 7–18 20, 19–30 10, 31–36 5 → 240 + 240 + 120 + 30 = 630,
    //   17.5 a month on average, USD 8.75 a month.
    //   net a month: 18.2695, then 8.2695, 3.2695, 0.7695.
    //   cash: −120 + 6 × 18.2695 = −10.383 after month 6, −2.1135 after month 7, +6.156
    //   after month 8 → payback month 8 (month 7 without the halving).
    //   cash after 36 months: 630 × 0.5 − 36 × 1.7305 − 120 = 132.702.
    //   break-even token price: (120 + 36 × 1.7305) / 630 = 0.289362.
    let mut i = golden_inputs();
    i.rewards.halving = Some(depin_economics::Halving {
        first_month: 7,
        interval_months: 12,
        note: "test".into(),
    });
    let f = estimate(&i, sim(1)).unwrap().figures;
    assert!(close(f.revenue_tokens_per_month.p50, 17.5));
    assert!(close(f.revenue_usd_per_month.p50, 8.75));
    assert_eq!(f.payback_months.p50, Some(8.0));
    assert!(
        close(f.cumulative_net_usd.p50, 132.702),
        "{:?}",
        f.cumulative_net_usd
    );
    assert!(close(
        f.break_even_token_price_usd.p50.unwrap(),
        182.298 / 630.0
    ));
    assert!(close(
        f.cumulative_net_usd_by_month[6].cumulative_net_usd.p50,
        -2.1135
    ));
    let h = i.rewards.halving.as_ref().unwrap();
    assert_eq!(
        [
            h.factor(6),
            h.factor(7),
            h.factor(18),
            h.factor(19),
            h.factor(31)
        ],
        [1.0, 0.5, 0.5, 0.25, 0.125]
    );
}

#[test]
fn catalogue_halving_dates_land_on_the_right_months() {
    use depin_economics::YearMonth;
    let cat = Catalogue::builtin();
    let dec = |y, m| YearMonth { year: y, month: m };
    let halving = |name: &str, start: YearMonth| {
        cat.get(name)
            .unwrap()
            .emission
            .as_ref()
            .unwrap()
            .halving_from(start)
            .map(|h| (h.first_month, h.interval_months))
    };
    // GEODNET halves on 2027-06-30: from a December 2026 start, June 2027 is month 7 and
    // the halving takes effect from July, month 8.
    assert_eq!(
        halving("gnss-reference-station", dec(2026, 12)),
        Some((8, 12))
    );
    // Helium halves on 2027-08-01: August 2027 is month 9.
    assert_eq!(
        halving("lorawan-indoor-hotspot", dec(2026, 12)),
        Some((9, 24))
    );
    // Starting September 2027, that date is past: the next is 2029-08-01, month 24.
    assert_eq!(
        halving("lorawan-indoor-hotspot", dec(2027, 9)),
        Some((24, 24))
    );
    // Through inputs_for_estimate, with the built-in rates only.
    let o = depin_economics::EstimateOptions {
        start: Some(dec(2026, 12)),
        catalogue_halvings: true,
        catalogue_decay: true,
        ..Default::default()
    };
    let s = OperatorSettings::default();
    let r = NetworkRates::builtin();
    let gnss = cat.get("gnss-reference-station").unwrap();
    let i = depin_economics::inputs_for_estimate(gnss, None, &s, &r, None, &o).unwrap();
    assert_eq!(i.rewards.halving.as_ref().map(|h| h.first_month), Some(8));
    let dimo = cat.get("vehicle-dongle").unwrap();
    let i = depin_economics::inputs_for_estimate(dimo, None, &s, &r, None, &o).unwrap();
    assert_eq!(i.rewards.emission_decay_per_year, 0.15);
    assert!(device_table(&estimate(&i, sim(1)).unwrap()).contains("emission falls 15% a year"));
    let mut live = r.clone();
    live.policy_id = "p1".into();
    live.window_epochs = 30;
    let i = depin_economics::inputs_for_estimate(gnss, None, &s, &live, None, &o).unwrap();
    assert!(
        i.rewards.halving.is_none(),
        "a live network's rates carry its own schedule"
    );
    // No start month: refused, naming it.
    let o = depin_economics::EstimateOptions {
        catalogue_halvings: true,
        ..Default::default()
    };
    assert!(matches!(
        depin_economics::inputs_for_estimate(gnss, None, &s, &r, None, &o),
        Err(EconomicsError::Invalid { field: "start", .. })
    ));
}

#[test]
fn crashes_take_their_share_of_the_price_by_hand() {
    // No volatility or drift; crashes at 0.5 a year, each taking 60%. The price after 24
    // months is the one of month 24, which has seen crashes in months 1–23: a Poisson
    // count N with mean 0.5 × 23/12 = 0.958. P(N = 0) = 0.384, P(N ≤ 1) = 0.752,
    // P(N ≤ 2) = 0.927. So the good case (p90) has no crash: USD 0.50; the median one
    // crash: 0.5 × 0.4 = 0.20; the bad case (p10) two: 0.5 × 0.16 = 0.08.
    let mut i = golden_inputs();
    i.months = 24;
    i.market.crash_probability_per_year = 0.5;
    i.market.crash_size = 0.6;
    let e = estimate(
        &i,
        Simulation {
            seed: 3,
            paths: 4000,
        },
    )
    .unwrap();
    let p = e.figures.token_price_usd_at_window_end;
    assert!(
        close(p.p90, 0.5) && close(p.p50, 0.2) && close(p.p10, 0.08),
        "{p:?}"
    );
    // Crashes only lower the cash, path by path: every quantile is at or below the
    // crash-free one (which is 24 × 18.2695 − 120 = 318.468 on every path).
    let c = e.figures.cumulative_net_usd;
    assert!(c.p90 <= 318.468 + 1e-9 && c.p10 < c.p50, "{c:?}");
    for bad in [-0.1, f64::NAN, 13.0] {
        let mut j = i.clone();
        j.market.crash_probability_per_year = bad;
        assert!(matches!(
            estimate(&j, sim(1)),
            Err(EconomicsError::Invalid {
                field: "crash_probability_per_year",
                ..
            })
        ));
    }
    let mut j = i.clone();
    j.market.crash_size = 1.0;
    assert!(matches!(
        estimate(&j, sim(1)),
        Err(EconomicsError::Invalid {
            field: "crash_size",
            ..
        })
    ));
}

#[test]
fn scenarios_order_the_downside_and_say_their_parameters() {
    use depin_economics::Scenario;
    let run = |s: Scenario| {
        let mut i = golden_inputs();
        i.market = Market::for_scenario(s, 0.5);
        estimate(
            &i,
            Simulation {
                seed: 8,
                paths: 1000,
            },
        )
        .unwrap()
    };
    let (base, bear, crash) = (
        run(Scenario::Base),
        run(Scenario::Bear),
        run(Scenario::Crash),
    );
    let p50 = |e: &depin_economics::Estimate| e.figures.cumulative_net_usd.p50;
    assert!(p50(&base) > p50(&bear) && p50(&bear) > p50(&crash));
    // The crash scenario's median price after 20 months: drift e^(−1 × 20/12) = 0.189,
    // and with crashes of −60% at 0.5 a year (0.83 expected) about 90% is gone.
    let mut i = golden_inputs();
    i.months = 20;
    i.market = Market::for_scenario(Scenario::Crash, 1.0);
    let p = estimate(
        &i,
        Simulation {
            seed: 8,
            paths: 2000,
        },
    )
    .unwrap()
    .figures
    .token_price_usd_at_window_end;
    assert!(p.p50 < 0.15 && p.p50 > 0.03, "{p:?}");
    let table = device_table(&bear);
    assert!(
        table.contains("scenario bear: token price USD 0.500, median drift -50%/year (×0.61 a year), volatility 90%/year, crashes of −50% at 0.250 a year on average (about one in 4 years)"),
        "{table}"
    );
    let v = device_json(&crash);
    assert_eq!(v["scenario"]["name"], "crash");
    assert_eq!(v["scenario"]["crash_size"], 0.6);
    assert_eq!(v["inputs"]["market"]["scenario"], "crash");
    assert!("boom".parse::<Scenario>().is_err());
}

// ---------------------------------------------------------------------------------------
// Placement and cell saturation

#[test]
fn a_weather_station_in_a_saturated_cell_earns_nothing_by_hand() {
    // WeatherXM pays at most 10 stations per cell. The network reports a cell with 10
    // stations earning a median 8 tokens/month: a newcomer ranks last and earns 0.
    // Running costs: 2 W × 730.5 h = 1.461 kWh × USD 0.17 = 0.24837, internet 50 × 2% =
    // 1.00, maintenance 1.00 → 2.24837 a month; cash after 60 months −400 − 60 × 2.24837
    // = −534.9022, on every path; never pays back.
    let cat = Catalogue::builtin();
    let ws = cat.get("weather-station").unwrap();
    assert_eq!(ws.placement.as_ref().unwrap().cell_capacity, Some(10));
    let cell = |devices: u64| {
        let mut r = NetworkRates::builtin();
        r.cells.push(depin_economics::CellRates {
            h3: "871f1d489ffffff".into(),
            sector: Sector::Sensor,
            devices,
            tokens_per_device_month: 8.0,
        });
        r
    };
    let s = OperatorSettings::default();
    let i = depin_economics::inputs_for_estimate(
        ws,
        None,
        &s,
        &cell(10),
        Some("871f1d489ffffff"),
        &opts(None),
    )
    .unwrap();
    assert_eq!(i.rewards.tokens_per_month, 0.0);
    assert!(
        i.rewards.source.contains("at its capacity of 10"),
        "{}",
        i.rewards.source
    );
    assert!(i.placement.is_none(), "a known cell has no placement draw");
    let e = estimate(&i, sim(1)).unwrap();
    let f = &e.figures;
    assert!(close(f.revenue_usd_per_month.p90, 0.0));
    assert!(
        close(f.cumulative_net_usd.p90, -534.9022),
        "{:?}",
        f.cumulative_net_usd
    );
    assert_eq!(f.payback_months.p90, None);
    assert!(e.warnings.iter().any(|w| w.code == "no_rewards"));
    // Nine stations: below capacity, the newcomer shares the cell: 8 × 9/10 = 7.2 tokens.
    let i = depin_economics::inputs_for_estimate(
        ws,
        None,
        &s,
        &cell(9),
        Some("871f1d489ffffff"),
        &opts(None),
    )
    .unwrap();
    assert!(close(i.rewards.tokens_per_month, 7.2));
}

#[test]
fn placement_is_drawn_per_path_and_a_full_cell_pays_nothing() {
    // A quarter of sites in a full cell; elsewhere 0.3× (p10), 1× (p50), 2× (p90) the
    // median. Site level u: below 0.25 → 0; else v = (u − 0.25)/0.75 through the spread:
    // v 0 → 0.3 − 0.7/4 = 0.125; v 0.1 (u 0.325) → 0.3; v 0.5 (u 0.625) → 1; v 0.9
    // (u 0.925) → 2; beyond, slope 2.5: v 0.98667 (u 0.99) → 2.2167.
    let p = depin_economics::model::Placement {
        full_cell_probability: 0.25,
        spread_p10: 0.3,
        spread_p90: 2.0,
        note: String::new(),
    };
    for (u, v) in [
        (0.2, 0.0),
        (0.25, 0.125),
        (0.325, 0.3),
        (0.625, 1.0),
        (0.925, 2.0),
        (0.99, 2.216_666_666_666_667),
    ] {
        assert!(close(p.factor(u), v), "{u}: {}", p.factor(u));
    }
    // The golden hotspot (20 USD a month at the median) placed so: more than 10% of paths
    // earn nothing, so the bad case is 0; the median site (u 0.5 → v 1/3 → 0.3 + 0.7 ×
    // 0.2333/0.4 = 0.7083) earns 14.17; the good case (u 0.9 → v 0.8667 → 1.9167) 38.33.
    let mut i = golden_inputs();
    i.placement = Some(p);
    let f = estimate(
        &i,
        Simulation {
            seed: 5,
            paths: 4000,
        },
    )
    .unwrap()
    .figures;
    let r = f.revenue_usd_per_month;
    assert_eq!(r.p10, 0.0, "{r:?}");
    assert!(
        (r.p50 - 14.1667).abs() < 0.5 && (r.p90 - 38.333).abs() < 0.8,
        "{r:?}"
    );
    assert_eq!(f.payback_months.p10, None);
    // The built-in spread reaches the catalogue's coverage devices, not the others.
    let cat = Catalogue::builtin();
    let s = OperatorSettings::default();
    let r = NetworkRates::builtin();
    let hs = cat.get("lorawan-indoor-hotspot").unwrap();
    let i = depin_economics::inputs_for_estimate(hs, None, &s, &r, None, &opts(None)).unwrap();
    let pl = i.placement.unwrap();
    assert_eq!(
        (pl.full_cell_probability, pl.spread_p10, pl.spread_p90),
        (
            0.1,
            depin_economics::rates::BUILTIN_SPREAD.0,
            depin_economics::rates::BUILTIN_SPREAD.1
        )
    );
    let gpu = cat.get("rtx-4090").unwrap();
    let i = depin_economics::inputs_for_estimate(gpu, None, &s, &r, None, &opts(None)).unwrap();
    assert!(i.placement.is_none());
    let mut bad = golden_inputs();
    bad.placement = Some(depin_economics::model::Placement {
        full_cell_probability: 1.5,
        spread_p10: 0.3,
        spread_p90: 2.0,
        note: String::new(),
    });
    assert!(matches!(
        estimate(&bad, sim(1)),
        Err(EconomicsError::Invalid {
            field: "full_cell_probability",
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------
// Storage paid on what is stored

/// A 6 TB node: no data in 2 vetting months, then 0.5 TB a month on every path (full at
/// the end of month 14); USD 1.50/TB-month plus 5% of the data a month as egress at
/// USD 2/TB, so USD 1.60 per TB-month held; Storj's held-back schedule; price USD 100,
/// no electricity, USD 1 maintenance, 24 months.
fn storage_node() -> EstimateInputs {
    let mut i = golden_inputs();
    i.hardware = Hardware {
        name: "node".into(),
        sector: Sector::Storage,
        price_usd: 100.0,
        catalogue_price_usd: None,
        watts: 0.0,
        lifetime_months: 24,
        capacity_units: 6.0,
        already_owned: false,
        resale_fraction: 0.3,
    };
    i.rewards.tokens_per_month = 0.0;
    i.market.token_volatility_per_year = 0.9; // USD pay: must not matter
    i.months = 24;
    i.storage = Some(depin_economics::StorageMarket {
        usd_per_tb_month: 1.5,
        egress_usd_per_tb: 2.0,
        egress_share_per_month: 0.05,
        ingress_tb_per_month_p10: 0.5,
        ingress_tb_per_month_p50: 0.5,
        ingress_tb_per_month_p90: 0.5,
        vetting_months: 2,
        vetting_ingress_fraction: 0.0,
        held_back_by_month: vec![0.75, 0.75, 0.75, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25],
        held_back_returned_month: 16,
        held_back_returned_share: 0.5,
        graceful_exit_min_months: 6,
        platform_fee: 0.0,
        payout_threshold_usd: 0.0,
        payout_fee_usd: 0.0,
    });
    i
}

#[test]
fn a_storage_node_filling_over_12_months_with_held_back_pay_by_hand() {
    // Month m holds (start + end)/2 TB on average and earns 1.6 × that:
    //   m1–2 vetting, 0 TB → 0; m3 0→0.5 TB avg 0.25 → 0.40; m4 avg 0.75 → 1.20;
    //   m5 2.00; m6 2.80; m7 3.60; m8 4.40; m9 5.20; … m14 5.5→6.0 avg 5.75 → 9.20;
    //   from m15 full: 6 × 1.6 = 9.60.
    // Held: m3 75% of 0.40 = 0.30 (paid 0.10); m4–6 50%: 0.60, 1.00, 1.40; m7–9 25%:
    //   0.90, 1.10, 1.30; balance after month 9: 6.60. Month 16 returns half: 3.30 on top
    //   of 9.60 = 12.90; month 24 (graceful exit, older than 6 months) returns the other
    //   3.30: 12.90.
    // Paid, cumulative: m9 13.0, m12 33.4, m14 51.0, m16 73.5, m20 111.9, m21 121.5,
    //   m24 153.6 (= everything earned: 0.4 + … + 9.2 = 57.6, plus 10 × 9.6).
    // Cash = −100 + paid − m × 1: m20 −8.1, m21 +0.5 and rising → payback month 21;
    //   after 24 months 29.6. Revenue 153.6 / 24 = 6.40 a month.
    let s = storage_node().storage.unwrap();
    let sched = s.schedule(6.0, 0.5, 24);
    let m = |k: usize| sched[k - 1];
    assert_eq!((m(2).stored_tb, m(2).earned_usd), (0.0, 0.0));
    assert!(close(m(3).earned_usd, 0.4) && close(m(3).held_usd, 0.3) && close(m(3).paid_usd, 0.1));
    assert!(close(m(6).held_usd, 1.4) && close(m(7).held_usd, 0.9) && close(m(9).paid_usd, 3.9));
    assert!(close(m(9).held_balance_usd, 6.6));
    assert!(close(m(10).held_usd, 0.0) && close(m(10).paid_usd, 6.0));
    assert!(close(m(14).stored_tb, 6.0) && close(m(13).stored_tb, 5.5));
    assert!(close(m(15).earned_usd, 9.6));
    assert!(close(m(16).paid_usd, 12.9) && close(m(16).held_balance_usd, 3.3));
    assert!(close(m(24).paid_usd, 12.9) && m(24).held_balance_usd == 0.0);
    let paid: f64 = sched.iter().map(|m| m.paid_usd).sum();
    assert!(close(paid, 153.6), "{paid}");
    assert_eq!(s.months_to_fill(6.0, 0.5), Some(14));

    let e = estimate(&storage_node(), sim(2)).unwrap();
    let f = &e.figures;
    for (x, v) in [
        (f.revenue_usd_per_month, 6.4),
        (f.net_operating_usd_per_month, 5.4),
        (f.cumulative_net_usd, 29.6),
    ] {
        assert!(close(x.p10, v) && close(x.p90, v), "{x:?} vs {v}");
    }
    assert_eq!(f.payback_months.p50, Some(21.0));
    assert_eq!(f.months_to_fill.unwrap().p50, Some(14.0));
    assert!(close(f.stored_tb_at_window_end.unwrap().p50, 6.0));
    assert!(close(f.held_back_usd_at_window_end.unwrap().p50, 0.0));
    let table = device_table(&e);
    assert!(
        table.contains("75/75/75/50/50/50/25/25/25% held back"),
        "{table}"
    );

    // A 12-month window: cash −100 + 33.4 − 12 = −78.6, 5 TB held, 6.60 still held back
    // (the 12-month node's own exit is not in this window: its lifetime is 24).
    let mut w = storage_node();
    w.months = 12;
    let f = estimate(&w, sim(2)).unwrap().figures;
    assert!(
        close(f.cumulative_net_usd.p50, -78.6),
        "{:?}",
        f.cumulative_net_usd
    );
    assert!(close(f.stored_tb_at_window_end.unwrap().p50, 5.0));
    assert!(close(f.held_back_usd_at_window_end.unwrap().p50, 6.6));

    // A node that quits after 5 months (younger than 6: no graceful exit) forfeits the
    // 0.30 + 0.60 + 1.00 = 1.90 held; it is paid 0.10 + 0.60 + 1.00 = 1.70 in all.
    let sched = s.schedule(6.0, 0.5, 5);
    let paid: f64 = sched.iter().map(|m| m.paid_usd).sum();
    assert!(close(paid, 1.7), "{paid}");
    assert_eq!(sched[4].held_balance_usd, 0.0);
}

#[test]
fn catalogue_storage_nodes_are_paid_on_data_held_not_on_tokens() {
    let cat = Catalogue::builtin();
    let s = OperatorSettings::default();
    let r = NetworkRates::builtin();
    for name in ["spare-disk-4tb", "small-nas-16tb"] {
        let p = cat.get(name).unwrap();
        let i = depin_economics::inputs_for_estimate(p, None, &s, &r, None, &opts(None)).unwrap();
        assert_eq!(
            i.rewards.tokens_per_month, 0.0,
            "{name}: token proxy dropped"
        );
        let f = estimate(&i, Simulation::default()).unwrap().figures;
        let rev = f.revenue_usd_per_month;
        // Never above a full disk's pay: capacity × (1.50 + 1.5% × 2) per month.
        let full = p.capacity_units * (1.5 + 0.015 * 2.0);
        assert!(
            rev.p10 < rev.p50 && rev.p50 < rev.p90 && rev.p90 < full,
            "{name} {rev:?}"
        );
        // The 16 TB NAS at 0.5 TB/month: 2 vetting months at 10% bring 0.1 TB, then
        // 15.9 / 0.5 = 31.8 → full after month 34 (the median path's rate is within a
        // sampling hair of 0.5, so it may take a month longer).
        if name == "small-nas-16tb" {
            let st = p.storage.as_ref().unwrap();
            assert_eq!(st.months_to_fill(16.0, 0.5), Some(34));
            let m = f.months_to_fill.unwrap();
            assert!(matches!(m.p50, Some(34.0 | 35.0)), "{m:?}");
            // p10 is the slow case: at the p10 rate 0.2, 15.9 / 0.2 = 79.5 → about 82 months.
            assert!(m.p10.is_none_or(|x| x > 70.0), "{m:?}");
        }
        assert!(
            matches!(
                depin_economics::inputs_for_estimate(p, None, &s, &r, None, &opts(Some(0.3))),
                Err(EconomicsError::Invalid {
                    field: "utilisation",
                    ..
                })
            ),
            "{name}"
        );
    }
}

#[test]
fn absurd_inputs_are_refused_or_warned_about_by_name() {
    // 5 USD/kWh: refused, naming kwh_price_usd.
    let mut i = golden_inputs();
    i.costs.kwh_price_usd = 5.0;
    assert!(matches!(
        estimate(&i, sim(1)),
        Err(EconomicsError::Invalid {
            field: "kwh_price_usd",
            ..
        })
    ));
    // A 500 W hotspot: allowed, but a warning names watts.
    let mut i = golden_inputs();
    i.hardware.watts = 500.0;
    let e = estimate(&i, sim(1)).unwrap();
    assert!(
        e.warnings
            .iter()
            .any(|w| w.code == "implausible_input" && w.message.starts_with("watts: 500 W")),
        "{:?}",
        e.warnings
    );
    // A million watts: refused.
    let mut i = golden_inputs();
    i.hardware.watts = 1e6;
    assert!(matches!(
        estimate(&i, sim(1)),
        Err(EconomicsError::Invalid { field: "watts", .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Properties

fn any_inputs() -> impl Strategy<Value = EstimateInputs> {
    (
        (
            0.0f64..3000.0,
            0.0f64..500.0,
            1u32..72,
            prop::sample::select(Sector::ALL.to_vec()),
        ),
        (0.0f64..0.6, 0.0f64..100.0, 0.0f64..1.0, 0.0f64..20.0),
        (0.0f64..300.0, 0.5f64..1.0, 0.0f64..0.3),
        (0.01f64..5.0, 0.0f64..2.0, -0.05f64..0.1, 0.0f64..0.1),
        1u32..72,
    )
        .prop_map(
            |(
                (price, watts, life, sector),
                (kwh, internet, share, maint),
                (tokens, uptime, decay),
                (tp, vol, g, gv),
                months,
            )| EstimateInputs {
                hardware: Hardware {
                    name: "p".into(),
                    sector,
                    price_usd: price,
                    catalogue_price_usd: None,
                    watts,
                    lifetime_months: life,
                    capacity_units: 1.0,
                    already_owned: false,
                    resale_fraction: 0.5,
                },
                costs: OperatorCosts {
                    kwh_price_usd: kwh,
                    internet_usd_per_month: internet,
                    internet_share: share,
                    maintenance_usd_per_month: maint,
                    driving_usd_per_month: 0.0,
                    tax_rate: 0.0,
                },
                rewards: RewardAssumptions {
                    tokens_per_month: tokens,
                    source: "p".into(),
                    uptime,
                    emission_decay_per_year: decay,
                    halving: None,
                },
                market: Market {
                    token_price_usd: tp,
                    token_volatility_per_year: vol,
                    token_drift_per_year: 0.0,
                    network_growth_per_month: g,
                    network_growth_volatility_per_month: gv,
                    ..Market::default()
                },
                months,
                rental: None,
                storage: None,
                placement: None,
            },
        )
}

fn le(a: Option<f64>, b: Option<f64>) -> bool {
    // None is "never", above every number.
    match (a, b) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(x), Some(y)) => x <= y + 1e-9,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn higher_electricity_price_never_raises_net_profit(i in any_inputs(), extra in 0.0f64..0.5, seed in 0u64..1000) {
        let mut dear = i.clone();
        dear.costs.kwh_price_usd += extra;
        let s = Simulation { seed, paths: 200 };
        let (a, b) = (estimate(&i, s).unwrap().figures, estimate(&dear, s).unwrap().figures);
        for (x, y) in [(a.net_profit_usd_per_month, b.net_profit_usd_per_month), (a.net_operating_usd_per_month, b.net_operating_usd_per_month), (a.cumulative_net_usd, b.cumulative_net_usd)] {
            prop_assert!(y.p10 <= x.p10 + 1e-9 && y.p50 <= x.p50 + 1e-9 && y.p90 <= x.p90 + 1e-9, "{x:?} → {y:?}");
        }
        prop_assert!(le(a.payback_months.p50, b.payback_months.p50));
        prop_assert!(b.payback_within_lifetime_probability <= a.payback_within_lifetime_probability);
    }

    #[test]
    fn dearer_hardware_never_shortens_payback(i in any_inputs(), more in 0.0f64..2000.0, seed in 0u64..1000) {
        // (A longer lifetime may now lengthen payback: months at a loss after the cash
        // turned positive can pull it below zero again, so that property no longer holds.)
        let mut dear = i.clone();
        dear.hardware.price_usd += more;
        let s = Simulation { seed, paths: 200 };
        let (a, b) = (estimate(&i, s).unwrap().figures, estimate(&dear, s).unwrap().figures);
        prop_assert!(le(a.payback_months.p10, b.payback_months.p10));
        prop_assert!(le(a.payback_months.p50, b.payback_months.p50));
        prop_assert!(le(a.payback_months.p90, b.payback_months.p90));
        prop_assert!(b.payback_within_lifetime_probability <= a.payback_within_lifetime_probability);
        // p10 is the bad (slow) case: p90 ≤ p50 ≤ p10 with "never" above every month.
        prop_assert!(le(a.payback_months.p90, a.payback_months.p50) && le(a.payback_months.p50, a.payback_months.p10));
    }

    #[test]
    fn zero_volatility_collapses_the_spread(mut i in any_inputs(), seed in 0u64..1000) {
        i.market.token_volatility_per_year = 0.0;
        i.market.network_growth_volatility_per_month = 0.0;
        let f = estimate(&i, Simulation { seed, paths: 100 }).unwrap().figures;
        let json = serde_json::to_value(&f).unwrap();
        for (key, v) in json.as_object().unwrap() {
            if let Some(o) = v.as_object().filter(|o| o.contains_key("p10")) {
                prop_assert_eq!(&o["p10"], &o["p50"], "{}", key);
                prop_assert_eq!(&o["p50"], &o["p90"], "{}", key);
            }
        }
        prop_assert!(f.payback_within_lifetime_probability == 0.0 || f.payback_within_lifetime_probability == 1.0);
        // Every path pays back in the same month, or none does.
        let h = f.payback_histogram.unwrap();
        prop_assert!(h.never == 100 || h.paths_by_month.contains(&100));
    }

    #[test]
    fn diversifying_never_raises_token_price_free_variance(
        picks in prop::collection::vec((0usize..12, 1u32..4), 1..6),
        seed in 0u64..1000,
    ) {
        let cat = Catalogue::builtin();
        let rates = NetworkRates::builtin();
        let settings = OperatorSettings::default();
        let holdings: Vec<Holding> = picks.iter().map(|(k, count)| {
            let p = &cat.devices()[k % cat.devices().len()];
            Holding { inputs: inputs_for_profile(p, None, &settings, &rates, None).unwrap(), count: *count }
        }).collect();
        let p = estimate_portfolio(&holdings, None, Simulation { seed, paths: 200 }).unwrap();
        let d = &p.diversification;
        prop_assert!(d.token_price_free_variance_usd2 <= d.one_sector_token_price_free_variance_usd2 * (1.0 + 1e-12) + 1e-9, "{d:?}");
        if d.sectors == 1 {
            prop_assert!(close(d.token_price_free_variance_usd2, d.one_sector_token_price_free_variance_usd2));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Catalogue-wide, JSON shape, bad input, speed

fn every_catalogue_estimate() -> Vec<depin_economics::Estimate> {
    let cat = Catalogue::builtin();
    let inputs: Vec<EstimateInputs> = cat
        .devices()
        .iter()
        .map(|p| {
            inputs_for_profile(
                p,
                None,
                &OperatorSettings::default(),
                &NetworkRates::builtin(),
                None,
            )
            .unwrap()
        })
        .collect();
    estimate_many(&inputs, Simulation::default()).unwrap()
}

#[test]
fn rank_orders_by_p50_payback_and_marks_the_never() {
    let est = every_catalogue_estimate();
    let rows = rank(&est);
    assert_eq!(rows.len(), Catalogue::builtin().devices().len());
    let keys: Vec<f64> = rows
        .iter()
        .map(|r| r.payback_months.p50.unwrap_or(f64::INFINITY))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{keys:?}");
    assert!(
        rows.iter().any(|r| r.never_pays_back),
        "the defaults should include a device that never pays back"
    );
    assert!(rows.iter().any(|r| !r.never_pays_back));
    let table = rank_table(&rows, est.first());
    assert!(table.contains("NEVER PAYS BACK"), "{table}");
    let json = rank_json(&rows, &est);
    assert_eq!(json["schema"], "depin.estimate.rank.v1");
    assert!(
        json["devices"][0]["payback_months"]["p50"].is_number()
            || json["devices"][0]["payback_months"]["p50"].is_null()
    );
}

fn assert_spread(v: &serde_json::Value, key: &str, nullable: bool) {
    let o = v
        .get(key)
        .unwrap_or_else(|| panic!("missing {key}"))
        .as_object()
        .unwrap_or_else(|| panic!("{key} is not an object"));
    let mut names: Vec<&str> = o.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["p10", "p50", "p90"], "{key}");
    for q in ["p10", "p50", "p90"] {
        assert!(
            o[q].is_number() || (nullable && o[q].is_null()),
            "{key}.{q} = {}",
            o[q]
        );
    }
}

#[test]
fn device_json_has_the_documented_shape() {
    let cat = Catalogue::builtin();
    let mut p = cat.get("rtx-4090").unwrap().clone();
    p.price_usd = 2600.0;
    let i = inputs_for_profile(
        &p,
        Some(1800.0),
        &OperatorSettings::default(),
        &NetworkRates::builtin(),
        None,
    )
    .unwrap();
    let v = device_json(&estimate(&i, Simulation::default()).unwrap());
    assert_eq!(v["schema"], "depin.estimate.device.v1");
    for key in [
        "revenue_tokens_per_month",
        "revenue_usd_per_month",
        "electricity_kwh_per_month",
        "electricity_usd_per_month",
        "internet_usd_per_month",
        "maintenance_usd_per_month",
        "hardware_depreciation_usd_per_month",
        "total_cost_usd_per_month",
        "net_operating_usd_per_month",
        "net_profit_usd_per_month",
        "cumulative_net_usd",
        "token_price_usd_at_window_end",
    ] {
        assert_spread(&v, key, false);
    }
    for key in [
        "payback_months",
        "break_even_token_price_usd",
        "roi_12_months_pct",
        "roi_24_months_pct",
        "electricity_share_of_revenue_pct",
    ] {
        assert_spread(&v, key, true);
    }
    assert!(v["payback_within_lifetime_probability"].as_f64().unwrap() <= 1.0);
    // Inputs are echoed with their units.
    assert_eq!(v["inputs"]["hardware"]["price_usd"], 2600.0);
    assert_eq!(v["inputs"]["hardware"]["sector"], "compute");
    assert!(v["inputs"]["costs"]["kwh_price_usd"].is_number());
    assert!(v["inputs"]["market"]["token_volatility_per_year"].is_number());
    assert_eq!(v["simulation"]["paths"], 2000);
    // Warnings carry codes and messages.
    let w = v["warnings"].as_array().unwrap();
    assert!(
        w.iter().any(|w| w["code"] == "overpriced_hardware"
            && w["message"].as_str().unwrap().contains("44%")),
        "{w:?}"
    );
    assert_spread(
        &v["cumulative_net_usd_by_month"][0],
        "cumulative_net_usd",
        false,
    );
    assert_eq!(
        v["cumulative_net_usd_by_month"].as_array().unwrap().len(),
        48
    );
}

#[test]
fn portfolio_file_and_json() {
    let file = PortfolioFile::from_toml(
        r#"
        [[holding]]
        device = "rtx-4090"
        [[holding]]
        device = "weather-station"
        count = 2
        [[holding]]
        device = "small-nas-16tb"
        "#,
    )
    .unwrap();
    let cat = Catalogue::builtin();
    let holdings: Vec<Holding> = file
        .holding
        .iter()
        .map(|h| Holding {
            inputs: inputs_for_profile(
                cat.get(&h.device).unwrap(),
                None,
                &OperatorSettings::default(),
                &NetworkRates::builtin(),
                None,
            )
            .unwrap(),
            count: h.count,
        })
        .collect();
    let p = estimate_portfolio(&holdings, None, Simulation::default()).unwrap();
    assert_eq!(p.months, 60);
    assert_eq!(p.diversification.sectors, 3);
    assert!(p.diversification.token_price_free_spread_removed_pct > 0.0);
    assert!(p.diversification.width_usd <= p.diversification.one_sector_width_usd * 1.05);
    let v = portfolio_json(&p);
    assert_eq!(v["schema"], "depin.estimate.portfolio.v1");
    assert_spread(&v["combined"], "net_profit_usd_per_month", false);
    assert_spread(&v["combined"], "payback_months", true);
    assert_eq!(v["holdings"][1]["count"], 2);
    let table = depin_economics::report::portfolio_table(&p);
    assert!(
        table.contains("diversification across 3 sector(s)"),
        "{table}"
    );
    assert!(PortfolioFile::from_toml("").is_err());
    assert!(PortfolioFile::from_toml("[[holding]]\ndevice = \"x\"\ncount = 0\n").is_err());
    assert!(PortfolioFile::from_toml("[[holding]]\ndevise = \"x\"\n").is_err());
}

#[test]
fn csv_has_one_row_per_figure_with_the_hand_worked_values() {
    // The golden hotspot: revenue 20, net before hardware 18.2695, payback month 7, cash
    // after 36 months 537.702; month 6 of the running cash −120 + 6 × 18.2695 = −10.383.
    let e = estimate(&golden_inputs(), sim(7)).unwrap();
    let csv = depin_economics::report::device_csv(&e);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "device,figure,p10,p50,p90");
    assert!(lines.iter().all(|l| l.split(',').count() == 5), "{csv}");
    for want in [
        "golden-hotspot,revenue_usd_per_month,20,20,20",
        "golden-hotspot,net_operating_usd_per_month,18.2695,18.2695,18.2695",
        "golden-hotspot,payback_months,7,7,7",
        "golden-hotspot,cumulative_net_usd,537.702,537.702,537.702",
        "golden-hotspot,cumulative_net_usd_month_6,-10.383,-10.383,-10.383",
    ] {
        assert!(lines.contains(&want), "{want}: {csv}");
    }
    // "never" is an empty cell.
    let e = estimate(&halving_inputs(20.0), sim(3)).unwrap();
    let csv = depin_economics::report::device_csv(&e);
    assert!(csv.contains("golden-hotspot,payback_months,,,\n"), "{csv}");
    let rows = rank(&every_catalogue_estimate());
    let csv = depin_economics::report::rank_csv(&rows);
    assert_eq!(csv.lines().count(), rows.len() + 1);
    assert!(csv.lines().all(|l| l.split(',').count() == 13), "{csv}");
}

#[test]
fn the_methodology_page_matches_the_catalogue() {
    // docs/economics.md lists every catalogue device with the catalogue's own figures.
    let doc = include_str!("../../../docs/economics.md");
    for d in Catalogue::builtin().devices() {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", d.name)))
            .unwrap_or_else(|| panic!("docs/economics.md has no row for {}", d.name));
        let mut want = vec![
            format!(
                "| {} | {} | {} | {} |",
                d.sector, d.price_usd, d.watts, d.lifetime_months
            ),
            format!("| {:.0}% |", d.resale_fraction() * 100.0),
        ];
        if let Some(r) = &d.rental {
            want.push(format!("USD {}/h", r.usd_per_hour));
            want.push(format!("{:.0}% platform fee", r.platform_fee * 100.0));
            want.push(format!("USD {} payout threshold", r.payout_threshold_usd));
        }
        if let Some(s) = &d.storage {
            want.push(format!("USD {}/TB-month held", s.usd_per_tb_month));
            want.push(format!("USD {}/TB egress", s.egress_usd_per_tb));
        }
        if let Some(e) = &d.emission {
            if let Some(date) = &e.next_halving {
                want.push(format!("next {date}"));
            }
            if let Some(decay) = e.decay_per_year {
                want.push(format!("−{:.0}% a year", decay * 100.0));
            }
        }
        if d.driving_usd_per_month > 0.0 {
            want.push(format!("driving USD {}/month", d.driving_usd_per_month));
        }
        if let Some(p) = &d.placement {
            want.push(format!("{:.0}% of sites", p.full_cell_probability * 100.0));
            if let Some(c) = p.cell_capacity {
                want.push(format!("cell capacity {c}"));
            }
        }
        for w in want {
            assert!(row.contains(&w), "{}: docs row lacks {w:?}: {row}", d.name);
        }
    }
    // The scenarios' figures.
    for s in depin_economics::Scenario::ALL {
        let p = s.parameters();
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}`", s.as_str())))
            .unwrap();
        assert!(
            row.contains(&format!("{:.0}%", p.token_volatility_per_year * 100.0))
                && row.contains(&format!(
                    "−{:.0}%, {} a year",
                    p.crash_size * 100.0,
                    p.crash_probability_per_year
                )),
            "{row}"
        );
    }
}

/// Tags balance: every `<x …>` is closed by `</x>` in order, `<x …/>` closes itself.
fn assert_well_formed(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').expect("every tag ends") + i;
        let tag = &rest[i + 1..j];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "unbalanced </{name}>"
            );
        } else if !tag.ends_with('/') && !tag.starts_with('?') && !tag.starts_with('!') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
        rest = &rest[j + 1..];
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
}

#[test]
fn tornado_by_hand_and_the_charts_are_a_valid_svg() {
    use depin_economics::plot::{charts_svg, tornado};
    // The golden hotspot (no volatility), cash after 36 months 537.702 at the base. One
    // input at a time:
    //   token price 0.25: revenue 10, net 8.2695 → 36 × 8.2695 − 120 = 177.702;
    //                1.00: revenue 40 → 36 × 38.2695 − 120 = 1257.702 (swing 1080)
    //   uptime 80%: 32 tokens, USD 16 → 36 × 14.2695 − 120 = 393.702; 100%: 537.702 (144)
    //   hardware USD 84: 573.702; USD 156: 501.702 (72)
    //   electricity USD 0.10/kWh: running 1.36525 → 36 × 18.63475 − 120 = 550.851;
    //               USD 0.30/kWh: running 2.09575 → 36 × 17.90425 − 120 = 524.553 (26.298)
    let t = tornado(&golden_inputs(), sim(1)).unwrap();
    assert!(close(t.base_cash_usd, 537.702));
    let got: Vec<(&str, f64, f64)> = t
        .bars
        .iter()
        .map(|b| (b.factor.as_str(), b.low_cash_usd, b.high_cash_usd))
        .collect();
    let want = [
        ("token price", 177.702, 1257.702),
        ("uptime", 393.702, 537.702),
        ("hardware price", 573.702, 501.702),
        ("electricity price", 550.851, 524.553),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((f, lo, hi), (wf, wlo, whi)) in got.iter().zip(want) {
        assert!(*f == wf && close(*lo, wlo) && close(*hi, whi), "{got:?}");
    }
    // A rented GPU gets a utilisation bar, a storage node a fill-rate bar.
    let t = tornado(&rented_gpu(0.2), sim(1)).unwrap();
    assert!(t.bars.iter().any(|b| b.factor == "utilisation"));

    let e = estimate(&golden_inputs(), sim(1)).unwrap();
    let h = e.figures.payback_histogram.as_ref().unwrap();
    assert_eq!(
        (h.paths_by_month[7], h.never),
        (400, 0),
        "every path pays back in month 7"
    );
    let svg = charts_svg(&e, &tornado(&golden_inputs(), sim(1)).unwrap()).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    assert_well_formed(&svg);
    for want in [
        "running cash, USD",
        "p10 (bad)",
        "p50",
        "p90 (good)",
        "zero: paid back above it",
        "payback p50: month 7",
        "what moves the median cash after 36 months most",
        "token price: USD 0.250",
        "electricity price",
        "payback month over 400 paths (0 never within the horizon)",
    ] {
        assert!(svg.contains(want), "{want}");
    }
    // The band, three lines and the zero line are drawn as paths.
    assert!(svg.matches("<polyline").count() >= 4, "{svg}");
    assert!(svg.contains("<polygon"), "the p10–p90 band");
    // A never-paying device says so on the chart.
    let e = estimate(&halving_inputs(20.0), sim(3)).unwrap();
    let svg = charts_svg(&e, &tornado(&halving_inputs(20.0), sim(3)).unwrap()).unwrap();
    assert!(svg.contains("the median path never pays back"));
    assert_well_formed(&svg);
}

#[test]
fn bad_input_names_the_field() {
    let check = |mutate: &dyn Fn(&mut EstimateInputs), field: &str| {
        let mut i = golden_inputs();
        mutate(&mut i);
        match estimate(&i, sim(1)) {
            Err(EconomicsError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected an error, got {other:?}"),
        }
    };
    check(&|i| i.hardware.price_usd = -1.0, "price_usd");
    check(&|i| i.hardware.lifetime_months = 0, "lifetime_months");
    check(&|i| i.hardware.watts = f64::NAN, "watts");
    check(&|i| i.costs.kwh_price_usd = -0.1, "kwh_price_usd");
    check(&|i| i.costs.internet_share = 1.5, "internet_share");
    check(&|i| i.market.token_price_usd = -2.0, "token_price_usd");
    check(
        &|i| i.market.token_volatility_per_year = -0.1,
        "token_volatility_per_year",
    );
    check(&|i| i.rewards.uptime = 2.0, "uptime");
    check(&|i| i.months = 0, "months");
    assert!(matches!(
        estimate(&golden_inputs(), Simulation { seed: 1, paths: 0 }),
        Err(EconomicsError::Invalid { field: "paths", .. })
    ));
    let e = Catalogue::builtin().get("rtx-490").unwrap_err();
    assert!(e.to_string().contains("did you mean rtx-4090"), "{e}");
    assert!("radio".parse::<Sector>().is_err());
}

#[test]
fn whole_catalogue_is_quick_even_unoptimised() {
    // `depin estimate --rank` over the whole catalogue must feel instant; this runs in the
    // test's debug build, so the bound is generous for a loaded machine.
    let t = std::time::Instant::now();
    let est = every_catalogue_estimate();
    let took = t.elapsed();
    assert!(!est.is_empty());
    assert!(took.as_millis() < 3000, "rank took {took:?}");
}
