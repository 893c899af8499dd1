//! Several devices across sectors, and what diversification buys.
//!
//! The token price is one price for every sector, so it moves all holdings together;
//! sector demand (network growth) moves each sector on its own. The combined figures come
//! from one simulation where the holdings share the price path and each sector draws its
//! own growth path.
//!
//! "The same money in one sector" is the counterfactual where every holding's sector
//! demand moves together (correlation 1) while each holding keeps its own earnings
//! distribution, so the comparison isolates diversification from picking better devices.
//! At a fixed token price the variance of the cash position is then
//! `Σ_s Var(Y_s)` diversified against `(Σ_s sd(Y_s))²` concentrated, where `Y_s` is the
//! cash from sector `s` — never more, and equal when everything is in one sector. With
//! the token price moving, both versions are simulated and their p10–p90 widths compared.

use crate::model::EstimateInputs;
use crate::sim::{
    Book, DeviceModel, Draws, Figures, OptSpread, Simulation, Spread, check_size, estimate_many,
    run_paths,
};
use crate::{EconomicsError, MAX_MONTHS, Market, Warning, invalid};
use depin_core::Sector;
use serde::{Deserialize, Serialize};

/// The `--portfolio` file: holdings of catalogue devices.
///
/// ```toml
/// [[holding]]
/// device = "rtx-4090"
/// count = 1
/// [[holding]]
/// device = "weather-station"
/// count = 2
/// price_usd = 350.0        # optional: what you actually pay
/// h3_cell = "871f1d489ffffff"  # optional: where it is placed
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortfolioFile {
    pub holding: Vec<HoldingSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldingSpec {
    pub device: String,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub price_usd: Option<f64>,
    #[serde(default)]
    pub h3_cell: Option<String>,
}

fn one() -> u32 {
    1
}

impl PortfolioFile {
    pub fn from_toml(text: &str) -> Result<PortfolioFile, EconomicsError> {
        let f: PortfolioFile =
            toml::from_str(text).map_err(|e| EconomicsError::Portfolio(e.to_string()))?;
        if f.holding.is_empty() {
            return Err(EconomicsError::Portfolio("no [[holding]] entries".into()));
        }
        if f.holding.len() > 1000 {
            return Err(EconomicsError::Portfolio("more than 1000 holdings".into()));
        }
        for h in &f.holding {
            if h.count == 0 || h.count > 100_000 {
                return Err(EconomicsError::Portfolio(format!(
                    "holding {:?}: count must be 1..=100000",
                    h.device
                )));
            }
        }
        Ok(f)
    }
}

/// `count` devices with the same inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Holding {
    pub inputs: EstimateInputs,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldingSummary {
    pub device: String,
    pub sector: Sector,
    pub count: u32,
    /// Total for the holding (price × count).
    pub price_usd: f64,
    /// Per holding (all `count` devices), p10/p50/p90 from the single-device simulation.
    pub net_profit_usd_per_month: Spread,
    pub payback_months: OptSpread,
}

/// What diversification removes. See the module docs for the counterfactual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diversification {
    pub sectors: usize,
    /// Variance (USD²) of the cash position at the window's end at a fixed token price.
    pub token_price_free_variance_usd2: f64,
    pub one_sector_token_price_free_variance_usd2: f64,
    pub token_price_free_sd_usd: f64,
    pub one_sector_token_price_free_sd_usd: f64,
    pub token_price_free_spread_removed_pct: f64,
    /// p90 − p10 of the cash position with the token price moving.
    pub width_usd: f64,
    pub one_sector_width_usd: f64,
    pub spread_removed_pct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortfolioEstimate {
    pub simulation: Simulation,
    pub months: u32,
    pub market: Market,
    pub holdings: Vec<HoldingSummary>,
    pub combined: Figures,
    pub diversification: Diversification,
    pub warnings: Vec<Warning>,
}

fn removed_pct(diversified: f64, concentrated: f64) -> f64 {
    if concentrated > 0.0 {
        ((1.0 - diversified / concentrated) * 100.0).max(0.0)
    } else {
        0.0
    }
}

fn variance(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n
}

/// Estimates a portfolio. All holdings must share one market (one token); `months`
/// defaults to the longest lifetime.
pub fn estimate_portfolio(
    holdings: &[Holding],
    months: Option<u32>,
    sim: Simulation,
) -> Result<PortfolioEstimate, EconomicsError> {
    sim.validate()?;
    let first = holdings
        .first()
        .ok_or_else(|| invalid("portfolio", "has no holdings"))?;
    for h in holdings {
        h.inputs.validate()?;
        if h.inputs.market != first.inputs.market {
            return Err(invalid(
                "market",
                "every holding must use the same token price and market assumptions",
            ));
        }
    }
    let market = first.inputs.market.clone();
    let max_life = holdings
        .iter()
        .map(|h| h.inputs.hardware.lifetime_months)
        .max()
        .unwrap_or(1);
    let window = months.unwrap_or(max_life);
    if window == 0 || window > MAX_MONTHS {
        return Err(invalid(
            "months",
            format!("must be 1..={MAX_MONTHS}, got {window}"),
        ));
    }
    let book_of = |filter: &dyn Fn(&Holding) -> bool, series: bool| Book {
        devices: holdings
            .iter()
            .filter(|h| filter(h))
            .map(|h| {
                DeviceModel::from_inputs(&h.inputs, h.inputs.hardware.lifetime_months)
                    .times(h.count)
            })
            .collect(),
        window,
        cash_so_far_usd: 0.0,
        months_elapsed: 0,
        monthly_series: series,
    };
    let all = book_of(&|_| true, true);
    let horizon = all.horizon();
    check_size(sim, horizon)?;
    let draws = Draws::generate(sim, horizon);

    // Combined, with independent sector demand, and the one-sector counterfactual.
    let (combined, _) = run_paths(&all, &crate::sim::Factors::new(&draws, &market, false));
    let (concentrated, _) = run_paths(
        &book_of(&|_| true, false),
        &crate::sim::Factors::new(&draws, &market, true),
    );

    // Token-price-free: price held at today's, per-sector cash positions.
    let fixed = Market {
        token_volatility_per_year: 0.0,
        token_drift_per_year: 0.0,
        crash_probability_per_year: 0.0,
        ..market.clone()
    };
    let fixed_factors = crate::sim::Factors::new(&draws, &fixed, false);
    let mut sectors: Vec<Sector> = holdings.iter().map(|h| h.inputs.hardware.sector).collect();
    sectors.sort();
    sectors.dedup();
    let mut var_sum = 0.0;
    let mut sd_sum = 0.0;
    for s in &sectors {
        let (_, cash) = run_paths(
            &book_of(&|h| h.inputs.hardware.sector == *s, false),
            &fixed_factors,
        );
        let v = variance(&cash);
        var_sum += v;
        sd_sum += v.sqrt();
    }
    let diversification = Diversification {
        sectors: sectors.len(),
        token_price_free_variance_usd2: var_sum,
        one_sector_token_price_free_variance_usd2: sd_sum * sd_sum,
        token_price_free_sd_usd: var_sum.sqrt(),
        one_sector_token_price_free_sd_usd: sd_sum,
        token_price_free_spread_removed_pct: removed_pct(var_sum.sqrt(), sd_sum),
        width_usd: combined.cumulative_net_usd.width(),
        one_sector_width_usd: concentrated.cumulative_net_usd.width(),
        spread_removed_pct: removed_pct(
            combined.cumulative_net_usd.width(),
            concentrated.cumulative_net_usd.width(),
        ),
    };

    // Per-holding summaries, over the same seed.
    let singles = estimate_many(
        &holdings
            .iter()
            .map(|h| h.inputs.clone())
            .collect::<Vec<_>>(),
        sim,
    )?;
    let summaries = holdings
        .iter()
        .zip(&singles)
        .map(|(h, e)| {
            let c = h.count as f64;
            let scale = |s: Spread| Spread {
                p10: s.p10 * c,
                p50: s.p50 * c,
                p90: s.p90 * c,
            };
            HoldingSummary {
                device: h.inputs.hardware.name.clone(),
                sector: h.inputs.hardware.sector,
                count: h.count,
                price_usd: h.inputs.hardware.price_usd * c,
                net_profit_usd_per_month: scale(e.figures.net_profit_usd_per_month),
                payback_months: e.figures.payback_months,
            }
        })
        .collect();

    let mut warnings = Vec::new();
    for e in &singles {
        for w in &e.warnings {
            warnings.push(Warning {
                code: w.code.clone(),
                message: format!("{}: {}", e.inputs.hardware.name, w.message),
            });
        }
    }
    if sectors.len() == 1 {
        warnings.push(Warning {
            code: "single_sector".into(),
            message: format!(
                "every holding is in {}: one sector's demand moves the whole portfolio",
                sectors[0]
            ),
        });
    }
    Ok(PortfolioEstimate {
        simulation: sim,
        months: window,
        market,
        holdings: summaries,
        combined,
        diversification,
        warnings,
    })
}
