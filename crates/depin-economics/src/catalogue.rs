//! The device catalogue: typical hardware of each sector with price, average power draw,
//! lifetime and contribution, every figure an editable assumption with a source note.
//!
//! The built-in file (`catalogue.toml` next to this crate's manifest) is embedded at compile
//! time; operators add or replace entries with their own TOML file of the same shape.

use crate::{EconomicsError, invalid};
use depin_core::Sector;
use serde::{Deserialize, Serialize};

/// The built-in catalogue text.
pub const BUILTIN_CATALOGUE_TOML: &str = include_str!("../catalogue.toml");

/// One kind of device, with the assumptions an estimate starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    pub name: String,
    pub label: String,
    pub sector: Sector,
    pub price_usd: f64,
    /// Average draw from the grid over a month at the assumed utilisation.
    pub watts: f64,
    pub lifetime_months: u32,
    /// Contribution in the sector's capacity unit (TB, GPU-equivalents, …).
    pub capacity_units: f64,
    pub capacity_unit: String,
    /// Share of the operator's internet line this device uses, 0–1.
    #[serde(default)]
    pub internet_share: f64,
    #[serde(default)]
    pub maintenance_usd_per_month: f64,
    /// What running the device costs beyond the home's electricity and line, for devices
    /// that earn while a vehicle drives (the kilometres driven for them, not the ones
    /// driven anyway); the `assumption` line says how it is worked out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub driving_usd_per_month: f64,
    /// The hardware class's temperature limit, for operator alerts.
    #[serde(default)]
    pub max_temperature_c: Option<f64>,
    /// Share of the new price the hardware fetches used (about two years old), 0–1: the
    /// opportunity cost of hardware the operator already owns (`--already-own`). Absent:
    /// the sector's default ([`default_resale_fraction`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resale_fraction: Option<f64>,
    /// For compute devices rented by the hour: the market rate and utilisation. Without
    /// it a device earns token rewards only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rental: Option<RentalProfile>,
    /// For storage nodes paid in USD on the data they hold (Storj-style): rates, fill-up,
    /// vetting and held-back share. Without it a storage device earns token rewards only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<crate::storage::StorageMarket>,
    /// The emission schedule of the network this class of device earns on (halvings,
    /// yearly decay), used with the built-in rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emission: Option<EmissionProfile>,
    /// For devices paid by where they stand: how often a site's cell is already full,
    /// and the cell capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementProfile>,
    /// Where the figures come from; they are assumptions, not quotes.
    #[serde(default)]
    pub assumption: String,
}

/// How a compute device earns on a rental market: USD per rented hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RentalProfile {
    /// What the market pays per rented hour, USD.
    pub usd_per_hour: f64,
    /// Share of all hours the device is rented: p10 (bad), p50 (the default), p90 (good).
    pub utilisation_p10: f64,
    pub utilisation_p50: f64,
    pub utilisation_p90: f64,
    /// Draw from the grid while rented (GPU under load plus the host), W.
    pub load_watts: f64,
    /// Draw while waiting for a renter, W.
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

/// Placement of a coverage or sensor device class. Catalogue `[device.placement]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementProfile {
    /// Share of would-be sites whose cell already holds as many devices as the network
    /// pays: such a device earns nothing.
    pub full_cell_probability: f64,
    /// Devices a cell pays; a newcomer in a cell that has this many earns nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_capacity: Option<u64>,
    /// Source of the figures.
    #[serde(default)]
    pub note: String,
}

/// A network's emission schedule. Catalogue `[device.emission]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmissionProfile {
    /// The next scheduled halving, `YYYY-MM-DD` (a quoted string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_halving: Option<String>,
    /// Months between halvings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halving_interval_months: Option<u32>,
    /// Yearly decay of the emission (0.15 = 15% less each year), instead of halvings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay_per_year: Option<f64>,
    /// Whose schedule it is, with its source.
    #[serde(default)]
    pub note: String,
}

impl EmissionProfile {
    fn validate(&self) -> Result<(), EconomicsError> {
        match (&self.next_halving, self.halving_interval_months) {
            (None, None) => {}
            (Some(d), Some(n)) => {
                halving_date(d)?;
                if n == 0 || n > crate::MAX_MONTHS {
                    return Err(invalid(
                        "halving_interval_months",
                        format!("must be 1..={}, got {n}", crate::MAX_MONTHS),
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    "next_halving",
                    "give next_halving and halving_interval_months together",
                ));
            }
        }
        if let Some(d) = self.decay_per_year
            && !(d.is_finite() && (0.0..1.0).contains(&d))
        {
            return Err(invalid(
                "decay_per_year",
                format!("must be in [0, 1), got {d}"),
            ));
        }
        Ok(())
    }

    /// The halvings placed on an estimate whose month 1 is `start`: a halving on the 1st
    /// of a month counts from that month, one later in the month from the next month;
    /// one that takes effect in month 1 or earlier is taken to be in today's rate already,
    /// so the schedule rolls forward by the interval to the first later one.
    pub fn halving_from(&self, start: crate::YearMonth) -> Option<crate::Halving> {
        let (date, interval) = (self.next_halving.as_deref()?, self.halving_interval_months?);
        let (ym, day) = halving_date(date).ok()?;
        let mut first = start.months_until(ym) + 1 + i64::from(day > 1);
        while first < 2 {
            first += i64::from(interval);
        }
        Some(crate::Halving {
            first_month: first.min(i64::from(crate::MAX_MONTHS)) as u32,
            interval_months: interval,
            note: self.note.clone(),
        })
    }
}

fn halving_date(d: &str) -> Result<(crate::YearMonth, u32), EconomicsError> {
    let bad = |m: String| invalid("next_halving", m);
    let ym: crate::YearMonth = d.parse().map_err(bad)?;
    let day = d
        .split('-')
        .nth(2)
        .and_then(|x| x.parse::<u32>().ok())
        .ok_or_else(|| bad(format!("expected a date YYYY-MM-DD, got {d:?}")))?;
    Ok((ym, day))
}

/// Resale fraction by device class when a catalogue entry gives none (ASSUMPTIONS):
/// GPUs keep about half their price after two years (they resell well, even above launch
/// price in shortages: xda-developers on the RTX 4090), storage disks about 30%, hotspots
/// and sensors about 20% (single-purpose hardware whose rewards fall).
pub fn default_resale_fraction(sector: Sector) -> f64 {
    match sector {
        Sector::Compute => 0.5,
        Sector::Storage => 0.3,
        Sector::Wireless | Sector::Sensor => 0.2,
    }
}

impl DeviceProfile {
    /// The entry's resale fraction, or its sector's default.
    pub fn resale_fraction(&self) -> f64 {
        self.resale_fraction
            .unwrap_or_else(|| default_resale_fraction(self.sector))
    }

    fn validate(&self) -> Result<(), EconomicsError> {
        let finite_non_negative = |field: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(invalid(field, format!("must be a number ≥ 0, got {v}")))
            }
        };
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        finite_non_negative("price_usd", self.price_usd)?;
        finite_non_negative("watts", self.watts)?;
        finite_non_negative("capacity_units", self.capacity_units)?;
        finite_non_negative("maintenance_usd_per_month", self.maintenance_usd_per_month)?;
        finite_non_negative("driving_usd_per_month", self.driving_usd_per_month)?;
        if !(0.0..=1.0).contains(&self.internet_share) {
            return Err(invalid(
                "internet_share",
                format!("must be between 0 and 1, got {}", self.internet_share),
            ));
        }
        if let Some(r) = self.resale_fraction
            && !(r.is_finite() && (0.0..=1.0).contains(&r))
        {
            return Err(invalid(
                "resale_fraction",
                format!("must be between 0 and 1, got {r}"),
            ));
        }
        if let Some(r) = &self.rental {
            crate::model::Rental::from_profile(r, None).validate()?;
            if self.sector != Sector::Compute {
                return Err(invalid(
                    "rental",
                    format!(
                        "[device.rental] is for compute devices, not {}",
                        self.sector
                    ),
                ));
            }
        }
        if let Some(s) = &self.storage {
            s.validate()?;
            if self.sector != Sector::Storage {
                return Err(invalid(
                    "storage",
                    format!(
                        "[device.storage] is for storage devices, not {}",
                        self.sector
                    ),
                ));
            }
        }
        if let Some(e) = &self.emission {
            e.validate()?;
        }
        if let Some(p) = &self.placement {
            let f = p.full_cell_probability;
            if !(f.is_finite() && (0.0..=1.0).contains(&f)) {
                return Err(invalid(
                    "full_cell_probability",
                    format!("must be between 0 and 1, got {f}"),
                ));
            }
            if p.cell_capacity == Some(0) {
                return Err(invalid("cell_capacity", "must be ≥ 1"));
            }
        }
        if self.lifetime_months == 0 || self.lifetime_months > crate::MAX_MONTHS {
            return Err(invalid(
                "lifetime_months",
                format!(
                    "must be 1..={}, got {}",
                    crate::MAX_MONTHS,
                    self.lifetime_months
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    device: Vec<DeviceProfile>,
}

/// An ordered list of device profiles with unique names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalogue {
    devices: Vec<DeviceProfile>,
}

impl Catalogue {
    /// The catalogue shipped with depin.
    pub fn builtin() -> Catalogue {
        Catalogue::from_toml(BUILTIN_CATALOGUE_TOML, "built-in")
            .expect("the built-in catalogue is valid (tested)")
    }

    /// Parses a catalogue file. `origin` names it in errors (a path or "built-in").
    pub fn from_toml(text: &str, origin: &str) -> Result<Catalogue, EconomicsError> {
        let cat_err = |message: String| EconomicsError::Catalogue {
            origin: origin.to_string(),
            message,
        };
        let file: CatalogueFile = toml::from_str(text).map_err(|e| cat_err(e.to_string()))?;
        let mut out = Catalogue::default();
        for d in file.device {
            d.validate()
                .map_err(|e| cat_err(format!("device {:?}: {e}", d.name)))?;
            if out.find(&d.name).is_some() {
                return Err(cat_err(format!("device {:?} appears twice", d.name)));
            }
            out.devices.push(d);
        }
        Ok(out)
    }

    /// Adds `other`'s devices; an entry with an existing name replaces it in place.
    pub fn merge(&mut self, other: Catalogue) {
        for d in other.devices {
            match self.devices.iter_mut().find(|x| x.name == d.name) {
                Some(slot) => *slot = d,
                None => self.devices.push(d),
            }
        }
    }

    pub fn devices(&self) -> &[DeviceProfile] {
        &self.devices
    }

    pub fn find(&self, name: &str) -> Option<&DeviceProfile> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// Looks a device up, or fails with the closest names as suggestions.
    pub fn get(&self, name: &str) -> Result<&DeviceProfile, EconomicsError> {
        self.find(name)
            .ok_or_else(|| EconomicsError::UnknownDevice {
                name: name.to_string(),
                suggestions: self.suggest(name),
            })
    }

    /// Up to three names close to `name`: containing it, or within a small edit distance.
    pub fn suggest(&self, name: &str) -> Vec<String> {
        let needle = name.to_lowercase();
        let mut scored: Vec<(usize, &str)> = self
            .devices
            .iter()
            .filter_map(|d| {
                let hay = d.name.to_lowercase();
                let dist = edit_distance(&needle, &hay);
                let close = dist <= 3.max(needle.len() / 3);
                let contains =
                    needle.len() >= 3 && (hay.contains(&needle) || needle.contains(&hay));
                (close || contains).then_some((if contains { 0 } else { dist }, d.name.as_str()))
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(3)
            .map(|(_, n)| n.to_string())
            .collect()
    }
}

/// Levenshtein distance over chars; names are short, so O(n·m) is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_parses_and_covers_every_sector() {
        let c = Catalogue::builtin();
        for s in Sector::ALL {
            assert!(
                c.devices().iter().filter(|d| d.sector == s).count() >= 2,
                "sector {s} needs devices"
            );
        }
        for d in c.devices() {
            assert!(!d.assumption.is_empty(), "{} needs a source note", d.name);
        }
        for name in [
            "dashcam",
            "weather-station",
            "vehicle-dongle",
            "rtx-4090",
            "h100-pcie",
            "spare-disk-4tb",
            "small-nas-16tb",
            "lorawan-indoor-hotspot",
        ] {
            assert!(c.find(name).is_some(), "{name}");
        }
    }

    #[test]
    fn unknown_device_suggests_close_names() {
        let c = Catalogue::builtin();
        let err = c.get("rtx4090").unwrap_err();
        let EconomicsError::UnknownDevice { suggestions, .. } = &err else {
            panic!()
        };
        assert_eq!(suggestions.first().map(String::as_str), Some("rtx-4090"));
        assert!(err.to_string().contains("did you mean rtx-4090"), "{err}");
        let EconomicsError::UnknownDevice { suggestions, .. } = c.get("hotspot").unwrap_err()
        else {
            panic!()
        };
        assert!(suggestions.iter().all(|s| s.contains("hotspot")) && !suggestions.is_empty());
    }

    #[test]
    fn user_entries_replace_and_extend() {
        let mut c = Catalogue::builtin();
        let n = c.devices().len();
        let user = Catalogue::from_toml(
            r#"
            [[device]]
            name = "rtx-4090"
            label = "my cheaper 4090"
            sector = "compute"
            price_usd = 1200.0
            watts = 250.0
            lifetime_months = 36
            capacity_units = 1.0
            capacity_unit = "gpu"
            [[device]]
            name = "my-pi-node"
            label = "pi"
            sector = "storage"
            price_usd = 60.0
            watts = 4.0
            lifetime_months = 36
            capacity_units = 1.0
            capacity_unit = "tb"
            "#,
            "user.toml",
        )
        .unwrap();
        c.merge(user);
        assert_eq!(c.devices().len(), n + 1);
        assert_eq!(c.get("rtx-4090").unwrap().price_usd, 1200.0);
    }

    #[test]
    fn bad_catalogue_entries_are_named() {
        let e = Catalogue::from_toml(
            "[[device]]\nname=\"x\"\nlabel=\"x\"\nsector=\"storage\"\nprice_usd=-1.0\nwatts=1.0\nlifetime_months=1\ncapacity_units=1.0\ncapacity_unit=\"tb\"\n",
            "mine.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("mine.toml") && e.to_string().contains("price_usd"),
            "{e}"
        );
        let e = Catalogue::from_toml("[[device]]\nname=\"x\"\nsector=\"radio\"\n", "mine.toml")
            .unwrap_err();
        assert!(e.to_string().contains("mine.toml"), "{e}");
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
