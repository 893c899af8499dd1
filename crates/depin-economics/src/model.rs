//! The inputs of an estimate, their defaults and their validation.
//!
//! Every field name carries its unit. Money is USD per month unless the name says
//! otherwise; rates are per month; volatility of the token price is per year (the way
//! markets quote it); network growth is per month (the way operators see dilution).

use crate::{EconomicsError, HOURS_PER_MONTH, MAX_MONTHS, invalid};
use depin_core::Sector;
use serde::{Deserialize, Serialize};

/// Default assumptions, each one documented. The CLI shows them in `--help` and echoes
/// the ones used in `--json`.
pub struct Defaults;

impl Defaults {
    /// US average residential price 2025 (EIA ≈ USD 0.17/kWh); Europe is often 0.25–0.40.
    pub const KWH_PRICE_USD: f64 = 0.17;
    /// A typical home broadband line; a device is charged its `internet_share` of it.
    pub const INTERNET_USD_PER_MONTH: f64 = 50.0;
    /// Token price used with the built-in rates when the network gives none.
    pub const TOKEN_PRICE_USD: f64 = 0.50;
    /// DePIN tokens have swung 80–120% a year; 90% is a middle assumption.
    pub const TOKEN_VOLATILITY_PER_YEAR: f64 = 0.9;
    /// Yearly drift of the median token price: no assumed rise or fall.
    pub const TOKEN_DRIFT_PER_YEAR: f64 = 0.0;
    /// Devices join a growing network and split emissions: 1% more devices a month
    /// (≈ 13% a year), net of demand growth.
    pub const NETWORK_GROWTH_PER_MONTH: f64 = 0.01;
    /// Uncertainty of that growth, independent per sector (sector demand).
    pub const NETWORK_GROWTH_VOLATILITY_PER_MONTH: f64 = 0.03;
    /// Share of time the network counts the device as up and serving.
    pub const UPTIME: f64 = 0.95;
    pub const SEED: u64 = 1;
    pub const PATHS: u32 = 2000;
}

/// The device: what it costs, draws and contributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub name: String,
    pub sector: Sector,
    pub price_usd: f64,
    /// Catalogue price, when the device came from the catalogue; a price well above it
    /// raises an "overpriced hardware" warning.
    pub catalogue_price_usd: Option<f64>,
    pub watts: f64,
    pub lifetime_months: u32,
    pub capacity_units: f64,
    /// The operator owns the hardware already (`--already-own`): its price is no cash
    /// outlay, but selling it instead would fetch `price_usd × resale_fraction`, and that
    /// is the opportunity cost payback is measured against.
    #[serde(default)]
    pub already_owned: bool,
    /// Share of the price the hardware fetches used, 0–1 (see the catalogue).
    #[serde(default)]
    pub resale_fraction: f64,
}

impl Hardware {
    /// What the estimate charges for the hardware at month 0: the price, or for hardware
    /// already owned the resale value given up by keeping it.
    pub fn capital_usd(&self) -> f64 {
        if self.already_owned {
            self.price_usd * self.resale_fraction
        } else {
            self.price_usd
        }
    }
}

/// A compute device on a rental market: revenue is rented hours × the USD rate, and the
/// load draw is paid only for rented hours (the idle draw for the others). Utilisation is
/// the share of all hours actually rented (downtime lowers it; uptime does not apply on
/// top). Each simulated path draws one utilisation level from the p10/p50/p90 range
/// (piecewise linear between them); the token price does not move rental revenue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rental {
    pub usd_per_hour: f64,
    pub utilisation_p10: f64,
    pub utilisation_p50: f64,
    pub utilisation_p90: f64,
    pub load_watts: f64,
    pub idle_watts: f64,
    /// Share of the revenue the platform keeps (0.10 = 10%).
    #[serde(default)]
    pub platform_fee: f64,
    /// USD income is paid out only once the balance reaches this; a balance below it when
    /// the device stops is never paid.
    #[serde(default)]
    pub payout_threshold_usd: f64,
    /// Charged on each payout, USD (a transaction fee).
    #[serde(default)]
    pub payout_fee_usd: f64,
}

/// How USD income reaches the operator: a platform's share, a minimum payout and a fee
/// per payout.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PayoutTerms {
    pub platform_fee: f64,
    pub payout_threshold_usd: f64,
    pub payout_fee_usd: f64,
}

impl PayoutTerms {
    pub fn validate(&self) -> Result<(), EconomicsError> {
        if !(self.platform_fee.is_finite() && (0.0..1.0).contains(&self.platform_fee)) {
            return Err(invalid(
                "platform_fee",
                format!("must be in [0, 1), got {}", self.platform_fee),
            ));
        }
        non_negative("payout_threshold_usd", self.payout_threshold_usd)?;
        non_negative("payout_fee_usd", self.payout_fee_usd)?;
        for (field, v) in [
            ("payout_threshold_usd", self.payout_threshold_usd),
            ("payout_fee_usd", self.payout_fee_usd),
        ] {
            if v > 10_000.0 {
                return Err(invalid(field, format!("USD {v} is above USD 10000")));
            }
        }
        Ok(())
    }
}

/// A rental rate above this is refused as a typo (an H100 rents for USD 2–3 an hour).
pub const MAX_RENTAL_USD_PER_HOUR: f64 = 50.0;

impl Rental {
    /// From a catalogue entry; `utilisation` fixes the level on every path.
    pub fn from_profile(r: &crate::catalogue::RentalProfile, utilisation: Option<f64>) -> Rental {
        let (p10, p50, p90) = match utilisation {
            Some(u) => (u, u, u),
            None => (r.utilisation_p10, r.utilisation_p50, r.utilisation_p90),
        };
        Rental {
            usd_per_hour: r.usd_per_hour,
            utilisation_p10: p10,
            utilisation_p50: p50,
            utilisation_p90: p90,
            load_watts: r.load_watts,
            idle_watts: r.idle_watts,
            platform_fee: r.platform_fee,
            payout_threshold_usd: r.payout_threshold_usd,
            payout_fee_usd: r.payout_fee_usd,
        }
    }

    pub fn payout(&self) -> PayoutTerms {
        PayoutTerms {
            platform_fee: self.platform_fee,
            payout_threshold_usd: self.payout_threshold_usd,
            payout_fee_usd: self.payout_fee_usd,
        }
    }

    pub fn validate(&self) -> Result<(), EconomicsError> {
        self.payout().validate()?;
        non_negative("rental_usd_per_hour", self.usd_per_hour)?;
        if self.usd_per_hour > MAX_RENTAL_USD_PER_HOUR {
            return Err(invalid(
                "rental_usd_per_hour",
                format!(
                    "USD {}/h is above USD {MAX_RENTAL_USD_PER_HOUR}/h; data-centre GPUs rent for USD 2–3/h",
                    self.usd_per_hour
                ),
            ));
        }
        for v in [
            self.utilisation_p10,
            self.utilisation_p50,
            self.utilisation_p90,
        ] {
            fraction("utilisation", v)?;
        }
        if !(self.utilisation_p10 <= self.utilisation_p50
            && self.utilisation_p50 <= self.utilisation_p90)
        {
            return Err(invalid(
                "utilisation",
                "the range must have p10 ≤ p50 ≤ p90",
            ));
        }
        non_negative("load_watts", self.load_watts)?;
        non_negative("idle_watts", self.idle_watts)?;
        for (field, w) in [
            ("load_watts", self.load_watts),
            ("idle_watts", self.idle_watts),
        ] {
            if w > MAX_WATTS {
                return Err(invalid(field, format!("{w} W is above {MAX_WATTS} W")));
            }
        }
        Ok(())
    }

    /// The utilisation of a path whose level is `u` ∈ [0, 1) ([`through_quantiles`]).
    pub fn utilisation_at(&self, u: f64) -> f64 {
        through_quantiles(
            u,
            self.utilisation_p10,
            self.utilisation_p50,
            self.utilisation_p90,
        )
        .clamp(0.0, 1.0)
    }

    /// Rented hours in a month at utilisation `u`.
    pub fn rented_hours(u: f64) -> f64 {
        u * HOURS_PER_MONTH
    }

    /// Revenue in USD for a month at utilisation `u`, after the platform's fee.
    pub fn revenue_usd_per_month(&self, u: f64) -> f64 {
        Rental::rented_hours(u) * self.usd_per_hour * (1.0 - self.platform_fee)
    }

    /// Grid draw in kWh for a month at utilisation `u`.
    pub fn electricity_kwh_per_month(&self, u: f64) -> f64 {
        (u * self.load_watts + (1.0 - u) * self.idle_watts) * HOURS_PER_MONTH / 1000.0
    }
}

/// The value at level `u` ∈ [0, 1) of a quantity given by its p10, p50 and p90:
/// piecewise linear through (0.1, p10), (0.5, p50), (0.9, p90), extended with the same
/// slopes to 0 and 1 (a path's level is uniform, so 10% of paths fall below p10).
pub fn through_quantiles(u: f64, p10: f64, p50: f64, p90: f64) -> f64 {
    let lo = p10 - (p50 - p10) / 4.0;
    let hi = p90 + (p90 - p50) / 4.0;
    let pts = [(0.0, lo), (0.1, p10), (0.5, p50), (0.9, p90), (1.0, hi)];
    for w in pts.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if u <= x1 {
            return y0 + (y1 - y0) * (u - x0) / (x1 - x0);
        }
    }
    hi
}

/// Above this electricity price (USD/kWh) an input is refused as a typo: European
/// residential prices peak around 0.40 (Germany 0.394 EUR/kWh, Eurostat H2 2024).
pub const MAX_KWH_PRICE_USD: f64 = 2.0;
/// Above this draw (W) a device is refused as a typo: a whole GPU server draws a few kW.
pub const MAX_WATTS: f64 = 20_000.0;

/// Typical upper draw per sector (W): above it an estimate warns that the figure looks
/// wrong for the sector (the catalogue's devices draw 0–20 W outside compute).
pub fn plausible_max_watts(sector: Sector) -> f64 {
    match sector {
        Sector::Wireless => 60.0,
        Sector::Sensor => 60.0,
        Sector::Storage => 300.0,
        Sector::Compute => 3000.0,
    }
}

/// What running the device costs the operator besides the hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorCosts {
    pub kwh_price_usd: f64,
    /// The whole internet line's monthly price.
    pub internet_usd_per_month: f64,
    /// Share of that line charged to this device, 0–1.
    pub internet_share: f64,
    pub maintenance_usd_per_month: f64,
    /// Driving done for the device (a mapping dashcam's detours), counted with
    /// maintenance in the figures.
    #[serde(default)]
    pub driving_usd_per_month: f64,
    /// Income tax on each month's profit (revenue − running costs − depreciation), 0–1;
    /// a month at a loss pays none and is not offset against later profit.
    #[serde(default)]
    pub tax_rate: f64,
}

/// A tax rate above this is refused as a typo (give a fraction: 0.3, not 30).
pub const MAX_TAX_RATE: f64 = 0.9;

impl OperatorCosts {
    pub fn internet_charged_usd_per_month(&self) -> f64 {
        self.internet_usd_per_month * self.internet_share
    }
}

/// What the network pays the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardAssumptions {
    /// Tokens per month at today's rates at 100% uptime.
    pub tokens_per_month: f64,
    /// Where `tokens_per_month` came from, in words.
    pub source: String,
    /// Fraction of time the device is counted up, 0–1; rewards scale with it.
    pub uptime: f64,
    /// Yearly decay of emissions (0.1 = 10% less each year).
    pub emission_decay_per_year: f64,
    /// Scheduled halvings of the network's emission, on top of the decay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halving: Option<Halving>,
}

/// Emission halves in `first_month` (1-based, counted from the estimate's first month) and
/// again every `interval_months` after: month `m` earns `0.5^k` of today's rate, where `k`
/// is the number of halvings in months 1..=m.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Halving {
    pub first_month: u32,
    pub interval_months: u32,
    /// Where the schedule comes from, e.g. "GEODNET: every 30 June; next 2027-06-30".
    #[serde(default)]
    pub note: String,
}

impl Halving {
    /// The share of today's emission paid in 1-based month `month`.
    pub fn factor(&self, month: u32) -> f64 {
        if month < self.first_month {
            return 1.0;
        }
        let k = 1 + (month - self.first_month) / self.interval_months.max(1);
        0.5f64.powi(k.min(1000) as i32)
    }

    pub fn validate(&self) -> Result<(), EconomicsError> {
        if self.first_month == 0 || self.first_month > MAX_MONTHS {
            return Err(invalid(
                "halving_first_month",
                format!("must be 1..={MAX_MONTHS}, got {}", self.first_month),
            ));
        }
        if self.interval_months == 0 || self.interval_months > MAX_MONTHS {
            return Err(invalid(
                "halving_interval_months",
                format!("must be 1..={MAX_MONTHS}, got {}", self.interval_months),
            ));
        }
        Ok(())
    }
}

/// A calendar month, `YYYY-MM`: the month an estimate starts in, which places a network's
/// halving dates on the estimate's months. The crate reads no clock: the caller says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct YearMonth {
    pub year: i32,
    pub month: u32,
}

impl YearMonth {
    /// Months from `self` to `other` (negative when `other` is earlier).
    pub fn months_until(self, other: YearMonth) -> i64 {
        (other.year as i64 - self.year as i64) * 12 + other.month as i64 - self.month as i64
    }
}

impl std::fmt::Display for YearMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for YearMonth {
    type Err = String;
    /// `YYYY-MM`, or a date `YYYY-MM-DD` (its month).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected YYYY-MM, got {s:?}");
        let mut it = s.split('-');
        let year: i32 = it.next().and_then(|y| y.parse().ok()).ok_or_else(bad)?;
        let month: u32 = it.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
        if let Some(day) = it.next() {
            let d: u32 = day.parse().map_err(|_| bad())?;
            if !(1..=31).contains(&d) {
                return Err(bad());
            }
        }
        if it.next().is_some() || !(1..=12).contains(&month) || !(1970..=2200).contains(&year) {
            return Err(bad());
        }
        Ok(YearMonth { year, month })
    }
}

/// The token and the network around the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Market {
    pub token_price_usd: f64,
    pub token_volatility_per_year: f64,
    pub token_drift_per_year: f64,
    pub network_growth_per_month: f64,
    pub network_growth_volatility_per_month: f64,
    /// Sudden drops of the token price: how many a year on average (a Poisson rate) …
    #[serde(default)]
    pub crash_probability_per_year: f64,
    /// … and the share of the price each one wipes out (0.5 = the price halves).
    #[serde(default)]
    pub crash_size: f64,
    /// The named scenario these figures came from, if any (`--scenario`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<Scenario>,
}

/// A named set of token-price assumptions (`--scenario`). Each sets drift, volatility and
/// crashes; single flags override single figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// No assumed rise or fall of the median price, 90% a year volatility, and a crash
    /// that halves the price about once in ten years.
    Base,
    /// The median price falls 39% a year (drift −0.5) with a halving crash about once in
    /// four years.
    Bear,
    /// A collapse like WXM's (−98% in about 20 months) or HNT's (about 50 → under 3 USD):
    /// drift −1 a year, 120% volatility, a crash of −60% about every two years; the median
    /// path loses about 90% in 20 months.
    Crash,
}

/// The figures of one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScenarioParameters {
    pub token_drift_per_year: f64,
    pub token_volatility_per_year: f64,
    pub crash_probability_per_year: f64,
    pub crash_size: f64,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::Base, Scenario::Bear, Scenario::Crash];

    /// ASSUMPTIONS anchored by the record (research file, gathered 2026-12): WXM fell 98%
    /// in about 20 months, HNT went from about 50 to under 3 USD; under a plain random walk
    /// at 90% a year such a fall is a 3.6σ event, so crashes are modelled as jumps.
    pub fn parameters(self) -> ScenarioParameters {
        let (d, v, c, s) = match self {
            Scenario::Base => (0.0, 0.9, 0.1, 0.5),
            Scenario::Bear => (-0.5, 0.9, 0.25, 0.5),
            Scenario::Crash => (-1.0, 1.2, 0.5, 0.6),
        };
        ScenarioParameters {
            token_drift_per_year: d,
            token_volatility_per_year: v,
            crash_probability_per_year: c,
            crash_size: s,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Base => "base",
            Scenario::Bear => "bear",
            Scenario::Crash => "crash",
        }
    }
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown scenario {s:?}; one of base, bear, crash"))
    }
}

impl Market {
    /// Today's price with a scenario's drift, volatility and crashes, and the default
    /// network growth.
    pub fn for_scenario(scenario: Scenario, token_price_usd: f64) -> Market {
        let p = scenario.parameters();
        Market {
            token_price_usd,
            token_volatility_per_year: p.token_volatility_per_year,
            token_drift_per_year: p.token_drift_per_year,
            crash_probability_per_year: p.crash_probability_per_year,
            crash_size: p.crash_size,
            scenario: Some(scenario),
            ..Market::default()
        }
    }
}

impl Default for Market {
    fn default() -> Self {
        Market {
            token_price_usd: Defaults::TOKEN_PRICE_USD,
            token_volatility_per_year: Defaults::TOKEN_VOLATILITY_PER_YEAR,
            token_drift_per_year: Defaults::TOKEN_DRIFT_PER_YEAR,
            network_growth_per_month: Defaults::NETWORK_GROWTH_PER_MONTH,
            network_growth_volatility_per_month: Defaults::NETWORK_GROWTH_VOLATILITY_PER_MONTH,
            crash_probability_per_year: 0.0,
            crash_size: 0.0,
            scenario: None,
        }
    }
}

impl Market {
    pub fn validate(&self) -> Result<(), EconomicsError> {
        non_negative("token_price_usd", self.token_price_usd)?;
        if !(self.token_volatility_per_year.is_finite()
            && (0.0..=5.0).contains(&self.token_volatility_per_year))
        {
            return Err(invalid(
                "token_volatility_per_year",
                format!(
                    "must be between 0 and 5 (500% a year), got {}",
                    self.token_volatility_per_year
                ),
            ));
        }
        if !(self.token_drift_per_year.is_finite()
            && (-1.0..=5.0).contains(&self.token_drift_per_year))
        {
            return Err(invalid(
                "token_drift_per_year",
                format!(
                    "must be between -1 and 5, got {}",
                    self.token_drift_per_year
                ),
            ));
        }
        if !(self.crash_probability_per_year.is_finite()
            && (0.0..=12.0).contains(&self.crash_probability_per_year))
        {
            return Err(invalid(
                "crash_probability_per_year",
                format!(
                    "must be between 0 and 12 crashes a year, got {}",
                    self.crash_probability_per_year
                ),
            ));
        }
        if !(self.crash_size.is_finite() && (0.0..1.0).contains(&self.crash_size)) {
            return Err(invalid(
                "crash_size",
                format!(
                    "must be in [0, 1) (the share of the price a crash wipes out), got {}",
                    self.crash_size
                ),
            ));
        }
        if !(self.network_growth_per_month.is_finite()
            && (-0.5..=1.0).contains(&self.network_growth_per_month))
        {
            return Err(invalid(
                "network_growth_per_month",
                format!(
                    "must be between -0.5 and 1, got {}",
                    self.network_growth_per_month
                ),
            ));
        }
        if !(self.network_growth_volatility_per_month.is_finite()
            && (0.0..=1.0).contains(&self.network_growth_volatility_per_month))
        {
            return Err(invalid(
                "network_growth_volatility_per_month",
                format!(
                    "must be between 0 and 1, got {}",
                    self.network_growth_volatility_per_month
                ),
            ));
        }
        Ok(())
    }
}

/// Everything one single-device estimate needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimateInputs {
    pub hardware: Hardware,
    pub costs: OperatorCosts,
    pub rewards: RewardAssumptions,
    pub market: Market,
    /// Window for per-month averages and the cumulative figure; default the lifetime.
    pub months: u32,
    /// A compute device's rental market; `None` means token rewards only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rental: Option<Rental>,
    /// A storage node paid in USD on the data it holds; `None` means token rewards only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<crate::storage::StorageMarket>,
    /// Where a coverage or sensor device stands, drawn per path; `None`: every path earns
    /// today's rate (a known cell, or a device whose spread is modelled otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// Placement of a device whose rewards depend on where it stands (coverage, sensors). Each
/// path draws one site: with probability `full_cell_probability` its cell is already at
/// capacity and it earns nothing (WeatherXM's `CELL_CAPACITY_REACHED`); otherwise its
/// token rewards are today's rate × a factor whose p10, p50 and p90 over those sites are
/// `spread_p10`, 1 and `spread_p90` ([`through_quantiles`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub full_cell_probability: f64,
    pub spread_p10: f64,
    pub spread_p90: f64,
    #[serde(default)]
    pub note: String,
}

impl Placement {
    pub fn validate(&self) -> Result<(), EconomicsError> {
        fraction("full_cell_probability", self.full_cell_probability)?;
        non_negative("placement_spread_p10", self.spread_p10)?;
        if !(self.spread_p10 <= 1.0 && self.spread_p90.is_finite() && self.spread_p90 >= 1.0)
            || self.spread_p90 > 100.0
        {
            return Err(invalid(
                "placement_spread",
                format!(
                    "needs p10 ≤ 1 ≤ p90 ≤ 100 (ratios to the median site), got {} and {}",
                    self.spread_p10, self.spread_p90
                ),
            ));
        }
        Ok(())
    }

    /// The factor on today's token rate at a site drawn at level `u` ∈ [0, 1).
    pub fn factor(&self, u: f64) -> f64 {
        let f = self.full_cell_probability;
        if u < f || f >= 1.0 {
            return 0.0;
        }
        through_quantiles((u - f) / (1.0 - f), self.spread_p10, 1.0, self.spread_p90).max(0.0)
    }
}

pub(crate) fn non_negative(field: &'static str, v: f64) -> Result<(), EconomicsError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(invalid(field, format!("must be a number ≥ 0, got {v}")))
    }
}

pub(crate) fn fraction(field: &'static str, v: f64) -> Result<(), EconomicsError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be between 0 and 1, got {v}")))
    }
}

impl EstimateInputs {
    pub fn validate(&self) -> Result<(), EconomicsError> {
        let h = &self.hardware;
        non_negative("price_usd", h.price_usd)?;
        non_negative("watts", h.watts)?;
        if h.watts > MAX_WATTS {
            return Err(invalid(
                "watts",
                format!(
                    "{} W is above {MAX_WATTS} W; give the average draw in watts",
                    h.watts
                ),
            ));
        }
        fraction("resale_fraction", h.resale_fraction)?;
        if let Some(r) = &self.rental {
            r.validate()?;
        }
        if let Some(p) = &self.placement {
            p.validate()?;
        }
        if let Some(s) = &self.storage {
            s.validate()?;
            if self.rental.is_some() {
                return Err(invalid(
                    "storage",
                    "a device is either rented by the hour or a storage node, not both",
                ));
            }
        }
        non_negative("capacity_units", h.capacity_units)?;
        if h.lifetime_months == 0 || h.lifetime_months > MAX_MONTHS {
            return Err(invalid(
                "lifetime_months",
                format!("must be 1..={MAX_MONTHS} months, got {}", h.lifetime_months),
            ));
        }
        let c = &self.costs;
        non_negative("kwh_price_usd", c.kwh_price_usd)?;
        if c.kwh_price_usd > MAX_KWH_PRICE_USD {
            return Err(invalid(
                "kwh_price_usd",
                format!(
                    "USD {}/kWh is above USD {MAX_KWH_PRICE_USD}/kWh; residential prices are 0.10–0.40 (give USD per kWh, not cents)",
                    c.kwh_price_usd
                ),
            ));
        }
        non_negative("internet_usd_per_month", c.internet_usd_per_month)?;
        fraction("internet_share", c.internet_share)?;
        non_negative("maintenance_usd_per_month", c.maintenance_usd_per_month)?;
        non_negative("driving_usd_per_month", c.driving_usd_per_month)?;
        if !(c.tax_rate.is_finite() && (0.0..=MAX_TAX_RATE).contains(&c.tax_rate)) {
            return Err(invalid(
                "tax_rate",
                format!(
                    "must be between 0 and {MAX_TAX_RATE} (a fraction: 0.3 for 30%), got {}",
                    c.tax_rate
                ),
            ));
        }
        let r = &self.rewards;
        non_negative("tokens_per_month", r.tokens_per_month)?;
        fraction("uptime", r.uptime)?;
        if let Some(h) = &r.halving {
            h.validate()?;
        }
        if !(r.emission_decay_per_year.is_finite()
            && (0.0..1.0).contains(&r.emission_decay_per_year))
        {
            return Err(invalid(
                "emission_decay_per_year",
                format!("must be in [0, 1), got {}", r.emission_decay_per_year),
            ));
        }
        self.market.validate()?;
        if self.months == 0 || self.months > MAX_MONTHS {
            return Err(invalid(
                "months",
                format!("must be 1..={MAX_MONTHS}, got {}", self.months),
            ));
        }
        Ok(())
    }

    /// Grid draw in a month; for a rented device, at its p50 utilisation.
    pub fn electricity_kwh_per_month(&self) -> f64 {
        match &self.rental {
            Some(r) => r.electricity_kwh_per_month(r.utilisation_p50),
            None => self.hardware.watts * HOURS_PER_MONTH / 1000.0,
        }
    }

    /// Rental revenue in a month at the p50 utilisation (0 without a rental market).
    pub fn rental_usd_per_month_p50(&self) -> f64 {
        self.rental
            .as_ref()
            .map_or(0.0, |r| r.revenue_usd_per_month(r.utilisation_p50))
    }

    /// Storage pay in USD per month at the p50 fill rate, averaged over the lifetime and
    /// counting held-back amounts when they are paid (0 without a storage market).
    pub fn storage_usd_per_month_p50(&self) -> f64 {
        self.storage.as_ref().map_or(0.0, |s| {
            let life = self.hardware.lifetime_months;
            let sched = s.schedule(
                self.hardware.capacity_units,
                s.ingress_tb_per_month_p50,
                life,
            );
            sched.iter().map(|m| m.paid_usd).sum::<f64>() / life as f64
        })
    }

    /// Inputs that are valid but look wrong, as warnings naming the field.
    pub fn plausibility_warnings(&self) -> Vec<crate::Warning> {
        let mut w = Vec::new();
        let h = &self.hardware;
        let max = plausible_max_watts(h.sector);
        let watts = self.rental.as_ref().map_or(h.watts, |r| r.load_watts);
        if watts > max {
            w.push(crate::Warning {
                code: "implausible_input".into(),
                message: format!(
                    "watts: {watts} W is far above what a {} device draws (up to about {max} W); check the figure",
                    h.sector
                ),
            });
        }
        if self.costs.kwh_price_usd > 1.0 {
            w.push(crate::Warning {
                code: "implausible_input".into(),
                message: format!(
                    "kwh_price_usd: USD {}/kWh is more than twice the dearest residential prices (about 0.40)",
                    self.costs.kwh_price_usd
                ),
            });
        }
        if self.costs.internet_usd_per_month > 500.0 {
            w.push(crate::Warning {
                code: "implausible_input".into(),
                message: format!(
                    "internet_usd_per_month: USD {}/month is far above a home line (30–100)",
                    self.costs.internet_usd_per_month
                ),
            });
        }
        w
    }

    pub fn electricity_usd_per_month(&self) -> f64 {
        self.electricity_kwh_per_month() * self.costs.kwh_price_usd
    }

    /// Electricity + internet share + maintenance: what keeps the device running.
    pub fn running_costs_usd_per_month(&self) -> f64 {
        self.electricity_usd_per_month()
            + self.costs.internet_charged_usd_per_month()
            + self.costs.maintenance_usd_per_month
            + self.costs.driving_usd_per_month
    }

    /// The hardware's month-0 charge ([`Hardware::capital_usd`]) spread over its lifetime.
    pub fn depreciation_usd_per_month(&self) -> f64 {
        self.hardware.capital_usd() / self.hardware.lifetime_months as f64
    }

    /// What the hardware would fetch if sold `months` from now: the new price × the
    /// class's resale curve `resale_fraction^(age / 24)` (the catalogue's fraction is the
    /// share kept at about two years, so the curve keeps it there and goes on falling at
    /// the same rate). Hardware already owned is taken to be two years old today.
    pub fn resale_usd_after(&self, months: u32) -> f64 {
        let h = &self.hardware;
        let age = months as f64 + if h.already_owned { 24.0 } else { 0.0 };
        h.price_usd * h.resale_fraction.powf(age / 24.0)
    }

    /// How the device's USD income (rental or storage) is paid out.
    pub fn payout(&self) -> PayoutTerms {
        match (&self.rental, &self.storage) {
            (Some(r), _) => r.payout(),
            (None, Some(s)) => s.payout(),
            _ => PayoutTerms::default(),
        }
    }

    /// Tokens in the first month: today's rate × uptime.
    pub fn tokens_first_month(&self) -> f64 {
        self.rewards.tokens_per_month * self.rewards.uptime
    }
}

/// The operator's settings as a command line or an API request gives them; `None` means
/// "use the catalogue entry's figure". Turned into [`EstimateInputs`] per device by
/// [`inputs_for_profile`], so a single estimate, `--rank` and a portfolio agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorSettings {
    pub kwh_price_usd: f64,
    pub internet_usd_per_month: f64,
    pub internet_share: Option<f64>,
    pub maintenance_usd_per_month: Option<f64>,
    pub uptime: f64,
    pub emission_decay_per_year: f64,
    pub market: Market,
    /// Projection window in months; `None` means each device's lifetime.
    pub months: Option<u32>,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            kwh_price_usd: Defaults::KWH_PRICE_USD,
            internet_usd_per_month: Defaults::INTERNET_USD_PER_MONTH,
            internet_share: None,
            maintenance_usd_per_month: None,
            uptime: Defaults::UPTIME,
            emission_decay_per_year: 0.0,
            market: Market::default(),
            months: None,
        }
    }
}

/// Builds the inputs for `profile` under the operator's settings and the network's rates.
/// `catalogue_price_usd` is the catalogue's price when `profile` carries a user's override.
pub fn inputs_for_profile(
    profile: &crate::DeviceProfile,
    catalogue_price_usd: Option<f64>,
    settings: &OperatorSettings,
    rates: &crate::NetworkRates,
    h3_cell: Option<&str>,
) -> Result<EstimateInputs, EconomicsError> {
    let (tokens_per_month, source) =
        rates.device_tokens_per_month(profile.sector, profile.capacity_units, h3_cell)?;
    let inputs = EstimateInputs {
        hardware: Hardware {
            name: profile.name.clone(),
            sector: profile.sector,
            price_usd: profile.price_usd,
            catalogue_price_usd,
            watts: profile.watts,
            lifetime_months: profile.lifetime_months,
            capacity_units: profile.capacity_units,
            already_owned: false,
            resale_fraction: profile.resale_fraction(),
        },
        costs: OperatorCosts {
            kwh_price_usd: settings.kwh_price_usd,
            internet_usd_per_month: settings.internet_usd_per_month,
            internet_share: settings.internet_share.unwrap_or(profile.internet_share),
            maintenance_usd_per_month: settings
                .maintenance_usd_per_month
                .unwrap_or(profile.maintenance_usd_per_month),
            driving_usd_per_month: profile.driving_usd_per_month,
            tax_rate: 0.0,
        },
        rewards: RewardAssumptions {
            tokens_per_month,
            source,
            uptime: settings.uptime,
            emission_decay_per_year: settings.emission_decay_per_year,
            halving: None,
        },
        market: settings.market.clone(),
        months: settings.months.unwrap_or(profile.lifetime_months),
        rental: None,
        storage: None,
        placement: None,
    };
    inputs.validate()?;
    Ok(inputs)
}

/// Placement for a coverage or sensor device. In a known cell (`h3_cell`, from a live
/// network) the cell's rate already says where it stands: no draw, but a cell at the
/// device class's capacity pays a newcomer nothing (it ranks last by seniority). Otherwise
/// each path draws a site: a full cell with the catalogue's probability (built-in rates
/// only: a live network's p10 already counts its devices that earn nothing), elsewhere
/// the spread of the network's per-device earnings (p10/p50 and p90/p50; built in,
/// [`crate::rates::BUILTIN_SPREAD`]).
fn place(
    inputs: &mut EstimateInputs,
    profile: &crate::DeviceProfile,
    rates: &crate::NetworkRates,
    h3_cell: Option<&str>,
) -> Result<(), EconomicsError> {
    let capacity = profile.placement.as_ref().and_then(|p| p.cell_capacity);
    if let Some(cell) = h3_cell {
        let n = rates
            .cells
            .iter()
            .find(|c| c.h3 == cell && c.sector == profile.sector)
            .map(|c| c.devices);
        if let (Some(n), Some(cap)) = (n, capacity)
            && n >= cap
        {
            inputs.rewards.tokens_per_month = 0.0;
            inputs.rewards.source = format!(
                "cell {cell} already has {n} {} devices, at its capacity of {cap}: a newcomer ranks last and earns nothing (cell capacity reached)",
                profile.sector
            );
        }
        return Ok(());
    }
    let Some(s) = rates.sectors.get(&profile.sector) else {
        return Ok(());
    };
    let p50 = s.tokens_per_device_month_p50;
    if p50 <= 0.0 {
        return Ok(());
    }
    let builtin = rates.policy_id == crate::rates::BUILTIN_POLICY_ID;
    let full = match &profile.placement {
        Some(p) if builtin => p.full_cell_probability,
        _ => 0.0,
    };
    let placement = Placement {
        full_cell_probability: full,
        spread_p10: (s.tokens_per_device_month_p10 / p50).min(1.0),
        spread_p90: (s.tokens_per_device_month_p90 / p50).max(1.0),
        note: profile
            .placement
            .as_ref()
            .map(|p| p.note.clone())
            .unwrap_or_default(),
    };
    placement.validate()?;
    inputs.placement = Some(placement);
    Ok(())
}

/// What `depin estimate` adds to an operator's settings for one device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EstimateOptions {
    /// A rented device's utilisation on every path (`--utilisation`); `None`: the
    /// catalogue's range.
    pub utilisation: Option<f64>,
    /// The month the estimate's month 1 is in: places the catalogue's halving dates.
    pub start: Option<YearMonth>,
    /// Apply the catalogue's scheduled halvings (with the built-in rates; a live
    /// network's rates carry its own schedule).
    pub catalogue_halvings: bool,
    /// Use the catalogue's yearly emission decay instead of the settings' (when the
    /// operator gave none).
    pub catalogue_decay: bool,
    /// Income tax rate on monthly profit (`--tax-rate`), 0 when `None`.
    pub tax_rate: Option<f64>,
}

/// What `depin estimate` uses: [`inputs_for_profile`], and for a profile with a rental
/// market (compute) revenue from rented hours at the profile's USD rate, at `utilisation`
/// on every path when given, else over the catalogue's utilisation range.
///
/// With the built-in rates the compute sector's token rate was only a stand-in for rental
/// income, so it is dropped (no double counting); a network's own compute rate is real
/// and is kept on top. (The live operator view keeps using [`inputs_for_profile`] with the
/// device's observed token rate.)
pub fn inputs_for_estimate(
    profile: &crate::DeviceProfile,
    catalogue_price_usd: Option<f64>,
    settings: &OperatorSettings,
    rates: &crate::NetworkRates,
    h3_cell: Option<&str>,
    options: &EstimateOptions,
) -> Result<EstimateInputs, EconomicsError> {
    let mut inputs = inputs_for_profile(profile, catalogue_price_usd, settings, rates, h3_cell)?;
    let builtin = rates.policy_id == crate::rates::BUILTIN_POLICY_ID;
    let utilisation = options.utilisation;
    inputs.costs.tax_rate = options.tax_rate.unwrap_or(0.0);
    if matches!(profile.sector, Sector::Wireless | Sector::Sensor) {
        place(&mut inputs, profile, rates, h3_cell)?;
    }
    if builtin && let Some(e) = &profile.emission {
        if options.catalogue_decay
            && let Some(d) = e.decay_per_year
        {
            inputs.rewards.emission_decay_per_year = d;
        }
        if options.catalogue_halvings && e.next_halving.is_some() {
            let start = options.start.ok_or_else(|| {
                invalid(
                    "start",
                    "the month the estimate starts in is needed to place the halving schedule",
                )
            })?;
            inputs.rewards.halving = e.halving_from(start);
        }
    }
    if let Some(s) = &profile.storage {
        if utilisation.is_some() {
            return Err(invalid(
                "utilisation",
                format!(
                    "{} is a storage node: it is paid on the data it holds, not on rented hours",
                    profile.name
                ),
            ));
        }
        if builtin {
            inputs.rewards.tokens_per_month = 0.0;
            inputs.rewards.source = format!("{}; no token rewards assumed", s.describe());
        } else {
            inputs.rewards.source = format!(
                "{}, plus the network's rate: {}",
                s.describe(),
                inputs.rewards.source
            );
        }
        inputs.storage = Some(s.clone());
        inputs.validate()?;
        return Ok(inputs);
    }
    let Some(r) = &profile.rental else {
        if utilisation.is_some() {
            return Err(invalid(
                "utilisation",
                format!(
                    "{} is a {} device without a rental market; utilisation applies to compute devices rented by the hour",
                    profile.name, profile.sector
                ),
            ));
        }
        return Ok(inputs);
    };
    let rental = Rental::from_profile(r, utilisation);
    let how = match utilisation {
        Some(u) => format!("{:.0}% of hours", u * 100.0),
        None => format!(
            "{:.0}–{:.0}% of hours (p10–p90, p50 {:.0}%)",
            rental.utilisation_p10 * 100.0,
            rental.utilisation_p90 * 100.0,
            rental.utilisation_p50 * 100.0
        ),
    };
    if builtin {
        inputs.rewards.tokens_per_month = 0.0;
        inputs.rewards.source = format!(
            "rented at USD {}/h for {how}; no token rewards assumed",
            rental.usd_per_hour
        );
    } else {
        inputs.rewards.source = format!(
            "rented at USD {}/h for {how}, plus the network's rate: {}",
            rental.usd_per_hour, inputs.rewards.source
        );
    }
    inputs.rental = Some(rental);
    inputs.validate()?;
    Ok(inputs)
}
