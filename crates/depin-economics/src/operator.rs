//! The live operator view's rules: the operator's signed cost settings, energy
//! integrated from heartbeats, the costs-so-far accounting and the alert rules.
//!
//! Pure like the rest of the crate: the coordinator's HTTP layer reads the
//! store and the clock and passes plain numbers in; everything that decides a
//! figure or an alert is here and unit-tested.
//!
//! Design decision: costs so far are pro-rated by time since registration
//! (internet share, maintenance) or integrated from telemetry (electricity);
//! the hardware is depreciated straight-line over its lifetime. Earnings are
//! what the network's reward sheets paid (reward + net usage fees), valued at
//! the operator's token price; the ledger amounts themselves stay integers.

use crate::{Catalogue, HOURS_PER_MONTH};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

// ------------------------------------------------------------------ settings

/// One device's hardware as the operator describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareSetting {
    /// A catalogue profile name; `null` means "the profile named like the
    /// device's hardware class, if there is one".
    #[serde(default)]
    pub profile: Option<String>,
    /// What the operator paid; `null`/missing means the profile's price.
    #[serde(default)]
    pub price_usd: Option<f64>,
}

/// An operator's cost settings, as `PUT /v1/operators/{operator}/settings`
/// takes them. `internet_share` and `maintenance_usd_per_month` apply to every
/// device when given; when missing each device uses its profile's figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorCostSettings {
    pub kwh_price_usd: f64,
    pub internet_usd_per_month: f64,
    #[serde(default)]
    pub internet_share: Option<f64>,
    #[serde(default)]
    pub maintenance_usd_per_month: Option<f64>,
    pub token_price_usd: f64,
    /// Per device, keyed by the device's 64-character hex key.
    #[serde(default)]
    pub hardware: BTreeMap<String, HardwareSetting>,
}

/// Most per-device entries one settings document may carry (bounds the work a
/// request can cause; far above any home operator's fleet).
pub const MAX_HARDWARE_ENTRIES: usize = 10_000;

/// A settings field that failed validation; `field` is its JSON path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field: field.into(),
        message: message.into(),
    }
}

fn check_non_negative(field: &str, v: f64) -> Result<(), SettingsError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(bad(field, format!("must be a number ≥ 0, got {v}")))
    }
}

impl OperatorCostSettings {
    /// The defaults used for an operator who stored no settings.
    pub fn defaults() -> Self {
        OperatorCostSettings {
            kwh_price_usd: crate::Defaults::KWH_PRICE_USD,
            internet_usd_per_month: crate::Defaults::INTERNET_USD_PER_MONTH,
            internet_share: None,
            maintenance_usd_per_month: None,
            token_price_usd: crate::Defaults::TOKEN_PRICE_USD,
            hardware: BTreeMap::new(),
        }
    }

    /// Checks every figure and that named profiles exist in `catalogue`.
    #[allow(clippy::collapsible_if)] // let chains need Rust 1.88; MSRV is 1.85
    pub fn validate(&self, catalogue: &Catalogue) -> Result<(), SettingsError> {
        check_non_negative("kwh_price_usd", self.kwh_price_usd)?;
        check_non_negative("internet_usd_per_month", self.internet_usd_per_month)?;
        if let Some(s) = self.internet_share {
            if !(s.is_finite() && (0.0..=1.0).contains(&s)) {
                return Err(bad(
                    "internet_share",
                    format!("must be between 0 and 1, got {s}"),
                ));
            }
        }
        if let Some(m) = self.maintenance_usd_per_month {
            check_non_negative("maintenance_usd_per_month", m)?;
        }
        check_non_negative("token_price_usd", self.token_price_usd)?;
        if self.hardware.len() > MAX_HARDWARE_ENTRIES {
            return Err(bad(
                "hardware",
                format!(
                    "at most {MAX_HARDWARE_ENTRIES} devices, got {}",
                    self.hardware.len()
                ),
            ));
        }
        for (device, h) in &self.hardware {
            if device.len() != 64
                || !device
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(bad(
                    format!("hardware.{device}"),
                    "keys must be 64-character lowercase hex device keys",
                ));
            }
            if let Some(p) = h.price_usd {
                check_non_negative(&format!("hardware.{device}.price_usd"), p)?;
            }
            if let Some(name) = &h.profile {
                catalogue
                    .get(name)
                    .map_err(|e| bad(format!("hardware.{device}.profile"), e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// Why a settings document was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsDocumentError {
    /// Not JSON, or JSON that is not a settings object (unknown or missing
    /// fields, wrong types).
    #[error("the settings document is not settings JSON: {0}")]
    Malformed(String),
    /// Settings JSON, but not in its one byte form.
    #[error(
        "the settings document is not in its canonical form (compact serde_json of the settings: \
         fields in declaration order, optional fields as null, numbers as serde_json writes them); \
         expected {expected}"
    )]
    NonCanonical { expected: String },
    /// A figure out of range or an unknown profile; names the field.
    #[error(transparent)]
    Invalid(#[from] SettingsError),
}

impl OperatorCostSettings {
    /// The one byte form of a settings document, the bytes an operator signs:
    /// compact `serde_json`, fields in declaration order (optional ones as
    /// `null`), hardware entries sorted by key, numbers in serde_json's
    /// shortest round-trip form (`40.0`, `0.3`).
    pub fn canonical_json(&self) -> Vec<u8> {
        // Cannot fail: string keys, and the numbers are plain f64 (a
        // non-finite one would be written as null and refused on parsing).
        serde_json::to_vec(self).expect("settings serialize to JSON")
    }

    /// Parses a signed settings document. Accepted only when the bytes are
    /// exactly [`Self::canonical_json`] of what they parse to, so one document
    /// has one byte form (two signed documents meaning the same settings are
    /// the same bytes; nothing the parser ignores — whitespace, key order,
    /// duplicate keys, `1` for `1.0` — can ride along under a signature), and
    /// only when [`Self::validate`] passes.
    pub fn from_canonical_json(
        bytes: &[u8],
        catalogue: &Catalogue,
    ) -> Result<Self, SettingsDocumentError> {
        let s: OperatorCostSettings = serde_json::from_slice(bytes)
            .map_err(|e| SettingsDocumentError::Malformed(e.to_string()))?;
        let canonical = s.canonical_json();
        if canonical != bytes {
            return Err(SettingsDocumentError::NonCanonical {
                expected: String::from_utf8_lossy(&canonical).into_owned(),
            });
        }
        s.validate(catalogue)?;
        Ok(s)
    }
}

/// How far the settings envelope's timestamp may be from the server's clock.
/// Five minutes tolerates an operator's laptop clock; a captured envelope is
/// useless after it (and a replay within it is refused because timestamps
/// must rise).
pub const SETTINGS_MAX_SKEW_MS: i64 = 5 * 60 * 1000;

// ------------------------------------------------------------------- energy

/// A heartbeat gap longer than this many intervals counts only as this many:
/// beyond it the device is `offline` and we do not know what it drew, so the
/// outage is not charged at its last reported power (costs may be
/// under-counted for devices that were powered but silent).
pub const MAX_ENERGY_GAP_INTERVALS: u64 = 3;

/// Energy integrated over a device's heartbeats, in order of sequence number.
/// Each heartbeat's power stands for the time since the previous heartbeat
/// (the first one for one heartbeat interval), capped at
/// [`MAX_ENERGY_GAP_INTERVALS`] intervals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnergyAccumulator {
    pub last_seq: Option<u64>,
    pub last_timestamp_ms: Option<i64>,
    /// Milliwatt-milliseconds (= microjoules): exact integers.
    pub energy_uj: u64,
    pub covered_ms: u64,
    pub heartbeats: u64,
}

impl EnergyAccumulator {
    pub fn add(&mut self, seq: u64, timestamp_ms: i64, power_mw: u32, interval_ms: u64) {
        let cap = interval_ms.saturating_mul(MAX_ENERGY_GAP_INTERVALS);
        let gap = match self.last_timestamp_ms {
            None => interval_ms,
            Some(last) => u64::try_from(timestamp_ms.saturating_sub(last)).unwrap_or(0),
        }
        .min(cap);
        self.energy_uj = self
            .energy_uj
            .saturating_add(u64::from(power_mw).saturating_mul(gap));
        self.covered_ms = self.covered_ms.saturating_add(gap);
        self.heartbeats += 1;
        self.last_seq = Some(seq);
        self.last_timestamp_ms = Some(
            self.last_timestamp_ms
                .map_or(timestamp_ms, |l| l.max(timestamp_ms)),
        );
    }

    pub fn kwh(&self) -> f64 {
        self.energy_uj as f64 / 3.6e12
    }

    /// Average draw over the covered time, in watts.
    pub fn average_watts(&self) -> Option<f64> {
        (self.covered_ms > 0).then(|| self.energy_uj as f64 / self.covered_ms as f64 / 1000.0)
    }
}

// ------------------------------------------------------------------ so far

/// Milliseconds in an average month.
pub const MS_PER_MONTH: f64 = HOURS_PER_MONTH * 3_600_000.0;

/// What a device's costs are computed from. `None` means unknown (the device's
/// hardware matches no catalogue profile and the operator gave no figure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostBasis {
    pub kwh_price_usd: f64,
    pub internet_usd_per_month: f64,
    pub internet_share: Option<f64>,
    pub maintenance_usd_per_month: Option<f64>,
    pub hardware_price_usd: Option<f64>,
    pub lifetime_months: Option<u32>,
    pub token_price_usd: f64,
}

/// What the network recorded for the device.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Reward + net usage fees over every closed epoch, base units.
    pub earned_base_units: u64,
    pub energy_uj: u64,
    /// Time since registration (until revocation for a revoked device).
    pub active_ms: i64,
}

/// Earnings and costs so far. Optional figures are `None` when an input is
/// unknown; totals propagate that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoFar {
    pub months_active: f64,
    pub earned_tokens: f64,
    pub earned_usd: f64,
    pub energy_kwh: f64,
    pub electricity_usd: f64,
    pub internet_usd: Option<f64>,
    pub maintenance_usd: Option<f64>,
    /// Electricity + internet share + maintenance.
    pub running_costs_usd: Option<f64>,
    pub hardware_depreciation_usd: Option<f64>,
    /// Earnings minus running costs: the cash that went towards the hardware.
    pub net_operating_usd: Option<f64>,
    /// Earnings minus running costs minus depreciation.
    pub net_usd: Option<f64>,
    /// Share of the hardware price recovered by `net_operating_usd`, in percent
    /// (negative while running costs exceed earnings); `None` if the price is
    /// unknown or zero.
    pub payback_progress_pct: Option<f64>,
}

pub fn so_far(basis: &CostBasis, usage: &Usage) -> SoFar {
    let months = usage.active_ms.max(0) as f64 / MS_PER_MONTH;
    let earned_tokens = usage.earned_base_units as f64 / depin_core::BASE_UNITS_PER_TOKEN as f64;
    let earned_usd = earned_tokens * basis.token_price_usd;
    let energy_kwh = usage.energy_uj as f64 / 3.6e12;
    let electricity_usd = energy_kwh * basis.kwh_price_usd;
    let internet_usd = basis
        .internet_share
        .map(|s| basis.internet_usd_per_month * s * months);
    let maintenance_usd = basis.maintenance_usd_per_month.map(|m| m * months);
    let running = internet_usd
        .zip(maintenance_usd)
        .map(|(i, m)| electricity_usd + i + m);
    let depreciation = basis
        .hardware_price_usd
        .zip(basis.lifetime_months)
        .map(|(p, life)| p * (months / f64::from(life.max(1))).min(1.0));
    let net_operating = running.map(|r| earned_usd - r);
    let net = net_operating.zip(depreciation).map(|(n, d)| n - d);
    let progress = net_operating
        .zip(basis.hardware_price_usd.filter(|p| *p > 0.0))
        .map(|(n, p)| n / p * 100.0);
    SoFar {
        months_active: months,
        earned_tokens,
        earned_usd,
        energy_kwh,
        electricity_usd,
        internet_usd,
        maintenance_usd,
        running_costs_usd: running,
        hardware_depreciation_usd: depreciation,
        net_operating_usd: net_operating,
        net_usd: net,
        payback_progress_pct: progress,
    }
}

/// Observed tokens per month from per-epoch earnings (base units, oldest
/// first). The first epoch is usually partial (the device registered during
/// it), so it is left out when later ones exist.
pub fn observed_tokens_per_month(per_epoch_base_units: &[u64], epoch_seconds: u64) -> Option<f64> {
    let full = if per_epoch_base_units.len() > 1 {
        &per_epoch_base_units[1..]
    } else {
        per_epoch_base_units
    };
    if full.is_empty() || epoch_seconds == 0 {
        return None;
    }
    let mean = full.iter().map(|&v| v as f64).sum::<f64>() / full.len() as f64;
    Some(
        mean / depin_core::BASE_UNITS_PER_TOKEN as f64
            * (crate::SECONDS_PER_MONTH / epoch_seconds as f64),
    )
}

// ------------------------------------------------------------------- alerts

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One finding about a device: a stable machine code, words for a person, and
/// what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub action: String,
}

pub mod codes {
    pub const OFFLINE: &str = "offline";
    pub const LOW_UPTIME: &str = "low_uptime";
    pub const OVERHEATING: &str = "overheating";
    pub const OUTDATED_FIRMWARE: &str = "outdated_firmware";
    pub const EARNINGS_BELOW_MEDIAN: &str = "earnings_below_median";
    pub const UNKNOWN_HARDWARE: &str = "unknown_hardware";
}

/// No heartbeat for more than this many intervals means offline: one or two
/// missed heartbeats are ordinary network hiccups (the agent retries from its
/// spool), three in a row are not.
pub const OFFLINE_AFTER_INTERVALS: u64 = 3;

/// Uptime below 90% raises `low_uptime`: rewards scale with uptime, so 10% of
/// revenue is already lost, and it is well before the policy's hard gate
/// (`min_uptime_bps`, 50% by default) where the epoch pays nothing — at or
/// below that gate the alert is critical.
pub const LOW_UPTIME_FRACTION: f64 = 0.90;

/// Uptime is judged over the last 36 heartbeat intervals (3 hours at the
/// default 5-minute cadence): long enough that one lost heartbeat costs under
/// 3%, short enough to notice a flapping device the same day.
pub const UPTIME_WINDOW_INTERVALS: u64 = 36;

/// … and only once the device has been registered for 5 intervals, so a
/// device that just came up is not judged on one or two slots.
pub const UPTIME_MIN_SPAN_INTERVALS: u64 = 5;

/// Hardware classes without a catalogue limit are held to 85 °C, the common
/// maximum operating temperature of consumer electronics and GPUs.
pub const DEFAULT_MAX_TEMPERATURE_C: f64 = 85.0;

/// 10 °C above the class's limit the alert is critical: throttling and
/// shortened hardware life are likely.
pub const CRITICAL_TEMPERATURE_MARGIN_C: f64 = 10.0;

/// A device earning under half its sector's median per epoch is "far below":
/// uptime and location differences inside a sector rarely explain a factor of
/// two, so something is wrong with the device or its placement.
pub const EARNINGS_BELOW_MEDIAN_FRACTION: f64 = 0.5;

/// Earnings are compared over the last 24 closed epochs (a day at hourly
/// epochs) …
pub const EARNINGS_WINDOW_EPOCHS: u64 = 24;

/// … once the device has at least 3 reward lines in them (one partial first
/// epoch is no verdict) and its sector has at least 3 devices (a median of one
/// or two says little).
pub const EARNINGS_MIN_EPOCHS: u64 = 3;
pub const EARNINGS_MIN_SECTOR_DEVICES: usize = 3;

fn fmt_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// `offline`: no heartbeat (or none since registration) for more than
/// [`OFFLINE_AFTER_INTERVALS`] intervals.
pub fn offline_alert(
    now_ms: i64,
    last_heartbeat_ms: Option<i64>,
    registered_ms: i64,
    interval_ms: u64,
) -> Option<Alert> {
    let since = last_heartbeat_ms.unwrap_or(registered_ms);
    let silent = now_ms.saturating_sub(since);
    if silent <= (interval_ms.saturating_mul(OFFLINE_AFTER_INTERVALS)) as i64 {
        return None;
    }
    let message = match last_heartbeat_ms {
        Some(_) => format!(
            "no heartbeat for {} (expected one every {})",
            fmt_duration(silent),
            fmt_duration(interval_ms as i64)
        ),
        None => format!(
            "no heartbeat since registration {} ago",
            fmt_duration(silent)
        ),
    };
    Some(Alert {
        code: codes::OFFLINE,
        severity: Severity::Critical,
        message,
        action: "check that the device has power and network and that `depin node run` is running; its spool resends buffered heartbeats once it is back".into(),
    })
}

/// Uptime over a window: heartbeats received / heartbeats expected, with one
/// heartbeat of slack for the slot in progress. `None` when the window is too
/// short to judge.
pub fn uptime_fraction(heartbeats: u64, span_ms: i64, interval_ms: u64) -> Option<f64> {
    if interval_ms == 0 || span_ms < (interval_ms * UPTIME_MIN_SPAN_INTERVALS) as i64 {
        return None;
    }
    let expected = span_ms as f64 / interval_ms as f64;
    Some(((heartbeats + 1) as f64 / expected).min(1.0))
}

/// `low_uptime`: uptime below [`LOW_UPTIME_FRACTION`]; critical at or below
/// the policy's gate (`policy_min_uptime`, a fraction) where rewards stop.
pub fn low_uptime_alert(
    uptime: Option<f64>,
    policy_min_uptime: f64,
    window_ms: i64,
) -> Option<Alert> {
    let u = uptime?;
    if u >= LOW_UPTIME_FRACTION {
        return None;
    }
    let critical = u <= policy_min_uptime;
    Some(Alert {
        code: codes::LOW_UPTIME,
        severity: if critical { Severity::Critical } else { Severity::Warning },
        message: format!(
            "uptime {:.0}% over the last {} (alert below {:.0}%{})",
            u * 100.0,
            fmt_duration(window_ms),
            LOW_UPTIME_FRACTION * 100.0,
            if critical { format!("; below the network's {:.0}% minimum, epochs pay nothing", policy_min_uptime * 100.0) } else { String::new() }
        ),
        action: "look for power or network drops (router, Wi-Fi, power saving, reboots) and keep the agent running as a service".into(),
    })
}

/// `overheating`: the latest temperature above the hardware class's limit
/// (`limit_c`, or [`DEFAULT_MAX_TEMPERATURE_C`] when the class has none).
pub fn temperature_alert(
    temperature_c: f64,
    limit_c: Option<f64>,
    hardware_class: &str,
) -> Option<Alert> {
    let (limit, whose) = match limit_c {
        Some(l) => (l, format!("the {hardware_class} limit")),
        None => (
            DEFAULT_MAX_TEMPERATURE_C,
            "the generic limit (no catalogue limit for this class)".to_string(),
        ),
    };
    if temperature_c <= limit {
        return None;
    }
    Some(Alert {
        code: codes::OVERHEATING,
        severity: if temperature_c >= limit + CRITICAL_TEMPERATURE_MARGIN_C { Severity::Critical } else { Severity::Warning },
        message: format!("temperature {temperature_c:.1} °C is above {whose} of {limit:.0} °C"),
        action: "improve cooling: free the air flow, clean dust filters, move the device out of direct sun or a closed cabinet".into(),
    })
}

/// A semantic version (`MAJOR.MINOR.PATCH[-pre][+build]`, a leading `v`
/// allowed, missing minor/patch read as 0). Build metadata is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    core: [u64; 3],
    pre: Vec<String>,
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let s = s
            .strip_prefix('v')
            .or_else(|| s.strip_prefix('V'))
            .unwrap_or(s);
        let s = s.split('+').next().unwrap_or("");
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let mut n = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n[i] = p.parse().ok()?;
        }
        let pre = match pre {
            None => Vec::new(),
            Some(p) if p.is_empty() || p.split('.').any(str::is_empty) => return None,
            Some(p) => p.split('.').map(str::to_string).collect(),
        };
        Some(Version { core: n, pre })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater, // a release ranks above its pre-releases
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(&other.pre) {
                        let o = match (a.parse::<u64>(), b.parse::<u64>()) {
                            (Ok(x), Ok(y)) => x.cmp(&y),
                            (Ok(_), Err(_)) => Ordering::Less,
                            (Err(_), Ok(_)) => Ordering::Greater,
                            (Err(_), Err(_)) => a.cmp(b),
                        };
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    self.pre.len().cmp(&other.pre.len())
                }
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The highest version among `versions` by semver order; strings that are not
/// versions are ignored.
pub fn newest_version<'a>(versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    versions
        .into_iter()
        .filter_map(|v| Version::parse(v).map(|p| (p, v)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| v)
}

/// Where the newest firmware figure came from, for the alert's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareSource {
    Published,
    SeenOnNetwork,
}

/// `outdated_firmware`: the device runs a lower version than the newest.
/// Versions that do not parse are not judged.
pub fn firmware_alert(current: &str, newest: &str, source: FirmwareSource) -> Option<Alert> {
    let (c, n) = (Version::parse(current)?, Version::parse(newest)?);
    if c >= n {
        return None;
    }
    let whose = match source {
        FirmwareSource::Published => "the newest published version",
        FirmwareSource::SeenOnNetwork => "the newest version running on devices of this class",
    };
    Some(Alert {
        code: codes::OUTDATED_FIRMWARE,
        severity: Severity::Warning,
        message: format!("firmware {current} is older than {newest}, {whose}"),
        action: format!(
            "update the device's firmware to {newest}; check the release notes for fixes first"
        ),
    })
}

/// The median of `values` (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// `earnings_below_median`: the device's average earnings per epoch are below
/// [`EARNINGS_BELOW_MEDIAN_FRACTION`] of its sector's median. `device_lines`
/// is how many reward lines the device has in the window; `sector_per_epoch`
/// holds every sector device's average per epoch (the device included).
pub fn earnings_alert(
    device_per_epoch: f64,
    device_lines: u64,
    sector_per_epoch: &[f64],
    sector: &str,
) -> Option<Alert> {
    if device_lines < EARNINGS_MIN_EPOCHS || sector_per_epoch.len() < EARNINGS_MIN_SECTOR_DEVICES {
        return None;
    }
    let m = median(sector_per_epoch)?;
    if m <= 0.0 || device_per_epoch >= m * EARNINGS_BELOW_MEDIAN_FRACTION {
        return None;
    }
    let unit = depin_core::BASE_UNITS_PER_TOKEN as f64;
    Some(Alert {
        code: codes::EARNINGS_BELOW_MEDIAN,
        severity: Severity::Warning,
        message: format!(
            "earns {:.6} tokens per epoch, {:.0}% of the {sector} sector median of {:.6}",
            device_per_epoch / unit,
            device_per_epoch / m * 100.0,
            m / unit
        ),
        action: "check the device's reward reasons (GET /v1/devices/{device}): uptime, partial epochs and rejected reports explain most gaps".into(),
    })
}

/// `unknown_hardware`: no catalogue profile matches, so costs and the
/// temperature limit are guesses.
pub fn unknown_hardware_alert(hardware_class: &str) -> Alert {
    Alert {
        code: codes::UNKNOWN_HARDWARE,
        severity: Severity::Info,
        message: format!("hardware class {hardware_class:?} is not in the device catalogue: costs, payback and the temperature limit are unknown"),
        action: "name a catalogue profile and the price paid for this device under `hardware` in the operator settings".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OperatorCostSettings {
        OperatorCostSettings {
            kwh_price_usd: 0.3,
            internet_usd_per_month: 40.0,
            internet_share: Some(0.25),
            maintenance_usd_per_month: Some(2.0),
            token_price_usd: 0.5,
            hardware: BTreeMap::from([(
                "ab".repeat(32),
                HardwareSetting {
                    profile: Some("rtx-3060".into()),
                    price_usd: Some(250.0),
                },
            )]),
        }
    }

    #[test]
    fn settings_validation_names_the_field() {
        let cat = Catalogue::builtin();
        settings().validate(&cat).unwrap();
        let field = |s: OperatorCostSettings| s.validate(&cat).unwrap_err().field;
        assert_eq!(
            field(OperatorCostSettings {
                kwh_price_usd: -0.1,
                ..settings()
            }),
            "kwh_price_usd"
        );
        assert_eq!(
            field(OperatorCostSettings {
                internet_usd_per_month: f64::NAN,
                ..settings()
            }),
            "internet_usd_per_month"
        );
        assert_eq!(
            field(OperatorCostSettings {
                internet_share: Some(1.5),
                ..settings()
            }),
            "internet_share"
        );
        assert_eq!(
            field(OperatorCostSettings {
                maintenance_usd_per_month: Some(-1.0),
                ..settings()
            }),
            "maintenance_usd_per_month"
        );
        assert_eq!(
            field(OperatorCostSettings {
                token_price_usd: -2.0,
                ..settings()
            }),
            "token_price_usd"
        );
        let mut s = settings();
        s.hardware.values_mut().next().unwrap().price_usd = Some(-5.0);
        assert_eq!(field(s), format!("hardware.{}.price_usd", "ab".repeat(32)));
        let mut s = settings();
        s.hardware.values_mut().next().unwrap().profile = Some("rtx-30600".into());
        assert_eq!(field(s), format!("hardware.{}.profile", "ab".repeat(32)));
        let mut s = settings();
        s.hardware.insert(
            "xyz".into(),
            HardwareSetting {
                profile: None,
                price_usd: None,
            },
        );
        assert_eq!(field(s), "hardware.xyz");
        // Unknown fields are refused by the parser.
        assert!(
            serde_json::from_str::<OperatorCostSettings>(
                r#"{"kwh_price_usd":1,"internet_usd_per_month":1,"token_price_usd":1,"kwh":2}"#
            )
            .is_err()
        );
        let minimal: OperatorCostSettings = serde_json::from_str(
            r#"{"kwh_price_usd":1,"internet_usd_per_month":1,"token_price_usd":1}"#,
        )
        .unwrap();
        assert!(minimal.hardware.is_empty() && minimal.internet_share.is_none());
    }

    /// The canonical form by hand, and every way of writing the same
    /// settings differently refused as non-canonical.
    #[test]
    fn settings_documents_have_one_byte_form() {
        let cat = Catalogue::builtin();
        let canonical = concat!(
            r#"{"kwh_price_usd":0.3,"internet_usd_per_month":40.0,"internet_share":0.25,"#,
            r#""maintenance_usd_per_month":2.0,"token_price_usd":0.5,"hardware":{"#,
            r#""abababababababababababababababababababababababababababababababab":"#,
            r#"{"profile":"rtx-3060","price_usd":250.0}}}"#
        );
        assert_eq!(
            String::from_utf8(settings().canonical_json()).unwrap(),
            canonical
        );
        assert_eq!(
            OperatorCostSettings::from_canonical_json(canonical.as_bytes(), &cat),
            Ok(settings())
        );
        let minimal = OperatorCostSettings {
            internet_share: None,
            maintenance_usd_per_month: None,
            hardware: BTreeMap::new(),
            ..settings()
        };
        let minimal_text = r#"{"kwh_price_usd":0.3,"internet_usd_per_month":40.0,"internet_share":null,"maintenance_usd_per_month":null,"token_price_usd":0.5,"hardware":{}}"#;
        assert_eq!(minimal.canonical_json(), minimal_text.as_bytes());
        let non_canonical = |text: &str| {
            matches!(
                OperatorCostSettings::from_canonical_json(text.as_bytes(), &cat),
                Err(SettingsDocumentError::NonCanonical { .. })
            )
        };
        let others: Vec<String> = vec![
            // Whitespace, a trailing newline.
            canonical.replace(':', ": "),
            format!("{canonical}\n"),
            // Optional fields left out, an integer for a float, an exponent.
            r#"{"kwh_price_usd":0.3,"internet_usd_per_month":40.0,"token_price_usd":0.5}"#.to_string(),
            minimal_text.replace("40.0", "40"),
            minimal_text.replace("40.0", "4e1"),
            minimal_text.replace("0.3", "0.30"),
            // Another key order, a duplicated key.
            minimal_text.replace(
                r#""kwh_price_usd":0.3,"internet_usd_per_month":40.0"#,
                r#""internet_usd_per_month":40.0,"kwh_price_usd":0.3"#,
            ),
            minimal_text.replace(
                r#""hardware":{}"#,
                r#""hardware":{"abababababababababababababababababababababababababababababababab":{"profile":null,"price_usd":1.0},"abababababababababababababababababababababababababababababababab":{"profile":null,"price_usd":2.0}}"#,
            ),
            // Escapes the serializer does not write.
            canonical.replace("rtx-3060", "rtx\\u002d3060"),
        ];
        for other in &others {
            assert!(non_canonical(other), "accepted {other}");
        }
        // Not JSON, or not settings: malformed. Canonical but invalid: names the field.
        for text in ["", "{", "[]", "null", r#"{"kwh_price_usd":1e400}"#] {
            assert!(
                matches!(
                    OperatorCostSettings::from_canonical_json(text.as_bytes(), &cat),
                    Err(SettingsDocumentError::Malformed(_))
                ),
                "{text}"
            );
        }
        let negative = OperatorCostSettings {
            token_price_usd: -1.0,
            ..minimal
        };
        match OperatorCostSettings::from_canonical_json(&negative.canonical_json(), &cat) {
            Err(SettingsDocumentError::Invalid(e)) => assert_eq!(e.field, "token_price_usd"),
            other => panic!("{other:?}"),
        }
    }

    /// Any finite figure ≥ 0: normal, subnormal or zero (never infinite).
    fn figure() -> impl proptest::strategy::Strategy<Value = f64> {
        use proptest::num::f64::{NORMAL, POSITIVE, SUBNORMAL, ZERO};
        proptest::prop_oneof![
            proptest::strategy::Just(0.0),
            proptest::strategy::Just(f64::MAX),
            proptest::strategy::Just(f64::MIN_POSITIVE),
            proptest::strategy::Just(f64::from_bits(1)),
            POSITIVE | NORMAL | SUBNORMAL | ZERO,
        ]
    }

    proptest::proptest! {
        /// Whatever figures an operator has, the bytes the client signs are
        /// the bytes the server accepts: serializing and parsing back gives
        /// the same value and the same bytes (this needs serde_json's exact
        /// float parsing, `float_roundtrip`; its default parser may land one
        /// unit in the last place off and refuse an honest document).
        #[test]
        fn canonical_json_round_trips(
            kwh in figure(),
            internet in 0.0f64..1e12,
            share in proptest::option::of(0.0f64..=1.0),
            maintenance in proptest::option::of(figure()),
            token in figure(),
            price in proptest::option::of(figure()),
        ) {
            let s = OperatorCostSettings {
                kwh_price_usd: kwh,
                internet_usd_per_month: internet,
                internet_share: share,
                maintenance_usd_per_month: maintenance,
                token_price_usd: token,
                hardware: BTreeMap::from([(
                    "cd".repeat(32),
                    HardwareSetting { profile: None, price_usd: price },
                )]),
            };
            let bytes = s.canonical_json();
            let back = OperatorCostSettings::from_canonical_json(&bytes, &Catalogue::builtin());
            proptest::prop_assert_eq!(back, Ok(s));
        }
    }

    #[test]
    fn energy_integrates_gaps_capped_at_three_intervals() {
        let mut e = EnergyAccumulator::default();
        e.add(1, 10_000, 100_000, 1000); // first: one interval, 100 W × 1 s
        e.add(2, 11_000, 200_000, 1000); // 200 W × 1 s
        e.add(3, 21_000, 100_000, 1000); // 10 s gap capped at 3 s
        e.add(4, 20_500, 100_000, 1000); // out of order timestamp: no time
        assert_eq!(
            e.energy_uj,
            100_000 * 1000 + 200_000 * 1000 + 100_000 * 3000
        );
        assert_eq!(e.covered_ms, 5000);
        assert_eq!(e.heartbeats, 4);
        assert_eq!(e.last_seq, Some(4));
        assert_eq!(e.last_timestamp_ms, Some(21_000));
        assert!((e.kwh() - 600.0 / 3.6e6).abs() < 1e-15);
        assert!((e.average_watts().unwrap() - 120.0).abs() < 1e-9);
    }

    #[test]
    fn so_far_by_hand() {
        let basis = CostBasis {
            kwh_price_usd: 0.5,
            internet_usd_per_month: 40.0,
            internet_share: Some(0.25),
            maintenance_usd_per_month: Some(2.0),
            hardware_price_usd: Some(240.0),
            lifetime_months: Some(24),
            token_price_usd: 2.0,
        };
        // Two months, 30 tokens, 100 kWh.
        let usage = Usage {
            earned_base_units: 30_000_000,
            energy_uj: (100.0 * 3.6e12) as u64,
            active_ms: (2.0 * MS_PER_MONTH) as i64,
        };
        let s = so_far(&basis, &usage);
        let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-6, "{a:?} vs {b}");
        close(Some(s.months_active), 2.0);
        close(Some(s.earned_usd), 60.0);
        close(Some(s.electricity_usd), 50.0);
        close(s.internet_usd, 20.0);
        close(s.maintenance_usd, 4.0);
        close(s.running_costs_usd, 74.0);
        close(s.hardware_depreciation_usd, 20.0);
        close(s.net_operating_usd, -14.0);
        close(s.net_usd, -34.0);
        close(s.payback_progress_pct, -14.0 / 240.0 * 100.0);
        // Unknown hardware: no depreciation, no progress, the rest stands.
        let s = so_far(
            &CostBasis {
                hardware_price_usd: None,
                lifetime_months: None,
                ..basis.clone()
            },
            &usage,
        );
        assert!(
            s.hardware_depreciation_usd.is_none()
                && s.net_usd.is_none()
                && s.payback_progress_pct.is_none()
        );
        close(s.net_operating_usd, -14.0);
        // Depreciation stops at the price after the lifetime.
        let old = Usage {
            active_ms: (30.0 * MS_PER_MONTH) as i64,
            ..usage
        };
        close(so_far(&basis, &old).hardware_depreciation_usd, 240.0);
    }

    #[test]
    fn observed_rate_skips_the_partial_first_epoch() {
        assert_eq!(observed_tokens_per_month(&[], 3600), None);
        let one = observed_tokens_per_month(&[1_000_000], 3600).unwrap();
        assert!((one - crate::SECONDS_PER_MONTH / 3600.0).abs() < 1e-9);
        let r = observed_tokens_per_month(&[1, 2_000_000, 4_000_000], 3600).unwrap();
        assert!((r - 3.0 * crate::SECONDS_PER_MONTH / 3600.0).abs() < 1e-9);
    }

    #[test]
    fn offline_and_uptime_rules() {
        assert!(
            offline_alert(10_000, Some(7_000), 0, 1000).is_none(),
            "exactly 3 intervals is not offline"
        );
        let a = offline_alert(10_001, Some(7_000), 0, 1000).unwrap();
        assert_eq!((a.code, a.severity), (codes::OFFLINE, Severity::Critical));
        assert!(
            offline_alert(5_000, None, 0, 1000)
                .unwrap()
                .message
                .contains("since registration")
        );
        assert!(offline_alert(2_000, None, 0, 1000).is_none());

        assert_eq!(uptime_fraction(3, 4_000, 1000), None, "too short to judge");
        assert_eq!(
            uptime_fraction(9, 10_000, 1000),
            Some(1.0),
            "one heartbeat of slack"
        );
        let u = uptime_fraction(7, 10_000, 1000).unwrap();
        assert!((u - 0.8).abs() < 1e-12);
        assert_eq!(
            low_uptime_alert(Some(0.8), 0.5, 10_000).unwrap().severity,
            Severity::Warning
        );
        assert_eq!(
            low_uptime_alert(Some(0.4), 0.5, 10_000).unwrap().severity,
            Severity::Critical
        );
        assert!(low_uptime_alert(Some(0.9), 0.5, 10_000).is_none());
        assert!(low_uptime_alert(None, 0.5, 10_000).is_none());
    }

    #[test]
    fn temperature_rules() {
        assert!(temperature_alert(83.0, Some(83.0), "rtx-3060").is_none());
        assert_eq!(
            temperature_alert(84.0, Some(83.0), "rtx-3060")
                .unwrap()
                .severity,
            Severity::Warning
        );
        assert_eq!(
            temperature_alert(93.0, Some(83.0), "rtx-3060")
                .unwrap()
                .severity,
            Severity::Critical
        );
        assert!(temperature_alert(84.0, None, "custom").is_none());
        assert!(
            temperature_alert(86.0, None, "custom")
                .unwrap()
                .message
                .contains("generic")
        );
    }

    #[test]
    fn versions_compare_by_semver() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("1.10.0") > v("1.9.9"));
        assert!(v("v2.0") == v("2.0.0"));
        assert!(v("1.0.0") > v("1.0.0-rc.1"));
        assert!(v("1.0.0-rc.2") > v("1.0.0-rc.1"));
        assert!(v("1.0.0-rc.10") > v("1.0.0-rc.9"));
        assert!(v("1.0.0-beta") > v("1.0.0-alpha.5"));
        assert!(v("1.0.0-alpha.1") > v("1.0.0-alpha"));
        assert!(v("1.0.0+build.5") == v("1.0.0"));
        for bad in ["", "x", "1..2", "1.2.3.4", "1.2.3-", "1.-2"] {
            assert!(Version::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            newest_version(["0.9.0", "0.10.0", "garbage", "0.10.0-rc.1"]),
            Some("0.10.0")
        );
        assert_eq!(newest_version(["garbage"]), None);
        let a = firmware_alert("0.9.0", "0.10.0", FirmwareSource::SeenOnNetwork).unwrap();
        assert_eq!(a.code, codes::OUTDATED_FIRMWARE);
        assert!(firmware_alert("0.10.0", "0.10.0", FirmwareSource::Published).is_none());
        assert!(firmware_alert("custom-build", "0.10.0", FirmwareSource::Published).is_none());
    }

    #[test]
    fn earnings_rules() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let sector = [100.0, 100.0, 40.0];
        assert_eq!(
            earnings_alert(40.0, 3, &sector, "compute").unwrap().code,
            codes::EARNINGS_BELOW_MEDIAN
        );
        assert!(
            earnings_alert(50.0, 3, &sector, "compute").is_none(),
            "half the median is not below it"
        );
        assert!(
            earnings_alert(40.0, 2, &sector, "compute").is_none(),
            "too few epochs"
        );
        assert!(
            earnings_alert(0.0, 3, &[100.0, 0.0], "compute").is_none(),
            "too few peers"
        );
        assert!(
            earnings_alert(0.0, 3, &[0.0, 0.0, 0.0], "compute").is_none(),
            "nobody earns: nothing to compare"
        );
    }
}
