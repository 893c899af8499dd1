//! What a device earns per month at today's rates.
//!
//! A running network serves [`NetworkRates`] at `GET /v1/economics/rates`; the coordinator
//! builds it with [`rates_from_rewards`] from the per-device rewards of recent closed
//! epochs. Without a network, [`NetworkRates::builtin`] gives defaults.
//!
//! A device's rate is the sector's median device rate scaled by its capacity:
//! `tokens_per_device_month_p50 × capacity_units / median_device_capacity_units`. Where
//! location matters (wireless, sensor) a per-H3-cell median replaces the sector median,
//! scaled by `n / (n + 1)` for a cell that already has `n` devices, because a new device
//! splits the cell's rewards with them (the "marginal operator" effect).

use crate::{EconomicsError, SECONDS_PER_MONTH, invalid};
use depin_core::{Amount, BASE_UNITS_PER_TOKEN, Sector};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Reward rates of a network, as served by `GET /v1/economics/rates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRates {
    /// The reward policy the rates were observed under (or "builtin-defaults").
    pub policy_id: String,
    pub epoch_seconds: u64,
    /// How many closed epochs the rates are averaged over (0 for built-in defaults).
    /// Only epochs that really closed count: a network younger than the window asked
    /// for reports fewer.
    #[serde(default)]
    pub window_epochs: u64,
    /// The network's token price if it has an oracle; `--token-price` overrides it.
    #[serde(default)]
    pub token_price_usd: Option<f64>,
    /// Yearly decay of the emission schedule (0.1 = 10% less each year), if known.
    #[serde(default)]
    pub emission_decay_per_year: Option<f64>,
    /// Per sector, keyed by the sector's name (`storage`, `compute`, …).
    pub sectors: BTreeMap<Sector, SectorRates>,
    /// Per H3 cell and sector, for sectors where location matters.
    #[serde(default)]
    pub cells: Vec<CellRates>,
}

/// The distribution of per-device earnings in one sector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SectorRates {
    pub devices: u64,
    pub tokens_per_device_month_p10: f64,
    pub tokens_per_device_month_p50: f64,
    pub tokens_per_device_month_p90: f64,
    /// Capacity of the median device in `capacity_unit`; when the network does not know
    /// device capacities this is `None` and the built-in median is assumed.
    #[serde(default)]
    pub median_device_capacity_units: Option<f64>,
    #[serde(default)]
    pub capacity_unit: Option<String>,
}

/// The median per-device earnings in one H3 cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRates {
    pub h3: String,
    pub sector: Sector,
    pub devices: u64,
    pub tokens_per_device_month: f64,
}

/// One device's rewards over the observation window, input to [`rates_from_rewards`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceWindowReward {
    pub sector: Sector,
    /// Total rewards over the whole window in base units (zero counts: it is honest).
    pub base_units: Amount,
    /// The device's asserted H3 cell, where its sector is location-based.
    pub h3_cell: Option<String>,
}

impl From<(Sector, Amount)> for DeviceWindowReward {
    fn from((sector, base_units): (Sector, Amount)) -> Self {
        DeviceWindowReward {
            sector,
            base_units,
            h3_cell: None,
        }
    }
}

/// Built-in default rates, tokens per capacity unit per month, with the median device's
/// capacity and where the figure comes from. At the default token price of USD 0.50 each
/// sector pays what its real-world anchor paid operators when the research was gathered
/// (`docs/economics.md`, research files dated 2026-12):
/// - wireless: USD 1.65 a month for an indoor LoRaWAN hotspot (Helium IoT, 0.03–0.10
///   HNT/day; depinprojects.net guide);
/// - sensor: USD 3.00 a month for a weather station (WeatherXM D1: about 77 WXM a month,
///   depinly.io methodology, at WXM's USD 0.039 of January 2026, dev.to/jaden_011);
/// - storage and compute: used only with a live network's policy; with the built-in rates
///   their income is the USD rental or storage market of their catalogue entry, so these
///   two are ASSUMPTIONS kept for custom hardware without one (USD 1.20 per TB offered,
///   USD 100 a month per 4090-class GPU).
pub const BUILTIN_SECTOR_DEFAULTS: [(Sector, f64, f64, &str, &str); 4] = [
    // (sector, tokens per capacity unit per month, median device capacity, unit, source)
    (
        Sector::Storage,
        2.4,
        8.0,
        "tb",
        "ASSUMPTION: USD 1.20 per TB offered a month",
    ),
    (
        Sector::Compute,
        200.0,
        0.5,
        "gpu",
        "ASSUMPTION: USD 100 a month per 4090-class GPU",
    ),
    (
        Sector::Wireless,
        3.3,
        1.0,
        "coverage",
        "USD 1.65/month for an indoor Helium IoT hotspot, depinprojects.net, gathered 2026-12",
    ),
    (
        Sector::Sensor,
        6.0,
        1.0,
        "data",
        "USD 3.00/month for a WeatherXM D1 station: 77 WXM (depinly.io) at USD 0.039 (2026-01)",
    ),
];

/// Ratio p10/p50 and p90/p50 of per-device earnings for the built-in defaults: placement,
/// uptime and quality spread operators widely (assumption). `depin estimate` draws a
/// coverage or sensor device's site from this spread (see [`crate::model::Placement`]).
pub const BUILTIN_SPREAD: (f64, f64) = (0.3, 2.0);

/// The `policy_id` of [`NetworkRates::builtin`].
pub const BUILTIN_POLICY_ID: &str = "builtin-defaults";

impl NetworkRates {
    /// Rates to use when no network is given.
    pub fn builtin() -> NetworkRates {
        let sectors = BUILTIN_SECTOR_DEFAULTS
            .iter()
            .map(|&(s, per_unit, median_cap, unit, _)| {
                let p50 = per_unit * median_cap;
                (
                    s,
                    SectorRates {
                        devices: 0,
                        tokens_per_device_month_p10: p50 * BUILTIN_SPREAD.0,
                        tokens_per_device_month_p50: p50,
                        tokens_per_device_month_p90: p50 * BUILTIN_SPREAD.1,
                        median_device_capacity_units: Some(median_cap),
                        capacity_unit: Some(unit.to_string()),
                    },
                )
            })
            .collect();
        NetworkRates {
            policy_id: BUILTIN_POLICY_ID.into(),
            epoch_seconds: 86_400,
            window_epochs: 0,
            token_price_usd: None,
            emission_decay_per_year: None,
            sectors,
            cells: Vec::new(),
        }
    }

    /// Tokens per month a device of `capacity_units` earns today at full uptime, and a
    /// sentence saying where the figure comes from.
    pub fn device_tokens_per_month(
        &self,
        sector: Sector,
        capacity_units: f64,
        h3_cell: Option<&str>,
    ) -> Result<(f64, String), EconomicsError> {
        let s = self.sectors.get(&sector).ok_or_else(|| {
            invalid(
                "sector",
                format!("the network reports no rates for sector {sector}"),
            )
        })?;
        let median_cap = s
            .median_device_capacity_units
            .or_else(|| {
                BUILTIN_SECTOR_DEFAULTS
                    .iter()
                    .find(|d| d.0 == sector)
                    .map(|d| d.2)
            })
            .filter(|c| *c > 0.0)
            .unwrap_or(1.0);
        let scale = capacity_units / median_cap;
        let unit = s.capacity_unit.as_deref().unwrap_or("unit");
        if let Some(cell) = h3_cell {
            let c = self
                .cells
                .iter()
                .find(|c| c.h3 == cell && c.sector == sector)
                .ok_or_else(|| {
                    invalid(
                        "h3_cell",
                        format!("the network reports no {sector} rates for cell {cell}"),
                    )
                })?;
            let n = c.devices as f64;
            let marginal = if c.devices == 0 { 1.0 } else { n / (n + 1.0) };
            let t = c.tokens_per_device_month * scale * marginal;
            let note = format!(
                "cell {cell}: median {:.3} tokens/device-month among {} devices, × {capacity_units} {unit} / median {median_cap} {unit}, × {marginal:.3} for sharing the cell",
                c.tokens_per_device_month, c.devices
            );
            return Ok((t, note));
        }
        let t = s.tokens_per_device_month_p50 * scale;
        let note = format!(
            "{sector} median {:.3} tokens/device-month ({}), × {capacity_units} {unit} / median {median_cap} {unit}",
            s.tokens_per_device_month_p50,
            if self.window_epochs == 0 {
                let source = BUILTIN_SECTOR_DEFAULTS
                    .iter()
                    .find(|d| d.0 == sector)
                    .map_or("", |d| d.4);
                format!("built-in default: {source}")
            } else {
                format!("policy {}, {}", self.policy_id, self.basis(sector))
            }
        );
        Ok((t, note))
    }
}

/// Live rates are refused below these: extrapolating so little to months multiplies any
/// accident of the window (one device missing a heartbeat, a test network with 60 s
/// epochs minting a day's emission every minute) by thousands. A 4-device network with
/// 60 s epochs once gave "ROI at 12 months 5067832 %".
///
/// Fewer than 3 closed epochs: one epoch's noise decides the figure.
pub const MIN_LIVE_EPOCHS: u64 = 3;
/// Less than a day of data: no daily cycle (night-time usage, a home line's evening
/// congestion, a sensor's day/night readings) is in it, and one month is 730 windows.
pub const MIN_LIVE_HOURS: f64 = 24.0;
/// Fewer than 3 devices in the sector: the "median device" is one operator's device.
pub const MIN_LIVE_DEVICES: u64 = 3;

/// Live rates are used with a warning below these.
///
/// Fewer than 24 epochs: per-epoch noise still moves the average by several percent.
pub const WARN_LIVE_EPOCHS: u64 = 24;
/// Less than a week: weekday/weekend usage differs, and a week is the shortest window
/// that repeats.
pub const WARN_LIVE_HOURS: f64 = 24.0 * 7.0;
/// Fewer than 10 devices: the nearest-rank p10 and p90 are the extreme devices.
pub const WARN_LIVE_DEVICES: u64 = 10;

/// Whether a running network's rates carry enough data to extrapolate to months, and
/// what they are based on; from [`NetworkRates::check_live`].
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRatesCheck {
    /// One sentence per sector: epochs, epoch length, hours, devices.
    pub basis: Vec<String>,
    /// Why the rates are too thin to use (empty when they may be used).
    pub refusals: Vec<String>,
    /// Why the rates are thin but usable.
    pub warnings: Vec<crate::Warning>,
}

impl NetworkRates {
    /// Hours of network time the rates are averaged over.
    pub fn window_hours(&self) -> f64 {
        self.window_epochs as f64 * self.epoch_seconds as f64 / 3600.0
    }

    /// What the rates of `sector` rest on, in words.
    pub fn basis(&self, sector: Sector) -> String {
        let devices = self.sectors.get(&sector).map_or(0, |s| s.devices);
        format!(
            "{} closed epochs of {} s ({:.1} h of data), {} {sector} device{}",
            self.window_epochs,
            self.epoch_seconds,
            self.window_hours(),
            devices,
            if devices == 1 { "" } else { "s" }
        )
    }

    /// Checks a running network's rates for `sectors` against the `MIN_LIVE_*` and
    /// `WARN_LIVE_*` thresholds.
    pub fn check_live(&self, sectors: &[Sector]) -> LiveRatesCheck {
        let hours = self.window_hours();
        let mut refusals = Vec::new();
        let mut warnings = Vec::new();
        if self.window_epochs < MIN_LIVE_EPOCHS {
            refusals.push(format!(
                "only {} closed epoch{} (at least {MIN_LIVE_EPOCHS} are needed)",
                self.window_epochs,
                if self.window_epochs == 1 { "" } else { "s" }
            ));
        } else if self.window_epochs < WARN_LIVE_EPOCHS {
            warnings.push(crate::Warning {
                code: "live_rates_few_epochs".into(),
                message: format!(
                    "the network's rates average only {} closed epochs (fewer than {WARN_LIVE_EPOCHS}): one epoch's noise moves them",
                    self.window_epochs
                ),
            });
        }
        if hours < MIN_LIVE_HOURS {
            refusals.push(format!(
                "only {hours:.2} hours of data ({} epochs of {} s; at least {MIN_LIVE_HOURS} h are needed to extrapolate to months)",
                self.window_epochs, self.epoch_seconds
            ));
        } else if hours < WARN_LIVE_HOURS {
            warnings.push(crate::Warning {
                code: "live_rates_short_window".into(),
                message: format!(
                    "the network's rates cover {hours:.1} hours, less than a week ({WARN_LIVE_HOURS} h): weekly patterns are not in them"
                ),
            });
        }
        let mut basis = Vec::new();
        for &s in sectors {
            basis.push(self.basis(s));
            let n = self.sectors.get(&s).map_or(0, |r| r.devices);
            if n < MIN_LIVE_DEVICES {
                refusals.push(format!(
                    "only {n} {s} device{} earned in the window (at least {MIN_LIVE_DEVICES} are needed for a median)",
                    if n == 1 { "" } else { "s" }
                ));
            } else if n < WARN_LIVE_DEVICES {
                warnings.push(crate::Warning {
                    code: "live_rates_few_devices".into(),
                    message: format!(
                        "only {n} {s} devices earned in the window (fewer than {WARN_LIVE_DEVICES}): p10 and p90 are single devices"
                    ),
                });
            }
        }
        LiveRatesCheck {
            basis,
            refusals,
            warnings,
        }
    }
}

/// Derives the rates endpoint's body from per-device rewards over the last
/// `window_epochs` closed epochs of `epoch_seconds` each. Devices are the ones that were
/// registered for the whole window (a device that earned nothing must still be passed in,
/// with zero, or the rates flatter the network). Percentiles are nearest-rank; output
/// order is deterministic (sectors and cells sorted).
pub fn rates_from_rewards(
    policy_id: &str,
    epoch_seconds: u64,
    window_epochs: u64,
    rewards: &[DeviceWindowReward],
    token_price_usd: Option<f64>,
) -> Result<NetworkRates, EconomicsError> {
    if epoch_seconds == 0 {
        return Err(invalid("epoch_seconds", "must be > 0"));
    }
    if window_epochs == 0 {
        return Err(invalid("window_epochs", "must be > 0"));
    }
    let window_months = (epoch_seconds as f64 * window_epochs as f64) / SECONDS_PER_MONTH;
    let per_month = |base: Amount| base as f64 / BASE_UNITS_PER_TOKEN as f64 / window_months;

    let mut by_sector: BTreeMap<Sector, Vec<f64>> = BTreeMap::new();
    let mut by_cell: BTreeMap<(String, Sector), Vec<f64>> = BTreeMap::new();
    for r in rewards {
        let m = per_month(r.base_units);
        by_sector.entry(r.sector).or_default().push(m);
        if let Some(cell) = &r.h3_cell {
            by_cell.entry((cell.clone(), r.sector)).or_default().push(m);
        }
    }
    let sectors = by_sector
        .into_iter()
        .map(|(s, mut v)| {
            v.sort_by(f64::total_cmp);
            let default = BUILTIN_SECTOR_DEFAULTS.iter().find(|d| d.0 == s);
            (
                s,
                SectorRates {
                    devices: v.len() as u64,
                    tokens_per_device_month_p10: nearest_rank(&v, 0.1),
                    tokens_per_device_month_p50: nearest_rank(&v, 0.5),
                    tokens_per_device_month_p90: nearest_rank(&v, 0.9),
                    median_device_capacity_units: None,
                    capacity_unit: default.map(|d| d.3.to_string()),
                },
            )
        })
        .collect();
    let cells = by_cell
        .into_iter()
        .map(|((h3, sector), mut v)| {
            v.sort_by(f64::total_cmp);
            CellRates {
                h3,
                sector,
                devices: v.len() as u64,
                tokens_per_device_month: nearest_rank(&v, 0.5),
            }
        })
        .collect();
    Ok(NetworkRates {
        policy_id: policy_id.to_string(),
        epoch_seconds,
        window_epochs,
        token_price_usd,
        emission_decay_per_year: None,
        sectors,
        cells,
    })
}

/// Nearest-rank percentile of sorted, non-empty data: index round(q·(n−1)).
pub(crate) fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_rewards_converts_window_to_months() {
        // 30 daily epochs = 2,592,000 s = 0.98563 of an average month.
        let tokens = |t: u64| t * BASE_UNITS_PER_TOKEN;
        let rewards: Vec<DeviceWindowReward> = [
            (Sector::Storage, tokens(10)),
            (Sector::Storage, tokens(20)),
            (Sector::Storage, tokens(30)),
            (Sector::Wireless, 0),
        ]
        .into_iter()
        .map(Into::into)
        .collect();
        let r = rates_from_rewards("p1", 86_400, 30, &rewards, Some(0.4)).unwrap();
        let s = &r.sectors[&Sector::Storage];
        assert_eq!(s.devices, 3);
        let expect = 20.0 * SECONDS_PER_MONTH / 2_592_000.0;
        assert!((s.tokens_per_device_month_p50 - expect).abs() < 1e-9);
        assert_eq!(
            r.sectors[&Sector::Wireless].tokens_per_device_month_p50,
            0.0
        );
        assert!(!r.sectors.contains_key(&Sector::Compute));
        // The JSON shape the endpoint serves: sectors keyed by name.
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["sectors"]["storage"]["tokens_per_device_month_p50"].is_number());
        assert_eq!(json["token_price_usd"], 0.4);
        let back: NetworkRates = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn cells_get_medians_and_the_marginal_operator_discount() {
        let mut rewards = Vec::new();
        for (cell, t) in [
            ("8a2a1072b59ffff", 4),
            ("8a2a1072b59ffff", 6),
            ("8a2a1072b59ffff", 8),
            ("8a2a10700000fff", 1),
        ] {
            rewards.push(DeviceWindowReward {
                sector: Sector::Wireless,
                base_units: t * BASE_UNITS_PER_TOKEN,
                h3_cell: Some(cell.into()),
            });
        }
        let secs = SECONDS_PER_MONTH as u64; // one epoch of one month
        let r = rates_from_rewards("p", secs, 1, &rewards, None).unwrap();
        assert_eq!(r.cells.len(), 2);
        let c = r.cells.iter().find(|c| c.h3 == "8a2a1072b59ffff").unwrap();
        assert_eq!(c.devices, 3);
        assert!((c.tokens_per_device_month - 6.0).abs() < 1e-6);
        // A median-capacity device entering the 3-device cell gets 6 × 3/4.
        let (t, note) = r
            .device_tokens_per_month(Sector::Wireless, 1.0, Some("8a2a1072b59ffff"))
            .unwrap();
        assert!((t - 4.5).abs() < 1e-6, "{t}");
        assert!(note.contains("sharing the cell"));
        assert!(
            r.device_tokens_per_month(Sector::Wireless, 1.0, Some("nowhere"))
                .is_err()
        );
    }

    fn live(epochs: u64, epoch_seconds: u64, devices: u64) -> NetworkRates {
        let rewards: Vec<DeviceWindowReward> = (0..devices)
            .map(|i| (Sector::Storage, (i + 1) * BASE_UNITS_PER_TOKEN).into())
            .collect();
        rates_from_rewards("p", epoch_seconds, epochs, &rewards, None).unwrap()
    }

    #[test]
    fn live_rates_are_refused_or_warned_at_the_thresholds() {
        // The motivating network: 4 devices, 60 s epochs, 24 epochs = 0.4 h.
        let c = live(24, 60, 4).check_live(&[Sector::Storage]);
        assert_eq!(c.refusals.len(), 1, "{c:?}");
        assert!(c.refusals[0].contains("0.40 hours of data"), "{c:?}");
        assert_eq!(
            c.basis,
            ["24 closed epochs of 60 s (0.4 h of data), 4 storage devices"]
        );
        let codes = |c: &LiveRatesCheck| {
            c.warnings
                .iter()
                .map(|w| w.code.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(&c), ["live_rates_few_devices"]);
        // Exactly at each floor: used, with warnings; one below: refused.
        let c = live(MIN_LIVE_EPOCHS, 8 * 3600, MIN_LIVE_DEVICES).check_live(&[Sector::Storage]);
        assert!(c.refusals.is_empty(), "{c:?}");
        assert_eq!(
            codes(&c),
            [
                "live_rates_few_epochs",
                "live_rates_short_window",
                "live_rates_few_devices"
            ]
        );
        let c = live(MIN_LIVE_EPOCHS - 1, 86_400, 3).check_live(&[Sector::Storage]);
        assert!(c.refusals[0].starts_with("only 2 closed epochs"), "{c:?}");
        let c = live(24, 3599, 3).check_live(&[Sector::Storage]);
        assert!(c.refusals[0].contains("23.99 hours"), "{c:?}");
        let c = live(24, 3600, 2).check_live(&[Sector::Storage]);
        assert_eq!(
            c.refusals,
            ["only 2 storage devices earned in the window (at least 3 are needed for a median)"]
        );
        // A sector without devices is refused by name; a week of 24+ epochs and 10
        // devices is clean.
        let c = live(168, 3600, 10).check_live(&[Sector::Storage, Sector::Compute]);
        assert_eq!(
            c.refusals,
            ["only 0 compute devices earned in the window (at least 3 are needed for a median)"]
        );
        assert!(c.warnings.is_empty(), "{c:?}");
        let c = live(u64::MAX / 86_400, 86_400, u64::from(u8::MAX)).check_live(&[Sector::Storage]);
        assert!(c.refusals.is_empty() && c.warnings.is_empty(), "{c:?}");
        // The rate's note says what it rests on.
        let (_, note) = live(168, 3600, 10)
            .device_tokens_per_month(Sector::Storage, 8.0, None)
            .unwrap();
        assert!(
            note.contains(
                "policy p, 168 closed epochs of 3600 s (168.0 h of data), 10 storage devices"
            ),
            "{note}"
        );
    }

    #[test]
    fn builtin_rates_scale_with_capacity() {
        let r = NetworkRates::builtin();
        let (t, _) = r
            .device_tokens_per_month(Sector::Storage, 4.0, None)
            .unwrap();
        assert!((t - 9.6).abs() < 1e-9);
        let (t, _) = r
            .device_tokens_per_month(Sector::Compute, 1.0, None)
            .unwrap();
        assert!((t - 200.0).abs() < 1e-9);
        assert!(rates_from_rewards("p", 0, 1, &[], None).is_err());
    }
}
