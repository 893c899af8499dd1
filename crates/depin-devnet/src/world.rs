//! The simulated world, drawn from the seed: operators and their costs,
//! devices with their sector, hardware profile and behaviour, and the token
//! price path. Pure: a function of [`Config`] only.
//!
//! Every kind of draw has its own ChaCha20 stream (`seed`, stream = purpose),
//! so adding a draw of one kind never shifts the others: the keys of seed 7 are
//! the same whatever the scenario, and the price path does not depend on the
//! number of devices.

use crate::actor::{ActorKind, ActorRegistry, Class, Draws, SectorActor};
use crate::uptime::REPLAYER_GENUINE_HEARTBEATS;
use crate::{Config, DevnetError, EPOCH_SECONDS};
use depin_core::{PublicKey, Sector};
use depin_economics::{
    Catalogue, DeviceProfile, EstimateInputs, Market, NetworkRates, OperatorSettings,
    inputs_for_profile,
};
use depin_protocol::{SigningKey, device_keypair_from_seed, public_key_of};
use depin_rewards::RewardPolicy;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// ChaCha streams, one per purpose.
pub(crate) const STREAM_WORLD: u64 = 1;
pub(crate) const STREAM_KEYS: u64 = 2;
pub(crate) const STREAM_PRICE: u64 = 3;
pub(crate) const STREAM_NETWORK: u64 = 4;
pub(crate) const STREAM_FAULTS: u64 = 5;

/// Simulated genesis: the policy's own default (2026-01-01T00:00:00Z).
pub fn devnet_policy() -> RewardPolicy {
    RewardPolicy::devnet(EPOCH_SECONDS)
}

pub(crate) fn rng(seed: u64, stream: u64) -> ChaCha20Rng {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// Devices per operator are drawn from `1..=MAX_DEVICES_PER_OPERATOR`.
pub const MAX_DEVICES_PER_OPERATOR: u32 = 6;

/// Which class a device is given, and its place among the devices of that
/// class (cheat kinds are assigned round-robin by it).
#[derive(Clone, Copy)]
struct Role {
    class: Class,
    slot: usize,
}

pub struct Operator {
    pub key: SigningKey,
    pub public: PublicKey,
    pub kwh_price_usd: f64,
    pub internet_usd_per_month: f64,
}

pub struct Device {
    pub index: u32,
    pub operator: u32,
    pub key: SigningKey,
    pub public: PublicKey,
    pub sector: Sector,
    pub profile: DeviceProfile,
    /// The economics crate's inputs for this device under its operator's
    /// costs; the costs in the outputs come from its functions.
    pub economics: EstimateInputs,
    /// What it does: ground truth, known to the world and never to the
    /// coordinator. Kept as drawn; each simulation plays a fresh copy.
    pub actor: Box<dyn SectorActor>,
    /// Typical operating temperature, for telemetry.
    pub temperature_centi_c: i32,
    pub firmware_version: String,
}

impl Device {
    /// The kind of actor it is.
    pub fn kind(&self) -> &'static ActorKind {
        self.actor.kind()
    }

    /// Running costs (electricity, internet share, maintenance) plus hardware
    /// depreciation over its lifetime, per month, from the economics crate.
    pub fn costs_usd_per_month(&self) -> f64 {
        self.economics.running_costs_usd_per_month() + self.economics.depreciation_usd_per_month()
    }
}

pub struct World {
    pub config: Config,
    pub policy: RewardPolicy,
    pub operators: Vec<Operator>,
    pub devices: Vec<Device>,
    /// The market the token price path is drawn under (the economics crate's defaults).
    pub market: Market,
    /// Token price in USD during each epoch.
    pub token_price_usd: Vec<f64>,
    /// The kinds of actor the devices were drawn from.
    pub registry: ActorRegistry,
}

impl World {
    /// The world of `config` with the devnet's own actors.
    pub fn generate(config: &Config) -> Result<World, DevnetError> {
        World::generate_with(config, ActorRegistry::devnet())
    }

    /// The world of `config` whose devices play kinds from `registry` (the
    /// devnet's own and a sector's, see [`crate::Extensions`]).
    pub fn generate_with(config: &Config, registry: ActorRegistry) -> Result<World, DevnetError> {
        config.validate()?;
        let policy = devnet_policy();
        policy
            .validate()
            .map_err(|e| DevnetError::Invariant(format!("devnet policy: {e}")))?;
        if REPLAYER_GENUINE_HEARTBEATS * 10_000
            >= u64::from(policy.min_uptime_bps) * policy.expected_heartbeats()
        {
            return Err(DevnetError::Invariant(
                "a replayer's genuine heartbeats would pass the uptime gate".into(),
            ));
        }
        let nodes = config.nodes as usize;
        let mut w = rng(config.seed, STREAM_WORLD);
        let mut k = rng(config.seed, STREAM_KEYS);
        let key = |k: &mut ChaCha20Rng| device_keypair_from_seed(k.r#gen::<[u8; 32]>());

        // Devices' own keys first, so they depend on the seed and index only.
        let device_keys: Vec<SigningKey> = (0..nodes).map(|_| key(&mut k)).collect();

        // Operators and how many devices each runs.
        let mut owner = Vec::with_capacity(nodes);
        let mut operators = Vec::new();
        while owner.len() < nodes {
            let count = w.gen_range(1..=MAX_DEVICES_PER_OPERATOR) as usize;
            let op = key(&mut k);
            operators.push(Operator {
                public: public_key_of(&op),
                key: op,
                kwh_price_usd: round_to(w.gen_range(0.08..0.40), 3),
                internet_usd_per_month: round_to(w.gen_range(30.0..90.0), 2),
            });
            let index = (operators.len() - 1) as u32;
            owner.extend(std::iter::repeat_n(index, count.min(nodes - owner.len())));
        }

        // Sectors: balanced, then shuffled.
        let mut sectors: Vec<Sector> = (0..nodes).map(|i| Sector::ALL[i % 4]).collect();
        sectors.shuffle(&mut w);

        // Roles: exact counts from the scenario's shares, placed at random.
        let cheats = share(nodes, config.scenario.cheat_percent());
        let flaky = share(nodes, config.scenario.flaky_percent()).min(nodes - cheats);
        let role = |class, slot| Role { class, slot };
        let mut roles: Vec<Role> = Vec::with_capacity(nodes);
        roles.extend((0..cheats).map(|i| role(Class::Cheat, i)));
        roles.extend((0..flaky).map(|i| role(Class::Flaky, i)));
        roles.extend((0..nodes - cheats - flaky).map(|i| role(Class::Honest, i)));
        roles.shuffle(&mut w);

        let catalogue = Catalogue::builtin();
        let rates = NetworkRates::builtin();
        let mut devices = Vec::with_capacity(nodes);
        for (i, device_key) in device_keys.into_iter().enumerate() {
            let sector = sectors[i];
            let fitting: Vec<&DeviceProfile> = catalogue
                .devices()
                .iter()
                .filter(|p| p.sector == sector)
                .collect();
            let profile = (*fitting.choose(&mut w).ok_or_else(|| {
                DevnetError::Invariant(format!("the catalogue has no {sector} device"))
            })?)
            .clone();
            let op = &operators[owner[i] as usize];
            // The operator's line and tariff; this device's share of the line and
            // its upkeep vary around the catalogue's figures.
            let settings = OperatorSettings {
                kwh_price_usd: op.kwh_price_usd,
                internet_usd_per_month: op.internet_usd_per_month,
                internet_share: Some(round_to(
                    (profile.internet_share * w.gen_range(0.5..1.5)).min(1.0),
                    3,
                )),
                maintenance_usd_per_month: Some(round_to(
                    profile.maintenance_usd_per_month * w.gen_range(0.5..1.5),
                    2,
                )),
                ..OperatorSettings::default()
            };
            let economics = inputs_for_profile(&profile, None, &settings, &rates, None)?;
            let Role { class, slot } = roles[i];
            let fitting = registry.fitting(class, sector);
            let kind = *fitting.get(slot % fitting.len().max(1)).ok_or_else(|| {
                DevnetError::Invariant(format!("no {class:?} actor fits a {sector} device"))
            })?;
            let actor = (kind.build)(
                kind,
                &mut Draws {
                    world: &mut w,
                    keys: &mut k,
                },
            );
            devices.push(Device {
                index: i as u32,
                operator: owner[i],
                public: public_key_of(&device_key),
                key: device_key,
                sector,
                profile,
                economics,
                actor,
                temperature_centi_c: w.gen_range(3_500..6_500),
                firmware_version: "1.0.0".to_string(),
            });
        }

        let market = Market::default();
        let token_price_usd = price_path(config.seed, config.epochs, &policy, &market);
        Ok(World {
            config: config.clone(),
            policy,
            operators,
            devices,
            market,
            token_price_usd,
            registry,
        })
    }

    /// Simulated months the run covers (for costs).
    pub fn months(&self) -> f64 {
        let seconds = f64::from(self.config.epochs) * self.policy.epoch_seconds as f64;
        seconds / depin_economics::SECONDS_PER_MONTH
    }
}

/// `percent` of `n`, rounded to nearest.
fn share(n: usize, percent: u32) -> usize {
    (n * percent as usize + 50) / 100
}

pub(crate) fn round_to(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// Token price per epoch: geometric Brownian motion with the economics crate's
/// conventions (σ and μ per year, μ the drift of the median), stepped per
/// epoch. Epoch 0 is at today's price.
pub fn price_path(seed: u64, epochs: u32, policy: &RewardPolicy, market: &Market) -> Vec<f64> {
    let mut r = rng(seed, STREAM_PRICE);
    let year_seconds = depin_economics::SECONDS_PER_MONTH * 12.0;
    let dt = policy.epoch_seconds as f64 / year_seconds;
    let mut w = 0.0f64;
    let mut out = Vec::with_capacity(epochs as usize);
    for e in 0..epochs {
        let t = f64::from(e) * dt;
        out.push(
            market.token_price_usd
                * (market.token_drift_per_year * t + market.token_volatility_per_year * w).exp(),
        );
        // Box–Muller: one standard normal per step.
        let u1: f64 = 1.0 - r.r#gen::<f64>();
        let u2: f64 = r.r#gen::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        w += dt.sqrt() * z;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scenario;

    fn config(seed: u64, nodes: u32, scenario: Scenario) -> Config {
        Config {
            seed,
            nodes,
            epochs: 4,
            scenario,
            faults: crate::FaultLevel::None,
        }
    }

    #[test]
    fn same_seed_same_world_and_every_cheat_kind_appears() {
        let a = World::generate(&config(3, 40, Scenario::Mixed)).unwrap();
        let b = World::generate(&config(3, 40, Scenario::Mixed)).unwrap();
        let sig = |w: &World| -> Vec<(PublicKey, u32, Sector, String, &'static str)> {
            w.devices
                .iter()
                .map(|d| {
                    (
                        d.public,
                        d.operator,
                        d.sector,
                        d.profile.name.clone(),
                        d.kind().name,
                    )
                })
                .collect()
        };
        assert_eq!(sig(&a), sig(&b));
        assert_eq!(a.token_price_usd, b.token_price_usd);
        for kind in [
            "forged_signature",
            "replayer",
            "skewed_clock",
            "unregistered",
            "flaky",
            "honest",
        ] {
            assert!(
                a.devices.iter().any(|d| d.kind().name == kind),
                "{kind} missing"
            );
        }
        for s in Sector::ALL {
            assert!(
                a.devices
                    .iter()
                    .any(|d| d.sector == s && d.profile.sector == s)
            );
        }
        let c = World::generate(&config(4, 40, Scenario::Mixed)).unwrap();
        assert_ne!(sig(&a), sig(&c));
    }

    #[test]
    fn scenario_shares() {
        let count = |s| {
            World::generate(&config(1, 200, s))
                .unwrap()
                .devices
                .iter()
                .filter(|d| d.kind().class == Class::Cheat)
                .count()
        };
        assert_eq!(count(Scenario::Honest), 0);
        assert_eq!(count(Scenario::Mixed), 30);
        assert_eq!(count(Scenario::Cheaters), 100);
    }

    #[test]
    fn operators_run_several_devices_with_positive_costs() {
        let w = World::generate(&config(9, 100, Scenario::Mixed)).unwrap();
        assert!(w.operators.len() < 100);
        for d in &w.devices {
            assert!(d.costs_usd_per_month() > 0.0, "{}", d.profile.name);
        }
        assert!(w.token_price_usd.iter().all(|p| *p > 0.0));
        assert_eq!(w.token_price_usd[0], Market::default().token_price_usd);
    }
}
