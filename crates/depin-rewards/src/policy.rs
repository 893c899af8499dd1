//! The reward policy: every constant of the reward model in one versioned value,
//! and the emission schedule it defines.

use depin_core::{Amount, BASE_UNITS_PER_TOKEN, EpochIndex, Sector};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Basis points in one whole (100%).
pub const BPS: u32 = 10_000;
/// Parts per million in one whole (100%); the unit of scores.
pub const PPM: u32 = 1_000_000;
/// A policy year for the emission schedule: 365 days of seconds. Leap days are
/// ignored on purpose so every year has the same number of epochs.
pub const SECONDS_PER_YEAR: u64 = 365 * 24 * 3600;

/// Every constant of the reward model. A running network never edits a policy
/// in place: a changed constant is a new value with a new [`RewardPolicy::id`],
/// and each closed epoch records the id it was computed under, so
/// `depin audit-epoch` recomputes it with exactly the same numbers.
///
/// The defaults ([`RewardPolicy::default_v1`]) and where each comes from are
/// documented on the fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardPolicy {
    /// Bumped by hand when a constant changes; the id's hash part catches a
    /// change that forgot the bump.
    pub version: u32,
    /// Length of a reward epoch. Default 3600 (1 h). Helium uses 24 h epochs
    /// (research/helium.md §5); we close hourly so a new operator sees a first
    /// payout within the hour, and the sheet's cost is linear in devices, not in
    /// epoch length.
    pub epoch_seconds: u64,
    /// Start of epoch 0. Epoch `n` covers `[genesis + n·len, genesis + (n+1)·len)`.
    /// Default 2026-01-01T00:00:00Z.
    pub genesis_unix_ms: i64,
    /// Base units minted per epoch during the first policy year. Default 1,000
    /// tokens per hour = 24,000 per day, the order of Helium's ≈ 20,548 HNT/day
    /// (HIP-149 quoting the HIP-20 schedule; research/helium.md §5).
    pub emission_per_epoch_year0: Amount,
    /// Yearly decay of emission in basis points, compounding per year with the
    /// result rounded down each year. Default 1500 (−15%/year), DIMO's schedule
    /// (research/sensor.md "pool size"); smoother than Helium's and GEODNET's
    /// halvings, so no cliff surprises an operator's payback estimate.
    pub yearly_decay_bps: u32,
    /// Share of each epoch's emission per sector, in basis points summing to
    /// 10 000. A missing sector gets nothing. Default: 2500 each — no anchor
    /// tells us how to weigh storage against wireless, so we start neutral.
    pub sector_weights_bps: BTreeMap<Sector, u32>,
    /// Expected heartbeat cadence. Default 300 s, i.e. 12 per hourly epoch.
    pub heartbeat_interval_seconds: u64,
    /// Uptime below this gates the availability score to zero (`LowUptime`).
    /// Default 5000 (50%): Helium Mobile requires ≥ 12 of 24 hourly heartbeats
    /// per epoch (`MINIMUM_HEARTBEAT_COUNT`, HIP-98; research/helium.md §3).
    pub min_uptime_bps: u32,
    /// Watermark: an epoch may be closed only this long after it ends, so late
    /// reports are in. Default 1800 s, Helium IoT's 30 min reward offset
    /// (research/helium.md §5).
    pub close_grace_seconds: u64,
    /// Largest accepted difference between a report's timestamp and the
    /// coordinator's clock, either way. Default 60 000 ms: generous enough for
    /// a device without NTP for a day, far below an epoch.
    pub max_clock_skew_ms: i64,
    /// Share of every consumer fee that is burned (DESIGN "Reward model").
    /// Default 500 (5%), Render's BME fee (research/compute.md "Payment").
    pub protocol_fee_bps: u32,
    /// Reports accepted per device per epoch before `RateLimited`. Default 120,
    /// ten times the expected heartbeats, leaving room for sector reports.
    pub max_reports_per_device_per_epoch: u32,
    /// Uptime counts a heartbeat only if the coordinator received it at most
    /// this long after the heartbeat's own timestamp. Availability means being
    /// reachable: without this bound a device offline for most of an epoch
    /// could back-date a burst of heartbeats at its end and be paid full
    /// uptime. Late heartbeats are still stored (and still count as delivered
    /// for the agent); they just earn nothing. Default 900 s, three heartbeat
    /// intervals, so a slow link or a short coordinator restart costs nothing.
    pub max_heartbeat_delay_seconds: u64,
    /// Each sector verifier's own settings, under its name (`"sectors":
    /// {"storage": {…}}` in the JSON file): opaque to the backbone, read and
    /// checked by the verifier ([`crate::SectorVerifier::check_policy`]). Part
    /// of the policy id like every other constant; left out of the canonical
    /// bytes when empty, so a policy without sections keeps its id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sectors: BTreeMap<String, serde_json::Value>,
    /// Reports of a payload kind accepted per device per epoch, for the kinds
    /// listed (`{"2900": 4}`), on top of the total limit above: a sector
    /// bounds what one device can make it verify. Counted in the store's
    /// append transaction, so the limit holds across restarts and replicas.
    /// Each limit is 1 to `max_reports_per_device_per_epoch`. Left out of the
    /// canonical bytes when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_reports_per_kind: BTreeMap<u32, u32>,
    /// The fixed price of one data credit in micro-USD (10^-6 USD). Credits
    /// are bought by burning tokens at the recorded token price and spent on
    /// metered service (wireless data, sensor queries); their USD price never
    /// moves, so a consumer's cost of service does not follow the token.
    /// Default 10 (USD 0.00001), Helium's data credit (research/helium.md,
    /// "Data Credits"). 1 to 1,000,000 (USD 1): a credit meters small units,
    /// and a larger number is most likely USD typed as micro-USD. Left out of
    /// the canonical bytes at its default, so existing policies keep their
    /// ids.
    #[serde(
        default = "default_credit_price",
        skip_serializing_if = "is_default_credit_price"
    )]
    pub credit_price_micro_usd: u64,
}

/// Helium's data credit: USD 0.00001.
pub const DEFAULT_CREDIT_PRICE_MICRO_USD: u64 = 10;
/// The highest credit price a policy may set: USD 1.
pub const MAX_CREDIT_PRICE_MICRO_USD: u64 = 1_000_000;

fn default_credit_price() -> u64 {
    DEFAULT_CREDIT_PRICE_MICRO_USD
}

fn is_default_credit_price(p: &u64) -> bool {
    *p == DEFAULT_CREDIT_PRICE_MICRO_USD
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy version must be at least 1")]
    Version,
    #[error("epoch_seconds must be between 1 and one year ({SECONDS_PER_YEAR}), got {0}")]
    EpochLength(u64),
    #[error("sector weights must sum to 10000 bps, got {0}")]
    SectorWeights(u64),
    #[error("{field} must be at most 10000 bps, got {value}")]
    BasisPoints { field: &'static str, value: u32 },
    #[error("heartbeat_interval_seconds must be between 1 and epoch_seconds, got {0}")]
    HeartbeatInterval(u64),
    #[error("max_clock_skew_ms must be between 0 and one epoch, got {0}")]
    ClockSkew(i64),
    #[error("max_heartbeat_delay_seconds must be between 1 and epoch_seconds, got {0}")]
    HeartbeatDelay(u64),
    #[error("close_grace_seconds must be at most one year, got {0}")]
    CloseGrace(u64),
    #[error(
        "max_reports_per_device_per_epoch ({limit}) is below the {expected} heartbeats an epoch expects"
    )]
    RateLimit { limit: u32, expected: u64 },
    #[error(
        "max_reports_per_kind[{kind}] = {limit}: must be 1 to max_reports_per_device_per_epoch, and for heartbeats (kind 2) at least the heartbeats an epoch expects"
    )]
    KindLimit { kind: u32, limit: u32 },
    #[error("credit_price_micro_usd must be 1 to {MAX_CREDIT_PRICE_MICRO_USD} (USD 1), got {0}")]
    CreditPrice(u64),
}

impl RewardPolicy {
    /// The mainnet default. See the field docs for each value's source.
    pub fn default_v1() -> Self {
        RewardPolicy {
            version: 1,
            epoch_seconds: 3600,
            genesis_unix_ms: 1_767_225_600_000,
            emission_per_epoch_year0: 1_000 * BASE_UNITS_PER_TOKEN,
            yearly_decay_bps: 1500,
            sector_weights_bps: Sector::ALL.into_iter().map(|s| (s, 2500)).collect(),
            heartbeat_interval_seconds: 300,
            min_uptime_bps: 5000,
            close_grace_seconds: 1800,
            max_clock_skew_ms: 60_000,
            protocol_fee_bps: 500,
            max_reports_per_device_per_epoch: 120,
            max_heartbeat_delay_seconds: 900,
            sectors: BTreeMap::new(),
            max_reports_per_kind: BTreeMap::new(),
            credit_price_micro_usd: DEFAULT_CREDIT_PRICE_MICRO_USD,
        }
    }

    /// The default with short epochs for `depin devnet`: the heartbeat cadence
    /// keeps 12 heartbeats per epoch and the grace is a tenth of an epoch, so a
    /// simulated epoch behaves like a real one, only faster. `epoch_seconds`
    /// below 12 gives 1 s heartbeats and fewer than 12 per epoch.
    pub fn devnet(epoch_seconds: u64) -> Self {
        let base = Self::default_v1();
        RewardPolicy {
            epoch_seconds,
            heartbeat_interval_seconds: (epoch_seconds / 12).max(1),
            max_heartbeat_delay_seconds: (3 * (epoch_seconds / 12).max(1)).min(epoch_seconds),
            close_grace_seconds: (epoch_seconds / 10).max(1),
            max_clock_skew_ms: base
                .max_clock_skew_ms
                .min(epoch_seconds.saturating_mul(1000) as i64 / 2),
            ..base
        }
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.version == 0 {
            return Err(PolicyError::Version);
        }
        if self.epoch_seconds == 0 || self.epoch_seconds > SECONDS_PER_YEAR {
            return Err(PolicyError::EpochLength(self.epoch_seconds));
        }
        let weights: u64 = self
            .sector_weights_bps
            .values()
            .map(|w| u64::from(*w))
            .sum();
        if weights != u64::from(BPS) {
            return Err(PolicyError::SectorWeights(weights));
        }
        for (field, value) in [
            ("yearly_decay_bps", self.yearly_decay_bps),
            ("min_uptime_bps", self.min_uptime_bps),
            ("protocol_fee_bps", self.protocol_fee_bps),
        ] {
            if value > BPS {
                return Err(PolicyError::BasisPoints { field, value });
            }
        }
        if self.heartbeat_interval_seconds == 0
            || self.heartbeat_interval_seconds > self.epoch_seconds
        {
            return Err(PolicyError::HeartbeatInterval(
                self.heartbeat_interval_seconds,
            ));
        }
        if self.max_clock_skew_ms < 0 || self.max_clock_skew_ms as u64 > self.epoch_seconds * 1000 {
            return Err(PolicyError::ClockSkew(self.max_clock_skew_ms));
        }
        if self.max_heartbeat_delay_seconds == 0
            || self.max_heartbeat_delay_seconds > self.epoch_seconds
        {
            return Err(PolicyError::HeartbeatDelay(
                self.max_heartbeat_delay_seconds,
            ));
        }
        if self.close_grace_seconds > SECONDS_PER_YEAR {
            return Err(PolicyError::CloseGrace(self.close_grace_seconds));
        }
        let expected = self.expected_heartbeats();
        if u64::from(self.max_reports_per_device_per_epoch) < expected {
            return Err(PolicyError::RateLimit {
                limit: self.max_reports_per_device_per_epoch,
                expected,
            });
        }
        for (kind, limit) in &self.max_reports_per_kind {
            let heartbeat_short = *kind == 2 && u64::from(*limit) < expected;
            if *limit == 0 || *limit > self.max_reports_per_device_per_epoch || heartbeat_short {
                return Err(PolicyError::KindLimit {
                    kind: *kind,
                    limit: *limit,
                });
            }
        }
        if !(1..=MAX_CREDIT_PRICE_MICRO_USD).contains(&self.credit_price_micro_usd) {
            return Err(PolicyError::CreditPrice(self.credit_price_micro_usd));
        }
        Ok(())
    }

    /// [`Self::max_heartbeat_delay_seconds`] in milliseconds.
    pub fn max_heartbeat_delay_ms(&self) -> i64 {
        i64::try_from(self.max_heartbeat_delay_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Heartbeats a device online for a whole epoch sends.
    pub fn expected_heartbeats(&self) -> u64 {
        self.epoch_seconds / self.heartbeat_interval_seconds.max(1)
    }

    fn epoch_ms(&self) -> i128 {
        i128::from(self.epoch_seconds) * 1000
    }

    /// The epoch containing `t_ms`, or `None` before genesis (or for a policy
    /// with a zero epoch length).
    pub fn epoch_of(&self, t_ms: i64) -> Option<EpochIndex> {
        let len = self.epoch_ms();
        let since = i128::from(t_ms) - i128::from(self.genesis_unix_ms);
        if len == 0 || since < 0 {
            return None;
        }
        EpochIndex::try_from(since / len).ok()
    }

    /// First millisecond of epoch `e` (inclusive). Saturates at `i64::MAX` for
    /// epochs beyond the representable time range.
    pub fn epoch_start_ms(&self, e: EpochIndex) -> i64 {
        let t = i128::from(self.genesis_unix_ms) + i128::from(e) * self.epoch_ms();
        i64::try_from(t).unwrap_or(i64::MAX)
    }

    /// End of epoch `e` (exclusive): the start of epoch `e + 1`.
    pub fn epoch_end_ms(&self, e: EpochIndex) -> i64 {
        self.epoch_start_ms(e.saturating_add(1))
    }

    /// The earliest time epoch `e` may be closed: its end plus the grace.
    pub fn closable_at_ms(&self, e: EpochIndex) -> i64 {
        self.epoch_end_ms(e)
            .saturating_add((self.close_grace_seconds as i64).saturating_mul(1000))
    }

    /// Whole epochs per policy year (at least 1).
    pub fn epochs_per_year(&self) -> u64 {
        (SECONDS_PER_YEAR / self.epoch_seconds.max(1)).max(1)
    }

    /// Deterministic bytes of the policy: compact JSON with fields in
    /// declaration order and sector weights in `Sector` order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a policy always serialises")
    }

    /// `v<version>-<first 8 hex of blake3(canonical_bytes)>`, e.g. `v1-3f9c0a12`.
    pub fn id(&self) -> String {
        let hash = blake3::hash(&self.canonical_bytes());
        format!("v{}-{}", self.version, hex::encode(&hash.as_bytes()[..4]))
    }
}

/// Base units minted in `epoch`. Year `y = epoch / epochs_per_year` mints
/// `E(y)` per epoch, where `E(0) = emission_per_epoch_year0` and
/// `E(y+1) = floor(E(y) × (10000 − decay) / 10000)`: integer compounding per
/// year, so the schedule never increases and never underflows, and reaches zero
/// after finitely many years when decay > 0.
pub fn emission_for_epoch(p: &RewardPolicy, epoch: EpochIndex) -> Amount {
    emission_for_year(p, epoch / p.epochs_per_year())
}

/// Per-epoch emission in policy year `year` (see [`emission_for_epoch`]).
pub fn emission_for_year(p: &RewardPolicy, year: u64) -> Amount {
    let keep = u128::from(BPS.saturating_sub(p.yearly_decay_bps));
    let mut e = u128::from(p.emission_per_epoch_year0);
    if keep == u128::from(BPS) {
        return p.emission_per_epoch_year0;
    }
    // Bounded: each year multiplies by at most 9999/10000, so from u64::MAX the
    // amount reaches 0 within ~450,000 years; the loop stops there.
    for _ in 0..year {
        if e == 0 {
            break;
        }
        e = e * keep / u128::from(BPS);
    }
    e as Amount
}
