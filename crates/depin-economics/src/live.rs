//! The live operator view (`GET /v1/operators/{operator}/economics`),
//! assembled from what the coordinator recorded.
//!
//! The server only loads: the operator's settings, its devices, each device's
//! per-epoch earnings and integrated energy. Everything else — which catalogue
//! profile costs a device, costs so far, net, payback progress, the projection
//! from the observed rate and the totals — is this pure function of those
//! facts, so it is tested without a server and the HTTP handler stays a thin
//! shell. The projection's Monte Carlo is seeded (seed 1), so the same facts
//! always give the same answer.

use crate::operator::{
    self as rules, CostBasis, EnergyAccumulator, OperatorCostSettings, SoFar, Usage,
};
use crate::report::Warning;
use crate::{
    Catalogue, DeviceProfile, Market, NetworkRates, Observed, OperatorSettings, OptSpread,
    Simulation, Spread,
};
use depin_core::PublicKey;
use serde::Serialize;

/// Monte Carlo paths per device projection: a quarter of `depin estimate`'s
/// default keeps an operator with dozens of devices answered in well under a
/// second; p10/p50/p90 move by a few percent at most.
pub const PROJECTION_PATHS: u32 = 500;

/// What the network recorded for one device.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    pub device: PublicKey,
    /// The sector's name, `None` for a code this build does not know.
    pub sector: Option<&'static str>,
    pub hardware_class: String,
    pub registered_ms: i64,
    pub revoked_ms: Option<i64>,
    /// Reward + net usage fees of each closed epoch that paid the device,
    /// oldest first, base units.
    pub earned_per_epoch: Vec<u64>,
    /// Energy integrated from its heartbeats up to now.
    pub energy: EnergyAccumulator,
}

/// The network-wide figures the view needs besides the devices.
#[derive(Debug, Clone, Copy)]
pub struct Network {
    pub now_ms: i64,
    pub epoch_seconds: u64,
    /// The policy's yearly emission decay, basis points.
    pub yearly_decay_bps: u32,
}

/// Where the settings came from: the operator's own, or the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingsSource {
    Operator,
    Defaults,
}

/// Which catalogue profile costs a device, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileSource {
    /// Named in the operator's settings.
    Settings,
    /// The device's registered hardware class is a catalogue profile.
    HardwareClass,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct OperatorEconomics {
    pub operator: PublicKey,
    pub as_of_ms: i64,
    pub settings_source: SettingsSource,
    pub token_price_usd: f64,
    pub kwh_price_usd: f64,
    pub devices: Vec<DeviceEconomics>,
    pub total: Totals,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceEconomics {
    pub device: PublicKey,
    pub sector: Option<&'static str>,
    pub hardware_class: String,
    pub profile: Option<String>,
    pub profile_source: ProfileSource,
    pub note: Option<String>,
    pub hardware_price_usd: Option<f64>,
    pub lifetime_months: Option<u32>,
    pub registered_ms: i64,
    pub revoked_ms: Option<i64>,
    pub months_active: f64,
    pub earned: Earned,
    pub energy: Energy,
    pub costs_usd: DeviceCosts,
    pub net_operating_usd: Option<f64>,
    pub net_usd: Option<f64>,
    pub payback_progress_pct: Option<f64>,
    pub projection: Option<Projection>,
    pub projection_note: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Earned {
    pub base_units: u64,
    pub tokens: f64,
    pub usd: f64,
    pub epochs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Energy {
    pub kwh: f64,
    pub heartbeats: u64,
    pub covered_ms: u64,
    pub average_power_w: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceCosts {
    pub electricity: f64,
    pub internet: Option<f64>,
    pub maintenance: Option<f64>,
    pub running: Option<f64>,
    pub hardware_depreciation: Option<f64>,
}

/// A device's projection from its observed rate, or why there is none.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Projection {
    Figures(Box<ProjectionFigures>),
    Unavailable { unavailable: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionFigures {
    pub basis: ProjectionBasis,
    pub payback_month: OptSpread,
    pub payback_within_lifetime_probability: f64,
    pub net_profit_usd_per_month: Spread,
    pub net_operating_usd_per_month: Spread,
    pub revenue_usd_per_month: Spread,
    pub cumulative_net_usd_at_end_of_life: Spread,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionBasis {
    pub tokens_per_month: f64,
    pub watts: f64,
    pub token_price_usd: f64,
    pub token_volatility_per_year: f64,
    pub network_growth_per_month: f64,
    pub months_elapsed: u32,
    pub lifetime_months: u32,
    pub paths: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub devices: usize,
    pub devices_with_unknown_costs: usize,
    pub earned_tokens: f64,
    pub earned_usd: f64,
    pub energy_kwh: f64,
    pub costs_usd: TotalCosts,
    pub net_operating_usd: f64,
    pub net_usd: f64,
    pub hardware_price_usd: f64,
    pub payback_progress_pct: Option<f64>,
    pub note: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct TotalCosts {
    pub electricity: f64,
    pub running: f64,
    pub hardware_depreciation: f64,
}

/// Which catalogue profile a device is costed with, and why.
pub fn resolve_profile<'c>(
    catalogue: &'c Catalogue,
    device: &PublicKey,
    hardware_class: &str,
    settings: &OperatorCostSettings,
) -> (Option<&'c DeviceProfile>, ProfileSource) {
    match settings
        .hardware
        .get(&device.to_hex())
        .and_then(|h| h.profile.as_deref())
    {
        Some(name) => (catalogue.find(name), ProfileSource::Settings),
        None => match catalogue.find(hardware_class) {
            Some(p) => (Some(p), ProfileSource::HardwareClass),
            None => (None, ProfileSource::Unknown),
        },
    }
}

/// The whole view for one operator. Runs one seeded Monte Carlo projection
/// per device with an observed rate: CPU work, so an async caller runs it on
/// a blocking thread.
pub fn operator_economics(
    catalogue: &Catalogue,
    operator: PublicKey,
    settings: &OperatorCostSettings,
    settings_source: SettingsSource,
    network: Network,
    devices: &[DeviceFacts],
) -> OperatorEconomics {
    let views: Vec<(DeviceEconomics, SoFar)> = devices
        .iter()
        .map(|d| device_economics(catalogue, settings, network, d))
        .collect();
    let total = totals(&views);
    OperatorEconomics {
        operator,
        as_of_ms: network.now_ms,
        settings_source,
        token_price_usd: settings.token_price_usd,
        kwh_price_usd: settings.kwh_price_usd,
        devices: views.into_iter().map(|(v, _)| v).collect(),
        total,
    }
}

fn device_economics(
    catalogue: &Catalogue,
    settings: &OperatorCostSettings,
    network: Network,
    d: &DeviceFacts,
) -> (DeviceEconomics, SoFar) {
    let earned: u64 = d
        .earned_per_epoch
        .iter()
        .fold(0u64, |a, &v| a.saturating_add(v));
    let (profile, profile_source) =
        resolve_profile(catalogue, &d.device, &d.hardware_class, settings);
    let price = settings
        .hardware
        .get(&d.device.to_hex())
        .and_then(|h| h.price_usd)
        .or(profile.map(|p| p.price_usd));
    let basis = CostBasis {
        kwh_price_usd: settings.kwh_price_usd,
        internet_usd_per_month: settings.internet_usd_per_month,
        internet_share: settings
            .internet_share
            .or(profile.map(|p| p.internet_share)),
        maintenance_usd_per_month: settings
            .maintenance_usd_per_month
            .or(profile.map(|p| p.maintenance_usd_per_month)),
        hardware_price_usd: price,
        lifetime_months: profile.map(|p| p.lifetime_months),
        token_price_usd: settings.token_price_usd,
    };
    let until = d
        .revoked_ms
        .map_or(network.now_ms, |r| r.min(network.now_ms));
    let s = rules::so_far(
        &basis,
        &Usage {
            earned_base_units: earned,
            energy_uj: d.energy.energy_uj,
            active_ms: until - d.registered_ms,
        },
    );
    let note = match (profile_source, profile) {
        (ProfileSource::Unknown, _) => Some(format!(
            "unknown: hardware class {:?} matches no catalogue profile; name one under hardware.{} in the settings for costs, payback and a projection",
            d.hardware_class,
            d.device.to_hex()
        )),
        (_, None) => Some(
            "unknown: the profile named in the settings is no longer in the catalogue".to_string(),
        ),
        _ => None,
    };
    let projection_note = if d.revoked_ms.is_some() {
        Some("device revoked: no projection")
    } else if profile.is_none() {
        Some("unknown hardware: no projection")
    } else if d.earned_per_epoch.is_empty() {
        Some("no closed epoch has paid this device yet: nothing observed to project from")
    } else {
        None
    };
    let projection = match (
        projection_note,
        profile,
        rules::observed_tokens_per_month(&d.earned_per_epoch, network.epoch_seconds),
        s.running_costs_usd,
    ) {
        (None, Some(p), Some(rate), Some(running)) => Some(project(
            catalogue,
            p,
            price,
            &basis,
            settings,
            network,
            rate,
            d,
            Observed {
                months_elapsed: s.months_active.floor() as u32,
                revenue_usd_so_far: s.earned_usd,
                running_costs_usd_so_far: running,
            },
        )),
        _ => None,
    };
    let view = DeviceEconomics {
        device: d.device,
        sector: d.sector,
        hardware_class: d.hardware_class.clone(),
        profile: profile.map(|p| p.name.clone()),
        profile_source,
        note,
        hardware_price_usd: price,
        lifetime_months: profile.map(|p| p.lifetime_months),
        registered_ms: d.registered_ms,
        revoked_ms: d.revoked_ms,
        months_active: s.months_active,
        earned: Earned {
            base_units: earned,
            tokens: s.earned_tokens,
            usd: s.earned_usd,
            epochs: d.earned_per_epoch.len(),
        },
        energy: Energy {
            kwh: s.energy_kwh,
            heartbeats: d.energy.heartbeats,
            covered_ms: d.energy.covered_ms,
            average_power_w: d.energy.average_watts(),
        },
        costs_usd: DeviceCosts {
            electricity: s.electricity_usd,
            internet: s.internet_usd,
            maintenance: s.maintenance_usd,
            running: s.running_costs_usd,
            hardware_depreciation: s.hardware_depreciation_usd,
        },
        net_operating_usd: s.net_operating_usd,
        net_usd: s.net_usd,
        payback_progress_pct: s.payback_progress_pct,
        projection,
        projection_note,
    };
    (view, s)
}

/// The device's future from its observed rate, with its profile's costs (the
/// operator's price if set) and the operator's market figures.
#[allow(clippy::too_many_arguments)]
fn project(
    catalogue: &Catalogue,
    profile: &DeviceProfile,
    price: Option<f64>,
    basis: &CostBasis,
    settings: &OperatorCostSettings,
    network: Network,
    tokens_per_month: f64,
    d: &DeviceFacts,
    observed: Observed,
) -> Projection {
    let mut p = profile.clone();
    p.price_usd = price.unwrap_or(p.price_usd);
    let catalogue_price = catalogue
        .find(&p.name)
        .map(|c| c.price_usd)
        .filter(|c| *c != p.price_usd);
    let decay = (f64::from(network.yearly_decay_bps) / 10_000.0).clamp(0.0, 0.99);
    let operator_settings = OperatorSettings {
        kwh_price_usd: settings.kwh_price_usd,
        internet_usd_per_month: settings.internet_usd_per_month,
        internet_share: basis.internet_share,
        maintenance_usd_per_month: basis.maintenance_usd_per_month,
        // The observed rate already carries the device's uptime.
        uptime: 1.0,
        emission_decay_per_year: decay,
        market: Market {
            token_price_usd: settings.token_price_usd,
            ..Market::default()
        },
        months: None,
    };
    let unavailable = |e: crate::EconomicsError| Projection::Unavailable {
        unavailable: e.to_string(),
    };
    let mut inputs = match crate::inputs_for_profile(
        &p,
        catalogue_price,
        &operator_settings,
        &NetworkRates::builtin(),
        None,
    ) {
        Ok(i) => i,
        Err(e) => return unavailable(e),
    };
    inputs.rewards.tokens_per_month = tokens_per_month;
    inputs.rewards.source = format!(
        "observed over the device's last {} closed epochs",
        d.earned_per_epoch.len()
    );
    if let Some(w) = d.energy.average_watts() {
        inputs.hardware.watts = w;
    }
    match crate::project_from_observed(
        &inputs,
        &observed,
        Simulation {
            seed: 1,
            paths: PROJECTION_PATHS,
        },
    ) {
        Ok(e) => Projection::Figures(Box::new(ProjectionFigures {
            basis: ProjectionBasis {
                tokens_per_month,
                watts: inputs.hardware.watts,
                token_price_usd: inputs.market.token_price_usd,
                token_volatility_per_year: inputs.market.token_volatility_per_year,
                network_growth_per_month: inputs.market.network_growth_per_month,
                months_elapsed: observed.months_elapsed,
                lifetime_months: inputs.hardware.lifetime_months,
                paths: PROJECTION_PATHS,
            },
            payback_month: e.figures.payback_months,
            payback_within_lifetime_probability: e.figures.payback_within_lifetime_probability,
            net_profit_usd_per_month: e.figures.net_profit_usd_per_month,
            net_operating_usd_per_month: e.figures.net_operating_usd_per_month,
            revenue_usd_per_month: e.figures.revenue_usd_per_month,
            cumulative_net_usd_at_end_of_life: e.figures.cumulative_net_usd,
            warnings: e.warnings,
        })),
        Err(e) => unavailable(e),
    }
}

/// Sum of the known values, and how many were unknown.
fn opt_sum(values: impl Iterator<Item = Option<f64>>) -> (f64, usize) {
    values.fold((0.0, 0), |(sum, unknown), v| match v {
        Some(x) => (sum + x, unknown),
        None => (sum, unknown + 1),
    })
}

fn totals(views: &[(DeviceEconomics, SoFar)]) -> Totals {
    let sum = |f: fn(&SoFar) -> f64| views.iter().map(|(_, s)| f(s)).sum::<f64>();
    let (running, running_unknown) = opt_sum(views.iter().map(|(_, s)| s.running_costs_usd));
    let (depreciation, depreciation_unknown) =
        opt_sum(views.iter().map(|(_, s)| s.hardware_depreciation_usd));
    let (net_operating, _) = opt_sum(views.iter().map(|(_, s)| s.net_operating_usd));
    let (net, net_unknown) = opt_sum(views.iter().map(|(_, s)| s.net_usd));
    // Payback progress over the devices whose price and running costs are known.
    let (recovered, priced) = views
        .iter()
        .filter_map(|(v, s)| {
            s.net_operating_usd
                .zip(v.hardware_price_usd.filter(|p| *p > 0.0))
        })
        .fold((0.0, 0.0), |(r, p), (n, price)| (r + n, p + price));
    Totals {
        devices: views.len(),
        devices_with_unknown_costs: running_unknown.max(depreciation_unknown).max(net_unknown),
        earned_tokens: sum(|s| s.earned_tokens),
        earned_usd: sum(|s| s.earned_usd),
        energy_kwh: sum(|s| s.energy_kwh),
        costs_usd: TotalCosts {
            electricity: sum(|s| s.electricity_usd),
            running,
            hardware_depreciation: depreciation,
        },
        net_operating_usd: net_operating,
        net_usd: net,
        hardware_price_usd: priced,
        payback_progress_pct: (priced > 0.0).then(|| recovered / priced * 100.0),
        note: "totals add the devices whose figures are known; see devices_with_unknown_costs. Projections are per device (percentiles do not add); `depin estimate --portfolio` gives a combined spread.",
    }
}
