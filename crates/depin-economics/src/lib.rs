//! Operator economics: what a device earns after every cost, when it pays back, and how
//! wide the spread is.
//!
//! The brief's message to operators is to count electricity, internet, maintenance and
//! hardware; to compare earnings with a realistic payback time; to expect token prices to
//! swing and networks to dilute; and to diversify. This crate turns that into figures:
//!
//! - [`catalogue`]: typical devices per sector (an embedded, editable TOML file of
//!   assumptions) plus the operator's own entries.
//! - [`rates`]: how many tokens a device earns per month today, either from the built-in
//!   defaults or from a running network's `GET /v1/economics/rates` ([`NetworkRates`]),
//!   and [`rates_from_rewards`] which a coordinator uses to serve that endpoint.
//! - [`model`]: the inputs (hardware, operator costs, reward rate, market) and their
//!   validation; every field carries its unit in its name.
//! - [`sim`]: a seeded Monte Carlo over the token price (geometric Brownian motion) and
//!   per-sector network growth, giving p10/p50/p90 for every figure ([`estimate`]).
//! - [`storage`]: storage nodes paid in USD on the data they hold: fill-up, vetting and
//!   the held-back share.
//! - [`earnings`]: a live operator's earnings per month or day, device and sector, as
//!   CSV for a tax tool.
//! - [`portfolio`]: several devices across sectors, and how much spread diversification
//!   removes compared with the same money in one sector.
//! - [`plot`]: the fan chart, tornado chart and payback histogram as one SVG document.
//! - [`report`]: the JSON document and the plain table `depin estimate` prints.
//! - [`live`]: the live operator view a coordinator serves: costs so far, net, payback
//!   progress and a projection per device, assembled from the facts the store recorded.
//!
//! Design decision: the crate is pure. It reads no files, no clock and no network, and its
//! only randomness is a ChaCha stream per simulated path derived from the caller's seed, so
//! an estimate is a function of its inputs and `--seed`. Money here is USD `f64`: these are
//! projections, never ledger amounts (the ledger stays in integer base units).
//!
//! Design decision: common random numbers. The random draws of path `p`, month `t` do not
//! depend on the device, the horizon or any cost, so comparing two inputs with the same
//! seed compares like with like (a higher electricity price lowers net profit on every
//! path), and `--rank` draws the paths once for the whole catalogue.

pub mod catalogue;
pub mod earnings;
pub mod live;
pub mod model;
pub mod operator;
pub mod plot;
pub mod portfolio;
pub mod rates;
pub mod report;
pub mod sim;
pub mod storage;

pub use catalogue::EmissionProfile;
pub use catalogue::{Catalogue, DeviceProfile, RentalProfile};
pub use model::{
    Defaults, EstimateInputs, EstimateOptions, Halving, Hardware, Market, OperatorCosts,
    OperatorSettings, Placement, Rental, RewardAssumptions, Scenario, ScenarioParameters,
    YearMonth, inputs_for_estimate, inputs_for_profile,
};
pub use portfolio::{Holding, PortfolioEstimate, PortfolioFile, estimate_portfolio};
pub use rates::{
    CellRates, DeviceWindowReward, LiveRatesCheck, NetworkRates, SectorRates, rates_from_rewards,
};
pub use report::Warning;
pub use sim::{
    Estimate, Observed, OptSpread, Simulation, Spread, estimate, estimate_many,
    project_from_observed,
};
pub use storage::{StorageMarket, StorageMonth};

/// Hours in an average month (365.25 × 24 / 12). Electricity and rates use it.
pub const HOURS_PER_MONTH: f64 = 730.5;

/// Seconds in an average month, used to turn per-epoch rewards into per-month rates.
pub const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;

/// Upper bound on any projection horizon in months (50 years). Loops are bounded.
pub const MAX_MONTHS: u32 = 600;

/// Upper bound on Monte Carlo paths, so memory stays bounded (paths × months × 5 floats).
pub const MAX_PATHS: u32 = 100_000;

/// Why an estimate could not be made. `field` names the input in this crate's terms
/// (`kwh_price_usd`, `lifetime_months`, …); the CLI maps it to its flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EconomicsError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("unknown device {name:?}{}", suggestion_text(suggestions))]
    UnknownDevice {
        name: String,
        suggestions: Vec<String>,
    },
    #[error("catalogue {origin}: {message}")]
    Catalogue { origin: String, message: String },
    #[error("portfolio: {0}")]
    Portfolio(String),
}

fn suggestion_text(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", s.join(", "))
    }
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> EconomicsError {
    EconomicsError::Invalid {
        field,
        message: message.into(),
    }
}
