//! `depin devnet`: a whole network, simulated deterministically in one process.
//!
//! What is real: the coordinator ([`depin_coordinator::Coordinator`]) over the
//! real SQLite store, ed25519 keys derived from the seed, real signatures, the
//! real ingest checks, verifiers, reward engine, ledger, claim trees and
//! `audit-epoch`. What is simulated, from the seed alone: the clock, the network
//! (which reports travel together, and when) and the world (who operates which
//! device, what it costs, who cheats, the token price).
//!
//! Design decision: sans-IO, like the coordinator itself. The simulation is a
//! pure state machine ([`schedule::Simulation`]) that turns the [`world::World`]
//! into a time-ordered stream of [`schedule::Event`]s (onboard these
//! certificates, deliver this batch at this instant, close that epoch). The thin
//! async [`shell`] feeds each event to the coordinator, one at a time, and
//! awaits it before asking for the next. Nothing runs concurrently, no wall
//! clock is read and no map is iterated in hash order, so the same seed and
//! flags give the same calls with the same arguments, and so byte-identical
//! files (DESIGN invariant 7, TigerBeetle's VOPR).
//!
//! Ground truth (each device's [`actor::SectorActor`] and the [`actor::Expect`]
//! mark on every report it sends) lives only in the world: the coordinator
//! sees signed bytes and nothing else, and the run checks afterwards that it
//! caught every cheat (they earn nothing, with reason codes), paid every
//! honest device and, through the seeded faults of [`faults`], lost nothing
//! and accepted nothing twice.
//!
//! The SQLite file is reproducible too, byte for byte, faults included:
//! restarts and failed writes change no committed row, and the shell hands
//! the file over through `Store::seal`, which fixes the three things that
//! would otherwise differ (sqlx's migration times, the header's change
//! counter, WAL side files). `depin audit-epoch` and `depin serve` switch
//! the sealed file back to WAL mode when they open it.

pub mod actor;
pub mod faults;
pub mod output;
pub mod report;
pub mod schedule;
pub mod shell;
pub mod uptime;
pub mod world;

use std::fmt;
use std::str::FromStr;

pub use actor::{ActorKind, ActorRegistry, Class, SectorActor};
pub use faults::FaultLevel;
pub use output::{DevnetOutcome, table};
pub use shell::{Progress, run, run_with};

use std::sync::Arc;

/// Sectors a run adds to the backbone: plugins for the coordinator and the
/// kinds of actor that play their devices. `depin devnet` runs with none
/// (heartbeats and availability); a sector's own tests run the whole
/// devnet, faults included, with theirs through [`run_with`], without
/// editing this crate.
#[derive(Clone, Default)]
pub struct Extensions {
    pub plugins: Vec<Arc<dyn depin_coordinator::SectorPlugin>>,
    pub actors: Vec<&'static [ActorKind]>,
}

impl Extensions {
    /// The devnet's actors and the extensions', names unique.
    pub fn registry(&self) -> Result<ActorRegistry, DevnetError> {
        let mut lists: Vec<&'static [ActorKind]> = vec![&uptime::KINDS];
        lists.extend(self.actors.iter().copied());
        ActorRegistry::new(&lists).map_err(DevnetError::Usage)
    }

    /// What the coordinator is opened with, at start and after each restart.
    pub fn sectors(&self) -> Result<depin_coordinator::SectorSet, DevnetError> {
        if self.plugins.is_empty() {
            return Ok(depin_coordinator::SectorSet::backbone());
        }
        let plugins: Vec<&dyn depin_coordinator::SectorPlugin> =
            self.plugins.iter().map(|p| p.as_ref()).collect();
        depin_coordinator::SectorSet::new(&plugins).map_err(DevnetError::Usage)
    }
}

/// Simulated epoch length. Simulated time costs nothing, so epochs are a real
/// hour long: the devnet policy then expects 12 heartbeats per epoch, like
/// mainnet, and clock-skew windows keep their real proportions.
pub const EPOCH_SECONDS: u64 = 3600;

/// Upper bounds on the flags, so memory and run time stay bounded.
pub const MAX_NODES: u32 = 100_000;
pub const MAX_EPOCHS: u32 = 10_000;

/// The run's flags. Everything the run does is a function of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub seed: u64,
    pub nodes: u32,
    pub epochs: u32,
    pub scenario: Scenario,
    pub faults: FaultLevel,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            nodes: 200,
            epochs: 24,
            scenario: Scenario::Mixed,
            faults: FaultLevel::Default,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), DevnetError> {
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return Err(DevnetError::Usage(format!(
                "--nodes must be 1..={MAX_NODES}, got {}",
                self.nodes
            )));
        }
        if self.epochs == 0 || self.epochs > MAX_EPOCHS {
            return Err(DevnetError::Usage(format!(
                "--epochs must be 1..={MAX_EPOCHS}, got {}",
                self.epochs
            )));
        }
        Ok(())
    }
}

/// Who cheats, and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// About 15% protocol cheats, 15% flaky devices, the rest honest.
    Mixed,
    /// No cheats; 15% flaky devices.
    Honest,
    /// Half the devices cheat; 15% flaky.
    Cheaters,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::Mixed, Scenario::Honest, Scenario::Cheaters];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Mixed => "mixed",
            Scenario::Honest => "honest",
            Scenario::Cheaters => "cheaters",
        }
    }

    /// Share of devices that cheat, in percent.
    pub fn cheat_percent(self) -> u32 {
        match self {
            Scenario::Mixed => 15,
            Scenario::Honest => 0,
            Scenario::Cheaters => 50,
        }
    }

    /// Share of devices that are honest but flaky, in percent.
    pub fn flaky_percent(self) -> u32 {
        15
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = DevnetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|x| x.as_str()).collect();
                DevnetError::Usage(format!(
                    "unknown scenario {s:?}: expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// Bad flags or output directory: the user can fix it.
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Coordinator(#[from] depin_coordinator::CoordError),
    #[error(transparent)]
    Store(#[from] depin_store::StoreError),
    #[error(transparent)]
    Economics(#[from] depin_economics::EconomicsError),
    /// The simulation found the system in a state it must never be in: a bug.
    #[error("devnet invariant violated (a bug; rerun with the same seed to reproduce): {0}")]
    Invariant(String),
}
