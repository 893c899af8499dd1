//! Actors: the simulated participants of the network, one per device.
//!
//! An actor is what one device does, as ground truth the coordinator never
//! sees: on every heartbeat tick the schedule hands it the simulated clock and
//! its share of the seeded network draws, and it puts the signed reports it
//! would send into an [`Outbox`], each marked with what the coordinator must
//! make of it ([`Expect`]). The run checks those marks afterwards.
//!
//! Design decision: trait objects and a registry by name, not an enum. Each
//! sector lists its kinds of actor as a `&'static [ActorKind]` (the uptime
//! kinds are in [`crate::uptime`]); [`ActorRegistry::devnet`] joins the lists
//! and refuses a name listed twice, so a sector adds its actors without
//! touching anyone else's. A kind is data (name, [`Class`], the sectors it
//! fits, whether it registers) plus one constructor that draws its
//! parameters from the world's seeded streams.
//!
//! A sector's actors that answer the coordinator's work say so
//! ([`SectorActor::wants_work`]); after every close the shell pulls each such
//! device's open work orders from the coordinator with a request signed by
//! the device key, as a real agent does, and hands them to the actor
//! ([`SectorActor::work`]), which answers in its next ticks.

use crate::world::Device;
use depin_core::{Sector, UnixMillis};
use depin_protocol::Signed;
use depin_rewards::RewardPolicy;
pub use depin_store::WorkRow;
use rand_chacha::ChaCha20Rng;

/// What the run expects of an actor's rewards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Must earn something in every run.
    Honest,
    /// Honest but unreliable: may or may not earn; never refused.
    Flaky,
    /// A protocol cheat: must earn nothing, with reason codes.
    Cheat,
}

/// What the coordinator must do with one report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Store it, exactly once.
    Accept,
    /// Refuse it (the reason code is the coordinator's to choose).
    Refuse,
}

/// One heartbeat tick, as the schedule hands it to every actor.
pub struct Tick<'a> {
    /// Ticks since genesis.
    pub index: u64,
    /// When the tick goes out on the simulated clock.
    pub at_ms: UnixMillis,
    /// This device's seeded clock jitter for the tick (0 .. interval / 4).
    pub jitter_ms: i64,
    /// This device's seeded roll for the tick, 0 .. 10^6.
    pub roll: u32,
    pub genesis_ms: UnixMillis,
    pub policy: &'a RewardPolicy,
}

/// One report an actor sent, with the ground truth about it.
pub struct Sent {
    /// The world's index of the sending device.
    pub sender: u32,
    pub report: Signed,
    pub expect: Expect,
}

/// Where actors put what they send during a delivery.
///
/// Reports whose signature cannot verify go to the back of the batch: the
/// coordinator checks signatures 64 at a time with one batch equation and
/// re-checks a failing chunk one by one, so grouping them keeps runs fast.
/// Order inside a batch changes no verdict.
#[derive(Default)]
pub struct Outbox {
    pub(crate) sender: u32,
    pub(crate) front: Vec<Sent>,
    pub(crate) back: Vec<Sent>,
}

impl Outbox {
    pub fn send(&mut self, report: Signed, expect: Expect) {
        let sender = self.sender;
        self.front.push(Sent {
            sender,
            report,
            expect,
        });
    }

    /// A report whose signature does not verify; always refused.
    pub fn send_unverifiable(&mut self, report: Signed) {
        let sender = self.sender;
        self.back.push(Sent {
            sender,
            report,
            expect: Expect::Refuse,
        });
    }
}

/// One simulated participant of a sector.
pub trait SectorActor: Send + Sync {
    /// The registry entry this actor was built from.
    fn kind(&self) -> &'static ActorKind;

    /// What the device sends at `tick`. Called for every device on every
    /// tick, in device order; reports of one device must go out in sequence
    /// order.
    fn tick(&mut self, device: &Device, tick: &Tick<'_>, out: &mut Outbox);

    /// Whether the device pulls its work orders (see the module docs).
    fn wants_work(&self) -> bool {
        false
    }

    /// The device's open work orders, pulled right after a close, soonest
    /// deadline first.
    fn work(&mut self, _orders: Vec<WorkRow>) {}

    /// A copy in the state it was built in: the world keeps the actors as
    /// drawn, every simulation plays its own copies.
    fn fresh(&self) -> Box<dyn SectorActor>;
}

/// The world's seeded streams an actor's parameters are drawn from.
pub struct Draws<'a> {
    /// Parameters (rates, offsets).
    pub world: &'a mut ChaCha20Rng,
    /// Key material.
    pub keys: &'a mut ChaCha20Rng,
}

/// A kind of actor: its data and its constructor.
pub struct ActorKind {
    /// Unique across the registry; the `behaviour` in the outputs.
    pub name: &'static str,
    pub class: Class,
    /// Sectors whose devices may play it; empty: every sector.
    pub sectors: &'static [Sector],
    /// Whether the device is onboarded at genesis.
    pub registered: bool,
    /// Draws the parameters (always the same draws, so the world of a seed
    /// does not depend on which kinds exist elsewhere) and builds the actor.
    pub build: fn(&'static ActorKind, &mut Draws<'_>) -> Box<dyn SectorActor>,
}

impl ActorKind {
    pub fn fits(&self, sector: Sector) -> bool {
        self.sectors.is_empty() || self.sectors.contains(&sector)
    }
}

/// Every kind of actor the devnet knows, in listing order.
#[derive(Clone)]
pub struct ActorRegistry {
    kinds: Vec<&'static ActorKind>,
}

impl ActorRegistry {
    /// Joins sector lists; refuses a name listed twice.
    pub fn new(lists: &[&'static [ActorKind]]) -> Result<ActorRegistry, String> {
        let mut kinds: Vec<&'static ActorKind> = Vec::new();
        for list in lists {
            for k in list.iter() {
                if kinds.iter().any(|x| x.name == k.name) {
                    return Err(format!("actor kind {:?} is listed twice", k.name));
                }
                kinds.push(k);
            }
        }
        Ok(ActorRegistry { kinds })
    }

    /// Every sector's actors. A sector with actors of its own adds its list
    /// here.
    pub fn devnet() -> ActorRegistry {
        ActorRegistry::new(&[&crate::uptime::KINDS]).expect("the devnet's actor names are unique")
    }

    pub fn get(&self, name: &str) -> Option<&'static ActorKind> {
        self.kinds.iter().copied().find(|k| k.name == name)
    }

    pub fn kinds(&self) -> &[&'static ActorKind] {
        &self.kinds
    }

    /// The kinds of `class` a device of `sector` may play, in listing order:
    /// the sector's own kinds of that class when it has any, else the kinds
    /// for every sector. A sector whose verifier asks for more than
    /// heartbeats (answers to challenges) lists its own honest kind, and
    /// then no honest device of it plays a heartbeat-only actor that its
    /// verifier would rightly leave unpaid.
    pub fn fitting(&self, class: Class, sector: Sector) -> Vec<&'static ActorKind> {
        let of_class = || self.kinds.iter().copied().filter(move |k| k.class == class);
        let own: Vec<_> = of_class().filter(|k| k.sectors.contains(&sector)).collect();
        if !own.is_empty() {
            return own;
        }
        of_class().filter(|k| k.sectors.is_empty()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_refuses_a_name_twice_and_finds_by_name() {
        let r = ActorRegistry::devnet();
        assert_eq!(r.get("replayer").map(|k| k.class), Some(Class::Cheat));
        assert!(r.get("nobody").is_none());
        let err = ActorRegistry::new(&[&crate::uptime::KINDS, &crate::uptime::KINDS])
            .err()
            .unwrap();
        assert!(err.contains("listed twice"), "{err}");
        for s in Sector::ALL {
            assert_eq!(r.fitting(Class::Honest, s).len(), 1);
            assert_eq!(r.fitting(Class::Cheat, s).len(), 4);
        }
    }

    static STORAGE_HONEST: [ActorKind; 1] = [ActorKind {
        name: "storage_honest",
        class: Class::Honest,
        sectors: &[Sector::Storage],
        registered: true,
        build: |kind, _| crate::uptime::Heartbeats::boxed(kind, crate::uptime::Conduct::default()),
    }];

    #[test]
    fn a_sectors_own_kinds_come_before_the_kinds_for_every_sector() {
        let r = ActorRegistry::new(&[&crate::uptime::KINDS, &STORAGE_HONEST]).unwrap();
        let names = |c, s| -> Vec<&str> { r.fitting(c, s).iter().map(|k| k.name).collect() };
        assert_eq!(
            names(Class::Honest, Sector::Storage),
            vec!["storage_honest"]
        );
        assert_eq!(names(Class::Honest, Sector::Compute), vec!["honest"]);
        // No storage cheat of its own: the cheats for every sector.
        assert_eq!(names(Class::Cheat, Sector::Storage).len(), 4);
    }
}
