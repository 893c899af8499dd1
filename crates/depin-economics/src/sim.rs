//! The seeded Monte Carlo.
//!
//! Each path draws, per month, one standard normal for the token price and one per sector
//! for that sector's network growth (its demand): the token price is common to every
//! device, sector growth is independent between sectors. The draws come from a ChaCha8
//! stream per path (`seed`, stream = path index), so path `p` month `t` is the same
//! whatever the device, the costs or the horizon (common random numbers).
//!
//! - Token price: geometric Brownian motion `P_t = P_0 · exp(μ·t/12 + σ·W_t)`, with `W_t` a
//!   sum of `t` normals of variance 1/12 (σ and μ per year). μ is the drift of the median
//!   price: μ = 0 means no assumed rise or fall, p50 stays at today's price.
//! - Network growth: the sector's device count grows by `exp(ln(1+g) + σ_g·Z)` a month, and
//!   a device's share of the sector's rewards falls by the same factor (dilution).
//! - Emission decay: rewards fall by `(1 − decay)^(t/12)`.
//!
//! Month 1 (t = 0) is at today's price and rates exactly; a device earns and costs only
//! during its lifetime; the hardware is paid at month 0. Percentiles are nearest-rank over
//! paths, oriented so that every row reads the same way: **p10 is the bad case, p90 the
//! good case**. For figures where more is better (revenue, net, cash, ROI, token price) p10
//! is the low value; for figures where more is worse (costs, payback months, break-even
//! price, electricity share) p10 is the high value (payback p10 is the slow case, and
//! "never" when more than one path in ten never pays back).
//!
//! Payback on a path is the first month after which the running cash total stays ≥ 0 up
//! to the horizon ([`payback_month`]); a path that touches zero and falls back below it
//! has not paid back then, and a path that ends below zero never pays back.

use crate::model::EstimateInputs;
use crate::report::{Warning, warnings_for};
use crate::{EconomicsError, MAX_MONTHS, MAX_PATHS, invalid};
use depin_core::Sector;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How many paths to draw and from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Simulation {
    pub seed: u64,
    pub paths: u32,
}

impl Default for Simulation {
    fn default() -> Self {
        Simulation {
            seed: crate::Defaults::SEED,
            paths: crate::Defaults::PATHS,
        }
    }
}

impl Simulation {
    pub fn validate(&self) -> Result<(), EconomicsError> {
        if self.paths == 0 || self.paths > MAX_PATHS {
            return Err(invalid(
                "paths",
                format!("must be 1..={MAX_PATHS}, got {}", self.paths),
            ));
        }
        Ok(())
    }
}

/// p10/p50/p90 of a figure that always exists.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

/// p10/p50/p90 of a figure that may not exist on a path: `None` (JSON `null`) means
/// "never" for payback months, "no price is high enough" for a break-even price, and
/// "undefined" for a ratio whose denominator is zero. `None` sorts above every number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptSpread {
    pub p10: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
}

impl Spread {
    pub fn constant(v: f64) -> Spread {
        Spread {
            p10: v,
            p50: v,
            p90: v,
        }
    }
    fn of(mut v: Vec<f64>) -> Spread {
        v.sort_unstable_by(f64::total_cmp);
        let q = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Spread {
            p10: q(0.1),
            p50: q(0.5),
            p90: q(0.9),
        }
    }
    /// For a figure where more is worse (a cost): p10 is the high value.
    pub(crate) fn of_cost(v: Vec<f64>) -> Spread {
        let s = Spread::of(v);
        Spread {
            p10: s.p90,
            p50: s.p50,
            p90: s.p10,
        }
    }
    /// p90 − p10: the width the figure can swing.
    pub fn width(&self) -> f64 {
        self.p90 - self.p10
    }
}

impl OptSpread {
    /// For a figure where more is worse and `None` is the worst (payback months, "never";
    /// break-even price, "no price is enough"): p10 is the high value or `None`.
    pub(crate) fn of_cost(v: Vec<Option<f64>>) -> OptSpread {
        let s = OptSpread::of(v);
        OptSpread {
            p10: s.p90,
            p50: s.p50,
            p90: s.p10,
        }
    }
    /// For a figure where more is better and `None` is the worst (a break-even
    /// electricity price, "no price is low enough"): p10 is the low value or `None`.
    pub(crate) fn of_benefit(v: Vec<Option<f64>>) -> OptSpread {
        let nones = v.iter().filter(|x| x.is_none()).count();
        let mut nums: Vec<f64> = v.iter().flatten().copied().collect();
        nums.sort_unstable_by(f64::total_cmp);
        let n = v.len();
        let q = |q: f64| {
            let i = ((n - 1) as f64 * q).round() as usize;
            i.checked_sub(nones).map(|k| nums[k])
        };
        OptSpread {
            p10: q(0.1),
            p50: q(0.5),
            p90: q(0.9),
        }
    }
    fn of(v: Vec<Option<f64>>) -> OptSpread {
        // Sort numbers, then append the Nones (they rank above every number).
        let mut nums: Vec<f64> = v.iter().flatten().copied().collect();
        nums.sort_unstable_by(f64::total_cmp);
        let n = v.len();
        let q = |q: f64| {
            let i = ((n - 1) as f64 * q).round() as usize;
            nums.get(i).copied()
        };
        OptSpread {
            p10: q(0.1),
            p50: q(0.5),
            p90: q(0.9),
        }
    }
}

/// Cumulative cash position (including the hardware price) after a month.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MonthSpread {
    pub month: u32,
    pub cumulative_net_usd: Spread,
}

/// Figures at today's price and rates with no growth: the deterministic baseline the
/// warnings speak about ("at today's rates").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodayFigures {
    pub revenue_tokens_per_month: f64,
    pub revenue_usd_per_month: f64,
    pub running_costs_usd_per_month: f64,
    pub net_operating_usd_per_month: f64,
    /// Hardware price / net operating profit; `None` if the device never makes a profit.
    pub payback_months: Option<f64>,
    /// Token price at which lifetime revenue covers running costs and hardware.
    pub break_even_token_price_usd: Option<f64>,
}

/// The figures of a projection. Per-month figures are averages over the months of the
/// window in which the device is alive; `cumulative_net_usd` is the cash position at the
/// end of the window, hardware included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub revenue_tokens_per_month: Spread,
    pub revenue_usd_per_month: Spread,
    pub electricity_kwh_per_month: Spread,
    pub electricity_usd_per_month: Spread,
    pub internet_usd_per_month: Spread,
    pub maintenance_usd_per_month: Spread,
    pub hardware_depreciation_usd_per_month: Spread,
    pub total_cost_usd_per_month: Spread,
    /// Share of hours rented, for compute devices on a rental market (p10 the low, bad
    /// value); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub utilisation: Option<Spread>,
    /// Storage nodes: data held at the window's end, TB (p10 the low, bad value).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stored_tb_at_window_end: Option<Spread>,
    /// Storage nodes: pay held back and not yet returned at the window's end, USD (not in
    /// the cash figures; p10 the high value).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub held_back_usd_at_window_end: Option<Spread>,
    /// Storage nodes: months until the disk is full (`null`: not within 50 years; p10 the
    /// slow case).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub months_to_fill: Option<OptSpread>,
    /// Revenue minus running costs (electricity, internet, maintenance).
    pub net_operating_usd_per_month: Spread,
    /// Revenue minus running costs minus hardware depreciation.
    pub net_profit_usd_per_month: Spread,
    pub cumulative_net_usd: Spread,
    /// Income tax (`tax_rate` on each month's positive profit), USD a month.
    pub tax_usd_per_month: Spread,
    /// What the hardware would fetch if sold at the window's end (resale curve), USD.
    pub resale_value_usd_at_window_end: f64,
    /// `cumulative_net_usd` plus that resale value: the position if the operator sold.
    pub cumulative_net_with_resale_usd: Spread,
    /// The electricity price (USD/kWh) at which lifetime cash before tax is zero; p10 is
    /// the low, bad one; `null`: no price is low enough. Absent for a device drawing none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub break_even_kwh_price_usd: Option<OptSpread>,
    pub electricity_share_of_revenue_pct: OptSpread,
    pub break_even_token_price_usd: OptSpread,
    pub payback_months: OptSpread,
    pub roi_12_months_pct: OptSpread,
    pub roi_24_months_pct: OptSpread,
    pub token_price_usd_at_window_end: Spread,
    /// Share of paths that pay back ([`payback_month`]): their running cash total is ≥ 0
    /// from some month on and stays so to the end of the hardware lifetime.
    pub payback_within_lifetime_probability: f64,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub cumulative_net_usd_by_month: Vec<MonthSpread>,
    /// How many paths pay back in each month (single-device estimates).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payback_histogram: Option<PaybackHistogram>,
}

/// Paths by payback month: `paths_by_month[m]` paths pay back in month `m` (counted from
/// purchase), `never` paths do not within the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaybackHistogram {
    pub paths_by_month: Vec<u32>,
    pub never: u32,
}

/// A single-device estimate: its inputs, the figures, the baseline and the warnings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub inputs: EstimateInputs,
    pub simulation: Simulation,
    pub months: u32,
    #[serde(flatten)]
    pub figures: Figures,
    pub today: TodayFigures,
    pub warnings: Vec<Warning>,
}

/// Earnings and costs a running device has already seen, to project from (the live
/// operator view). Set `inputs.rewards.tokens_per_month` from the device's recent rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub months_elapsed: u32,
    pub revenue_usd_so_far: f64,
    pub running_costs_usd_so_far: f64,
}

/// Payback on one cash path: `cash[m]` is the running cash total after month `m`
/// (`cash[0]` right after the purchase, hardware included), up to the horizon. The payback
/// month is the first `m` from which every later total stays ≥ 0; `None` ("never within
/// the horizon") when the last total is below zero.
pub fn payback_month(cash: &[f64]) -> Option<u32> {
    match cash.iter().rposition(|c| *c < 0.0) {
        None => Some(0),
        Some(last) if last + 1 < cash.len() => Some(last as u32 + 1),
        Some(_) => None,
    }
}

// ---------------------------------------------------------------------------------------
// Draws and factors

const NORMALS_PER_MONTH: usize = 6; // price, four sectors, one spare (Box–Muller pairs)

/// Cumulative standard-normal sums per path and month, shared by every device.
pub(crate) struct Draws {
    paths: usize,
    months: usize,
    /// Index `(p * months + t) * 5 + k`, k = 0 price, 1..=4 sectors in `Sector::ALL` order;
    /// the value is the sum of the first `t` normals (0 at t = 0).
    cum: Vec<f64>,
    /// One uniform in [0, 1) per path from a stream of its own (so the monthly draws are
    /// unchanged): the path's rental utilisation level.
    level: Vec<f64>,
    /// One uniform in [0, 1) per path from another stream: the site a coverage or sensor
    /// device is placed at.
    site: Vec<f64>,
    /// Per path and month (`p * months + t`), a uniform in (0, 1) from the spare normal
    /// of the month's Box–Muller pairs, Φ(z): a crash happens in the month when it falls
    /// below the month's crash probability.
    jump: Vec<f64>,
}

/// The standard normal CDF, Φ(x) = erfc(−x/√2)/2, with erfc by the Chebyshev fit of
/// Numerical Recipes (`erfcc`, fractional error below 1.2e-7).
pub(crate) fn std_normal_cdf(x: f64) -> f64 {
    let z = (-x / std::f64::consts::SQRT_2).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let erfc = if -x / std::f64::consts::SQRT_2 >= 0.0 {
        erfc
    } else {
        2.0 - erfc
    };
    0.5 * erfc
}

/// Streams at and above this carry the per-path levels (paths stay below `MAX_PATHS`).
const LEVEL_STREAM: u64 = 1 << 32;
/// Streams at and above this carry the per-path sites.
const SITE_STREAM: u64 = 2 << 32;

impl Draws {
    pub(crate) fn generate(sim: Simulation, months: u32) -> Draws {
        let (paths, months) = (sim.paths as usize, months as usize);
        let mut cum = vec![0.0; paths * months * 5];
        let mut jump = vec![0.0; paths * months];
        let mut z = [0.0f64; NORMALS_PER_MONTH];
        let uniform_per_path = |stream: u64| -> Vec<f64> {
            (0..paths)
                .map(|p| {
                    let mut rng = ChaCha8Rng::seed_from_u64(sim.seed);
                    rng.set_stream(stream + p as u64);
                    rng.r#gen::<f64>()
                })
                .collect()
        };
        let level = uniform_per_path(LEVEL_STREAM);
        let site = uniform_per_path(SITE_STREAM);
        for p in 0..paths {
            let mut rng = ChaCha8Rng::seed_from_u64(sim.seed);
            rng.set_stream(p as u64);
            let mut acc = [0.0f64; 5];
            for t in 0..months {
                let base = (p * months + t) * 5;
                cum[base..base + 5].copy_from_slice(&acc);
                for pair in z.chunks_exact_mut(2) {
                    let u1: f64 = 1.0 - rng.r#gen::<f64>(); // (0, 1]
                    let u2: f64 = rng.r#gen::<f64>();
                    let r = (-2.0 * u1.ln()).sqrt();
                    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
                    pair[0] = r * c;
                    pair[1] = r * s;
                }
                for k in 0..5 {
                    acc[k] += z[k];
                }
                jump[p * months + t] = std_normal_cdf(z[5]);
            }
        }
        Draws {
            paths,
            months,
            cum,
            level,
            site,
            jump,
        }
    }
}

/// Price and dilution multipliers for one market, per path and month.
pub(crate) struct Factors {
    paths: usize,
    months: usize,
    price: Vec<f64>,
    dilution: [Vec<f64>; 4],
    level: Vec<f64>,
    site: Vec<f64>,
}

pub(crate) fn sector_index(s: Sector) -> usize {
    Sector::ALL
        .iter()
        .position(|x| *x == s)
        .expect("Sector::ALL holds every sector")
}

impl Factors {
    /// `common_sector_shock`: every sector follows sector 0's growth draws, as if all the
    /// money were in one sector (used to measure what diversification removes).
    pub(crate) fn new(d: &Draws, m: &crate::Market, common_sector_shock: bool) -> Factors {
        let n = d.paths * d.months;
        let sd_month = (1.0f64 / 12.0).sqrt();
        let sigma = m.token_volatility_per_year;
        // The drift is the median's: with μ = 0 the median path stays at today's price
        // (the mean drifts up by σ²/2 a year). Assuming the mean stays instead would let
        // the volatility convention alone sink the p50 by 1 − e^(−σ²/2) a year.
        let drift_month = m.token_drift_per_year / 12.0;
        let log_growth = (1.0 + m.network_growth_per_month).ln();
        let sg = m.network_growth_volatility_per_month;
        // Crashes: a Poisson rate per year → the chance of one in a month; each one takes
        // `crash_size` of the price from the next month on.
        let crash_month = 1.0 - (-m.crash_probability_per_year / 12.0).exp();
        let keep_log = (1.0 - m.crash_size).ln();
        let mut crashes = 0u32;
        let mut price = Vec::with_capacity(n);
        let mut dilution: [Vec<f64>; 4] = Default::default();
        for v in &mut dilution {
            v.reserve_exact(n);
        }
        for i in 0..n {
            let t = (i % d.months) as f64;
            if t == 0.0 {
                crashes = 0;
            }
            let c = &d.cum[i * 5..i * 5 + 5];
            price.push(
                (drift_month * t + sigma * sd_month * c[0] + keep_log * f64::from(crashes)).exp(),
            );
            if d.jump[i] < crash_month {
                crashes += 1;
            }
            for (k, v) in dilution.iter_mut().enumerate() {
                let w = if common_sector_shock { c[1] } else { c[1 + k] };
                v.push((-(log_growth * t + sg * w)).exp());
            }
        }
        Factors {
            paths: d.paths,
            months: d.months,
            price,
            dilution,
            level: d.level.clone(),
            site: d.site.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The cash-flow book of one or several devices

/// One device reduced to the numbers the inner loop needs.
#[derive(Debug, Clone)]
pub(crate) struct DeviceModel {
    pub sector: usize,
    pub tokens_first_month: f64,
    pub decay_log_per_month: f64,
    pub token_price_usd: f64,
    pub electricity_kwh: f64,
    pub electricity_usd: f64,
    pub internet_usd: f64,
    pub maintenance_usd: f64,
    pub running_usd: f64,
    pub price_usd: f64,
    /// Hardware capital spread over the full lifetime (not the remaining one).
    pub depreciation_usd: f64,
    pub lifetime: u32,
    pub rental: Option<crate::model::Rental>,
    pub kwh_price_usd: f64,
    /// How many identical devices (rental and storage figures are per device).
    pub count: f64,
    /// A storage node paid on the data it holds, with its capacity in TB.
    pub storage: Option<(crate::storage::StorageMarket, f64)>,
    /// Months of the device's life already behind it (observed mode): its storage
    /// schedule continues from there.
    pub age_months: u32,
    /// The full lifetime (for the storage schedule's graceful exit).
    pub full_lifetime: u32,
    /// Scheduled emission halvings, months counted from the estimate's first month.
    pub halving: Option<crate::model::Halving>,
    /// A per-path site for coverage and sensor devices.
    pub placement: Option<crate::model::Placement>,
    /// How the USD income is paid out (threshold and fee are per device).
    pub payout: crate::model::PayoutTerms,
    pub tax_rate: f64,
    /// What all `count` devices would fetch if sold at month `m` from now: `price ×
    /// resale_fraction^(age/24)`; kept as its parts.
    pub list_price_usd: f64,
    pub resale_fraction: f64,
    pub already_owned: bool,
}

/// One device's month on one path: rental revenue, electricity and running costs.
struct MonthLines {
    rental_usd: f64,
    electricity_kwh: f64,
    electricity_usd: f64,
    running_usd: f64,
}

impl DeviceModel {
    fn lines(&self, level: f64) -> MonthLines {
        match &self.rental {
            None => MonthLines {
                rental_usd: 0.0,
                electricity_kwh: self.electricity_kwh,
                electricity_usd: self.electricity_usd,
                running_usd: self.running_usd,
            },
            Some(r) => {
                let u = r.utilisation_at(level);
                let kwh = r.electricity_kwh_per_month(u) * self.count;
                let usd = kwh * self.kwh_price_usd;
                MonthLines {
                    rental_usd: r.revenue_usd_per_month(u) * self.count,
                    electricity_kwh: kwh,
                    electricity_usd: usd,
                    running_usd: usd + self.internet_usd + self.maintenance_usd,
                }
            }
        }
    }
}

impl DeviceModel {
    pub(crate) fn from_inputs(i: &EstimateInputs, lifetime: u32) -> DeviceModel {
        DeviceModel {
            sector: sector_index(i.hardware.sector),
            tokens_first_month: i.tokens_first_month(),
            decay_log_per_month: (1.0 - i.rewards.emission_decay_per_year).ln() / 12.0,
            token_price_usd: i.market.token_price_usd,
            electricity_kwh: i.electricity_kwh_per_month(),
            electricity_usd: i.electricity_usd_per_month(),
            internet_usd: i.costs.internet_charged_usd_per_month(),
            // Driving is a running cost like maintenance; it is shown in that row.
            maintenance_usd: i.costs.maintenance_usd_per_month + i.costs.driving_usd_per_month,
            running_usd: i.running_costs_usd_per_month(),
            price_usd: i.hardware.capital_usd(),
            depreciation_usd: i.depreciation_usd_per_month(),
            lifetime,
            rental: i.rental.clone(),
            kwh_price_usd: i.costs.kwh_price_usd,
            count: 1.0,
            storage: i.storage.clone().map(|s| (s, i.hardware.capacity_units)),
            age_months: i.hardware.lifetime_months.saturating_sub(lifetime),
            full_lifetime: i.hardware.lifetime_months,
            halving: i.rewards.halving.clone(),
            placement: i.placement.clone(),
            payout: i.payout(),
            tax_rate: i.costs.tax_rate,
            list_price_usd: i.hardware.price_usd,
            resale_fraction: i.hardware.resale_fraction,
            already_owned: i.hardware.already_owned,
        }
    }

    /// Storage pay per month of the remaining life on a path at `level` (paid amounts,
    /// for all `count` devices), the data held at the end of each month, and the held
    /// amount still owed at the end of each month.
    fn storage_months(&self, level: f64) -> Option<Vec<crate::storage::StorageMonth>> {
        let (s, cap) = self.storage.as_ref()?;
        let sched = s.schedule(*cap, s.ingress_at(level), self.full_lifetime);
        Some(
            sched
                .into_iter()
                .skip(self.age_months as usize)
                .map(|m| crate::storage::StorageMonth {
                    stored_tb: m.stored_tb * self.count,
                    earned_usd: m.earned_usd * self.count,
                    held_usd: m.held_usd * self.count,
                    paid_usd: m.paid_usd * self.count,
                    held_balance_usd: m.held_balance_usd * self.count,
                    ..m
                })
                .collect(),
        )
    }

    /// What the devices would fetch if sold `months` from now (their age then counts
    /// the months already behind them, and two years for hardware already owned).
    fn resale_after(&self, months: usize) -> f64 {
        let age = (self.age_months as usize + months) as f64
            + if self.already_owned { 24.0 } else { 0.0 };
        self.list_price_usd * self.resale_fraction.powf(age / 24.0)
    }

    /// `count` identical devices.
    pub(crate) fn times(mut self, count: u32) -> DeviceModel {
        let c = count as f64;
        for v in [
            &mut self.tokens_first_month,
            &mut self.electricity_kwh,
            &mut self.electricity_usd,
            &mut self.internet_usd,
            &mut self.maintenance_usd,
            &mut self.running_usd,
            &mut self.price_usd,
            &mut self.depreciation_usd,
            &mut self.list_price_usd,
        ] {
            *v *= c;
        }
        self.count *= c;
        self
    }
}

/// What to simulate: devices, the reporting window, and for a running device where it
/// stands today.
pub(crate) struct Book {
    pub devices: Vec<DeviceModel>,
    pub window: u32,
    /// Cash already earned minus running costs already paid (observed mode).
    pub cash_so_far_usd: f64,
    pub months_elapsed: u32,
    pub monthly_series: bool,
}

impl Book {
    pub(crate) fn max_lifetime(&self) -> u32 {
        self.devices.iter().map(|d| d.lifetime).max().unwrap_or(1)
    }
    pub(crate) fn horizon(&self) -> u32 {
        self.window
            .max(self.max_lifetime())
            .max(24u32.saturating_sub(self.months_elapsed))
            .max(1)
    }
}

/// Runs every path; returns the figures and the raw per-path cash at the window's end.
pub(crate) fn run_paths(book: &Book, f: &Factors) -> (Figures, Vec<f64>) {
    let h = book.horizon() as usize;
    assert!(
        h <= f.months,
        "factors drawn for {} months, book needs {h}",
        f.months
    );
    let w = book.window as usize;
    let alive_window = |d: &DeviceModel| (d.lifetime as usize).min(w) as f64;
    let months_avg = (book.max_lifetime() as usize).min(w).max(1) as f64;
    let total_price: f64 = book.devices.iter().map(|d| d.price_usd).sum();

    // Lines that do not depend on the path.
    let sum_line = |g: &dyn Fn(&DeviceModel) -> f64| {
        book.devices
            .iter()
            .map(|d| g(d) * alive_window(d))
            .sum::<f64>()
    };
    let internet_w = sum_line(&|d| d.internet_usd);
    let maintenance_w = sum_line(&|d| d.maintenance_usd);
    let depreciation_w = sum_line(&|d| d.depreciation_usd);
    let rented_count: f64 = book
        .devices
        .iter()
        .filter(|d| d.rental.is_some())
        .map(|d| d.count)
        .sum();
    let decay: Vec<Vec<f64>> = book
        .devices
        .iter()
        .map(|d| {
            (0..h)
                .map(|t| {
                    let halved = d.halving.as_ref().map_or(1.0, |x| x.factor(t as u32 + 1));
                    (d.decay_log_per_month * t as f64).exp() * halved
                })
                .collect()
        })
        .collect();

    let n = f.paths;
    let mut tokens_w = Vec::with_capacity(n);
    let mut revenue_w = Vec::with_capacity(n);
    let mut cum_w = Vec::with_capacity(n);
    let mut elec_share = Vec::with_capacity(n);
    let mut break_even = Vec::with_capacity(n);
    let mut payback = Vec::with_capacity(n);
    let mut roi12 = Vec::with_capacity(n);
    let mut roi24 = Vec::with_capacity(n);
    let mut price_end = Vec::with_capacity(n);
    let mut kwh_avg = Vec::with_capacity(n);
    let mut elec_avg = Vec::with_capacity(n);
    let mut running_avg = Vec::with_capacity(n);
    let mut utilisation = Vec::with_capacity(n);
    let mut break_even_kwh = Vec::with_capacity(n);
    let mut tax_avg = Vec::with_capacity(n);
    let kwh_price = book.devices.first().map(|d| d.kwh_price_usd).unwrap_or(0.0);
    let resale_w: f64 = book.devices.iter().map(|d| d.resale_after(w)).sum();
    let any_kwh = book
        .devices
        .iter()
        .any(|d| d.electricity_kwh > 0.0 || d.rental.is_some());
    let has_storage = book.devices.iter().any(|d| d.storage.is_some());
    let mut stored_end = Vec::with_capacity(n);
    let mut held_end = Vec::with_capacity(n);
    let mut fill = Vec::with_capacity(n);
    let mut series: Vec<Vec<f64>> = if book.monthly_series {
        vec![Vec::with_capacity(n); w]
    } else {
        Vec::new()
    };
    let mut monthly_net = vec![0.0f64; h];
    let mut cash_path: Vec<f64> = Vec::with_capacity(h + 1);
    let roi_at = |months_from_purchase: u32| {
        months_from_purchase
            .checked_sub(book.months_elapsed)
            .filter(|t| *t >= 1)
    };
    let (roi12_t, roi24_t) = (roi_at(12), roi_at(24));
    let mut paid_back_in_life = 0usize;
    let mut histogram = PaybackHistogram {
        paths_by_month: vec![0; (book.months_elapsed as usize) + h + 1],
        never: 0,
    };
    let first_price = book
        .devices
        .first()
        .map(|d| d.token_price_usd)
        .unwrap_or(0.0);

    for p in 0..n {
        let row = p * f.months;
        monthly_net.iter_mut().for_each(|x| *x = 0.0);
        let (mut tok_w, mut usd_w, mut tok_life) = (0.0, 0.0, 0.0);
        let (mut kwh_w, mut elec_w, mut running_w) = (0.0, 0.0, 0.0);
        let (mut running_life, mut usd_income_life, mut used) = (0.0, 0.0, 0.0);
        let (mut stored, mut held, mut filled) = (0.0, 0.0, Some(0u32));
        let (mut tax_w, mut token_usd_life, mut kwh_life) = (0.0, 0.0, 0.0);
        for (d, dec) in book.devices.iter().zip(&decay) {
            let dil = &f.dilution[d.sector][row..row + h];
            let pr = &f.price[row..row + h];
            let alive = (d.lifetime as usize).min(h);
            let lines = d.lines(f.level[p]);
            if let Some(r) = &d.rental {
                used += r.utilisation_at(f.level[p]) * d.count;
            }
            let in_window = alive_window(d);
            kwh_w += lines.electricity_kwh * in_window;
            elec_w += lines.electricity_usd * in_window;
            running_w += lines.running_usd * in_window;
            running_life += lines.running_usd * alive as f64;
            kwh_life += lines.electricity_kwh * alive as f64;
            let storage = d.storage_months(f.level[p]);
            if let (Some(sm), Some((s, cap))) = (&storage, &d.storage) {
                let end = alive.min(w);
                if end > 0 {
                    stored += sm[end - 1].stored_tb;
                    held += sm[end - 1].held_balance_usd;
                }
                filled = match (filled, s.months_to_fill(*cap, s.ingress_at(f.level[p]))) {
                    (Some(a), Some(b)) => Some(a.max(b.saturating_sub(d.age_months))),
                    _ => None,
                };
            }
            let site = d.placement.as_ref().map_or(1.0, |x| x.factor(f.site[p]));
            // USD income waits in a balance until it reaches the payout threshold; what is
            // below it when the device stops is never paid.
            let threshold = d.payout.payout_threshold_usd * d.count;
            let payout_fee = d.payout.payout_fee_usd * d.count;
            let mut pending = 0.0;
            for t in 0..alive {
                let tok = d.tokens_first_month * dec[t] * dil[t] * site;
                pending += lines.rental_usd + storage.as_ref().map_or(0.0, |sm| sm[t].paid_usd);
                let usd_income = if pending > 0.0 && pending >= threshold.max(payout_fee) {
                    std::mem::take(&mut pending) - payout_fee
                } else {
                    0.0
                };
                let token_usd = tok * d.token_price_usd * pr[t];
                let usd = token_usd + usd_income;
                let tax = d.tax_rate * (usd - lines.running_usd - d.depreciation_usd).max(0.0);
                tok_life += tok;
                token_usd_life += token_usd;
                usd_income_life += usd_income;
                if t < w {
                    tok_w += tok;
                    usd_w += usd;
                    tax_w += tax;
                }
                monthly_net[t] += usd - lines.running_usd - tax;
            }
        }
        kwh_avg.push(kwh_w / months_avg);
        elec_avg.push(elec_w / months_avg);
        running_avg.push(running_w / months_avg);
        if rented_count > 0.0 {
            utilisation.push(used / rented_count);
        }
        if has_storage {
            stored_end.push(stored);
            held_end.push(held);
            fill.push(filled.map(f64::from));
        }
        let mut cum = book.cash_so_far_usd - total_price;
        cash_path.clear();
        cash_path.push(cum);
        let (mut r12, mut r24, mut cwin) = (None, None, cum);
        for (t, net) in monthly_net.iter().enumerate() {
            cum += net;
            cash_path.push(cum);
            let month = t as u32 + 1;
            if Some(month) == roi12_t {
                r12 = Some(cum);
            }
            if Some(month) == roi24_t {
                r24 = Some(cum);
            }
            if t < w {
                cwin = cum;
                if book.monthly_series {
                    series[t].push(cum);
                }
            }
        }
        // Every device has stopped by the horizon, so the path's last total is final.
        let pb = payback_month(&cash_path).map(|m| (book.months_elapsed + m) as f64);
        match pb {
            Some(m) => {
                paid_back_in_life += 1;
                histogram.paths_by_month[m as usize] += 1;
            }
            None => histogram.never += 1,
        }
        let roi = |c: Option<f64>| {
            c.filter(|_| total_price > 0.0)
                .map(|c| c / total_price * 100.0)
        };
        tokens_w.push(tok_w / months_avg);
        revenue_w.push(usd_w / months_avg);
        cum_w.push(cwin);
        elec_share.push((usd_w > 0.0).then(|| elec_w / usd_w * 100.0));
        // The electricity price at which the lifetime cash before tax is zero: cash is
        // linear in the price, falling by the lifetime's kWh for each USD/kWh.
        let pretax_life =
            book.cash_so_far_usd + token_usd_life + usd_income_life - running_life - total_price;
        break_even_kwh.push(
            (kwh_life > 0.0)
                .then(|| kwh_price + pretax_life / kwh_life)
                .filter(|k| *k >= 0.0),
        );
        tax_avg.push(tax_w / months_avg);
        // The token price at which token revenue covers what USD income does not.
        break_even.push(
            (tok_life > 0.0)
                .then(|| ((total_price + running_life - usd_income_life) / tok_life).max(0.0)),
        );
        payback.push(pb);
        roi12.push(roi(r12));
        roi24.push(roi(r24));
        price_end.push(first_price * f.price[row + w.min(h) - 1]);
    }

    let revenue = Spread::of(revenue_w.clone());
    let depreciation_avg = depreciation_w / months_avg;
    let net_op: Vec<f64> = revenue_w
        .iter()
        .zip(&running_avg)
        .map(|(r, c)| r - c)
        .collect();
    let total_cost: Vec<f64> = running_avg
        .iter()
        .zip(&tax_avg)
        .map(|(c, t)| c + depreciation_avg + t)
        .collect();
    let net_profit: Vec<f64> = net_op
        .iter()
        .zip(&tax_avg)
        .map(|(r, t)| r - depreciation_avg - t)
        .collect();
    let with_resale: Vec<f64> = cum_w.iter().map(|c| c + resale_w).collect();
    let cum_raw = cum_w.clone();
    let figures = Figures {
        revenue_tokens_per_month: Spread::of(tokens_w),
        revenue_usd_per_month: revenue,
        electricity_kwh_per_month: Spread::of_cost(kwh_avg),
        electricity_usd_per_month: Spread::of_cost(elec_avg),
        internet_usd_per_month: Spread::constant(internet_w / months_avg),
        maintenance_usd_per_month: Spread::constant(maintenance_w / months_avg),
        hardware_depreciation_usd_per_month: Spread::constant(depreciation_avg),
        total_cost_usd_per_month: Spread::of_cost(total_cost),
        utilisation: (!utilisation.is_empty()).then(|| Spread::of(utilisation)),
        stored_tb_at_window_end: has_storage.then(|| Spread::of(stored_end)),
        held_back_usd_at_window_end: has_storage.then(|| Spread::of_cost(held_end)),
        months_to_fill: has_storage.then(|| OptSpread::of_cost(fill)),
        net_operating_usd_per_month: Spread::of(net_op),
        net_profit_usd_per_month: Spread::of(net_profit),
        cumulative_net_usd: Spread::of(cum_w),
        tax_usd_per_month: Spread::of_cost(tax_avg),
        resale_value_usd_at_window_end: resale_w,
        cumulative_net_with_resale_usd: Spread::of(with_resale),
        break_even_kwh_price_usd: any_kwh.then(|| OptSpread::of_benefit(break_even_kwh)),
        electricity_share_of_revenue_pct: OptSpread::of_cost(elec_share),
        break_even_token_price_usd: OptSpread::of_cost(break_even),
        payback_months: OptSpread::of_cost(payback),
        roi_12_months_pct: OptSpread::of(roi12),
        roi_24_months_pct: OptSpread::of(roi24),
        token_price_usd_at_window_end: Spread::of(price_end),
        payback_within_lifetime_probability: paid_back_in_life as f64 / n as f64,
        cumulative_net_usd_by_month: series
            .into_iter()
            .enumerate()
            .map(|(t, v)| MonthSpread {
                month: book.months_elapsed + t as u32 + 1,
                cumulative_net_usd: Spread::of(v),
            })
            .collect(),
        payback_histogram: book.monthly_series.then_some(histogram),
    };
    (figures, cum_raw)
}

// ---------------------------------------------------------------------------------------
// Public entry points

/// Bounds memory: draws and factors hold 10 floats per path-month.
pub(crate) fn check_size(sim: Simulation, horizon: u32) -> Result<(), EconomicsError> {
    const MAX_PATH_MONTHS: u64 = 4_000_000;
    if sim.paths as u64 * horizon as u64 > MAX_PATH_MONTHS {
        return Err(invalid(
            "paths",
            format!(
                "{} paths × {horizon} months is more than {MAX_PATH_MONTHS} path-months; use fewer paths",
                sim.paths
            ),
        ));
    }
    Ok(())
}

fn today(i: &EstimateInputs) -> TodayFigures {
    let tokens = i.tokens_first_month();
    let rental = i.rental_usd_per_month_p50() + i.storage_usd_per_month_p50();
    let revenue = tokens * i.market.token_price_usd + rental;
    let running = i.running_costs_usd_per_month();
    let net = revenue - running;
    TodayFigures {
        revenue_tokens_per_month: tokens,
        revenue_usd_per_month: revenue,
        running_costs_usd_per_month: running,
        net_operating_usd_per_month: net,
        payback_months: (net > 0.0).then(|| i.hardware.capital_usd() / net),
        break_even_token_price_usd: (tokens > 0.0)
            .then(|| ((running + i.depreciation_usd_per_month() - rental) / tokens).max(0.0)),
    }
}

/// Estimates one device. Deterministic for a given `sim.seed`.
pub fn estimate(inputs: &EstimateInputs, sim: Simulation) -> Result<Estimate, EconomicsError> {
    Ok(estimate_all(std::slice::from_ref(inputs), sim, true)?
        .pop()
        .expect("one input gives one estimate"))
}

/// Estimates several devices over one set of draws (what `--rank` uses). Without the
/// per-month series, to stay quick.
pub fn estimate_many(
    inputs: &[EstimateInputs],
    sim: Simulation,
) -> Result<Vec<Estimate>, EconomicsError> {
    estimate_all(inputs, sim, false)
}

fn estimate_all(
    inputs: &[EstimateInputs],
    sim: Simulation,
    series: bool,
) -> Result<Vec<Estimate>, EconomicsError> {
    sim.validate()?;
    for i in inputs {
        i.validate()?;
    }
    let books: Vec<Book> = inputs
        .iter()
        .map(|i| Book {
            devices: vec![DeviceModel::from_inputs(i, i.hardware.lifetime_months)],
            window: i.months,
            cash_so_far_usd: 0.0,
            months_elapsed: 0,
            monthly_series: series,
        })
        .collect();
    let horizon = books
        .iter()
        .map(Book::horizon)
        .max()
        .unwrap_or(1)
        .min(MAX_MONTHS);
    check_size(sim, horizon)?;
    let draws = Draws::generate(sim, horizon);
    let mut cache: Option<(crate::Market, Factors)> = None;
    let mut out = Vec::with_capacity(inputs.len());
    for (i, book) in inputs.iter().zip(&books) {
        if cache.as_ref().is_none_or(|(m, _)| *m != i.market) {
            cache = Some((i.market.clone(), Factors::new(&draws, &i.market, false)));
        }
        let (figures, _) = run_paths(book, &cache.as_ref().expect("just set").1);
        let today = today(i);
        let warnings = warnings_for(i, &figures, &today);
        out.push(Estimate {
            inputs: i.clone(),
            simulation: sim,
            months: i.months,
            figures,
            today,
            warnings,
        });
    }
    Ok(out)
}

/// Projects a running device forward from what it has earned and cost so far. Payback
/// and the series count months from purchase; per-month figures cover the remaining
/// window (`inputs.months` counts from purchase too).
pub fn project_from_observed(
    inputs: &EstimateInputs,
    observed: &Observed,
    sim: Simulation,
) -> Result<Estimate, EconomicsError> {
    sim.validate()?;
    inputs.validate()?;
    crate::model::non_negative("revenue_usd_so_far", observed.revenue_usd_so_far)?;
    crate::model::non_negative(
        "running_costs_usd_so_far",
        observed.running_costs_usd_so_far,
    )?;
    let life = inputs.hardware.lifetime_months;
    if observed.months_elapsed >= life {
        return Err(invalid(
            "months_elapsed",
            format!(
                "the device is {} months old, past its {life}-month lifetime",
                observed.months_elapsed
            ),
        ));
    }
    let remaining = life - observed.months_elapsed;
    let book = Book {
        devices: vec![DeviceModel::from_inputs(inputs, remaining)],
        window: inputs.months.saturating_sub(observed.months_elapsed).max(1),
        cash_so_far_usd: observed.revenue_usd_so_far - observed.running_costs_usd_so_far,
        months_elapsed: observed.months_elapsed,
        monthly_series: true,
    };
    check_size(sim, book.horizon())?;
    let draws = Draws::generate(sim, book.horizon());
    let (figures, _) = run_paths(&book, &Factors::new(&draws, &inputs.market, false));
    let today = today(inputs);
    let warnings = warnings_for(inputs, &figures, &today);
    Ok(Estimate {
        inputs: inputs.clone(),
        simulation: sim,
        months: inputs.months,
        figures,
        today,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::std_normal_cdf;

    #[test]
    fn normal_cdf_matches_the_table() {
        // Φ(0) = 0.5, Φ(1.959964) = 0.975, Φ(−1.281552) = 0.1, Φ(−3) = 0.0013499.
        for (x, p) in [
            (0.0, 0.5),
            (1.959964, 0.975),
            (-1.281552, 0.1),
            (-3.0, 0.0013499),
        ] {
            assert!(
                (std_normal_cdf(x) - p).abs() < 2e-7,
                "{x}: {}",
                std_normal_cdf(x)
            );
        }
    }
}
