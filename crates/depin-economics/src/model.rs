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
}

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
}

/// The token and the network around the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Market {
    pub token_price_usd: f64,
    pub token_volatility_per_year: f64,
    pub token_drift_per_year: f64,
    pub network_growth_per_month: f64,
    pub network_growth_volatility_per_month: f64,
}

impl Default for Market {
    fn default() -> Self {
        Market {
            token_price_usd: Defaults::TOKEN_PRICE_USD,
            token_volatility_per_year: Defaults::TOKEN_VOLATILITY_PER_YEAR,
            token_drift_per_year: Defaults::TOKEN_DRIFT_PER_YEAR,
            network_growth_per_month: Defaults::NETWORK_GROWTH_PER_MONTH,
            network_growth_volatility_per_month: Defaults::NETWORK_GROWTH_VOLATILITY_PER_MONTH,
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
}

pub(crate) fn non_negative(field: &'static str, v: f64) -> Result<(), EconomicsError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(invalid(field, format!("must be a number ≥ 0, got {v}")))
    }
}

fn fraction(field: &'static str, v: f64) -> Result<(), EconomicsError> {
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
        non_negative("capacity_units", h.capacity_units)?;
        if h.lifetime_months == 0 || h.lifetime_months > MAX_MONTHS {
            return Err(invalid(
                "lifetime_months",
                format!("must be 1..={MAX_MONTHS} months, got {}", h.lifetime_months),
            ));
        }
        let c = &self.costs;
        non_negative("kwh_price_usd", c.kwh_price_usd)?;
        non_negative("internet_usd_per_month", c.internet_usd_per_month)?;
        fraction("internet_share", c.internet_share)?;
        non_negative("maintenance_usd_per_month", c.maintenance_usd_per_month)?;
        let r = &self.rewards;
        non_negative("tokens_per_month", r.tokens_per_month)?;
        fraction("uptime", r.uptime)?;
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

    pub fn electricity_kwh_per_month(&self) -> f64 {
        self.hardware.watts * HOURS_PER_MONTH / 1000.0
    }

    pub fn electricity_usd_per_month(&self) -> f64 {
        self.electricity_kwh_per_month() * self.costs.kwh_price_usd
    }

    /// Electricity + internet share + maintenance: what keeps the device running.
    pub fn running_costs_usd_per_month(&self) -> f64 {
        self.electricity_usd_per_month()
            + self.costs.internet_charged_usd_per_month()
            + self.costs.maintenance_usd_per_month
    }

    pub fn depreciation_usd_per_month(&self) -> f64 {
        self.hardware.price_usd / self.hardware.lifetime_months as f64
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
        },
        costs: OperatorCosts {
            kwh_price_usd: settings.kwh_price_usd,
            internet_usd_per_month: settings.internet_usd_per_month,
            internet_share: settings.internet_share.unwrap_or(profile.internet_share),
            maintenance_usd_per_month: settings
                .maintenance_usd_per_month
                .unwrap_or(profile.maintenance_usd_per_month),
        },
        rewards: RewardAssumptions {
            tokens_per_month,
            source,
            uptime: settings.uptime,
            emission_decay_per_year: settings.emission_decay_per_year,
        },
        market: settings.market.clone(),
        months: settings.months.unwrap_or(profile.lifetime_months),
    };
    inputs.validate()?;
    Ok(inputs)
}
